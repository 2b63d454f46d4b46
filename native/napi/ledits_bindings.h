#pragma once

#include <napi.h>

#include "../core/edit/semantic_guidance.h"

namespace torchedit::napi {
void InitLedits(Napi::Env env, Napi::Object exports);
// SEGA options as lib/pipelines/ledits/edit.ts validated them.
SemanticGuidanceOptions toGuidanceOptions(Napi::Object o);
}
