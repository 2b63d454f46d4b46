// Option readers: JS option objects -> the core's option structs, in one place. TypeScript fills
// in every field (defaults from lib/options/defaults.ts, validation in lib/pipelines/), and the
// core structs have no defaults, so each field is required: a missing or mistyped one is
// ERR_INVALID_ARGUMENT naming it, never a silent C++ default.
#pragma once

#include <napi.h>

#include "../core/edit/ddpm_inversion.h"
#include "../core/edit/imagic.h"
#include "../core/edit/imagic_eta.h"
#include "../core/edit/ledits.h"
#include "../core/edit/semantic_guidance.h"
#include "../core/models/stable_diffusion.h"
#include "../core/pipelines/text_to_image.h"

namespace torchedit::napi {

// Defined for each struct below; `path` names the object in messages ("options", "config").
//   ModelConfig               model.json's fields as lib/model/config.ts completed them
//   TextToImageOptions        { steps, guidanceScale, eta, seed, latentHeight, latentWidth }
//   SamplerOptions            { scheduler: 'ddpm' | 'dpmsolver++', steps, skipNoisiest, eta } (read from
//                             the invert and edit objects, beside their other fields)
//   InversionOptions          { ...SamplerOptions, sourceGuidanceScale, seed }
//   SemanticGuidanceOptions   { momentumScale, momentumBeta, maskMode: 'channel' | 'sum',
//                               concepts: [{ scale, remove, warmup, cooldown: number | null, threshold, weight }] }
//   EditOptions               { ...SamplerOptions, skip, guidanceScale, ...SemanticGuidanceOptions }
//   ImagicTrainOptions        { embedding: { steps, lr }, finetune: { steps, lr, parameters: string[] }, seed }
//   ImagicGenerateOptions     { eta, sampling: TextToImageOptions }
//   ImagicEtaScoreOptions     { pairs, seed }
template <class T>
T readOptions(Napi::Env env, Napi::Value value, const char* path = "options");

}  // namespace torchedit::napi
