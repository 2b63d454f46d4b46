// A job with steps and nothing else, so tests can exercise the queue itself (order, abort while
// queued or between steps, progress throttling) without a model. Exposed as binding.testing.
#include "testing.h"

#include <chrono>
#include <thread>

#include "../core/edit/semantic_guidance.h"
#include "AddonTensor.h"
#include "errors.h"
#include "jobs.h"
#include "ledits_bindings.h"

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
// semanticGuidance(epsUncond [B,C,h,w], epsConcepts [K,B,C,h,w], options, steps) -> Tensor[steps]:
// the SEGA term of each edit step from the core's SemanticGuidance, for tests of the recursion.
Napi::Value SemanticGuidanceSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor uncond = AddonTensor::tensorOf(env, info[0], "epsUncond");
  torch::Tensor concepts = AddonTensor::tensorOf(env, info[1], "epsConcepts");
  SemanticGuidance guidance(toGuidanceOptions(info[2].As<Napi::Object>()));
  int64_t steps = info[3].ToNumber().Int64Value();
  Napi::Array out = Napi::Array::New(env, steps);
  guard(env, [&] {
    for (int64_t i = 0; i < steps; ++i) out.Set(static_cast<uint32_t>(i), AddonTensor::wrap(env, guidance.step(i, uncond, concepts)));
    return 0;
  });
  return out;
}
}  // namespace

void InitTesting(Napi::Env env, Napi::Object exports) {
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("stepJob", Napi::Function::New<StepJob>(env, "stepJob"));
  testing.Set("semanticGuidance", Napi::Function::New<SemanticGuidanceSteps>(env, "semanticGuidance"));
  exports.Set("testing", testing);
}

}  // namespace torchedit::napi
