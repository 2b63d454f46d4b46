// GPU memory through the CUDA runtime and driver that a CUDA libtorch has already loaded, looked
// up with dlsym: this file compiles and runs against a CPU-only libtorch (no CUDA headers, no
// CUDA link), where it finds no symbols and reports nothing. The loader (lib/loader/load.ts)
// loads libtorch_cuda with RTLD_LOCAL, so libcudart's symbols are looked up through a handle to
// libtorch_cuda (dlsym searches a handle's dependencies too), the global scope as a fallback.
// Names and signatures checked against CUDA 13's cuda_runtime_api.h and cuda.h.
// NOT VERIFIED on a GPU (none on this project's machines): only the CPU path runs in the tests.
#include "cuda_memory.h"

#include <dlfcn.h>

#include "device.h"

namespace torchedit {

namespace {
// CUDA runtime and driver entry points, as declared in cuda_runtime_api.h and cuda.h
// (cudaError_t / CUresult are ints; CUdevice is an int).
using CudaGetDevice = int (*)(int*);
using CudaSetDevice = int (*)(int);
using CudaMemGetInfo = int (*)(size_t*, size_t*);
using CuDeviceGet = int (*)(int*, int);
using CuDevicePrimaryCtxGetState = int (*)(int, unsigned int*, int*);

template <typename F>
F symbol(void* handle, const char* name) {
  return reinterpret_cast<F>(dlsym(handle, name));
}
}  // namespace

std::vector<GpuMemory> gpuMemory() {
  std::vector<GpuMemory> out;
  if (!cudaAvailable()) return out;
  // Handles only to libraries already loaded (RTLD_NOLOAD): this never loads anything.
  void* torchCuda = dlopen("libtorch_cuda.so", RTLD_NOW | RTLD_NOLOAD);
  void* runtime = torchCuda ? torchCuda : RTLD_DEFAULT;
  auto getDevice = symbol<CudaGetDevice>(runtime, "cudaGetDevice");
  auto setDevice = symbol<CudaSetDevice>(runtime, "cudaSetDevice");
  auto memGetInfo = symbol<CudaMemGetInfo>(runtime, "cudaMemGetInfo");
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (!getDevice || !setDevice || !memGetInfo || !driver) {
    if (driver) dlclose(driver);
    if (torchCuda) dlclose(torchCuda);
    return out;
  }
  auto deviceGet = symbol<CuDeviceGet>(driver, "cuDeviceGet");
  auto primaryState = symbol<CuDevicePrimaryCtxGetState>(driver, "cuDevicePrimaryCtxGetState");
  int current = 0;
  if (deviceGet && primaryState && getDevice(&current) == 0) {
    bool changed = false;
    for (int i = 0, n = cudaDeviceCount(); i < n; ++i) {
      int device = 0;
      unsigned int flags = 0;
      int active = 0;
      if (deviceGet(&device, i) != 0 || primaryState(device, &flags, &active) != 0 || !active) continue;
      if (setDevice(i) != 0) continue;
      changed = changed || i != current;
      size_t freeBytes = 0, totalBytes = 0;
      if (memGetInfo(&freeBytes, &totalBytes) == 0) out.push_back({i, freeBytes, totalBytes});
    }
    // Restore the calling thread's device only if its context exists: setting it would create one.
    int device = 0;
    unsigned int flags = 0;
    int active = 0;
    if (changed && deviceGet(&device, current) == 0 && primaryState(device, &flags, &active) == 0 && active) {
      setDevice(current);
    }
  }
  dlclose(driver);
  if (torchCuda) dlclose(torchCuda);
  return out;
}

}  // namespace torchedit
