#include "device.h"

#include <torch/cuda.h>

#include "error.h"

namespace torchedit {

bool cudaAvailable() { return torch::cuda::is_available(); }

int cudaDeviceCount() { return static_cast<int>(torch::cuda::device_count()); }

namespace {
// "cuda" and "cuda:N" share one check: the index must exist on this machine.
ResolvedDevice cudaDevice(int index) {
  if (!cudaAvailable()) {
    throw Error(code::kDeviceUnavailable,
                "CUDA was requested but this libtorch has no usable CUDA device (a CPU build of "
                "libtorch, no driver, or no GPU). Use device 'cpu' or 'auto'.");
  }
  int count = cudaDeviceCount();
  if (index >= count) {
    throw Error(code::kDeviceUnavailable, "CUDA device " + std::to_string(index) + " was requested but only " +
                                              std::to_string(count) + " CUDA device(s) exist");
  }
  ResolvedDevice r;
  r.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  r.name = "cuda:" + std::to_string(index);
  return r;
}
}  // namespace

ResolvedDevice resolveDevice(const std::string& requested) {
  if (requested == "cpu") return ResolvedDevice{};
  if (requested == "auto") {
    if (cudaAvailable()) return cudaDevice(0);
    ResolvedDevice r;
    r.fallback = "device 'auto' found no CUDA device and runs on the CPU";
    return r;
  }
  if (requested == "cuda") return cudaDevice(0);
  if (requested.rfind("cuda:", 0) == 0) {
    const std::string digits = requested.substr(5);
    if (!digits.empty() && digits.size() <= 3 && digits.find_first_not_of("0123456789") == std::string::npos) {
      return cudaDevice(std::stoi(digits));
    }
  }
  throw Error(code::kDevice, "Expected 'cpu', 'cuda', 'cuda:N' or 'auto' for device but received '" + requested + "'");
}

}  // namespace torchedit
