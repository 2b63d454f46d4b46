// LEDITS jobs on a model's queue: invert and edit. The inversion's tensors live in Tensor
// handles owned by JS (lib/ledits/inversion.ts), so saving, loading and many edits need no
// native state of their own; the edit reads them and never writes them.
#include "ledits_bindings.h"

#include "../core/edit/ledits.h"
#include "AddonModel.h"
#include "AddonTensor.h"
#include "convert.h"
#include "errors.h"
#include "jobs.h"

namespace torchedit::napi {

namespace {

torch::Tensor optionalTensor(Napi::Env env, Napi::Value value, const char* what) {
  if (value.IsNull() || value.IsUndefined()) return torch::Tensor();
  return AddonTensor::tensorOf(env, value, what);
}

// invert(model, x0, unconditional, source | null, { steps, eta, sourceGuidanceScale, seed }, onProgress?)
//   -> [timesteps, xts, zs]
Napi::Value Invert(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = AddonModel::modelOf(env, info[0]);
  torch::Tensor x0 = AddonTensor::tensorOf(env, info[1], "x0");
  torch::Tensor uncond = AddonTensor::tensorOf(env, info[2], "unconditional");
  torch::Tensor source = optionalTensor(env, info[3], "source");
  Napi::Object o = info[4].As<Napi::Object>();
  InversionOptions options;
  options.steps = o.Get("steps").ToNumber().Int64Value();
  options.eta = o.Get("eta").ToNumber().DoubleValue();
  options.sourceGuidanceScale = o.Get("sourceGuidanceScale").ToNumber().DoubleValue();
  options.seed = toSeed(env, o.Get("seed"));
  return enqueueJob(env, model->device().str(), [=](JobContext& job) -> ResultBuilder {
    Inversion inv = invert(*model, x0, uncond, source, options, job);
    return [inv](Napi::Env env) -> Napi::Value {
      Napi::Array out = Napi::Array::New(env, 3);
      out.Set(0u, AddonTensor::wrap(env, inv.timesteps));
      out.Set(1u, AddonTensor::wrap(env, inv.xts));
      out.Set(2u, AddonTensor::wrap(env, inv.zs));
      return out;
    };
  }, info[5]);
}

// edit(model, timesteps, xts, zs, unconditional, target | null, concepts | null,
//      { steps, eta, skip, guidanceScale, momentumScale, momentumBeta, maskMode, concepts: [...] }, onProgress?)
Napi::Value Edit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = AddonModel::modelOf(env, info[0]);
  Inversion inversion;
  inversion.timesteps = AddonTensor::tensorOf(env, info[1], "timesteps");
  inversion.xts = AddonTensor::tensorOf(env, info[2], "xts");
  inversion.zs = AddonTensor::tensorOf(env, info[3], "zs");
  torch::Tensor uncond = AddonTensor::tensorOf(env, info[4], "unconditional");
  torch::Tensor target = optionalTensor(env, info[5], "target");
  torch::Tensor concepts = optionalTensor(env, info[6], "concepts");
  Napi::Object o = info[7].As<Napi::Object>();
  EditOptions options;
  options.steps = o.Get("steps").ToNumber().Int64Value();
  options.eta = o.Get("eta").ToNumber().DoubleValue();
  options.skip = o.Get("skip").ToNumber().Int64Value();
  options.guidanceScale = o.Get("guidanceScale").ToNumber().DoubleValue();
  options.guidance = toGuidanceOptions(o);
  const int64_t T = inversion.timesteps.numel();
  if (inversion.xts.dim() != 5 || inversion.zs.sizes() != inversion.xts.sizes() || inversion.xts.size(0) != T ||
      options.skip < 0 || options.skip >= T) {
    throwError(env, code::kShape, "The inversion's tensors do not fit together (timesteps, xts, zs) or skip is out of range");
  }
  if (concepts.defined() && static_cast<size_t>(concepts.size(0)) != options.guidance.concepts.size()) {
    throwError(env, code::kShape, "One set of concept options is needed per concept embedding");
  }
  return enqueueJob(env, model->device().str(), [=](JobContext& job) -> ResultBuilder {
    torch::Tensor latents = ledits(*model, inversion, uncond, target, concepts, options, job);
    return [latents](Napi::Env env) -> Napi::Value { return AddonTensor::wrap(env, latents); };
  }, info[8]);
}

}  // namespace

SemanticGuidanceOptions toGuidanceOptions(Napi::Object o) {
  SemanticGuidanceOptions g;
  g.momentumScale = o.Get("momentumScale").ToNumber().DoubleValue();
  g.momentumBeta = o.Get("momentumBeta").ToNumber().DoubleValue();
  g.maskMode = o.Get("maskMode").ToString().Utf8Value() == "sum" ? MaskMode::Sum : MaskMode::Channel;
  Napi::Array list = o.Get("concepts").As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Object c = list.Get(i).As<Napi::Object>();
    EditConcept concept;
    concept.scale = c.Get("scale").ToNumber().DoubleValue();
    concept.remove = c.Get("remove").ToBoolean().Value();
    concept.warmup = c.Get("warmup").ToNumber().Int64Value();
    Napi::Value cooldown = c.Get("cooldown");
    if (cooldown.IsNumber()) concept.cooldown = cooldown.ToNumber().Int64Value();
    concept.threshold = c.Get("threshold").ToNumber().DoubleValue();
    concept.weight = c.Get("weight").ToNumber().DoubleValue();
    g.concepts.push_back(concept);
  }
  return g;
}

void InitLedits(Napi::Env env, Napi::Object exports) {
  Napi::Object ledits = Napi::Object::New(env);
  ledits.Set("invert", Napi::Function::New<Invert>(env, "invert"));
  ledits.Set("edit", Napi::Function::New<Edit>(env, "edit"));
  exports.Set("ledits", ledits);
}

}  // namespace torchedit::napi
