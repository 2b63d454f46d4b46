// A job with steps and nothing else, so tests can exercise the queue itself (order, abort while
// queued or between steps, progress throttling) without a model. Exposed as binding.testing.
#include "testing.h"

#include <chrono>
#include <thread>

#include "errors.h"
#include "jobs.h"

namespace torchedit::napi {

namespace {
// stepJob(device, steps, msPerStep, onProgress?) -> { promise<number of steps run>, cancel }
Napi::Value StepJob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string device = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "cpu";
  int64_t steps = info[1].ToNumber().Int64Value();
  int64_t ms = info[2].ToNumber().Int64Value();
  return enqueueJob(env, device, [steps, ms](JobContext& job) -> ResultBuilder {
    int64_t done = 0;
    for (; done < steps; ++done) {
      job.check();
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      job.progress(Progress{"step", done + 1, steps, static_cast<double>(done), true});
    }
    return [done](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(done)); };
  }, info[3]);
}
}  // namespace

void InitTesting(Napi::Env env, Napi::Object exports) {
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("stepJob", Napi::Function::New<StepJob>(env, "stepJob"));
  exports.Set("testing", testing);
}

}  // namespace torchedit::napi
