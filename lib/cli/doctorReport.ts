/**
 * What `torchedit doctor` reports: the libtorch found (where, version, ABI, CUDA or why not),
 * the addon chosen for it and why others were not, threads, BLAS, devices and their memory, and
 * the default model. Gathered so that it works when the addon cannot load — then the report
 * says why, with the loader's own error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { cpus, freemem, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { loadedPlan, native, packageRoot, type NativeRuntimeInfo } from '../binding.js';
import type { TorchEditError } from '../errors.js';
import { describeAddonTags, type Addon } from '../loader/addons.js';
import { describeLibtorch, type Libtorch, type SearchStep } from '../loader/libtorch.js';
import { inspectLoad } from '../loader/load.js';
import { defaultModelPath, loadModel } from '../model/model.js';

/** The loader's view of a libtorch (lib/loader/libtorch.ts), minus file lists, plus package and summary. */
export type LibtorchReport = Pick<
  Libtorch,
  'libDir' | 'realLibDir' | 'origin' | 'version' | 'versionSource' | 'cxx11Abi' | 'abiSource' | 'cuda' | 'cudaVersion' | 'cudaReason'
> & {
  /** The Debian package that owns it, e.g. `libtorch1.13 1.13.1+dfsg-4`. */
  package: string | null;
  summary: string;
};

export interface AddonReport {
  path: string;
  kind: Addon['kind'];
  builtFor: string;
  builtAgainst: string | null;
}

export interface DeviceReport {
  device: string;
  name: string;
  totalBytes: number | null;
  freeBytes: number | null;
}

export interface DoctorReport {
  torchedit: { version: string; root: string };
  node: { version: string; platform: string; arch: string; napi: string };
  libtorch: {
    chosen: LibtorchReport | null;
    /** Other libtorches found, in order of preference. */
    others: LibtorchReport[];
    explicit: { source: string; value: string } | null;
    searched: SearchStep[];
  };
  addon: {
    chosen: AddonReport | null;
    available: AddonReport[];
    rejected: Array<{ path: string; libtorch: string; reason: string }>;
  };
  load: { ok: true } | { ok: false; code: string; message: string };
  runtime: (Pick<NativeRuntimeInfo, 'torchVersion' | 'cxx11Abi' | 'compute' | 'intraOpThreads'> & { parallelInfo: string }) | null;
  threads: { intraOp: number | null; cpus: number };
  blas: { library: string | null; kind: string; buildInfo: string | null; warning: string | null };
  cuda: { available: boolean; deviceCount: number; reason: string };
  devices: DeviceReport[];
  model: { path: string; exists: boolean; name: string | null; dtype: string | null; sizeBytes: number | null };
  /** The fused attention kernel (runtimeInfo().attention); null when the addon did not load or predates it. */
  attention: { fused: boolean; simd: string; available: string[]; gemm: string } | null;
  /**
   * With `--load-model`: the model loaded (-m or the default) and the attention sites the load-time
   * graph pass fused in each of its modules, or why it could not load.
   */
  modelAttention?: ModelAttentionReport;
  /** Everything that needs attention, one sentence each with its fix. */
  problems: string[];
}

export function doctorReport(): DoctorReport {
  const inspection = inspectLoad({ root: packageRoot });
  const problems: string[] = [];
  let load: DoctorReport['load'] = { ok: true };
  let info: NativeRuntimeInfo | null = null;
  try {
    info = native().runtimeInfo();
  } catch (error) {
    const e = error as TorchEditError;
    load = { ok: false, code: e.code ?? 'ERR_INTERNAL', message: e.message };
    problems.push(`torchedit cannot load (${load.code}): see "load" above for what to do`);
  }
  // Once loaded, the binding's own plan is the truth (the search could differ if files changed).
  const plan = loadedPlan() ?? inspection.plan;
  const chosen = plan?.libtorch ?? inspection.located.candidates[0] ?? null;

  const report: DoctorReport = {
    torchedit: { version: packageVersion(), root: packageRoot },
    node: { version: process.version, platform: process.platform, arch: process.arch, napi: process.versions.napi ?? '' },
    libtorch: {
      chosen: chosen ? libtorchReport(chosen) : null,
      others: inspection.located.candidates.filter((c) => c.libDir !== chosen?.libDir).map(libtorchReport),
      explicit: inspection.located.explicit,
      searched: inspection.located.searched,
    },
    addon: {
      chosen: plan ? addonReport(plan.addon) : null,
      available: inspection.addons.map(addonReport),
      rejected: inspection.rejections.map((r) => ({ path: r.addon.path, libtorch: r.libtorch.libDir, reason: r.reason })),
    },
    load,
    runtime: info && {
      torchVersion: info.torchVersion,
      cxx11Abi: info.cxx11Abi,
      compute: info.compute ?? 'cpu',
      intraOpThreads: info.intraOpThreads,
      parallelInfo: info.parallelInfo.trim(),
    },
    threads: { intraOp: info?.intraOpThreads ?? null, cpus: cpus().length },
    blas: blasReport(info),
    cuda: cudaReport(chosen, info),
    devices: deviceReport(info),
    model: modelReport(),
    attention: info?.attention ?? null,
    problems,
  };
  for (const skipped of plan?.passedOver ?? []) {
    problems.push(
      `libtorch ${describeLibtorch(skipped)} in ${skipped.libDir} is preferred but no addon fits it: npm rebuild torchedit --build-from-source builds one`,
    );
  }
  if (report.blas.warning) problems.push(report.blas.warning);
  if (info && report.threads.intraOp === 1 && report.threads.cpus > 1) {
    problems.push(`libtorch uses 1 of ${report.threads.cpus} CPUs: configure({ threads: ${report.threads.cpus} }) for more`);
  }
  if (!report.model.exists) problems.push(`no default model at ${report.model.path}: pass a bundle's path to loadModel()`);
  return report;
}

function libtorchReport(lib: Libtorch): LibtorchReport {
  return {
    libDir: lib.libDir,
    realLibDir: lib.realLibDir,
    origin: lib.origin,
    version: lib.version,
    versionSource: lib.versionSource,
    cxx11Abi: lib.cxx11Abi,
    abiSource: lib.abiSource,
    cuda: lib.cuda,
    cudaVersion: lib.cudaVersion,
    cudaReason: lib.cudaReason,
    package: debianPackage(lib.libraries.torch_cpu?.realPath),
    summary: describeLibtorch(lib),
  };
}

function addonReport(addon: Addon): AddonReport {
  return {
    path: relative(packageRoot, addon.path).startsWith('..') ? addon.path : relative(packageRoot, addon.path),
    kind: addon.kind,
    builtFor: describeAddonTags(addon.tags),
    builtAgainst: addon.info?.builtAgainst ?? addon.info?.libDir ?? null,
  };
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** `libtorch1.13 1.13.1+dfsg-4` for a file a Debian package installed; null elsewhere. */
function debianPackage(file: string | undefined): string | null {
  if (!file) return null;
  const owner = spawnSync('dpkg-query', ['-S', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  if (owner.status !== 0) return null;
  const name = owner.stdout.split(':')[0].trim();
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const version = spawnSync('dpkg-query', ['-W', '-f=${Version}', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return version.status === 0 ? `${name} ${version.stdout.trim()}` : name;
}

/**
 * The BLAS actually mapped into this process (after the addon loaded libtorch): Debian picks
 * libblas.so.3 through update-alternatives, and the reference implementation is ~20× slower
 * than OpenBLAS for the matrix products diffusion is made of.
 */
function blasReport(info: NativeRuntimeInfo | null): DoctorReport['blas'] {
  const buildInfo = info?.buildConfig?.match(/BLAS_INFO=([^,\n]+)/)?.[1]?.trim() ?? null;
  if (!info) return { library: null, kind: 'unknown (libtorch not loaded)', buildInfo, warning: null };
  let maps = '';
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    // not Linux
  }
  const libs = [
    ...new Set(
      maps
        .split('\n')
        .map((l) => l.split(/\s+/)[5] ?? '')
        .filter((p) => /\/lib(openblas|blas|mkl_rt|mkl_core|blis|flexiblas)[^/]*\.so/.test(p)),
    ),
  ];
  const pick = (re: RegExp) => libs.find((p) => re.test(p)) ?? null;
  const openblas = pick(/openblas/);
  if (openblas)
    return {
      library: openblas,
      kind: `OpenBLAS${/pthread/.test(openblas) ? ' (pthreads)' : /openmp/.test(openblas) ? ' (OpenMP)' : ''}`,
      buildInfo,
      warning: null,
    };
  const mkl = pick(/mkl/);
  if (mkl) return { library: mkl, kind: 'Intel MKL', buildInfo, warning: null };
  const other = pick(/blis|flexiblas/);
  if (other) return { library: other, kind: /blis/.test(other) ? 'BLIS' : 'FlexiBLAS', buildInfo, warning: null };
  const reference = pick(/libblas\.so/);
  if (reference) {
    return {
      library: reference,
      kind: 'reference BLAS',
      buildInfo,
      warning: 'matrix products use the reference BLAS, ~20× slower than OpenBLAS: sudo apt-get install libopenblas0-pthread',
    };
  }
  return {
    library: null,
    kind: buildInfo === 'mkl' ? 'Intel MKL (linked into libtorch)' : (buildInfo ?? 'none found'),
    buildInfo,
    warning: null,
  };
}

function cudaReport(lib: Libtorch | null, info: NativeRuntimeInfo | null): DoctorReport['cuda'] {
  if (info?.cudaAvailable) return { available: true, deviceCount: info.cudaDeviceCount, reason: `${info.cudaDeviceCount} CUDA device(s)` };
  if (!lib) return { available: false, deviceCount: 0, reason: 'no libtorch found' };
  if (!lib.cuda) return { available: false, deviceCount: 0, reason: lib.cudaReason };
  if (!info) return { available: false, deviceCount: 0, reason: 'a CUDA libtorch, but torchedit could not load it' };
  if (!existsSync('/proc/driver/nvidia/version')) {
    return {
      available: false,
      deviceCount: 0,
      reason: 'a CUDA libtorch, but no NVIDIA driver is loaded (/proc/driver/nvidia/version is missing)',
    };
  }
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  return {
    available: false,
    deviceCount: 0,
    reason: `a CUDA libtorch and an NVIDIA driver, but libtorch sees no usable device${visible !== undefined ? ` (CUDA_VISIBLE_DEVICES=${visible})` : ''}`,
  };
}

function deviceReport(info: NativeRuntimeInfo | null): DeviceReport[] {
  const cpuList = cpus();
  const devices: DeviceReport[] = [
    {
      device: 'cpu',
      name: `${cpuList[0]?.model.trim() ?? 'CPU'} × ${cpuList.length}`,
      totalBytes: totalmem(),
      freeBytes: freemem(),
    },
  ];
  if (!info?.cudaAvailable) return devices;
  // nvidia-smi reads memory without creating a CUDA context; the addon's report only covers
  // devices torchedit has already used.
  const smi = spawnSync('nvidia-smi', ['--query-gpu=index,name,memory.total,memory.used', '--format=csv,noheader,nounits'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: 10_000,
  });
  const rows =
    smi.status === 0
      ? smi.stdout
          .trim()
          .split('\n')
          .map((l) => l.split(',').map((c) => c.trim()))
      : [];
  const gpu = native().memory().gpu ?? [];
  for (let i = 0; i < info.cudaDeviceCount; i++) {
    const row = rows.find((r) => Number(r[0]) === i);
    const mem = gpu.find((g) => g.device === `cuda:${i}`);
    const total = row ? Number(row[2]) * 2 ** 20 : (mem?.totalBytes ?? null);
    const free = row ? (Number(row[2]) - Number(row[3])) * 2 ** 20 : (mem?.freeBytes ?? null);
    devices.push({ device: `cuda:${i}`, name: row?.[1] ?? 'CUDA device', totalBytes: total, freeBytes: free });
  }
  return devices;
}

export type ModelAttentionReport =
  | { path: string; ok: true; sites: { textEncoder: number; unet: number; vaeEncoder: number; vaeDecoder: number } }
  | { path: string; ok: false; code: string; message: string };

/** Loads the bundle at `dir` and counts the attention sites fused in each module (`doctor --load-model`). */
export async function modelAttentionReport(dir: string): Promise<ModelAttentionReport> {
  try {
    const model = await loadModel(dir);
    try {
      const m = model.modules();
      const sites = {
        textEncoder: m.textEncoder.fusedAttentionSites,
        unet: m.unet.fusedAttentionSites,
        vaeEncoder: m.vaeEncoder.fusedAttentionSites,
        vaeDecoder: m.vaeDecoder.fusedAttentionSites,
      };
      for (const module of Object.values(m)) module.dispose();
      return { path: dir, ok: true, sites };
    } finally {
      model.dispose();
    }
  } catch (error) {
    const e = error as TorchEditError;
    return { path: dir, ok: false, code: e.code ?? 'ERR_INTERNAL', message: e.message };
  }
}

function modelReport(): DoctorReport['model'] {
  const path = defaultModelPath;
  let config: { name?: unknown; dtype?: unknown } | null = null;
  try {
    config = JSON.parse(readFileSync(join(path, 'model.json'), 'utf8')) as { name?: unknown; dtype?: unknown };
  } catch {
    // reported as missing or unreadable below
  }
  let sizeBytes: number | null = null;
  if (config) {
    sizeBytes = 0;
    for (const name of readdirSync(path)) {
      const s = statSync(join(path, name));
      if (s.isFile()) sizeBytes += s.size;
    }
  }
  return {
    path,
    exists: config !== null,
    name: typeof config?.name === 'string' ? config.name : null,
    dtype: typeof config?.dtype === 'string' ? config.dtype : null,
    sizeBytes,
  };
}
