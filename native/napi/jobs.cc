#include "jobs.h"

#include <chrono>
#include <memory>
#include <optional>

#include "../core/runtime/job_queue.h"
#include "errors.h"

namespace torchedit::napi {

namespace {

class AsyncJob;

struct Message {
  enum class Kind { Progress, Done } kind;
  std::shared_ptr<AsyncJob> job;  // keeps the job alive until the main thread has seen it
  Progress progress;
};

void callJs(Napi::Env env, Napi::Function, AsyncJob* context, Message* message);
using Tsfn = Napi::TypedThreadSafeFunction<AsyncJob, Message, callJs>;

// Progress is throttled so a fast loop cannot flood the main thread (docs/architecture.md "Progress").
constexpr auto kProgressInterval = std::chrono::milliseconds(50);

class AsyncJob final : public QueuedJob, public JobContext, public std::enable_shared_from_this<AsyncJob> {
 public:
  AsyncJob(Napi::Env env, DeviceQueue& queue, Work work, Napi::Value onProgress)
      : queue_(queue), work_(std::move(work)), deferred_(Napi::Promise::Deferred::New(env)) {
    if (onProgress.IsFunction()) {
      onProgress_ = Napi::Persistent(onProgress.As<Napi::Function>());
      wantsProgress_ = true;
    }
    tsfn_ = Tsfn::New(env, "torchedit.job", 0, 1, this);
  }

  // --- worker thread ---
  void run() override {
    if (!cancelRequested) {
      try {
        result_ = translateErrors(code::kInternal, [&] { return work_(*this); });
      } catch (const Error& e) {
        error_ = ErrorInfo{e.code(), e.what()};
      }
    }
    if (cancelRequested && !error_ && !result_) error_ = ErrorInfo{code::kAborted, "The operation was aborted"};
    work_ = nullptr;  // free captured tensors on the worker, not on the main thread
    tsfn_.BlockingCall(new Message{Message::Kind::Done, shared_from_this(), {}});
    tsfn_.Release();
  }

  bool cancelled() const override { return cancelRequested.load(); }

  void progress(const Progress& p) override {
    if (!wantsProgress_) return;
    auto now = std::chrono::steady_clock::now();
    if (p.step < p.total && now - lastProgress_ < kProgressInterval) return;
    lastProgress_ = now;
    tsfn_.NonBlockingCall(new Message{Message::Kind::Progress, shared_from_this(), p});
  }

  // --- main thread ---
  Napi::Promise promise() const { return deferred_.Promise(); }

  bool cancel(Napi::Env env) {
    if (settled_) return false;
    cancelRequested = true;
    if (queue_.removeQueued(this)) {  // never started: settle now, the worker will not see it
      settle(env, std::nullopt);
      tsfn_.Release();
    }
    return true;
  }

  void onMessage(Napi::Env env, const Message& message) {
    if (message.kind == Message::Kind::Progress) {
      if (settled_ || onProgress_.IsEmpty()) return;
      const Progress& p = message.progress;
      Napi::Object info = Napi::Object::New(env);
      info.Set("phase", p.phase);
      info.Set("step", static_cast<double>(p.step));
      info.Set("total", static_cast<double>(p.total));
      if (p.hasValue) info.Set("value", p.value);
      try {
        onProgress_.Call({info});
      } catch (const Napi::Error&) {
        // The TS layer wraps callbacks; a throwing callback must not stop the job.
      }
      return;
    }
    if (error_) {
      settle(env, error_);
      return;
    }
    try {
      Napi::Value value = result_ ? result_(env) : env.Undefined();
      result_ = nullptr;
      markSettled();
      deferred_.Resolve(value);
    } catch (const Napi::Error& e) {
      markSettled();
      deferred_.Reject(e.Value());
    }
  }

 private:
  struct ErrorInfo {
    const char* code;
    std::string message;
  };

  // JS references must be dropped on the main thread: the last owner of the job may be the
  // worker, which must never touch napi_ref.
  void markSettled() {
    settled_ = true;
    onProgress_.Reset();
  }

  void settle(Napi::Env env, const std::optional<ErrorInfo>& error) {
    if (settled_) return;
    markSettled();
    ErrorInfo info = error.value_or(ErrorInfo{code::kAborted, "The operation was aborted"});
    deferred_.Reject(makeError(env, info.code, info.message).Value());
  }

  DeviceQueue& queue_;
  Work work_;
  ResultBuilder result_;
  std::optional<ErrorInfo> error_;
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference onProgress_;
  Tsfn tsfn_;
  bool wantsProgress_ = false;  // fixed at construction; read by the worker
  bool settled_ = false;        // main thread only
  std::chrono::steady_clock::time_point lastProgress_{};
};

void callJs(Napi::Env env, Napi::Function, AsyncJob*, Message* message) {
  std::unique_ptr<Message> owned(message);
  if (env == nullptr) return;  // environment shutting down
  owned->job->onMessage(env, *owned);
}

}  // namespace

Napi::Object enqueueJob(Napi::Env env, const std::string& device, Work work, Napi::Value onProgress) {
  DeviceQueue& queue = queueFor(device);
  auto job = std::make_shared<AsyncJob>(env, queue, std::move(work), onProgress);
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", job->promise());
  std::weak_ptr<AsyncJob> weak = job;
  handle.Set("cancel", Napi::Function::New(env, [weak](const Napi::CallbackInfo& info) -> Napi::Value {
               auto strong = weak.lock();
               return Napi::Boolean::New(info.Env(), strong && strong->cancel(info.Env()));
             }));
  queue.push(std::move(job));
  return handle;
}

}  // namespace torchedit::napi
