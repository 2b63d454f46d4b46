#pragma once

#include <napi.h>

namespace torchedit::napi {
void InitImagic(Napi::Env env, Napi::Object exports);
}
