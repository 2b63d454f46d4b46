#pragma once

#include <napi.h>

namespace torchedit::napi {
void InitTesting(Napi::Env env, Napi::Object exports);
}
