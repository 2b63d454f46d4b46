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
  // on copies of the trained parameters (withParameters), made trainable there.
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
// A copy of a module object that shares every attribute value but holds copies of its submodule
// objects, so a slot set on it (or on a submodule) leaves `object`'s unchanged. Unlike
// Module::clone it keeps the class types, hence the methods and their graph executors: a training
// job runs the plan the loaded UNet's executor already optimised, exactly as on a deep copy.
c10::intrusive_ptr<c10::ivalue::Object> shareAttributes(const c10::intrusive_ptr<c10::ivalue::Object>& object) {
  c10::intrusive_ptr<c10::ivalue::Object> copy = object->copy();
  for (size_t i = 0; i < copy->slots().size(); ++i) {
    const c10::IValue& slot = copy->getSlot(i);
    if (slot.isObject() && slot.toObject()->type()->is_module()) copy->setSlot(i, shareAttributes(slot.toObject()));
  }
  return copy;
}
}  // namespace

std::shared_ptr<ScriptModule> ScriptModule::withParameters(
    const std::vector<std::pair<std::string, torch::Tensor>>& replacements) const {
  torch::jit::Module copy(shareAttributes(module_._ivalue()));
  for (const auto& [name, value] : replacements) {
    torch::jit::Module owner = copy;
    size_t start = 0;
    for (size_t dot = name.find('.'); dot != std::string::npos; start = dot + 1, dot = name.find('.', start)) {
      const std::string part = name.substr(start, dot - start);
      if (!owner.hasattr(part) || !owner.attr(part).isModule()) {
        throw Error(code::kModelMismatch, "The UNet has no parameter " + name);
      }
      owner = owner.attr(part).toModule();
    }
    const std::string leaf = name.substr(start);
    const auto slot = owner.type()->findAttributeSlot(leaf);
    if (!slot || !owner.type()->is_parameter(*slot))
      throw Error(code::kModelMismatch, "The UNet has no parameter " + name);
    const torch::Tensor current = owner.attr(leaf).toTensor();
    if (!value.defined() || value.sizes() != current.sizes() || value.scalar_type() != current.scalar_type()) {
      throw Error(code::kModelMismatch,
                  "Parameter " + name + " has shape " + c10::str(current.sizes()) + " " +
                      c10::toString(current.scalar_type()) + " in the UNet, not " +
                      (value.defined() ? c10::str(value.sizes()) + " " + c10::toString(value.scalar_type())
                                       : std::string("undefined")));
    }
    owner.setattr(leaf, value.to(current.device()));
  }
  std::shared_ptr<ScriptModule> out(new ScriptModule(std::move(copy), path_, device_));
  if (inference_) {
    // The copy's fused module reuses this one's fused types, with the replaced parameters rebound.
    // Fusing the copy again (fuseAttention clones the module) registered a new set of class types
    // and method graphs in the loaded UNet's compilation unit, which keeps them until the model is
    // disposed: 6 MB per Imagic training on shapes-64 (found by the soak test).
    torch::jit::Module fused(shareAttributes(inference_->_ivalue()));
    for (const auto& replacement : replacements) {
      const std::string& name = replacement.first;
      torch::jit::Module from = out->module_, to = fused;
      size_t start = 0;
      for (size_t dot = name.find('.'); dot != std::string::npos; start = dot + 1, dot = name.find('.', start)) {
        from = from.attr(name.substr(start, dot - start)).toModule();
        to = to.attr(name.substr(start, dot - start)).toModule();
      }
      to.setattr(name.substr(start), from.attr(name.substr(start)));  // the very tensor the copy trains
    }
    out->inference_ = std::move(fused);
    out->fusedSites_ = fusedSites_;
  }
  return out;
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
