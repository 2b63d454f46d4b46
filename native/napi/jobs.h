// Bridges a core job on a device queue to a JS Promise (RUNTIME.md execution model):
// the work runs on the device's worker thread; progress and completion come back through a
// thread-safe function; JS gets { promise, cancel }.
#pragma once

#include <napi.h>

#include <functional>
#include <string>

#include "../core/runtime/job.h"

namespace torchedit::napi {

// Built on the worker, called on the main thread to make the promise's value.
using ResultBuilder = std::function<Napi::Value(Napi::Env)>;
// The job body; runs on the worker thread. Throws torchedit::Error (or anything libtorch throws).
using Work = std::function<ResultBuilder(JobContext&)>;

// Queues `work` on the queue of `device` (a canonical device name). `onProgress` is a JS
// function or undefined. Returns { promise, cancel(): boolean }: cancel() on a queued job
// rejects at once with ERR_ABORTED; on a running job it takes effect at the job's next check().
Napi::Object enqueueJob(Napi::Env env, const std::string& device, Work work,
                        Napi::Value onProgress);

}  // namespace torchedit::napi
