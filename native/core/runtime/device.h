// Device names as users write them ("cpu", "cuda", "cuda:1", "auto") resolved to a torch device.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace torchedit {

struct ResolvedDevice {
  c10::Device device{c10::kCPU};
  std::string name = "cpu";  // canonical: "cpu" or "cuda:N"; also the job queue's key
  std::string fallback;      // non-empty when "auto" fell back to the CPU: says why
};

// Throws ERR_DEVICE for an unknown name, ERR_DEVICE_UNAVAILABLE for "cuda" without CUDA.
ResolvedDevice resolveDevice(const std::string& requested);

bool cudaAvailable();
int cudaDeviceCount();

}  // namespace torchedit
