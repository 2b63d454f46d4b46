// The libtorch locator and the addon choice (lib/loader/), on fake libtorch folders made of
// symlinks to Debian's libtorch plus the files each layout has (headers, build-version,
// version.py, TorchConfig.cmake): nothing is loaded, so every layout can be tested here.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { describeAddon, listAddons, matchAddon, parseAddonTags, prebuildName, type Addon } from '../../lib/loader/addons.js';
import { readElfDynamic } from '../../lib/loader/elf.js';
import { inspectLibtorch, locateLibtorch, pipCudaLibraries, pipCudaLibraryDirs, PIP_CUDA_PACKAGES } from '../../lib/loader/libtorch.js';
import { inspectLoad } from '../../lib/loader/load.js';
import { repoRoot } from '../helpers.js';

const debian = '/usr/lib/x86_64-linux-gnu';
const work = mkdtempSync(join(tmpdir(), 'torchedit-locator-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The committed CPU prebuild: a real addon whose NEEDED names Debian's sonames. */
function prebuildFile(): string {
  const dir = join(repoRoot, 'prebuilds', 'linux-x64');
  const name = readdirSync(dir).find((n) => n.endsWith('.node'));
  assert.ok(name, `no prebuild in ${dir}`);
  return join(dir, name);
}

interface FakeOptions {
  version?: string;
  abi?: 0 | 1;
  cuda?: boolean;
  buildVersion?: string;
  versioned?: boolean;
  pythonVersion?: string;
  pythonCuda?: string;
}

/**
 * A libtorch folder `<root>/lib/lib{c10,torch_cpu,torch}.so` plus the files of its layout.
 * The libraries are copies (not symlinks: those would make it Debian's libtorch) of Debian's
 * small libc10 (its symbols tell the ABI) and of libtorch.so (13 kB) for the others.
 */
function fakeLibtorch(name: string, o: FakeOptions = {}): string {
  const root = join(work, name);
  const lib = join(root, 'lib');
  mkdirSync(lib, { recursive: true });
  const suffix = o.versioned ? '.so.1.13' : '.so';
  copyFileSync(join(debian, 'libc10.so.1.13'), join(lib, `libc10${suffix}`));
  for (const l of ['torch_cpu', 'torch', ...(o.cuda ? ['torch_cuda'] : [])])
    copyFileSync(join(debian, 'libtorch.so.1.13'), join(lib, `lib${l}${suffix}`));
  if (o.version) {
    const dir = join(root, 'include', 'torch', 'csrc', 'api', 'include', 'torch');
    mkdirSync(dir, { recursive: true });
    const [major, minor, patch] = o.version.split('.');
    writeFileSync(
      join(dir, 'version.h'),
      `#define TORCH_VERSION_MAJOR ${major}\n#define TORCH_VERSION_MINOR ${minor}\n#define TORCH_VERSION_PATCH ${patch}\n`,
    );
  }
  if (o.abi !== undefined) {
    const dir = join(root, 'share', 'cmake', 'Torch');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'TorchConfig.cmake'), `  set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${o.abi}")\n`);
  }
  if (o.buildVersion) writeFileSync(join(root, 'build-version'), `${o.buildVersion}\n`);
  if (o.pythonVersion) {
    writeFileSync(
      join(root, 'version.py'),
      `__version__ = '${o.pythonVersion}'\ndebug = False\ncuda: Optional[str] = ${o.pythonCuda ? `'${o.pythonCuda}'` : 'None'}\n`,
    );
  }
  return root;
}

function fakeAddon(tags: string | null, torchNeeded = ['libtorch_cpu.so.1.13', 'libc10.so.1.13', 'libtorch.so.1.13']): Addon {
  return {
    path: `/x/torchedit.napi.${tags}.glibc.node`,
    kind: 'prebuild',
    tags: tags ? parseAddonTags(`torchedit.napi.${tags}.glibc.node`) : null,
    info: null,
    torchNeeded,
  };
}

describe('locating libtorch', () => {
  test('an explicit folder is the only place looked at, even when it is empty', () => {
    const empty = join(work, 'empty');
    mkdirSync(empty);
    const found = locateLibtorch({
      env: { TORCHEDIT_LIBTORCH: empty, LIBTORCH: '/usr' },
      pythons: ['/usr/bin/python3'],
      systemDirs: [debian],
    });
    assert.equal(found.candidates.length, 0);
    assert.deepEqual(found.explicit, { source: 'TORCHEDIT_LIBTORCH', value: empty });
    assert.equal(found.searched.length, 1);
    assert.equal(found.searched[0].result, `no libtorch_cpu.so in ${empty}/lib, ${empty} or ${empty}/lib/x86_64-linux-gnu`);
  });

  test('precedence: option, then TORCHEDIT_LIBTORCH, then LIBTORCH', () => {
    const a = fakeLibtorch('prec-a', { version: '1.13.0' });
    const b = fakeLibtorch('prec-b', { version: '1.13.0' });
    assert.equal(locateLibtorch({ libtorch: a, env: { TORCHEDIT_LIBTORCH: b } }).candidates[0].source, 'option');
    assert.equal(locateLibtorch({ env: { TORCHEDIT_LIBTORCH: a, LIBTORCH: b } }).candidates[0].libDir, join(a, 'lib'));
    const viaLibtorch = locateLibtorch({ env: { LIBTORCH: b } });
    assert.equal(viaLibtorch.candidates[0].source, 'LIBTORCH');
    assert.equal(viaLibtorch.candidates[0].origin, `LIBTORCH=${b}`);
    // The lib/ folder itself works too, and a prefix with a multiarch lib folder (like /usr).
    assert.equal(locateLibtorch({ libtorch: join(a, 'lib') }).candidates[0].libDir, join(a, 'lib'));
    assert.equal(locateLibtorch({ libtorch: '/usr' }).candidates[0].libDir, '/usr/lib/x86_64-linux-gnu');
  });

  test('pytorch.org zip layout: version from the headers, ABI from TorchConfig.cmake, CUDA from libtorch_cuda', () => {
    const root = fakeLibtorch('zip-cuda', { version: '2.1.0', abi: 0, cuda: true, buildVersion: '2.1.0+cu121' });
    const lib = locateLibtorch({ libtorch: root }).candidates[0];
    assert.equal(lib.version, '2.1.0');
    assert.match(lib.versionSource!, /version\.h$/);
    assert.equal(lib.cxx11Abi, false);
    assert.match(lib.abiSource!, /TorchConfig\.cmake$/);
    assert.equal(lib.cuda, true);
    assert.equal(lib.cudaVersion, '12.1');
    assert.match(lib.cudaReason, /libtorch_cuda is in .*built for CUDA 12\.1/);
    assert.equal(lib.cmakeDir, join(root, 'share', 'cmake', 'Torch'));
  });

  test('without headers: build-version, then the soname; ABI from the symbols of libc10', () => {
    const zip = locateLibtorch({ libtorch: fakeLibtorch('zip-bare', { buildVersion: '2.0.1+cpu' }) }).candidates[0];
    assert.equal(zip.version, '2.0.1+cpu');
    assert.equal(zip.cuda, false);
    assert.match(zip.cudaReason, /no libtorch_cuda\.so .*CPU-only build/);
    const bare = locateLibtorch({ libtorch: fakeLibtorch('bare', { versioned: true }) }).candidates[0];
    assert.equal(bare.version, '1.13');
    assert.equal(bare.versionSource, 'soname libtorch.so.1.13'); // the copy's soname
    // Debian's libc10 is built with the C++11 ABI: its symbols say __cxx11.
    assert.equal(bare.cxx11Abi, true);
    assert.match(bare.abiSource!, /^symbols of .*libc10/);
  });

  test("Python's torch: asked through the interpreter, version.py, pip's nvidia CUDA folders in torch's order", () => {
    const site = join(work, 'site-packages');
    const pkg = fakeLibtorch('site-packages/torch', { pythonVersion: '2.1.0+cu121', pythonCuda: '12.1', cuda: true });
    for (const name of ['cusolver', 'cublas', 'cuda_runtime', 'unrelated'])
      mkdirSync(join(site, 'nvidia', name, 'lib'), { recursive: true });
    for (const file of ['libcublas.so.12', 'libcublasLt.so.12', 'libnvblas.so.12'])
      writeFileSync(join(site, 'nvidia', 'cublas', 'lib', file), '');
    const python = join(work, 'python3');
    writeFileSync(python, `#!/bin/sh\necho ${pkg}\n`);
    chmodSync(python, 0o755);
    const found = locateLibtorch({ env: {}, pythons: ['/nonexistent/python3', python], systemDirs: [] });
    assert.deepEqual(found.searched[0], { source: 'python', place: '/nonexistent/python3', result: 'not installed' });
    const lib = found.candidates[0];
    assert.equal(lib.source, 'python');
    assert.equal(lib.origin, `torch of ${python}`);
    assert.equal(lib.pythonPackage, pkg);
    assert.equal(lib.version, '2.1.0+cu121');
    assert.equal(lib.cudaVersion, '12.1');
    assert.deepEqual(
      lib.cudaLibraryDirs,
      ['cublas', 'cuda_runtime', 'cusolver'].map((n) => join(site, 'nvidia', n, 'lib')),
    );
    assert.deepEqual(pipCudaLibraryDirs(pkg), lib.cudaLibraryDirs);
    assert.equal(PIP_CUDA_PACKAGES.indexOf('cublas') < PIP_CUDA_PACKAGES.indexOf('cusolver'), true);
    // cublasLt before cublas (a dependency of it), one file per library.
    assert.deepEqual(
      pipCudaLibraries([join(site, 'nvidia', 'cublas', 'lib')]).map((p) => p.split('/').pop()),
      ['libcublasLt.so.12', 'libcublas.so.12', 'libnvblas.so.12'],
    );
  });

  test('the order is Python then system, and the same libtorch found twice is one candidate', () => {
    const a = fakeLibtorch('order-a', { version: '2.1.0', abi: 1 });
    const found = locateLibtorch({ env: {}, pythons: ['/usr/bin/python3'], systemDirs: [join(a, 'lib'), debian, '/nonexistent'] });
    // Debian's python3-torch links its lib/ into /usr/lib/<triplet>: Python's comes first and the
    // system folder is the same libtorch.
    assert.deepEqual(
      found.candidates.map((c) => c.source),
      ['python', 'system'],
    );
    assert.equal(found.candidates[0].realLibDir, debian);
    assert.equal(found.candidates[0].version, '1.13.0');
    assert.equal(found.candidates[1].libDir, join(a, 'lib'));
    assert.match(found.searched.find((s) => s.place === debian)!.result, /^the same libtorch as torch of \/usr\/bin\/python3$/);
  });

  test('an incomplete folder is reported, not used', () => {
    const root = join(work, 'incomplete', 'lib');
    mkdirSync(root, { recursive: true });
    symlinkSync(join(debian, 'libtorch.so.1.13'), join(root, 'libtorch_cpu.so'));
    const found = locateLibtorch({ libtorch: root });
    assert.equal(found.candidates.length, 0);
    assert.match(found.searched[0].result, /incomplete libtorch: no libc10\.so, libtorch\.so/);
  });
});

describe('choosing the addon', () => {
  const lib113 = () => inspectLibtorch(debian, 'system', 'system path');

  test('prebuild names carry libtorch version, ABI and compute; node-gyp-build still reads its own tags', () => {
    const name = prebuildName({ torch: '1.13', cxx11Abi: true, compute: 'cpu' });
    assert.equal(name, 'torchedit.napi.torch1-13.cxx11.cpu');
    assert.deepEqual(parseAddonTags(`${name}.glibc.node`), { torch: '1.13', cxx11Abi: true, compute: 'cpu' });
    assert.deepEqual(parseAddonTags('torchedit.napi.torch2-1.precxx11.cuda.glibc.node'), {
      torch: '2.1',
      cxx11Abi: false,
      compute: 'cuda',
    });
    assert.equal(parseAddonTags('torchedit.node'), null);
    const ngb = createRequire(import.meta.url)('node-gyp-build') as { parseTags(file: string): { napi?: boolean; libc?: string } };
    const tags = ngb.parseTags(`${name}.glibc.node`);
    assert.equal(tags.napi, true);
    assert.equal(tags.libc, 'glibc');
  });

  test('version, ABI, compute and NEEDED sonames are checked, each with its reason', () => {
    const lib = lib113();
    assert.deepEqual(matchAddon(fakeAddon('torch1-13.cxx11.cpu'), lib), { ok: true, exact: true });
    assert.deepEqual(matchAddon(fakeAddon('torch2-1.cxx11.cpu'), lib), { ok: false, reason: 'built for libtorch 2.1, found 1.13.0' });
    assert.deepEqual(matchAddon(fakeAddon('torch1-13.precxx11.cpu'), lib), {
      ok: false,
      reason: 'built with the pre-C++11 ABI, libtorch uses the C++11 ABI',
    });
    const cuda = matchAddon(fakeAddon('torch1-13.cxx11.cuda'), lib);
    assert.equal(cuda.ok, false);
    assert.match((cuda as { reason: string }).reason, /^built for CUDA, but no libtorch_cuda\.so/);
    // pip/zip sonames are unversioned: a Debian-built addon would not link against them.
    const unversioned = matchAddon(fakeAddon('torch1-13.cxx11.cpu', ['libtorch_cpu.so', 'libc10.so']), lib);
    assert.equal(unversioned.ok, false);
    assert.match(
      (unversioned as { reason: string }).reason,
      /it links libtorch_cpu\.so, libc10\.so, which .* does not provide \(it has libc10\.so\.1\.13, libtorch_cpu\.so\.1\.13, libtorch\.so\.1\.13\)/,
    );
    // A CPU addon runs on a CUDA libtorch (weaker match); a source build without tags passes on NEEDED.
    const cudaLib = locateLibtorch({ libtorch: fakeLibtorch('cuda-113', { version: '1.13.1', abi: 1, cuda: true }) }).candidates[0];
    assert.deepEqual(matchAddon(fakeAddon('torch1-13.cxx11.cpu', []), cudaLib), { ok: true, exact: false });
    assert.deepEqual(matchAddon(fakeAddon('torch1-13.cxx11.cuda', []), cudaLib), { ok: true, exact: true });
    assert.deepEqual(matchAddon(fakeAddon(null), lib), { ok: true, exact: true });
  });

  test('the real prebuild names Debian sonames and has no RUNPATH', () => {
    const addon = describeAddon(prebuildFile(), 'prebuild');
    assert.deepEqual(addon.tags, { torch: '1.13', cxx11Abi: true, compute: 'cpu' });
    assert.deepEqual([...addon.torchNeeded].sort(), ['libc10.so.1.13', 'libtorch.so.1.13', 'libtorch_cpu.so.1.13']);
    assert.deepEqual(readElfDynamic(prebuildFile())!.runpath, []);
    assert.equal(addon.info?.compute, 'cpu');
    assert.match(addon.info?.sourceHash ?? '', /^[0-9a-f]{64}$/);
    assert.equal(readElfDynamic(join(debian, 'libtorch_cpu.so'))!.soname, 'libtorch_cpu.so.1.13');
    assert.equal(readElfDynamic(join(repoRoot, 'package.json')), null);
  });

  /** A package root with the real prebuild and nothing else. */
  function fakePackage(name: string): string {
    const root = join(work, name);
    mkdirSync(join(root, 'prebuilds', 'linux-x64'), { recursive: true });
    const file = prebuildFile();
    copyFileSync(file, join(root, 'prebuilds', 'linux-x64', file.split('/').pop()!));
    return root;
  }

  test('inspectLoad: a plan for a fitting libtorch, NOT_FOUND, MISMATCH, and no addon at all', () => {
    const root = fakePackage('pkg');
    assert.equal(listAddons(root, {}).length, 1);
    const ok = inspectLoad({ root, env: {}, locate: { pythons: [], systemDirs: [debian] } });
    assert.equal(ok.error, null);
    assert.equal(ok.plan!.addon.kind, 'prebuild');
    assert.deepEqual(
      ok.plan!.preload.map((p) => p.split('/').pop()),
      ['libc10.so', 'libtorch_cpu.so', 'libtorch.so'],
    );

    const empty = join(work, 'hidden');
    mkdirSync(empty);
    const missing = inspectLoad({ root, env: { TORCHEDIT_LIBTORCH: empty } });
    assert.equal(missing.error!.code, 'ERR_LIBTORCH_NOT_FOUND');
    assert.match(missing.error!.message, /^libtorch was not found\. torchedit needs libtorch 1\.13 \(C\+\+11 ABI, CPU\)\.\n/);
    assert.match(missing.error!.message, /TORCHEDIT_LIBTORCH is set, so it is the only place looked at/);
    assert.match(missing.error!.message, /apt-get install libtorch-dev libopenblas0-pthread/);

    const other = fakeLibtorch('pkg-lib21', { version: '2.1.0', abi: 0 });
    const mismatch = inspectLoad({ root, env: { TORCHEDIT_LIBTORCH: other } });
    assert.equal(mismatch.error!.code, 'ERR_LIBTORCH_MISMATCH');
    const text = mismatch.error!.message;
    assert.match(text, /^No torchedit addon fits the libtorch found\.\n/);
    assert.match(
      text,
      new RegExp(`Found: libtorch 2\\.1\\.0 \\(pre-C\\+\\+11 ABI, CPU\\) in ${other}/lib \\(TORCHEDIT_LIBTORCH=${other}\\)`),
    );
    assert.match(
      text,
      /Needed by prebuilds\/linux-x64\/torchedit\.napi\.torch1-13\.cxx11\.cpu\.glibc\.node: libtorch 1\.13 \(C\+\+11 ABI, CPU\) — built for libtorch 1\.13, found 2\.1\.0/,
    );
    assert.match(text, /npm rebuild torchedit --build-from-source/);

    const none = inspectLoad({ root: join(work, 'no-addon'), env: {}, locate: { pythons: [], systemDirs: [debian] } });
    assert.equal(none.error!.code, 'ERR_BINDING_LOAD');
    assert.match(none.error!.message, /not built and there is no prebuilt one for linux-x64/);
  });

  test('a preferred libtorch no addon fits is passed over, and said so', () => {
    const root = fakePackage('pkg2');
    const newer = fakeLibtorch('pref-21', { version: '2.1.0', abi: 1 });
    const found = inspectLoad({ root, env: {}, locate: { pythons: [], systemDirs: [join(newer, 'lib'), debian] } });
    assert.equal(found.plan!.libtorch.libDir, debian);
    assert.deepEqual(
      found.plan!.passedOver.map((l) => l.libDir),
      [join(newer, 'lib')],
    );
    assert.equal(found.rejections[0].reason, 'built for libtorch 1.13, found 2.1.0');
  });

  test('TORCHEDIT_ADDON names the one addon to use', () => {
    const addons = listAddons(join(work, 'whatever'), { TORCHEDIT_ADDON: prebuildFile() });
    assert.equal(addons.length, 1);
    assert.equal(addons[0].kind, 'env');
  });
});
