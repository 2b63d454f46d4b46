#include "blas_threads.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <mutex>

namespace torchedit {

namespace {
using SetFn = void (*)(int);
using GetFn = int (*)();

struct OpenBlasApi {
  SetFn set = nullptr;
  GetFn get = nullptr;
};

// OpenBLAS is a dependency of libtorch loaded with RTLD_LOCAL (lib/loader), so dlsym(RTLD_DEFAULT)
// cannot see it: look in every loaded object instead (RTLD_NOLOAD never loads anything new).
int visit(struct dl_phdr_info* info, size_t, void* data) {
  auto* api = static_cast<OpenBlasApi*>(data);
  if (api->set || !info->dlpi_name || !info->dlpi_name[0]) return 0;
  void* handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
  if (!handle) return 0;
  auto set = reinterpret_cast<SetFn>(dlsym(handle, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetFn>(dlsym(handle, "openblas_get_num_threads"));
  if (set && get) {
    api->set = set;
    api->get = get;
    return 1;  // keep the handle open: the library stays loaded with libtorch anyway
  }
  dlclose(handle);
  return 0;
}

const OpenBlasApi& openBlas() {
  static OpenBlasApi api;
  static std::once_flag once;
  std::call_once(once, [] { dl_iterate_phdr(visit, &api); });
  return api;
}
}  // namespace

BlasThreads blasThreads() {
  const OpenBlasApi& api = openBlas();
  if (!api.get) return {};
  return {"OpenBLAS", api.get()};
}

BlasThreads setBlasThreads(int threads) {
  const OpenBlasApi& api = openBlas();
  if (api.set && threads > 0) api.set(threads);
  return blasThreads();
}

bool blasThreadsFromEnvironment() {
  for (const char* name : {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"}) {
    const char* v = std::getenv(name);
    if (v && *v) return true;
  }
  return false;
}

}  // namespace torchedit
