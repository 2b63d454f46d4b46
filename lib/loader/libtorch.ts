/**
 * Finds libtorch on this machine without loading it, in the documented order:
 *
 *   1. an explicit path (the `libtorch` load option), else `TORCHEDIT_LIBTORCH`, else `LIBTORCH` —
 *      when one is set it is the ONLY place looked at: you said where libtorch is, so a libtorch
 *      somewhere else must not be picked up silently (and an empty folder really hides it);
 *   2. Python's torch: its `lib/` folder (`python3` on PATH, then `/usr/bin/python3`, where
 *      Debian's python3-torch lives; `TORCHEDIT_PYTHON` names the one interpreter to ask);
 *   3. system paths: LD_LIBRARY_PATH, the folders of /etc/ld.so.conf, the standard lib folders,
 *      then /usr/local/libtorch/lib and /opt/libtorch/lib.
 *
 * For each libtorch it reads the version, the C++ ABI and whether it is a CUDA build from files
 * next to it (headers, build-version, version.py, TorchConfig*.cmake, sonames, the dynamic string
 * table of libc10), so a mismatch is reported before the dynamic linker ever sees it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { dynamicStringsInclude, readElfDynamic } from './elf.js';

export type LibtorchSource = 'option' | 'TORCHEDIT_LIBTORCH' | 'LIBTORCH' | 'python' | 'system';

/** The libraries the addon and its CUDA backend need, in the order they are loaded. */
export const LIBRARY_ROLES = ['torch_global_deps', 'c10', 'c10_cuda', 'torch_cpu', 'torch_cuda', 'torch'] as const;
export type LibraryRole = (typeof LIBRARY_ROLES)[number];
const REQUIRED_ROLES: readonly LibraryRole[] = ['c10', 'torch_cpu', 'torch'];

export interface LibtorchLibrary {
  /** The file in the libtorch folder (may be a symlink). */
  path: string;
  realPath: string;
  /** Its DT_SONAME: what an addon's NEEDED entry must say to be satisfied by it. */
  soname: string | null;
}

export interface Libtorch {
  source: LibtorchSource;
  /** How it was found, for messages: `TORCHEDIT_LIBTORCH=/opt/libtorch`, `torch of /usr/bin/python3`. */
  origin: string;
  /** The folder holding libtorch_cpu.so etc. */
  libDir: string;
  /** The folder the real libtorch_cpu.so is in (Debian's python3-torch links into /usr/lib/<triplet>). */
  realLibDir: string;
  libraries: Partial<Record<LibraryRole, LibtorchLibrary>>;
  /** `'1.13.0'`, `'2.1.0+cu121'`; null when nothing next to the libraries says. */
  version: string | null;
  versionSource: string | null;
  /** Whether it was built with the C++11 ABI (`_GLIBCXX_USE_CXX11_ABI=1`); null if unknown. */
  cxx11Abi: boolean | null;
  abiSource: string | null;
  /** A CUDA build: libtorch_cuda.so is there. */
  cuda: boolean;
  /** CUDA version it was built with (`'12.1'`), when known. */
  cudaVersion: string | null;
  /** Why this is or is not a CUDA libtorch, in one sentence. */
  cudaReason: string;
  /** pip installs: the nvidia/<package>/lib folders torch itself preloads its CUDA libraries from. */
  cudaLibraryDirs: string[];
  /** Torch_DIR for a source build against this libtorch (TorchConfig.cmake's folder), if it has one. */
  cmakeDir: string | null;
  /** Python's torch: the package folder. */
  pythonPackage: string | null;
}

export interface SearchStep {
  source: LibtorchSource;
  /** The place looked at: a folder, or the interpreter asked. */
  place: string;
  /** What was found there: `libtorch 1.13.0`, `no libtorch_cpu.so`, `not installed`. */
  result: string;
}

export interface LocateResult {
  /** Every distinct libtorch found, in order of preference. */
  candidates: Libtorch[];
  searched: SearchStep[];
  /** The explicit setting that restricted the search to one place, if any. */
  explicit: { source: LibtorchSource; value: string } | null;
}

export interface LocateOptions {
  /** An explicit libtorch folder (its root, its lib/ folder, or Python's torch package folder). */
  libtorch?: string;
  env?: NodeJS.ProcessEnv;
  /** Interpreters to ask for torch; default `TORCHEDIT_PYTHON`, else python3 on PATH and /usr/bin/python3. */
  pythons?: string[];
  /** System folders to look in; default LD_LIBRARY_PATH, ld.so.conf and the standard folders. */
  systemDirs?: string[];
}

/** Debian's multiarch folder name for this machine (lib/x86_64-linux-gnu). */
const MULTIARCH = `${process.arch === 'arm64' ? 'aarch64' : process.arch === 'x64' ? 'x86_64' : process.arch}-linux-gnu`;

export function locateLibtorch(options: LocateOptions = {}): LocateResult {
  const env = options.env ?? process.env;
  const result: LocateResult = { candidates: [], searched: [], explicit: null };
  const explicit: Array<[LibtorchSource, string | undefined]> = [
    ['option', options.libtorch],
    ['TORCHEDIT_LIBTORCH', env.TORCHEDIT_LIBTORCH],
    ['LIBTORCH', env.LIBTORCH],
  ];
  for (const [source, value] of explicit) {
    if (!value) continue;
    result.explicit = { source, value };
    const place = resolve(value);
    const origin = source === 'option' ? `libtorch option ${value}` : `${source}=${value}`;
    // A libtorch root, its lib/ folder, or a prefix like /usr (lib/<triplet>, as CMake accepts).
    const dirs = [join(place, 'lib'), place, join(place, 'lib', MULTIARCH)];
    const libDir = dirs.find((d) => hasLibrary(d, 'torch_cpu'));
    if (libDir) add(result, inspectLibtorch(libDir, source, origin), place);
    else result.searched.push({ source, place, result: `no libtorch_cpu.so in ${dirs.slice(0, -1).join(', ')} or ${dirs.at(-1)}` });
    return result;
  }
  for (const python of options.pythons ?? defaultPythons(env)) {
    const pkg = pythonTorchPackage(python);
    if (!pkg.dir) {
      result.searched.push({ source: 'python', place: python, result: pkg.why });
      continue;
    }
    const libDir = join(pkg.dir, 'lib');
    if (hasLibrary(libDir, 'torch_cpu')) add(result, inspectLibtorch(libDir, 'python', `torch of ${python}`, pkg.dir), libDir);
    else result.searched.push({ source: 'python', place: libDir, result: `torch at ${pkg.dir} has no lib/libtorch_cpu.so` });
  }
  for (const dir of options.systemDirs ?? systemLibraryDirs(env)) {
    if (hasLibrary(dir, 'torch_cpu')) add(result, inspectLibtorch(dir, 'system', `system path ${dir}`), dir);
    else result.searched.push({ source: 'system', place: dir, result: 'no libtorch_cpu.so' });
  }
  return result;
}

/** Records a candidate unless it is one already found (the same real libtorch_cpu.so). */
function add(result: LocateResult, lib: Libtorch, place: string): void {
  const missing = REQUIRED_ROLES.filter((role) => !lib.libraries[role]);
  const same = result.candidates.find((c) => c.libraries.torch_cpu?.realPath === lib.libraries.torch_cpu?.realPath);
  let outcome: string;
  if (missing.length) outcome = `incomplete libtorch: no ${missing.map((r) => `lib${r}.so`).join(', ')}`;
  else if (same) outcome = `the same libtorch as ${same.origin}`;
  else {
    result.candidates.push(lib);
    outcome = `libtorch ${describeLibtorch(lib)}`;
  }
  result.searched.push({ source: lib.source, place, result: outcome });
}

/** `1.13.0 (C++11 ABI, CPU)`. */
export function describeLibtorch(lib: Pick<Libtorch, 'version' | 'cxx11Abi' | 'cuda' | 'cudaVersion'>): string {
  const abi = lib.cxx11Abi === null ? 'unknown C++ ABI' : lib.cxx11Abi ? 'C++11 ABI' : 'pre-C++11 ABI';
  const compute = lib.cuda ? `CUDA${lib.cudaVersion ? ` ${lib.cudaVersion}` : ''}` : 'CPU';
  return `${lib.version ?? 'of unknown version'} (${abi}, ${compute})`;
}

/** Reads what can be known about the libtorch in `libDir` from the files around it. */
export function inspectLibtorch(libDir: string, source: LibtorchSource, origin: string, pythonPackage: string | null = null): Libtorch {
  const libraries: Libtorch['libraries'] = {};
  const names = listDir(libDir);
  for (const role of LIBRARY_ROLES) {
    const path = findLibrary(libDir, role, names);
    if (!path) continue;
    const realPath = safeRealpath(path);
    libraries[role] = { path, realPath, soname: readElfDynamic(path)?.soname ?? null };
  }
  const realLibDir = libraries.torch_cpu ? dirname(libraries.torch_cpu.realPath) : safeRealpath(libDir);
  // The folders a libtorch's other files sit in: the root above lib/ (zip: libtorch/, pip:
  // torch/, Debian: /usr above /usr/lib/<triplet>), for the folder as found and as resolved.
  const libDirs = realLibDir === libDir ? [libDir] : [libDir, realLibDir];
  const roots = libDirs.map(installRoot);
  if (!pythonPackage && existsSync(join(roots[0], 'version.py'))) pythonPackage = roots[0];
  // Own files first, as for the version.
  const cmakeDirs = unique(libDirs.flatMap((d, i) => [join(roots[i], 'share', 'cmake', 'Torch'), join(d, 'cmake', 'Torch')])).filter((d) =>
    existsSync(join(d, 'TorchConfig.cmake')),
  );

  const pythonVersion = pythonPackage ? readPythonVersion(pythonPackage) : null;
  const version = readVersion(roots, libDirs, pythonVersion, libraries);
  const abi = readAbi(cmakeDirs, libraries);
  const cuda = libraries.torch_cuda !== undefined;
  const cudaVersion = pythonVersion?.cuda ?? cudaFromVersion(version.value) ?? readBuildVersionCuda(unique(roots));
  const cudaReason = cuda
    ? `libtorch_cuda is in ${libDir}${cudaVersion ? ` (built for CUDA ${cudaVersion})` : ''}`
    : existsSync(join(libDir, 'libtorch_hip.so'))
      ? `this is a ROCm build (libtorch_hip.so), which torchedit does not support`
      : `no libtorch_cuda.so in ${libDir}: a CPU-only build of libtorch`;
  return {
    source,
    origin,
    libDir,
    realLibDir,
    libraries,
    version: version.value,
    versionSource: version.source,
    cxx11Abi: abi.value,
    abiSource: abi.source,
    cuda,
    cudaVersion,
    cudaReason,
    cudaLibraryDirs: cuda && pythonPackage ? pipCudaLibraryDirs(pythonPackage) : [],
    cmakeDir: cmakeDirs[0] ?? null,
    pythonPackage,
  };
}

/** `/opt/libtorch/lib` → `/opt/libtorch`; `/usr/lib/x86_64-linux-gnu` → `/usr`. */
function installRoot(libDir: string): string {
  const parent = dirname(libDir);
  if (basename(libDir).startsWith('lib')) return parent;
  if (basename(parent).startsWith('lib')) return dirname(parent);
  return parent;
}

/**
 * The version, from the files of the folder as found first and only then from those of the
 * folder its libraries resolve into (Debian's python3-torch symlinks into /usr/lib/<triplet>):
 * headers, a zip's build-version, Python's version.py, TorchConfigVersion.cmake, the soname.
 */
function readVersion(
  roots: string[],
  libDirs: string[],
  python: PythonVersion | null,
  libraries: Libtorch['libraries'],
): { value: string | null; source: string | null } {
  for (const [i, root] of roots.entries()) {
    const header = join(root, 'include', 'torch', 'csrc', 'api', 'include', 'torch', 'version.h');
    const text = readText(header);
    const parts = ['MAJOR', 'MINOR', 'PATCH'].map((p) => text?.match(new RegExp(`TORCH_VERSION_${p}\\s+(\\d+)`))?.[1]);
    if (parts.every((p) => p !== undefined)) return { value: parts.join('.'), source: header };
    const buildVersion = join(root, 'build-version');
    const build = readText(buildVersion)?.trim();
    if (build) return { value: build, source: buildVersion };
    if (python && i === 0) return { value: python.version, source: python.file };
    for (const dir of [join(root, 'share', 'cmake', 'Torch'), join(libDirs[i] ?? root, 'cmake', 'Torch')]) {
      const file = join(dir, 'TorchConfigVersion.cmake');
      const match = readText(file)?.match(/PACKAGE_VERSION\s+"([^"]+)"/);
      if (match) return { value: match[1], source: file };
    }
  }
  const soname = libraries.torch_cpu?.soname?.match(/\.so\.(\d+\.\d+(?:\.\d+)?)$/);
  if (soname) return { value: soname[1], source: `soname ${libraries.torch_cpu!.soname}` };
  return { value: null, source: null };
}

function readAbi(cmakeDirs: string[], libraries: Libtorch['libraries']): { value: boolean | null; source: string | null } {
  for (const dir of cmakeDirs) {
    const file = join(dir, 'TorchConfig.cmake');
    const match = readText(file)?.match(/_GLIBCXX_USE_CXX11_ABI=([01])/);
    if (match) return { value: match[1] === '1', source: file };
  }
  // No CMake files (a pip wheel without them, a trimmed folder): every c10 symbol that passes a
  // std::string is mangled with `__cxx11` under the new ABI and never under the old one.
  const c10 = libraries.c10;
  const found = c10 ? dynamicStringsInclude(c10.path, '__cxx11') : null;
  if (found === null) return { value: null, source: null };
  return { value: found, source: `symbols of ${c10!.path}` };
}

interface PythonVersion {
  version: string;
  cuda: string | null;
  file: string;
}

function readPythonVersion(pkg: string): PythonVersion | null {
  const file = join(pkg, 'version.py');
  const text = readText(file);
  const version = text?.match(/^__version__\s*=\s*['"]([^'"]+)['"]/m)?.[1];
  if (!version) return null;
  const cuda = text!.match(/^cuda\s*(?::[^=\n]*)?=\s*['"]([^'"]+)['"]/m)?.[1] ?? null;
  return { version, cuda, file };
}

/** `2.1.0+cu121` → `12.1`. */
function cudaFromVersion(version: string | null): string | null {
  const m = version?.match(/\+cu(\d+)(\d)$/);
  return m ? `${m[1]}.${m[2]}` : null;
}

function readBuildVersionCuda(roots: string[]): string | null {
  for (const root of roots) {
    const v = cudaFromVersion(readText(join(root, 'build-version'))?.trim() ?? null);
    if (v) return v;
  }
  return null;
}

/**
 * pip's CUDA torch depends on separate nvidia-* wheels whose libraries sit in
 * site-packages/nvidia/<name>/lib; torch finds them through RPATHs and, when those fail, preloads
 * them itself (torch/__init__.py `_load_global_deps`). Same order as torch's list, so each one's
 * dependencies (cublas before cusolver, nvjitlink before cusparse) are loaded first.
 */
export const PIP_CUDA_PACKAGES = [
  'cublas',
  'cudnn',
  'cuda_nvrtc',
  'cuda_runtime',
  'cuda_cupti',
  'cufft',
  'curand',
  'nvjitlink',
  'cusparse',
  'cusparselt',
  'cusolver',
  'nccl',
  'nvtx',
] as const;

export function pipCudaLibraryDirs(pythonPackage: string): string[] {
  const nvidia = join(dirname(pythonPackage), 'nvidia');
  return PIP_CUDA_PACKAGES.map((name) => join(nvidia, name, 'lib')).filter((d) => isDir(d));
}

/** The shared libraries of the pip CUDA folders, in load order (`libcublasLt` before `libcublas`). */
export function pipCudaLibraries(dirs: string[]): string[] {
  const files: string[] = [];
  for (const dir of dirs) {
    const names = listDir(dir)
      .filter((n) => /^lib.+\.so(\.\d+)*$/.test(n))
      .sort((a, b) => a.length - b.length || a.localeCompare(b));
    // One file per library: the most specific versioned name wins over its unversioned symlink.
    const byStem = new Map<string, string>();
    for (const name of names) byStem.set(name.replace(/\.so.*$/, ''), name);
    // libcublasLt is a dependency of libcublas: of two stems where one extends the other, the
    // longer loads first; the rest alphabetically.
    const stems = [...byStem.keys()].sort((a, b) =>
      a !== b && a.startsWith(b) ? -1 : a !== b && b.startsWith(a) ? 1 : a.localeCompare(b),
    );
    for (const stem of stems) files.push(join(dir, byStem.get(stem)!));
  }
  return files;
}

function defaultPythons(env: NodeJS.ProcessEnv): string[] {
  if (env.TORCHEDIT_PYTHON) return [env.TORCHEDIT_PYTHON];
  const pythons: string[] = [];
  const onPath = findOnPath('python3', env.PATH ?? '');
  if (onPath) pythons.push(onPath);
  if (existsSync('/usr/bin/python3') && !pythons.some((p) => safeRealpath(p) === safeRealpath('/usr/bin/python3'))) {
    pythons.push('/usr/bin/python3');
  }
  return pythons;
}

/**
 * Where `import torch` would import from, without importing it (that takes seconds):
 * importlib's find_spec only resolves the package folder.
 */
function pythonTorchPackage(python: string): { dir: string | null; why: string } {
  const code =
    'import importlib.util as u\ns = u.find_spec("torch")\nprint(s.submodule_search_locations[0] if s and s.submodule_search_locations else "")';
  const run = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  if (run.error)
    return { dir: null, why: (run.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed' : `failed: ${run.error.message}` };
  const dir = run.stdout.trim();
  if (run.status !== 0) return { dir: null, why: `exited with ${run.status}` };
  if (!dir) return { dir: null, why: 'has no torch module' };
  return { dir, why: '' };
}

/** The dynamic linker's folders: LD_LIBRARY_PATH, /etc/ld.so.conf (with includes), the defaults. */
export function systemLibraryDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = (env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d && isAbsolute(d));
  dirs.push(...readLdSoConf('/etc/ld.so.conf', 0));
  dirs.push(
    '/lib/x86_64-linux-gnu',
    '/usr/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/lib64',
    '/usr/lib64',
    '/lib',
    '/usr/lib',
    '/usr/local/lib',
    '/usr/local/libtorch/lib',
    '/opt/libtorch/lib',
  );
  const seen = new Set<string>();
  return dirs.filter((d) => {
    if (!isDir(d)) return false;
    const real = safeRealpath(d);
    if (seen.has(real)) return false;
    seen.add(real);
    return true;
  });
}

function readLdSoConf(file: string, depth: number): string[] {
  const text = readText(file);
  if (!text || depth > 4) return [];
  const dirs: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const include = line.match(/^include\s+(.+)$/);
    if (!include) {
      dirs.push(line);
      continue;
    }
    for (const pattern of include[1].split(/\s+/)) {
      const full = isAbsolute(pattern) ? pattern : join(dirname(file), pattern);
      for (const f of expandGlob(full).sort()) dirs.push(...readLdSoConf(f, depth + 1));
    }
  }
  return dirs;
}

/** `*` in the last path component only, which is all ld.so.conf uses. */
function expandGlob(pattern: string): string[] {
  if (!pattern.includes('*')) return existsSync(pattern) ? [pattern] : [];
  const dir = dirname(pattern);
  const re = new RegExp(
    '^' +
      basename(pattern)
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*') +
      '$',
  );
  return listDir(dir)
    .filter((n) => re.test(n))
    .map((n) => join(dir, n));
}

export function hasLibrary(dir: string, role: LibraryRole): boolean {
  return findLibrary(dir, role) !== null;
}

/** `libtorch_cpu.so` if there, else its shortest versioned name (`libtorch_cpu.so.1.13`). */
function findLibrary(dir: string, role: LibraryRole, listing = listDir(dir)): string | null {
  const base = `lib${role}.so`;
  const names = listing.filter((n) => n === base || (n.startsWith(`${base}.`) && /^\.\d/.test(n.slice(base.length))));
  if (names.length === 0) return null;
  names.sort((a, b) => a.length - b.length);
  return join(dir, names[0]);
}

function findOnPath(name: string, path: string): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return null;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}
