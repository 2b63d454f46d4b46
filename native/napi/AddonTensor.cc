#include "AddonTensor.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>

#include "../core/runtime/device.h"
#include "../core/runtime/dtype.h"
#include "addon.h"
#include "convert.h"
#include "errors.h"
#include "jobs.h"

namespace torchedit::napi {

std::atomic<int64_t> AddonTensor::liveHandles{0};
std::atomic<int64_t> AddonTensor::liveBytes{0};

namespace {
// Tags handles so an arbitrary object passed where a tensor belongs is rejected, not
// reinterpreted (napi_type_tag_object).
constexpr napi_type_tag kTensorTag = {0x7f3a1c2e5b9d4e81ULL, 0xa4c6e8f0b2d41357ULL};

c10::ScalarType dtypeArg(Napi::Env env, Napi::Value value) {
  if (!value.IsString()) throwError(env, code::kDtype, "Expected a dtype name");
  return guard(env, [&] { return dtypeFromName(value.As<Napi::String>().Utf8Value()); });
}
}  // namespace

void AddonTensor::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeTensor",
      {
          StaticMethod<&AddonTensor::FromTypedArray>("fromTypedArray"),
          StaticMethod<&AddonTensor::Zeros>("zeros"),
          StaticMethod<&AddonTensor::Randn>("randn"),
          InstanceAccessor<&AddonTensor::Shape>("shape"),
          InstanceAccessor<&AddonTensor::Dtype>("dtype"),
          InstanceAccessor<&AddonTensor::Device>("device"),
          InstanceAccessor<&AddonTensor::Disposed>("disposed"),
          InstanceMethod<&AddonTensor::Data>("data"),
          InstanceMethod<&AddonTensor::To>("to"),
          InstanceMethod<&AddonTensor::Dispose>("dispose"),
      });
  state(env).tensorConstructor = Napi::Persistent(ctor);
  exports.Set("NativeTensor", ctor);
}

Napi::Object AddonTensor::wrap(Napi::Env env, at::Tensor tensor) {
  auto external = Napi::External<at::Tensor>::New(
      env, new at::Tensor(std::move(tensor)), [](Napi::Env, at::Tensor* t) { delete t; });
  return state(env).tensorConstructor.New({external});
}

AddonTensor::AddonTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonTensor>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throwError(env, code::kInvalidArgument,
               "NativeTensor cannot be constructed directly; use the Tensor factories");
  }
  // Move out of the External: it lives until GC, and dispose() must free the memory now.
  tensor_ = std::move(*info[0].As<Napi::External<at::Tensor>>().Data());
  bytes_ = static_cast<int64_t>(tensor_.numel()) * static_cast<int64_t>(tensor_.element_size());
  info.This().As<Napi::Object>().TypeTag(&kTensorTag);
  liveHandles++;
  liveBytes += bytes_;
}

AddonTensor::~AddonTensor() { release(); }

void AddonTensor::release() {
  if (disposed_) return;
  disposed_ = true;
  tensor_ = at::Tensor();
  liveHandles--;
  liveBytes -= bytes_;
}

at::Tensor AddonTensor::tensorOf(Napi::Env env, Napi::Value value, const std::string& what) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kTensorTag)) {
    throwError(env, code::kInvalidHandle, "Expected a Tensor for " + what);
  }
  return Unwrap(value.As<Napi::Object>())->live(env);
}

const at::Tensor& AddonTensor::live(Napi::Env env) const {
  if (disposed_) throwError(env, code::kDisposed, "The tensor was disposed");
  return tensor_;
}

// fromTypedArray(view: TypedArray, dtype: string, shape: number[]): copies the data.
Napi::Value AddonTensor::FromTypedArray(const Napi::CallbackInfo& info) {
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
    throwError(env, code::kShape, "Shape " + c10::str(shape) + " holds " + std::to_string(numel) +
                                      " elements but the data has " +
                                      std::to_string(view.ElementLength()));
  }
  at::Tensor t = guard(env, [&] { return torch::empty(shape, torch::dtype(dtype)); });
  const auto* src = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  if (view.ByteLength() > 0) std::memcpy(t.data_ptr(), src, view.ByteLength());
  return wrap(env, std::move(t));
}

Napi::Value AddonTensor::Zeros(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int64_t> shape = toShape(env, info[0]);
  c10::ScalarType dtype = dtypeArg(env, info[1]);
  checkAllocation(env, shape, dtype);
  return wrap(env, guard(env, [&] { return torch::zeros(shape, torch::dtype(dtype)); }));
}

// randn(shape, seed: bigint|number, dtype): the numbers torch.manual_seed(seed); torch.randn(shape)
// gives on the CPU (same generator, same kernel), then cast to dtype.
Napi::Value AddonTensor::Randn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int64_t> shape = toShape(env, info[0]);
  uint64_t seed = 0;
  if (info[1].IsBigInt()) {
    bool lossless = false;
    seed = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  } else if (info[1].IsNumber()) {
    seed = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
  } else {
    throwError(env, code::kInvalidArgument, "Expected an integer seed");
  }
  c10::ScalarType dtype = dtypeArg(env, info[2]);
  if (!c10::isFloatingType(dtype)) throwError(env, code::kDtype, "randn needs a floating dtype");
  checkAllocation(env, shape, c10::kFloat);
  return wrap(env, guard(env, [&] {
                auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
                return torch::randn(shape, gen, torch::dtype(torch::kFloat)).to(dtype);
              }));
}

Napi::Value AddonTensor::Shape(const Napi::CallbackInfo& info) {
  return fromShape(info.Env(), live(info.Env()).sizes());
}

Napi::Value AddonTensor::Dtype(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, guard(env, [&] { return dtypeName(live(env).scalar_type()); }));
}

Napi::Value AddonTensor::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env()).device().str());
}

Napi::Value AddonTensor::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

// data(): a job on the tensor's device queue that copies it to a contiguous CPU tensor; the
// TypedArray then views that copy without another memcpy.
Napi::Value AddonTensor::Data(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = live(env);
  napi_typedarray_type arrayType = guard(env, [&] { return typedArrayTypeFor(source.scalar_type()); });
  return enqueueJob(env, source.device().str(), [source, arrayType](JobContext&) -> ResultBuilder {
    auto copy = std::make_shared<at::Tensor>(source.to(torch::kCPU).contiguous().clone());
    return [copy, arrayType](Napi::Env env) -> Napi::Value {
      size_t bytes = copy->numel() * copy->element_size();
      size_t length = copy->numel();
      // The ArrayBuffer views the copy's storage and owns a reference to it.
      Napi::ArrayBuffer buffer = bytes == 0
          ? Napi::ArrayBuffer::New(env, 0)
          : Napi::ArrayBuffer::New(env, copy->data_ptr(), bytes,
                                   [](Napi::Env, void*, at::Tensor* t) { delete t; },
                                   new at::Tensor(*copy));
      napi_value array;
      NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, arrayType, length, buffer, 0, &array),
                           Napi::Value());
      return Napi::Value(env, array);
    };
  }, env.Undefined());
}

// to(dtype | null, device | null): a new handle; the original is untouched.
Napi::Value AddonTensor::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = live(env);
  c10::ScalarType dtype = info[0].IsString() ? dtypeArg(env, info[0]) : source.scalar_type();
  ResolvedDevice target;
  if (info[1].IsString()) {
    target = guard(env, [&] { return resolveDevice(info[1].As<Napi::String>().Utf8Value()); });
  } else {
    target.device = source.device();
    target.name = source.device().str();
  }
  c10::Device device = target.device;
  return enqueueJob(env, target.name, [source, dtype, device](JobContext&) -> ResultBuilder {
    at::Tensor moved = source.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
    return [moved](Napi::Env env) -> Napi::Value { return wrap(env, moved); };
  }, env.Undefined());
}

Napi::Value AddonTensor::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

}  // namespace torchedit::napi
