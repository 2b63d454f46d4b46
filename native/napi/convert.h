// Conversions between JS values and torch values. Inputs were validated in TypeScript
// (lib/tensor.ts); these checks only keep a direct caller of the binding from crashing.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <vector>

#include "../core/models/stable_diffusion.h"
#include "../core/pipelines/text_to_image.h"

namespace torchedit::napi {

// A JS array of non-negative integers -> sizes. Throws ERR_SHAPE.
std::vector<int64_t> toShape(Napi::Env env, Napi::Value value);
Napi::Array fromShape(Napi::Env env, at::IntArrayRef sizes);

// Rejects tensors larger than this machine's physical memory before libtorch tries (and the
// kernel's overcommit lets a memset take the process down). Throws ERR_OUT_OF_MEMORY.
void checkAllocation(Napi::Env env, at::IntArrayRef sizes, c10::ScalarType dtype);

// The TypedArray class that holds a dtype's elements (float16/bfloat16 as raw Uint16 bits).
napi_typedarray_type typedArrayTypeFor(c10::ScalarType dtype);

// Arguments of a TorchScript call: tensor handles, numbers (double), bigints (int64),
// booleans, null (None) and arrays of tensor handles (List[Tensor]).
std::vector<c10::IValue> toIValues(Napi::Env env, Napi::Array args);
// A TorchScript result -> JS: tensors become handles, tuples and lists arrays.
Napi::Value fromIValue(Napi::Env env, const c10::IValue& value);

// model.json's fields (validated in lib/model/config.ts) -> the core's ModelConfig.
ModelConfig toModelConfig(Napi::Env env, Napi::Object json);
// { steps, guidanceScale, eta, seed, latentHeight, latentWidth } (validated in lib/pipelines/textToImage.ts).
TextToImageOptions toTextToImageOptions(Napi::Env env, Napi::Object o);
// A seed passed as a bigint (or a safe integer number).
uint64_t toSeed(Napi::Env env, Napi::Value value);

}  // namespace torchedit::napi
