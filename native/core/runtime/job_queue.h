// One worker thread per device running jobs first in, first out (docs/architecture.md "Execution model": not libuv's
// pool, whose four threads fs and dns need). Thread-local torch state (grad mode, intra-op threads) is set on this
// thread, never on Node's main thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace torchedit {

class QueuedJob {
 public:
  virtual ~QueuedJob() = default;
  // Runs on the device's worker thread. Must not throw.
  virtual void run() = 0;

  std::atomic<bool> cancelRequested{false};
};

class DeviceQueue {
 public:
  explicit DeviceQueue(std::string device);
  ~DeviceQueue();
  DeviceQueue(const DeviceQueue&) = delete;
  DeviceQueue& operator=(const DeviceQueue&) = delete;

  void push(std::shared_ptr<QueuedJob> job);
  // Removes a job that has not started. Returns false if it is running or already done.
  bool removeQueued(const QueuedJob* job);
  size_t pending() const;
  // Stops accepting work, cancels what is queued and joins the thread.
  void shutdown();

  const std::string& device() const { return device_; }

 private:
  void loop();

  std::string device_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<QueuedJob>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

// The queue for a canonical device string ("cpu", "cuda:0"), created on first use.
DeviceQueue& queueFor(const std::string& device);
// Joins every worker; called when the addon unloads.
void shutdownAllQueues();

// Intra-op threads for every worker (0 = leave libtorch's default). Applied by each worker
// before its next job, because at::set_num_threads is per calling thread under OpenMP.
void setIntraOpThreads(int threads);
int intraOpThreads();

}  // namespace torchedit
