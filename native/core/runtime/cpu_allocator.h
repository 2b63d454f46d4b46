// A caching allocator for CPU tensors. glibc hands large buffers back to the kernel on free
// (mmap threshold), so every UNet call page-faults its activations in again: ~190k faults per
// call for a reduced-width SD UNet here (bench/NOTES.md). Denoising loops allocate the same
// sizes step after step, so keeping freed large blocks for reuse removes those faults without
// growing memory the way MALLOC_MMAP_MAX_=0 does (fragmentation).
#pragma once

#include <cstddef>
#include <cstdint>

namespace torchedit {

struct CpuCacheStats {
  uint64_t cachedBytes = 0;  // held for reuse, not in use
  uint64_t hits = 0;         // allocations served from the cache
  uint64_t misses = 0;       // large allocations that went to the system
  uint64_t limitBytes = 0;
  bool enabled = false;
};

// Installs the allocator as libtorch's CPU allocator (once; later calls only change settings).
// Blocks smaller than `minBlockBytes` are never cached (glibc serves those from its heap).
void installCpuCachingAllocator(uint64_t limitBytes, size_t minBlockBytes = 256 * 1024);
// Stops caching and frees what is cached (tensors allocated meanwhile stay valid).
void setCpuCacheEnabled(bool enabled);
void setCpuCacheLimit(uint64_t limitBytes);
// Frees every cached block.
void emptyCpuCache();
CpuCacheStats cpuCacheStats();

}  // namespace torchedit
