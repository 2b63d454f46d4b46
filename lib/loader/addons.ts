/**
 * The addon binaries a package can load and which libtorch each one fits.
 *
 * Prebuilds are named by prebuildify: `prebuilds/<platform>-<arch>/<name>.<tags>.node`, tags
 * separated by dots. node-gyp-build understands only its own tags (napi, abi*, uv*, armv*,
 * glibc/musl) and skips unknown ones, so it cannot choose between builds for different
 * libtorches; torchedit's own tags say what each was built against and this file chooses:
 *
 *   torchedit.napi.torch1-13.cxx11.cpu.glibc.node
 *             │    │         │     │   └ C library (prebuildify --tag-libc)
 *             │    │         │     └ compute backend: cpu | cuda
 *             │    │         └ C++ ABI: cxx11 | precxx11 (_GLIBCXX_USE_CXX11_ABI)
 *             │    └ libtorch major.minor (a dash: a dot would split the tag)
 *             └ Node-API: one binary for every Node version
 *
 * A sidecar `<same name>.json` (written by scripts/prebuild.mjs, and by CMake next to a source
 * build) records the full details: exact version, CUDA version, the hash of the sources it was
 * built from.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readElfDynamic } from './elf.js';
import type { Libtorch } from './libtorch.js';

export interface AddonTags {
  /** libtorch major.minor it was built against: `'1.13'`. */
  torch: string;
  cxx11Abi: boolean;
  compute: 'cpu' | 'cuda';
}

/** What a sidecar JSON records (all fields optional: older builds have none). */
export interface AddonInfo {
  torchVersion?: string;
  cxx11Abi?: boolean;
  compute?: 'cpu' | 'cuda';
  cudaVersion?: string | null;
  /** The libtorch folder a source build was linked against. */
  libDir?: string;
  /** sha256 of native/, cmake/ and CMakeLists.txt it was built from (scripts/sourceHash.mjs). */
  sourceHash?: string;
  builtAgainst?: string;
}

export interface Addon {
  path: string;
  /** `build`: a source build in build/Release; `prebuild`: shipped in prebuilds/; `env`: TORCHEDIT_ADDON. */
  kind: 'build' | 'prebuild' | 'env';
  tags: AddonTags | null;
  info: AddonInfo | null;
  /** Its NEEDED entries that are libtorch's (libtorch*.so*, libc10*.so*). */
  torchNeeded: string[];
}

export function addonTagString(tags: AddonTags): string {
  return `torch${tags.torch.replace('.', '-')}.${tags.cxx11Abi ? 'cxx11' : 'precxx11'}.${tags.compute}`;
}

/** The file name scripts/prebuild.mjs gives prebuildify (`--name`; it appends `.glibc.node`). */
export function prebuildName(tags: AddonTags): string {
  return `torchedit.napi.${addonTagString(tags)}`;
}

export function parseAddonTags(file: string): AddonTags | null {
  const parts = basename(file).split('.');
  let torch: string | undefined;
  let cxx11Abi: boolean | undefined;
  let compute: 'cpu' | 'cuda' | undefined;
  for (const part of parts) {
    const t = part.match(/^torch(\d+)-(\d+)$/);
    if (t) torch = `${t[1]}.${t[2]}`;
    else if (part === 'cxx11' || part === 'precxx11') cxx11Abi = part === 'cxx11';
    else if (part === 'cpu' || part === 'cuda') compute = part;
  }
  return torch !== undefined && cxx11Abi !== undefined && compute !== undefined ? { torch, cxx11Abi, compute } : null;
}

/** `'1.13.0a0'`, `'2.1.0+cu121'` → `'1.13'`, `'2.1'`. */
export function majorMinor(version: string | null | undefined): string | null {
  const m = version?.match(/^(\d+)\.(\d+)/);
  return m ? `${m[1]}.${m[2]}` : null;
}

export function platformDir(): string {
  return `${process.platform}-${process.arch}`;
}

/**
 * The addons of the package at `root`, in order of preference: `TORCHEDIT_ADDON` alone when set;
 * else a source build (build/Release, as node-gyp-build prefers it too: whoever built from
 * source wants that build), then the prebuilds for this platform.
 */
export function listAddons(root: string, env: NodeJS.ProcessEnv = process.env): Addon[] {
  if (env.TORCHEDIT_ADDON) return [describeAddon(env.TORCHEDIT_ADDON, 'env')];
  const addons: Addon[] = [];
  const release = join(root, 'build', 'Release', 'torchedit.node');
  if (existsSync(release)) addons.push(describeAddon(release, 'build'));
  const dir = join(root, 'prebuilds', platformDir());
  let names: string[] = [];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.node'))
      .sort();
  } catch {
    // no prebuilds for this platform
  }
  for (const name of names) addons.push(describeAddon(join(dir, name), 'prebuild'));
  return addons;
}

export function describeAddon(path: string, kind: Addon['kind']): Addon {
  const info = readSidecar(path);
  let tags = parseAddonTags(path);
  if (!tags && info?.torchVersion && typeof info.cxx11Abi === 'boolean' && (info.compute === 'cpu' || info.compute === 'cuda')) {
    tags = { torch: majorMinor(info.torchVersion) ?? info.torchVersion, cxx11Abi: info.cxx11Abi, compute: info.compute };
  }
  const needed = readElfDynamic(path)?.needed ?? [];
  return { path, kind, tags, info, torchNeeded: needed.filter(isTorchLibrary) };
}

function readSidecar(addonPath: string): AddonInfo | null {
  try {
    return JSON.parse(readFileSync(addonPath.replace(/\.node$/, '.json'), 'utf8')) as AddonInfo;
  } catch {
    return null;
  }
}

function isTorchLibrary(name: string): boolean {
  return /^lib(torch|c10)[^/]*\.so/.test(name);
}

export type Match = { ok: true; exact: boolean } | { ok: false; reason: string };

/**
 * Whether `addon` can run on `lib`. Checked without loading either:
 *  - version (major.minor) and C++ ABI from the tags must equal libtorch's;
 *  - a CUDA addon needs a CUDA libtorch; a CPU addon also runs on a CUDA libtorch (its calls
 *    are the same; the CUDA backend is there because the loader loads libtorch_cuda), which
 *    counts as a weaker (not exact) match;
 *  - every libtorch library the addon names in NEEDED must be the SONAME of a library in the
 *    folder — otherwise the dynamic linker would fail (or find another libtorch): Debian's
 *    sonames are versioned (libtorch_cpu.so.1.13), pytorch.org's and pip's are not;
 *  - a source build with no tags is accepted on the NEEDED check alone.
 */
export function matchAddon(addon: Addon, lib: Libtorch): Match {
  const t = addon.tags;
  if (t) {
    const version = majorMinor(lib.version);
    if (version === null)
      return {
        ok: false,
        reason: `the version of the libtorch in ${lib.libDir} cannot be read, so the addon built for libtorch ${t.torch} cannot be checked against it`,
      };
    if (version !== t.torch) return { ok: false, reason: `built for libtorch ${t.torch}, found ${lib.version}` };
    if (lib.cxx11Abi !== null && lib.cxx11Abi !== t.cxx11Abi) {
      return {
        ok: false,
        reason: `built with the ${t.cxx11Abi ? 'C++11' : 'pre-C++11'} ABI, libtorch uses the ${lib.cxx11Abi ? 'C++11' : 'pre-C++11'} ABI`,
      };
    }
    if (t.compute === 'cuda' && !lib.cuda) return { ok: false, reason: `built for CUDA, but ${lib.cudaReason}` };
  }
  // Only SONAMEs count: a library loaded by absolute path satisfies a NEEDED entry only through
  // its SONAME (glibc's _dl_map_object compares the names it was opened by, and the SONAME).
  const provided = new Set<string>();
  for (const l of Object.values(lib.libraries)) if (l?.soname) provided.add(l.soname);
  const missing = addon.torchNeeded.filter((n) => !provided.has(n));
  if (missing.length) {
    const names = (['c10', 'torch_cpu', 'torch'] as const).map((r) => lib.libraries[r]?.soname ?? lib.libraries[r]?.path).filter(Boolean);
    return {
      ok: false,
      reason: `it links ${missing.join(', ')}, which ${lib.libDir} does not provide (it has ${names.map((n) => basename(n!)).join(', ')})`,
    };
  }
  return { ok: true, exact: !t || (t.compute === 'cuda') === lib.cuda };
}

export function describeAddonTags(tags: AddonTags | null): string {
  if (!tags) return 'libtorch (not recorded)';
  return `libtorch ${tags.torch} (${tags.cxx11Abi ? 'C++11' : 'pre-C++11'} ABI, ${tags.compute === 'cuda' ? 'CUDA' : 'CPU'})`;
}
