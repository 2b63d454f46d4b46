#include "job_queue.h"

#include <ATen/Parallel.h>

#include "blas_threads.h"

#include <map>

namespace torchedit {

namespace {
std::atomic<int> gRequestedThreads{0};
}

void setIntraOpThreads(int threads) { gRequestedThreads.store(threads); }

int intraOpThreads() { return at::get_num_threads(); }

DeviceQueue::DeviceQueue(std::string device) : device_(std::move(device)), thread_([this] { loop(); }) {}

DeviceQueue::~DeviceQueue() { shutdown(); }

void DeviceQueue::push(std::shared_ptr<QueuedJob> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

bool DeviceQueue::removeQueued(const QueuedJob* job) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
    if (it->get() == job) {
      jobs_.erase(it);
      return true;
    }
  }
  return false;
}

size_t DeviceQueue::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

void DeviceQueue::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    for (auto& job : jobs_) job->cancelRequested = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void DeviceQueue::loop() {
  int appliedRequest = 0;      // the configure({ threads }) value last applied on this worker
  bool blasDefaulted = false;  // the unconfigured BLAS default has been decided
  for (;;) {
    std::shared_ptr<QueuedJob> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    int wanted = gRequestedThreads.load();
    if (wanted > 0 && wanted != appliedRequest) {
      at::set_num_threads(wanted);
      setBlasThreads(wanted);  // configure({ threads }) is the user's explicit choice
      appliedRequest = wanted;
      blasDefaulted = true;
    } else if (!blasDefaulted) {
      // Not configured: the BLAS pool follows libtorch's intra-op count unless the environment
      // chose it, so a one-thread job is not shadowed by spinning BLAS threads (blas_threads.h).
      blasDefaulted = true;
      if (!blasThreadsFromEnvironment()) setBlasThreads(at::get_num_threads());
    }
    job->run();  // jobs settle themselves (and honour cancelRequested) and never throw
  }
}

namespace {
std::mutex gQueuesMutex;
std::map<std::string, std::unique_ptr<DeviceQueue>>& queues() {
  static auto* map = new std::map<std::string, std::unique_ptr<DeviceQueue>>();
  return *map;
}
}  // namespace

DeviceQueue& queueFor(const std::string& device) {
  std::lock_guard<std::mutex> lock(gQueuesMutex);
  auto& map = queues();
  auto it = map.find(device);
  if (it == map.end()) it = map.emplace(device, std::make_unique<DeviceQueue>(device)).first;
  return *it->second;
}

void shutdownAllQueues() {
  std::lock_guard<std::mutex> lock(gQueuesMutex);
  for (auto& entry : queues()) entry.second->shutdown();
  queues().clear();
}

}  // namespace torchedit
