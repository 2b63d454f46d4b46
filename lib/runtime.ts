/** Process-wide runtime settings and reports: threads, libtorch build, live handles. */
import { native, setLibtorchPath } from './binding.js';
import { callNative } from './errors.js';
import { invalidOption } from './errors.js';
import { integerIn, numberIn } from './options/validate.js';

export interface RuntimeOptions {
  /**
   * A libtorch folder (its `lib/`, or the folder holding it) to use instead of searching; the
   * only place looked at when given. Must be set before the first tensor, module or model.
   * Defaults to the search order of the README (TORCHEDIT_LIBTORCH, LIBTORCH, Python's torch, system).
   */
  libtorch?: string;
  /**
   * Intra-op threads each device worker uses (libtorch starts with 1 here), and the thread count
   * of the BLAS library (OpenBLAS) in the process. Applied before the worker's next job. No
   * default: libtorch's own choice stands until this is set, and the BLAS pool then follows it
   * unless `OPENBLAS_NUM_THREADS` is set (OpenBLAS's own default, one spinning thread per core,
   * slowed one-thread jobs 1.7× when the other core was busy: bench/NOTES.md).
   */
  threads?: number;
  /**
   * Keep freed large CPU buffers for reuse instead of returning them to the kernel, so loops
   * do not page-fault their activations in again every step (bench/NOTES.md). Defaults to `true`
   * (environment `TORCHEDIT_CPU_CACHE=0` turns it off at start).
   */
  cpuCache?: boolean;
  /** Most bytes the CPU cache may hold unused. Defaults to a quarter of physical memory. */
  cpuCacheLimit?: number;
  /**
   * Run attention (softmax(q·kᵀ·s)·v in TorchScript UNets, VAEs and modules) through torchedit's
   * fused CPU kernel, which never stores the [tokens × tokens] scores: a graph pass at load time
   * swaps each recognised chain on an inference copy that shares the weights (docs/performance.md).
   * Calls with gradients (Imagic training) always run the module as exported. `false` turns it off
   * for models loaded afterwards and for every later call of models already loaded. Defaults to
   * `true`.
   */
  fusedAttention?: boolean;
}

/** The most intra-op threads configure() accepts. */
export const MAX_THREADS = 1024;

export function configure(options: RuntimeOptions): void {
  if (options.libtorch !== undefined) {
    if (typeof options.libtorch !== 'string' || options.libtorch.length === 0)
      throw invalidOption('libtorch', 'non-empty path', options.libtorch);
    setLibtorchPath(options.libtorch);
  }
  if (options.threads !== undefined) {
    const threads = integerIn('threads', options.threads, 1, MAX_THREADS);
    callNative(() => native().setThreads(threads));
  }
  if (options.cpuCache !== undefined || options.cpuCacheLimit !== undefined) {
    if (options.cpuCache !== undefined && typeof options.cpuCache !== 'boolean')
      throw invalidOption('cpuCache', 'boolean', options.cpuCache);
    const limit =
      options.cpuCacheLimit === undefined ? undefined : numberIn('cpuCacheLimit', options.cpuCacheLimit, 0, Number.MAX_SAFE_INTEGER);
    const enabled = options.cpuCache ?? native().memory().cpuCache.enabled;
    callNative(() => native().setCpuCache(enabled, limit));
  }
  if (options.fusedAttention !== undefined) {
    if (typeof options.fusedAttention !== 'boolean') throw invalidOption('fusedAttention', 'boolean', options.fusedAttention);
    const enabled = options.fusedAttention;
    callNative(() => native().setFusedAttention(enabled));
  }
}

/** Frees every CPU buffer the cache holds for reuse (tensors in use are not affected). */
export function emptyCache(): void {
  callNative(() => native().emptyCpuCache());
}

export interface RuntimeInfo {
  /** libtorch version from its headers at build time, e.g. `'1.13.0'` (Debian's 1.13.1 says 1.13.0). */
  torchVersion: string;
  /** Whether the addon was built with the C++11 ABI (must match libtorch's). */
  cxx11Abi: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  /** Intra-op threads of the calling thread; the workers' count is set by configure(). */
  intraOpThreads: number;
  /** libtorch's parallel backend report (OpenMP, MKL, thread counts). */
  parallelInfo: string;
  /** The BLAS whose thread pool torchedit sets (absent when none with a thread API is loaded). */
  blas?: { library: 'OpenBLAS'; threads: number };
  /** What the addon was built for: `'cpu'` or `'cuda'` (TORCHEDIT_COMPUTE from CMake). Older builds lack it. */
  compute?: 'cpu' | 'cuda';
  /** The CUDA version of the libtorch it was built against; `''` for CPU. */
  cudaVersion?: string;
  /** libtorch's build settings (`at::show_config()`: BLAS, LAPACK, CPU capability, flags). */
  buildConfig?: string;
  /**
   * The fused attention kernel: whether configure({ fusedAttention }) has it on, the SIMD path it
   * runs (`'avx512'`, `'avx2'` or `'scalar'`), the paths this CPU can run, and the GEMM it calls
   * (`'sgemm_'`: the BLAS libtorch loaded; `'at::addmm'` when none was found). Older builds lack it.
   */
  attention?: { fused: boolean; simd: string; available: string[]; gemm: string };
}

export function runtimeInfo(): RuntimeInfo {
  return callNative(() => native().runtimeInfo());
}

export interface MemoryReport {
  /** Tensor handles not yet disposed (or collected). */
  liveTensors: number;
  /** Bytes referenced by those handles (views of one storage count each). */
  tensorBytes: number;
  /** Module handles not yet disposed. */
  liveModules: number;
  /** Model handles (loaded bundles) not yet disposed. */
  liveModels: number;
  /** The caching CPU allocator: bytes held for reuse, its limit, and how often it served a request. */
  cpuCache: { enabled: boolean; cachedBytes: number; limitBytes: number; hits: number; misses: number };
  /** CUDA devices torchedit has used (active context): free and total bytes. Absent on CPU builds. */
  gpu?: Array<{ device: string; freeBytes: number; totalBytes: number }>;
}

/** Live handles and their bytes: a long run that does not dispose what it creates shows here. */
export function memory(): MemoryReport {
  return callNative(() => native().memory());
}
