#include "cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

namespace torchedit {

namespace {

// Each block carries a header with its size, so the deleter needs only the data pointer
// (which keeps libtorch's raw_allocate/raw_deallocate interface working).
constexpr size_t kHeader = 64;  // keeps the data 64-byte aligned, as c10::alloc_cpu's is

struct Header {
  size_t bytes;
};

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    void* data = const_cast<CachingCpuAllocator*>(this)->take(n);
    return {data, data, &CachingCpuAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::release; }

  void* take(size_t n) {
    if (n >= minBlock_ && enabled_.load()) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(n);
      if (it != free_.end() && !it->second.empty()) {
        void* data = it->second.back();
        it->second.pop_back();
        cached_ -= n;
        hits_++;
        return data;
      }
      misses_++;
    }
    auto* base = static_cast<char*>(c10::alloc_cpu(n + kHeader));
    reinterpret_cast<Header*>(base)->bytes = n;
    return base + kHeader;
  }

  static void release(void* data) { instance().put(data); }

  void put(void* data) {
    if (data == nullptr) return;
    char* base = static_cast<char*>(data) - kHeader;
    const size_t n = reinterpret_cast<Header*>(base)->bytes;
    if (n >= minBlock_ && enabled_.load()) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + n <= limit_) {
        free_[n].push_back(data);
        cached_ += n;
        return;
      }
    }
    c10::free_cpu(base);
  }

  void empty() {
    std::map<size_t, std::vector<void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      cached_ = 0;
    }
    for (auto& entry : blocks) {
      for (void* data : entry.second) c10::free_cpu(static_cast<char*>(data) - kHeader);
    }
  }

  static CachingCpuAllocator& instance() {
    // Leaked on purpose: tensors may be freed during static destruction at exit.
    static auto* allocator = new CachingCpuAllocator();
    return *allocator;
  }

  void configure(uint64_t limit, size_t minBlock) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = limit;
    minBlock_ = minBlock;
  }

  void setLimit(uint64_t limit) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = limit;
    }
    if (cached_ > limit) empty();
  }

  void setEnabled(bool on) {
    enabled_ = on;
    if (!on) empty();
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return CpuCacheStats{cached_, hits_, misses_, limit_, enabled_.load()};
  }

 private:
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;  // exact sizes: loops repeat them step after step
  uint64_t cached_ = 0, hits_ = 0, misses_ = 0;
  uint64_t limit_ = 0;
  size_t minBlock_ = 256 * 1024;
  std::atomic<bool> enabled_{true};
};

std::once_flag gInstalled;

}  // namespace

void installCpuCachingAllocator(uint64_t limitBytes, size_t minBlockBytes) {
  auto& allocator = CachingCpuAllocator::instance();
  allocator.configure(limitBytes, minBlockBytes);
  // Priority 1 beats the default CPU allocator's registration (priority 0).
  std::call_once(gInstalled, [&] { c10::SetCPUAllocator(&allocator, /*priority=*/1); });
}

void setCpuCacheEnabled(bool enabled) { CachingCpuAllocator::instance().setEnabled(enabled); }
void setCpuCacheLimit(uint64_t limitBytes) { CachingCpuAllocator::instance().setLimit(limitBytes); }
void emptyCpuCache() { CachingCpuAllocator::instance().empty(); }
CpuCacheStats cpuCacheStats() { return CachingCpuAllocator::instance().stats(); }

}  // namespace torchedit
