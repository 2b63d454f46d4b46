#include "script_module.h"

#include <sys/stat.h>

#include "../runtime/error.h"
#include "attention_fusion.h"

namespace torchedit {

std::shared_ptr<ScriptModule> ScriptModule::load(const std::string& path, const c10::Device& device) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    throw Error(code::kFileNotFound, "Module file not found: " + path);
  }
  torch::jit::Module module;
  try {
    module = translateErrors(code::kModuleLoad, [&] { return torch::jit::load(path, device); });
  } catch (const Error& e) {
    if (std::string(e.code()) == code::kOutOfMemory) throw;
    throw Error(code::kModuleLoad, "Cannot load TorchScript module " + path + ": " + e.what());
  }
  if (!module.find_method("forward")) {
    throw Error(code::kModuleLoad, "TorchScript module " + path + " has no forward() method");
  }
  module.eval();
  // Loaded weights are for inference: no gradients are ever allocated for them. Training works
  // on a deep copy (deepCopy) whose parameters are made trainable there.
  for (auto p : module.parameters()) p.set_requires_grad(false);
  std::shared_ptr<ScriptModule> loaded(new ScriptModule(std::move(module), path, device));
  if (fusedAttentionEnabled()) loaded->fuseAttention();
  return loaded;
}

ScriptModule::ScriptModule(torch::jit::Module module, std::string path, c10::Device device)
    : module_(std::move(module)), path_(std::move(path)), device_(device) {
  for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
    parameterNames_.push_back(p.name);
    parameterCount_ += p.value.numel();
  }
}

c10::IValue ScriptModule::forward(std::vector<c10::IValue> inputs) {
  // Grad mode is the caller's: inference jobs hold a NoGradGuard, training builds graphs.
  torch::jit::Module& target =
      inference_ && !c10::GradMode::is_enabled() && fusedAttentionEnabled() ? *inference_ : module_;
  return translateErrors(code::kForward, [&] { return target.forward(std::move(inputs)); });
}

c10::IValue ScriptModule::forwardExported(std::vector<c10::IValue> inputs) {
  return translateErrors(code::kForward, [&] { return module_.forward(std::move(inputs)); });
}

at::Tensor ScriptModule::forwardTensor(std::vector<c10::IValue> inputs) {
  c10::IValue out = forward(std::move(inputs));
  if (!out.isTensor()) {
    throw Error(code::kForward, "Module " + path_ + " returned " + out.tagKind() + " where one tensor was expected");
  }
  return out.toTensor();
}

namespace {

// A new object for `object` and every submodule under it, of the same types, whose slots hold the
// same values (tensors shared, nothing copied).
c10::intrusive_ptr<c10::ivalue::Object> shallowTree(const c10::intrusive_ptr<c10::ivalue::Object>& object) {
  c10::intrusive_ptr<c10::ivalue::Object> copy = object->copy();
  for (size_t i = 0; i < copy->slots().size(); ++i) {
    const c10::IValue& slot = copy->getSlot(i);
    if (slot.isObject() && slot.toObject()->type()->is_module()) copy->setSlot(i, shallowTree(slot.toObject()));
  }
  return copy;
}

// Sets the attribute at a dotted path ("down.0.conv.weight") of a module tree.
void setPath(torch::jit::Module module, const std::string& path, const at::Tensor& value) {
  size_t start = 0;
  for (size_t dot = path.find('.'); dot != std::string::npos; start = dot + 1, dot = path.find('.', start)) {
    module = torch::jit::Module(module.attr(path.substr(start, dot - start)).toObject());
  }
  module.setattr(path.substr(start), value);
}

}  // namespace

std::shared_ptr<ScriptModule> ScriptModule::deepCopy() const {
  std::shared_ptr<ScriptModule> copy(new ScriptModule(module_.deepcopy(), path_, device_));
  if (inference_) {
    // The copy's fused module reuses this one's fused types, rebound to the copy's parameters and
    // buffers. Fusing the copy again (fuseAttention clones the module) registered a new set of
    // class types and method graphs in the loaded UNet's compilation unit, which keeps them until
    // the model is disposed: 6 MB per Imagic training on shapes-64 (found by the soak test).
    torch::jit::Module fused(shallowTree(inference_->_ivalue()));
    for (const auto& p : copy->module_.named_parameters(/*recurse=*/true)) setPath(fused, p.name, p.value);
    for (const auto& b : copy->module_.named_buffers(/*recurse=*/true)) setPath(fused, b.name, b.value);
    copy->inference_ = std::move(fused);
    copy->fusedSites_ = fusedSites_;
  }
  return copy;
}

int64_t ScriptModule::fuseAttention() {
  std::optional<FusedModule> fused;
  try {
    fused = fuseAttentionForInference(module_);
  } catch (const std::exception&) {
    fused.reset();  // a graph the pass cannot handle runs as loaded: fusion is an optimisation only
  }
  if (fused) {
    fused->module.eval();
    inference_ = std::move(fused->module);
    fusedSites_ = fused->sites;
  } else {
    inference_.reset();
    fusedSites_ = 0;
  }
  return fusedSites_;
}

void ScriptModule::save(const std::string& path) const {
  translateErrors(code::kInternal, [&] {
    module_.save(path);
    return 0;
  });
}

void ScriptModule::setTraining(bool on) {
  if (on)
    module_.train();
  else
    module_.eval();
  if (inference_) inference_->eval();  // used only without gradients: always inference mode
}

bool ScriptModule::training() const { return module_.is_training(); }

}  // namespace torchedit
