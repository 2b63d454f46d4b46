// Test support, exposed as binding.testing: a job with steps and nothing else, so tests can
// exercise the queue itself (order, abort while queued or between steps, progress throttling)
// without a model; and direct calls into core pieces the pipelines use, for checks against Python.
#include "testing.h"

#include <chrono>
#include <thread>

#include "../core/edit/imagic.h"
#include "../core/edit/semantic_guidance.h"
#include "handle.h"
#include "addon.h"
#include "convert.h"
#include "errors.h"
#include "jobs.h"
#include "options.h"
#include "pipelines.h"

namespace torchedit::napi {

namespace {
// stepJob(device, steps, msPerStep, onProgress?) -> { promise<number of steps run>, cancel }
Napi::Value StepJob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string device = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "cpu";
  int64_t steps = info[1].ToNumber().Int64Value();
  int64_t ms = info[2].ToNumber().Int64Value();
  return enqueueJob(
      env, device,
      [steps, ms](JobContext& job) -> ResultBuilder {
        int64_t done = 0;
        for (; done < steps; ++done) {
          job.check();
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
          job.progress(Progress{"step", done + 1, steps, static_cast<double>(done), true});
        }
        return [done](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(done)); };
      },
      info[3]);
}

// semanticGuidance(epsUncond [B,C,h,w], epsConcepts [K,B,C,h,w], options, steps) -> Tensor[steps]:
// the SEGA term of each edit step (core semanticGuidanceSteps), for tests of the recursion.
Napi::Value SemanticGuidanceSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor uncond = AddonTensor::unwrap(env, info[0], "epsUncond");
  torch::Tensor concepts = AddonTensor::unwrap(env, info[1], "epsConcepts");
  auto options = readOptions<SemanticGuidanceOptions>(env, info[2]);
  int64_t steps = info[3].ToNumber().Int64Value();
  return toJs(env, guard(env, [&] { return semanticGuidanceSteps(options, uncond, concepts, steps); }));
}

// imagicLossGradient(model, x0, embedding, noise, t) -> [loss, ∂loss/∂embedding] with the bundle's UNet.
Napi::Value ImagicLossGradient(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  torch::Tensor x0 = call.tensor("x0"), embedding = call.tensor("embedding"), noise = call.tensor("noise");
  int64_t t = call.integer("t");
  return call.run([=](StableDiffusion& m, JobContext&) {
    auto [loss, grad] = imagicLossGradient(m, x0, embedding, t, noise);
    return std::vector<torch::Tensor>{loss, grad};
  });
}
}  // namespace

void InitTesting(Napi::Env env, Napi::Object exports) {
  exportFunctions(
      env, exports, "testing",
      {{"stepJob", StepJob}, {"semanticGuidance", SemanticGuidanceSteps}, {"imagicLossGradient", ImagicLossGradient}});
}

}  // namespace torchedit::napi
