// Test support, exposed as binding.testing: a job with steps and nothing else, so tests can
// exercise the queue itself (order, abort while queued or between steps, progress throttling)
// without a model; and direct calls into core pieces the pipelines use, for checks against Python.
#include "testing.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <thread>

#include "../core/edit/imagic.h"
#include "../core/edit/semantic_guidance.h"
#include "../core/kernels/fused_attention.h"
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

// imagicParameterGradients(model, x0, embedding, noise, t, names) -> [loss, { name: ∂loss/∂θ }]
// with the named UNet parameters made trainable as stage B makes them.
Napi::Value ImagicParameterGradients(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  torch::Tensor x0 = call.tensor("x0"), embedding = call.tensor("embedding"), noise = call.tensor("noise");
  int64_t t = call.integer("t");
  std::vector<std::string> names = call.strings("names");
  return call.run([=](StableDiffusion& m, JobContext&) {
    auto [loss, grads] = imagicParameterGradients(m, x0, embedding, t, noise, names);
    return std::make_pair(loss, grads);
  });
}

// Forces the fused attention kernel's SIMD path for its lifetime and restores the path that was in
// effect before when it ends, on an exception too. A path that is not available throws from the
// constructor, leaving the process's path as it was.
class SimdPathScope {
 public:
  explicit SimdPathScope(const std::string& path) : previous_(kernels::attentionSimd()) {
    kernels::setAttentionSimd(path);
  }
  ~SimdPathScope() {
    try {
      kernels::setAttentionSimd(previous_);
    } catch (...) {
      // previous_ was in effect, so it is available: setting it again cannot fail.
    }
  }
  SimdPathScope(const SimdPathScope&) = delete;
  SimdPathScope& operator=(const SimdPathScope&) = delete;

 private:
  std::string previous_;
};

// attention(q, kt, v, scale, simd) -> [fused, reference]: the fused kernel on the given SIMD path
// ("auto", "avx512", "avx2", "scalar"), and softmax(q·kt·scale)·v composed by torch in float64.
// The path is restored afterwards.
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor q = AddonTensor::unwrap(env, info[0], "q");
  torch::Tensor kt = AddonTensor::unwrap(env, info[1], "kt");
  torch::Tensor v = AddonTensor::unwrap(env, info[2], "v");
  double scale = info[3].ToNumber().DoubleValue();
  std::string simd = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "auto";
  auto both = guard(env, [&] {
    torch::NoGradGuard noGrad;
    torch::Tensor fused;
    {
      SimdPathScope path(simd);
      fused = kernels::fusedAttention(q, kt, v, scale);
    }
    torch::Tensor reference =
        kernels::fusedAttentionReference(q.to(torch::kDouble), kt.to(torch::kDouble), v.to(torch::kDouble), scale);
    return std::vector<torch::Tensor>{fused, reference.to(torch::kFloat)};
  });
  return toJs(env, both);
}

// attentionTimes(q, kt, v, scale, simd, reps) -> [fused ms, unfused ms]: the best of `reps` runs of
// the kernel and of torch's own chain (matmul → mul → softmax → matmul, in the inputs' dtype), for
// bench/attention.ts. Synchronous: benchmarks only.
Napi::Value AttentionTimes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor q = AddonTensor::unwrap(env, info[0], "q");
  torch::Tensor kt = AddonTensor::unwrap(env, info[1], "kt");
  torch::Tensor v = AddonTensor::unwrap(env, info[2], "v");
  double scale = info[3].ToNumber().DoubleValue();
  std::string simd = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "auto";
  int64_t reps = std::max<int64_t>(1, info[5].ToNumber().Int64Value());
  // 'cpu': this thread's CPU time instead of the wall clock, for one-thread comparisons on a
  // machine other work shares (time spent descheduled does not count).
  const bool cpuClock = info.Length() > 6 && info[6].IsString() && info[6].As<Napi::String>().Utf8Value() == "cpu";
  auto now = [cpuClock] {
    if (cpuClock) {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
    }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  auto times = guard(env, [&] {
    torch::NoGradGuard noGrad;
    auto best = [&](const std::function<torch::Tensor()>& fn) {
      double ms = 1e30;
      for (int64_t r = 0; r < reps; ++r) {
        const double t0 = now();
        torch::Tensor out = fn();
        ms = std::min(ms, now() - t0);
      }
      return ms;
    };
    double fused;
    {
      SimdPathScope path(simd);
      fused = best([&] { return kernels::fusedAttention(q, kt, v, scale); });
    }
    double unfused = best([&] { return torch::matmul(torch::softmax(torch::matmul(q, kt) * scale, -1), v); });
    return std::vector<double>{fused, unfused};
  });
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, times[0]);
  out.Set(1u, times[1]);
  return out;
}

// fusedSharesParameters(module) -> [parameters of the fused clone whose storage is the module's own, all
// parameters]: [n, n] when the clone shares every weight, [0, 0] without a clone.
Napi::Value FusedSharesParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<ScriptModule> module = AddonModule::unwrap(env, info[0], "module");
  Napi::Array out = Napi::Array::New(env, 2);
  int64_t shared = 0, total = 0;
  if (const torch::jit::Module* fused = module->inferenceModule()) {
    auto mine = module->module().named_parameters(true);
    for (const auto& p : fused->named_parameters(true)) {
      ++total;
      for (const auto& q : mine)
        if (q.name == p.name && q.value.data_ptr() == p.value.data_ptr()) ++shared;
    }
  }
  out.Set(0u, static_cast<double>(shared));
  out.Set(1u, static_cast<double>(total));
  return out;
}

// unetCalls(model, sample, context, t, calls) -> [ε̂ of the last call, seconds of each call (float64)]:
// StableDiffusion::predictNoise (the model's dtype casts and autocast, as every pipeline calls
// it) `calls` times without gradients, each timed on the worker. For bench/unet.ts.
Napi::Value UnetCalls(const Napi::CallbackInfo& info) {
  ModelCall call(info);
  torch::Tensor sample = call.tensor("sample"), context = call.tensor("context");
  int64_t t = call.integer("t"), calls = std::max<int64_t>(1, call.integer("calls"));
  return call.run([=](StableDiffusion& m, JobContext& job) {
    torch::NoGradGuard noGrad;
    torch::Tensor out, seconds = torch::empty({calls}, torch::kDouble);
    for (int64_t i = 0; i < calls; ++i) {
      job.check();
      auto t0 = std::chrono::steady_clock::now();
      out = m.predictNoise(sample, t, context);
      seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    return std::vector<torch::Tensor>{out, seconds};
  });
}

// setAttentionSimd(path) -> the path in effect (process-wide; for benchmarks of each path).
Napi::Value SetAttentionSimd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "auto";
  return Napi::String::New(env, guard(env, [&] { return kernels::setAttentionSimd(path); }));
}
}  // namespace

void InitTesting(Napi::Env env, Napi::Object exports) {
  exportFunctions(env, exports, "testing",
                  {{"stepJob", StepJob},
                   {"semanticGuidance", SemanticGuidanceSteps},
                   {"imagicLossGradient", ImagicLossGradient},
                   {"imagicParameterGradients", ImagicParameterGradients},
                   {"attention", Attention},
                   {"attentionTimes", AttentionTimes},
                   {"fusedSharesParameters", FusedSharesParameters},
                   {"unetCalls", UnetCalls},
                   {"setAttentionSimd", SetAttentionSimd}});
}

}  // namespace torchedit::napi
