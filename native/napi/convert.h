// Conversions between JS values and torch values. Inputs were validated in TypeScript
// (lib/tensor.ts); these checks only keep a direct caller of the binding from crashing.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <vector>

#include "../core/edit/ddpm_inversion.h"
#include "../core/edit/imagic_trainer.h"
#include "../core/edit/ledits.h"
#include "../core/models/stable_diffusion.h"

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
// A seed passed as a bigint (or a safe integer number); `what` names it in the error.
uint64_t toSeed(Napi::Env env, Napi::Value value, const std::string& what = "");

// Job results -> JS (main thread; see enqueue() in jobs.h): tensors, modules and models become
// handles, tuples and lists arrays, an inversion [timesteps, xts, zs], an Imagic state an object.
Napi::Value toJs(Napi::Env env, const at::Tensor& tensor);
Napi::Value toJs(Napi::Env env, const std::vector<at::Tensor>& tensors);
Napi::Value toJs(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& named);
Napi::Value toJs(Napi::Env env, const c10::IValue& value);
Napi::Value toJs(Napi::Env env, const std::shared_ptr<ScriptModule>& module);
Napi::Value toJs(Napi::Env env, const std::shared_ptr<StableDiffusion>& model);
Napi::Value toJs(Napi::Env env, const Inversion& inversion);
Napi::Value toJs(Napi::Env env, const EditResult& result);
Napi::Value toJs(Napi::Env env, const ImagicState& state);
// [tensor, { name: tensor }] (a loss and its named gradients)
Napi::Value toJs(Napi::Env env, const std::pair<at::Tensor, std::vector<std::pair<std::string, at::Tensor>>>& value);

}  // namespace torchedit::napi
