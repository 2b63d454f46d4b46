// Bridges a core job on a device queue to a JS Promise (docs/architecture.md "Execution model"):
// the work runs on the device's worker thread; progress and completion come back through a
// thread-safe function; JS gets { promise, cancel }.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "../core/runtime/job.h"
#include "convert.h"

namespace torchedit::napi {

// Built on the worker, called on the main thread to make the promise's value.
using ResultBuilder = std::function<Napi::Value(Napi::Env)>;
// The job body; runs on the worker thread. Throws torchedit::Error (or anything libtorch throws).
using Work = std::function<ResultBuilder(JobContext&)>;

// Queues `work` on the queue of `device` (a canonical device name). `onProgress` is a JS
// function or undefined. Returns { promise, cancel(): boolean }: cancel() on a queued job
// rejects at once with ERR_ABORTED; on a running job it takes effect at the job's next check().
Napi::Object enqueueJob(Napi::Env env, const std::string& device, Work work, Napi::Value onProgress);

// enqueueJob for work that returns a value: the promise resolves to toJs(env, value)
// (convert.h), made on the main thread; work returning void resolves to undefined.
template <class Fn>
Napi::Object enqueue(Napi::Env env, const std::string& device, Napi::Value onProgress, Fn work) {
  return enqueueJob(
      env, device,
      [work](JobContext& job) -> ResultBuilder {
        using Result = decltype(work(job));
        if constexpr (std::is_void_v<Result>) {
          work(job);
          return nullptr;
        } else {
          auto result = std::make_shared<Result>(work(job));
          return [result](Napi::Env env) -> Napi::Value { return toJs(env, *result); };
        }
      },
      onProgress);
}

}  // namespace torchedit::napi
