// What a long-running job sees of the queue that runs it: cancellation and progress.
// Core algorithms take a JobContext& and call check() between steps (docs/architecture.md "Cancellation":
// is checked between steps; progress never blocks the worker).
#pragma once

#include <cstdint>
#include <string>

#include "error.h"

namespace torchedit {

struct Progress {
  std::string phase;   // e.g. "denoise", "invert", "embedding", "finetune"
  int64_t step = 0;    // 1-based step just finished
  int64_t total = 0;   // steps in this phase
  double value = 0.0;  // the timestep or the loss, as the phase defines
  bool hasValue = false;
};

class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual bool cancelled() const = 0;
  // Reports progress; implementations throttle and must not block.
  virtual void progress(const Progress& p) = 0;

  // Throws ERR_ABORTED if the job was cancelled.
  void check() const {
    if (cancelled()) throw Error(code::kAborted, "The operation was aborted");
  }
};

// A context for work that cannot be cancelled and reports nothing (tests, nested calls).
class NullJobContext final : public JobContext {
 public:
  bool cancelled() const override { return false; }
  void progress(const Progress&) override {}
};

}  // namespace torchedit
