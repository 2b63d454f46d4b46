// The tensor handle's JS members; the class is AddonTensor in handle.h.
#include <ATen/CPUGeneratorImpl.h>

#include <cstring>

#include "../core/runtime/device.h"
#include "../core/runtime/dtype.h"
#include "convert.h"
#include "errors.h"
#include "handle.h"
#include "jobs.h"

namespace torchedit::napi {

namespace {
c10::ScalarType dtypeArg(Napi::Env env, Napi::Value value) {
  if (!value.IsString()) throwError(env, code::kDtype, "Expected a dtype name");
  return guard(env, [&] { return dtypeFromName(value.As<Napi::String>().Utf8Value()); });
}
// fromTypedArray(view: TypedArray, dtype: string, shape: number[]): copies the data.
Napi::Value FromTypedArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsTypedArray()) {
    throwError(env, code::kInvalidArgument, "Expected (typedArray, dtype, shape)");
  }
  auto view = info[0].As<Napi::TypedArray>();
  c10::ScalarType dtype = dtypeArg(env, info[1]);
  std::vector<int64_t> shape = toShape(env, info[2]);
  if (view.TypedArrayType() != typedArrayTypeFor(dtype)) {
    throwError(env, code::kDtype, "The TypedArray does not hold " + dtypeName(dtype) + " elements");
  }
  checkAllocation(env, shape, dtype);
  int64_t numel = c10::multiply_integers(shape);
  if (static_cast<size_t>(numel) != view.ElementLength()) {
    throwError(env, code::kShape,
               "Shape " + c10::str(shape) + " holds " + std::to_string(numel) + " elements but the data has " +
                   std::to_string(view.ElementLength()));
  }
  at::Tensor t = guard(env, [&] { return torch::empty(shape, torch::dtype(dtype)); });
  const auto* src = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  if (view.ByteLength() > 0) std::memcpy(t.data_ptr(), src, view.ByteLength());
  return AddonTensor::wrap(env, std::move(t));
}

Napi::Value Zeros(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int64_t> shape = toShape(env, info[0]);
  c10::ScalarType dtype = dtypeArg(env, info[1]);
  checkAllocation(env, shape, dtype);
  return AddonTensor::wrap(env, guard(env, [&] { return torch::zeros(shape, torch::dtype(dtype)); }));
}

// randn(shape, seed: bigint|number, dtype): the numbers torch.manual_seed(seed); torch.randn(shape)
// gives on the CPU (same generator, same kernel), then cast to dtype.
Napi::Value Randn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int64_t> shape = toShape(env, info[0]);
  uint64_t seed = toSeed(env, info[1]);
  c10::ScalarType dtype = dtypeArg(env, info[2]);
  if (!c10::isFloatingType(dtype)) throwError(env, code::kDtype, "randn needs a floating dtype");
  checkAllocation(env, shape, c10::kFloat);
  return AddonTensor::wrap(env, guard(env, [&] {
                             auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
                             return torch::randn(shape, gen, torch::dtype(torch::kFloat)).to(dtype);
                           }));
}

Napi::Value Shape(const at::Tensor& t, const Napi::CallbackInfo& info) { return fromShape(info.Env(), t.sizes()); }

Napi::Value Dtype(const at::Tensor& t, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, guard(env, [&] { return dtypeName(t.scalar_type()); }));
}

// data(): a job on the tensor's device queue that copies it to a contiguous CPU tensor; the
// TypedArray then views that copy without another memcpy.
Napi::Value Data(const at::Tensor& source, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_typedarray_type arrayType = guard(env, [&] { return typedArrayTypeFor(source.scalar_type()); });
  return enqueueJob(
      env, source.device().str(),
      [source, arrayType](JobContext&) -> ResultBuilder {
        auto copy = std::make_shared<at::Tensor>(source.to(torch::kCPU).contiguous().clone());
        return [copy, arrayType](Napi::Env env) -> Napi::Value {
          size_t bytes = copy->numel() * copy->element_size();
          size_t length = copy->numel();
          // The ArrayBuffer views the copy's storage and owns a reference to it.
          Napi::ArrayBuffer buffer =
              bytes == 0 ? Napi::ArrayBuffer::New(env, 0)
                         : Napi::ArrayBuffer::New(
                               env, copy->data_ptr(), bytes, [](Napi::Env, void*, at::Tensor* t) { delete t; },
                               new at::Tensor(*copy));
          napi_value array;
          NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, arrayType, length, buffer, 0, &array), Napi::Value());
          return Napi::Value(env, array);
        };
      },
      env.Undefined());
}

// to(dtype | null, device | null): a new handle; the original is untouched.
Napi::Value To(const at::Tensor& source, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  c10::ScalarType dtype = info[0].IsString() ? dtypeArg(env, info[0]) : source.scalar_type();
  ResolvedDevice target;
  if (info[1].IsString()) {
    target = guard(env, [&] { return resolveDevice(info[1].As<Napi::String>().Utf8Value()); });
  } else {
    target.device = source.device();
    target.name = source.device().str();
  }
  c10::Device device = target.device;
  return enqueue(env, target.name, env.Undefined(), [source, dtype, device](JobContext&) {
    return source.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  });
}

}  // namespace

void InitTensor(Napi::Env env, Napi::Object exports) {
  AddonTensor::define(env, exports, {{"fromTypedArray", FromTypedArray}, {"zeros", Zeros}, {"randn", Randn}},
                      {{"shape", Shape}, {"dtype", Dtype}}, {{"data", Data}, {"to", To}});
}

}  // namespace torchedit::napi
