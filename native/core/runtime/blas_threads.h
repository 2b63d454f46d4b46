// The BLAS library's own thread pool. libtorch 1.13's at::set_num_threads sets OpenMP (and MKL)
// but not OpenBLAS, whose pthreads build (Debian's libopenblas0-pthread) starts one thread per
// core and spins (sched_yield) between calls: with "1 thread" configured a job still used two
// cores, and with the other core busy it ran 1.7× slower (bench/NOTES.md, "BLAS threads").
#pragma once

#include <string>

namespace torchedit {

struct BlasThreads {
  std::string library;  // "OpenBLAS" or "" when no BLAS with a thread-count API is loaded
  int threads = 0;      // its current thread count (0 when unknown)
};

// Sets the thread count of the BLAS in this process (found among the loaded libraries, e.g.
// libtorch's libblas.so.3 → OpenBLAS). Returns what is in effect afterwards. Process-wide.
BlasThreads setBlasThreads(int threads);
BlasThreads blasThreads();

// True when the user chose the BLAS thread count through the environment
// (OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS), which torchedit then leaves alone by default.
bool blasThreadsFromEnvironment();

}  // namespace torchedit
