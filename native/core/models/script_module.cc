#include "script_module.h"

#include <sys/stat.h>

#include "../runtime/error.h"

namespace torchedit {

std::shared_ptr<ScriptModule> ScriptModule::load(const std::string& path,
                                                 const c10::Device& device) {
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
  return std::shared_ptr<ScriptModule>(new ScriptModule(std::move(module), path, device));
}

ScriptModule::ScriptModule(torch::jit::Module module, std::string path, c10::Device device)
    : module_(std::move(module)), path_(std::move(path)), device_(device) {
  for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
    parameterNames_.push_back(p.name);
    parameterCount_ += p.value.numel();
  }
}

c10::IValue ScriptModule::forward(std::vector<c10::IValue> inputs) {
  return translateErrors(code::kForward, [&] {
    torch::NoGradGuard noGrad;  // inference paths never build autograd graphs
    return module_.forward(std::move(inputs));
  });
}

at::Tensor ScriptModule::forwardTensor(std::vector<c10::IValue> inputs) {
  c10::IValue out = forward(std::move(inputs));
  if (!out.isTensor()) {
    throw Error(code::kForward, "Module " + path_ + " returned " + out.tagKind() +
                                    " where one tensor was expected");
  }
  return out.toTensor();
}

void ScriptModule::setTraining(bool on) {
  if (on) module_.train(); else module_.eval();
}

bool ScriptModule::training() const { return module_.is_training(); }

}  // namespace torchedit
