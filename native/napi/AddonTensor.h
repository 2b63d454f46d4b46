// The tensor handle: a JS object owning one at::Tensor. Metadata is synchronous; data moves
// only on request, as a job on the tensor's device queue (RUNTIME.md "Handles and memory").
#pragma once

#include <napi.h>
#include <torch/types.h>

#include <atomic>
#include <string>

namespace torchedit::napi {

class AddonTensor : public Napi::ObjectWrap<AddonTensor> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // A new JS handle owning `tensor` (main thread).
  static Napi::Object wrap(Napi::Env env, at::Tensor tensor);
  // The tensor behind a JS handle. Throws ERR_INVALID_HANDLE for anything that is not a tensor
  // handle and ERR_DISPOSED for a disposed one; `what` names the argument in the message.
  static at::Tensor tensorOf(Napi::Env env, Napi::Value value, const std::string& what);

  explicit AddonTensor(const Napi::CallbackInfo& info);
  ~AddonTensor() override;

  // Live handles and the bytes they hold, for the memory report.
  static std::atomic<int64_t> liveHandles;
  static std::atomic<int64_t> liveBytes;

 private:
  static Napi::Value FromTypedArray(const Napi::CallbackInfo& info);
  static Napi::Value Zeros(const Napi::CallbackInfo& info);
  static Napi::Value Randn(const Napi::CallbackInfo& info);

  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Data(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const at::Tensor& live(Napi::Env env) const;
  void release();

  at::Tensor tensor_;
  bool disposed_ = false;
  int64_t bytes_ = 0;
};

}  // namespace torchedit::napi
