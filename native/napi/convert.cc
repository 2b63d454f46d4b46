#include "convert.h"

#include <unistd.h>

#include <array>
#include <limits>
#include <utility>

#include "handle.h"
#include "errors.h"

namespace torchedit::napi {

std::vector<int64_t> toShape(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) throwError(env, code::kShape, "Expected an array of integers for shape");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> sizes;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value v = array.Get(i);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9007199254740991.0) {
      throwError(env, code::kShape,
                 "Expected non-negative integers for shape but dimension " + std::to_string(i) + " is " +
                     v.ToString().Utf8Value());
    }
    sizes.push_back(static_cast<int64_t>(d));
  }
  return sizes;
}

Napi::Array fromShape(Napi::Env env, at::IntArrayRef sizes) {
  Napi::Array array = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) array.Set(i, static_cast<double>(sizes[i]));
  return array;
}

void checkAllocation(Napi::Env env, at::IntArrayRef sizes, c10::ScalarType dtype) {
  // Multiply in long double: an overflowing int64 product would wrap to a small number.
  long double bytes = static_cast<long double>(c10::elementSize(dtype));
  for (int64_t s : sizes) bytes *= static_cast<long double>(s);
  long double physical =
      static_cast<long double>(sysconf(_SC_PHYS_PAGES)) * static_cast<long double>(sysconf(_SC_PAGE_SIZE));
  if (bytes > physical) {
    throwError(env, code::kOutOfMemory,
               "A tensor of shape " + c10::str(sizes) + " would need " +
                   std::to_string(static_cast<double>(bytes) / (1 << 30)) + " GiB, more than this machine's memory");
  }
}

namespace {
// The TypedArray class of each dtype's elements (float16 and bfloat16 as raw Uint16 bits); the
// dtypes are those of core/runtime/dtype.cc.
constexpr std::array<std::pair<c10::ScalarType, napi_typedarray_type>, 10> kTypedArrays = {{
    {c10::kFloat, napi_float32_array},
    {c10::kDouble, napi_float64_array},
    {c10::kHalf, napi_uint16_array},
    {c10::kBFloat16, napi_uint16_array},
    {c10::kChar, napi_int8_array},
    {c10::kShort, napi_int16_array},
    {c10::kInt, napi_int32_array},
    {c10::kLong, napi_bigint64_array},
    {c10::kByte, napi_uint8_array},
    {c10::kBool, napi_uint8_array},
}};
}  // namespace

napi_typedarray_type typedArrayTypeFor(c10::ScalarType dtype) {
  for (const auto& [type, array] : kTypedArrays) {
    if (type == dtype) return array;
  }
  throw Error(code::kDtype, std::string("No TypedArray for dtype ") + c10::toString(dtype));
}

std::vector<c10::IValue> toIValues(Napi::Env env, Napi::Array args) {
  std::vector<c10::IValue> values;
  values.reserve(args.Length());
  for (uint32_t i = 0; i < args.Length(); ++i) {
    Napi::Value v = args.Get(i);
    const std::string name = "argument " + std::to_string(i);
    if (v.IsNumber()) {
      values.emplace_back(v.As<Napi::Number>().DoubleValue());
    } else if (v.IsBoolean()) {
      values.emplace_back(v.As<Napi::Boolean>().Value());
    } else if (v.IsBigInt()) {
      bool lossless = false;
      int64_t n = v.As<Napi::BigInt>().Int64Value(&lossless);
      if (!lossless) throwError(env, code::kInvalidArgument, name + " does not fit in int64");
      values.emplace_back(n);
    } else if (v.IsNull() || v.IsUndefined()) {
      values.emplace_back();
    } else if (v.IsArray()) {
      Napi::Array items = v.As<Napi::Array>();
      c10::List<at::Tensor> list;
      for (uint32_t j = 0; j < items.Length(); ++j) {
        list.push_back(AddonTensor::unwrap(env, items.Get(j), name + "[" + std::to_string(j) + "]"));
      }
      values.emplace_back(std::move(list));
    } else {
      values.emplace_back(AddonTensor::unwrap(env, v, name));
    }
  }
  return values;
}

uint64_t toSeed(Napi::Env env, Napi::Value value, const std::string& what) {
  if (value.IsBigInt()) {
    bool lossless = false;
    return value.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  if (value.IsNumber()) return static_cast<uint64_t>(value.As<Napi::Number>().Int64Value());
  throwError(env, code::kInvalidArgument, "Expected an integer seed" + (what.empty() ? "" : " for " + what));
}

Napi::Value toJs(Napi::Env env, const at::Tensor& tensor) { return AddonTensor::wrap(env, tensor); }

Napi::Value toJs(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  Napi::Array array = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) array.Set(i, toJs(env, tensors[i]));
  return array;
}

Napi::Value toJs(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& named) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [name, value] : named) out.Set(name, toJs(env, value));
  return out;
}

Napi::Value toJs(Napi::Env env, const c10::IValue& value) {
  if (value.isTensor()) return toJs(env, value.toTensor());
  if (value.isTuple() || value.isList()) {
    std::vector<c10::IValue> items = value.isTuple() ? value.toTupleRef().elements().vec() : value.toListRef().vec();
    Napi::Array array = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i) array.Set(i, toJs(env, items[i]));
    return array;
  }
  if (value.isDouble()) return Napi::Number::New(env, value.toDouble());
  if (value.isInt()) return Napi::Number::New(env, static_cast<double>(value.toInt()));
  if (value.isBool()) return Napi::Boolean::New(env, value.toBool());
  if (value.isNone()) return env.Null();
  if (value.isString()) return Napi::String::New(env, value.toStringRef());
  throwError(env, code::kUnsupported,
             "A module returned a value of type " + value.tagKind() + ", which torchedit cannot convert");
}

Napi::Value toJs(Napi::Env env, const std::shared_ptr<ScriptModule>& module) { return AddonModule::wrap(env, module); }

Napi::Value toJs(Napi::Env env, const std::shared_ptr<StableDiffusion>& model) { return AddonModel::wrap(env, model); }

Napi::Value toJs(Napi::Env env, const Inversion& inversion) {
  return toJs(env, std::vector<at::Tensor>{inversion.timesteps, inversion.xts, inversion.zs});
}

Napi::Value toJs(Napi::Env env, const EditResult& result) {
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, toJs(env, result.latents));
  out.Set(1u, result.masks.defined() ? toJs(env, result.masks) : env.Null());
  return out;
}

Napi::Value toJs(Napi::Env env, const ImagicState& state) {
  auto losses = [&](const std::vector<float>& values) {
    Napi::Float32Array out = Napi::Float32Array::New(env, values.size());
    std::copy(values.begin(), values.end(), out.Data());
    return out;
  };
  Napi::Object out = Napi::Object::New(env);
  out.Set("targetEmbedding", toJs(env, state.targetEmbedding));
  out.Set("optimizedEmbedding", toJs(env, state.optimizedEmbedding));
  out.Set("unet", toJs(env, state.unet));
  out.Set("embeddingLosses", losses(state.embeddingLosses));
  out.Set("finetuneLosses", losses(state.finetuneLosses));
  return out;
}

Napi::Value toJs(Napi::Env env, const std::pair<at::Tensor, std::vector<std::pair<std::string, at::Tensor>>>& value) {
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, toJs(env, value.first));
  out.Set(1u, toJs(env, value.second));
  return out;
}

}  // namespace torchedit::napi
