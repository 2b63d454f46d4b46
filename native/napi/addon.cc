// Module init: registers each class and the runtime functions; no logic of its own.
#include "addon.h"

#include <torch/version.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <unistd.h>

#include <cstdlib>

#include "../core/kernels/fused_attention.h"
#include "../core/kernels/sgemm.h"
#include "../core/models/attention_fusion.h"
#include "../core/runtime/blas_threads.h"
#include "../core/runtime/cpu_allocator.h"
#include "../core/runtime/cuda_memory.h"
#include "../core/runtime/device.h"
#include "../core/runtime/job_queue.h"
#include "errors.h"
#include "handle.h"
#include "pipelines.h"
#include "testing.h"

namespace torchedit::napi {

AddonState& state(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

void exportFunctions(Napi::Env env, Napi::Object target, NamedCallbacks functions) {
  for (const auto& [name, fn] : functions) target.Set(name, Napi::Function::New(env, fn, name));
}

void exportFunctions(Napi::Env env, Napi::Object exports, const char* name, NamedCallbacks functions) {
  Napi::Object target = Napi::Object::New(env);
  exportFunctions(env, target, functions);
  exports.Set(name, target);
}

// What CMake built this addon for (cmake/FindLibtorch.cmake); defaults keep other builds compiling.
#ifndef TORCHEDIT_COMPUTE
#define TORCHEDIT_COMPUTE "cpu"
#endif
#ifndef TORCHEDIT_CUDA_VERSION
#define TORCHEDIT_CUDA_VERSION ""
#endif

namespace {

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("torchVersion", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                              std::to_string(TORCH_VERSION_PATCH));
  out.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI != 0));
  out.Set("cudaAvailable", Napi::Boolean::New(env, cudaAvailable()));
  out.Set("cudaDeviceCount", static_cast<double>(cudaAvailable() ? cudaDeviceCount() : 0));
  out.Set("intraOpThreads", static_cast<double>(at::get_num_threads()));
  out.Set("parallelInfo", at::get_parallel_info());
  BlasThreads blas = blasThreads();
  if (!blas.library.empty()) {
    Napi::Object b = Napi::Object::New(env);
    b.Set("library", blas.library);
    b.Set("threads", static_cast<double>(blas.threads));
    out.Set("blas", b);
  }
  out.Set("compute", TORCHEDIT_COMPUTE);
  out.Set("cudaVersion", TORCHEDIT_CUDA_VERSION);
  out.Set("buildConfig", at::show_config());
  Napi::Object attention = Napi::Object::New(env);
  attention.Set("fused", Napi::Boolean::New(env, fusedAttentionEnabled()));
  attention.Set("simd", kernels::attentionSimd());
  auto paths = kernels::availableAttentionSimd();
  Napi::Array available = Napi::Array::New(env, paths.size());
  for (size_t i = 0; i < paths.size(); ++i) available.Set(i, paths[i]);
  attention.Set("available", available);
  attention.Set("gemm", kernels::sgemmProvider());
  out.Set("attention", attention);
  return out;
}

// resolveDevice(name) -> { name, fallback? }: validates a device name without running a job.
Napi::Value ResolveDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string requested = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  ResolvedDevice d = guard(env, [&] { return resolveDevice(requested); });
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", d.name);
  if (!d.fallback.empty()) out.Set("fallback", d.fallback);
  return out;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  setIntraOpThreads(info[0].ToNumber().Int32Value());
  return info.Env().Undefined();
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("liveTensors", static_cast<double>(AddonTensor::live.load()));
  out.Set("tensorBytes", static_cast<double>(AddonTensor::liveBytes.load()));
  out.Set("liveModules", static_cast<double>(AddonModule::live.load()));
  out.Set("liveModels", static_cast<double>(AddonModel::live.load()));
  Napi::Array gpu = Napi::Array::New(env);
  for (const GpuMemory& m : gpuMemory()) {
    Napi::Object device = Napi::Object::New(env);
    device.Set("device", "cuda:" + std::to_string(m.index));
    device.Set("freeBytes", static_cast<double>(m.freeBytes));
    device.Set("totalBytes", static_cast<double>(m.totalBytes));
    gpu.Set(gpu.Length(), device);
  }
  out.Set("gpu", gpu);
  CpuCacheStats cache = cpuCacheStats();
  Napi::Object cpuCache = Napi::Object::New(env);
  cpuCache.Set("enabled", Napi::Boolean::New(env, cache.enabled));
  cpuCache.Set("cachedBytes", static_cast<double>(cache.cachedBytes));
  cpuCache.Set("limitBytes", static_cast<double>(cache.limitBytes));
  cpuCache.Set("hits", static_cast<double>(cache.hits));
  cpuCache.Set("misses", static_cast<double>(cache.misses));
  out.Set("cpuCache", cpuCache);
  return out;
}

// setCpuCache(enabled: boolean, limitBytes?: number)
Napi::Value SetCpuCache(const Napi::CallbackInfo& info) {
  if (info[1].IsNumber()) setCpuCacheLimit(static_cast<uint64_t>(info[1].As<Napi::Number>().DoubleValue()));
  setCpuCacheEnabled(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

// setFusedAttention(enabled: boolean): configure({ fusedAttention }).
Napi::Value SetFusedAttention(const Napi::CallbackInfo& info) {
  setFusedAttentionEnabled(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value EmptyCpuCache(const Napi::CallbackInfo& info) {
  emptyCpuCache();
  return info.Env().Undefined();
}

// The caching CPU allocator is on unless TORCHEDIT_CPU_CACHE=0; its default limit is a quarter
// of physical memory (TORCHEDIT_CPU_CACHE_LIMIT in bytes overrides).
void installAllocator() {
  uint64_t physical = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
  uint64_t limit = physical / 4;
  if (const char* v = std::getenv("TORCHEDIT_CPU_CACHE_LIMIT")) limit = std::strtoull(v, nullptr, 10);
  installCpuCachingAllocator(limit);
  const char* enabled = std::getenv("TORCHEDIT_CPU_CACHE");
  if (enabled && std::string(enabled) == "0") setCpuCacheEnabled(false);
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonState());
  installAllocator();
  // Workers must stop before the environment's handles go away.
  env.AddCleanupHook([] { shutdownAllQueues(); });
  InitTensor(env, exports);
  InitModule(env, exports);
  InitModel(env, exports);
  InitPipelines(env, exports);
  InitTesting(env, exports);
  exportFunctions(env, exports,
                  {{"runtimeInfo", RuntimeInfo},
                   {"resolveDevice", ResolveDevice},
                   {"setThreads", SetThreads},
                   {"memory", Memory},
                   {"setCpuCache", SetCpuCache},
                   {"emptyCpuCache", EmptyCpuCache},
                   {"setFusedAttention", SetFusedAttention}});
  return exports;
}

}  // namespace torchedit::napi

static Napi::Object InitTorchedit(Napi::Env env, Napi::Object exports) { return torchedit::napi::Init(env, exports); }

NODE_API_MODULE(torchedit, InitTorchedit)
