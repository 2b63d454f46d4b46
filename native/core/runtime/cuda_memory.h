// Free and total memory of CUDA devices, for the memory report and `torchedit doctor`.
#pragma once

#include <cstdint>
#include <vector>

namespace torchedit {

struct GpuMemory {
  int index = 0;
  uint64_t freeBytes = 0;
  uint64_t totalBytes = 0;
};

// One entry per CUDA device whose primary context is already active (a device torchedit has
// used); empty on a CPU libtorch, without a driver, or before any CUDA work. Never creates a
// context: that would cost each untouched GPU a few hundred MB just to report its memory.
std::vector<GpuMemory> gpuMemory();

}  // namespace torchedit
