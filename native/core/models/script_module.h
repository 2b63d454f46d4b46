// A loaded TorchScript module on one device: the only place the core touches torch::jit.
#pragma once

#include <torch/script.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace torchedit {

class ScriptModule {
 public:
  // Loads `path` onto `device`. Throws ERR_FILE_NOT_FOUND or ERR_MODULE_LOAD (with the file
  // name and libtorch's reason: not TorchScript, truncated, written by a newer torch).
  static std::shared_ptr<ScriptModule> load(const std::string& path, const c10::Device& device);

  // A copy that holds `replacements` (dotted parameter name -> tensor) as its own parameters and
  // shares every other parameter and buffer with this module, which never changes (Imagic's
  // subset fine-tune, and a saved subset applied to the loaded model). Throws ERR_MODEL_MISMATCH
  // for a name this module lacks or a tensor of another shape or dtype.
  std::shared_ptr<ScriptModule> withParameters(
      const std::vector<std::pair<std::string, torch::Tensor>>& replacements) const;
  // torch.jit.save of the module (readable by torch.jit.load in Python).
  void save(const std::string& path) const;

  // Calls forward() in the caller's grad mode: without gradients, the fused-attention clone when
  // there is one and configure({ fusedAttention }) allows it (models/attention_fusion.h). Throws ERR_FORWARD with
  // TorchScript's message for a wrong argument count, shape or dtype.
  c10::IValue forward(std::vector<c10::IValue> inputs);
  // forward() on the module as exported, never the fused clone.
  c10::IValue forwardExported(std::vector<c10::IValue> inputs);
  // Drops the fused clone (StableDiffusion::verify, when it disagrees with the exported graph).
  void dropFusedAttention() {
    inference_.reset();
    fusedSites_ = 0;
  }
  // forward() for modules with one tensor output; throws ERR_FORWARD if the output is not one.
  at::Tensor forwardTensor(std::vector<c10::IValue> inputs);

  // Builds the inference clone with fused attention (shared parameters) and returns its number of
  // fused sites (0: none matched, the module runs as loaded). Called by load() when enabled.
  int64_t fuseAttention();
  int64_t fusedAttentionSites() const { return fusedSites_; }
  // The fused clone (nullptr without one), for tests that its parameters are this module's.
  const torch::jit::Module* inferenceModule() const { return inference_ ? &*inference_ : nullptr; }

  void setTraining(bool on);
  bool training() const;

  const std::string& path() const { return path_; }
  const c10::Device& device() const { return device_; }
  int64_t parameterCount() const { return parameterCount_; }
  const std::vector<std::string>& parameterNames() const { return parameterNames_; }
  torch::jit::Module& module() { return module_; }

 private:
  ScriptModule(torch::jit::Module module, std::string path, c10::Device device);

  torch::jit::Module module_;
  std::optional<torch::jit::Module> inference_;  // module_ with fused attention, same parameters
  int64_t fusedSites_ = 0;
  std::string path_;
  c10::Device device_;
  int64_t parameterCount_ = 0;
  std::vector<std::string> parameterNames_;
};

}  // namespace torchedit
