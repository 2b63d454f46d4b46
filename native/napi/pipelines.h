// The pipelines, bound one way: pipelines.<name>(model, tensors…, options, onProgress?) ->
// { promise, cancel }, each one job on the model's queue. Tensors a pipeline reads or returns
// stay in Tensor/Module handles owned by JS (an inversion's, an Imagic result's), so no pipeline
// keeps native state between calls.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "../core/models/stable_diffusion.h"
#include "../core/runtime/job.h"
#include "handle.h"
#include "jobs.h"
#include "options.h"

namespace torchedit::napi {

// Reads a call's arguments in that order (model first, onProgress last) and queues its work.
class ModelCall {
 public:
  explicit ModelCall(const Napi::CallbackInfo& info);

  torch::Tensor tensor(const char* what);
  torch::Tensor optionalTensor(const char* what);  // null: undefined tensor
  std::shared_ptr<ScriptModule> module(const char* what);
  int64_t integer(const char* what);
  std::vector<std::string> strings(const char* what);
  template <class Options>
  Options options() {
    return readOptions<Options>(env_, info_[next_++]);
  }

  // Queues fn(model, job) on the model's queue with the next argument as onProgress; the promise
  // resolves to toJs of what fn returns.
  template <class Fn>
  Napi::Value run(Fn fn) {
    auto model = model_;
    return enqueue(env_, model->device().str(), info_[next_], [model, fn](JobContext& job) { return fn(*model, job); });
  }

 private:
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  std::shared_ptr<StableDiffusion> model_;
  size_t next_ = 1;
};

void InitPipelines(Napi::Env env, Napi::Object exports);

}  // namespace torchedit::napi
