#!/usr/bin/env node
// Builds the addon for the libtorch CMake finds and stores it in prebuilds/<platform>-<arch>/,
// named after what it was built against (lib/loader/addons.ts):
//
//   npm run build:prebuild [-- --CDTorch_DIR=/path/to/libtorch/share/cmake/Torch]
//   → prebuilds/linux-x64/torchedit.napi.torch1-13.cxx11.cpu.glibc.node (+ .json sidecar)
//   node scripts/prebuild.mjs --check    (prepublishOnly) fail if a prebuild is stale
//
// prebuildify names, strips and places the binary, but it only knows how to run node-gyp, and
// it reads the result from <cwd>/build/Release. So this script is also prebuildify's
// `--node-gyp`: called as `prebuild.mjs rebuild …`, it runs cmake-js into build-prebuild/cmake
// (never build/: that is the development build) and copies the .node to
// build-prebuild/stage/build/Release, prebuildify's cwd.
//
// Needs the compiled TypeScript (npm run build:ts) for the tag and ELF helpers.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const self = fileURLToPath(import.meta.url);
const root = join(dirname(self), '..');
const require = createRequire(import.meta.url);
const work = join(root, 'build-prebuild');
const cmakeOut = join(work, 'cmake');
const stage = join(work, 'stage');
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const jobs = String(Math.max(1, Number(process.env.TORCHEDIT_BUILD_JOBS ?? 2)));

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.status !== 0) {
    console.error(`prebuild: ${[command, ...args].join(' ')} failed (${result.status ?? result.error})`);
    process.exit(result.status || 1);
  }
}

// Extra arguments for cmake-js (e.g. --CDTorch_DIR=…) pass through the environment, since
// prebuildify calls the builder with node-gyp's arguments.
const cmakeArgs = (process.env.TORCHEDIT_PREBUILD_CMAKE_ARGS ?? '').split('\n').filter(Boolean);
const cmake = (command) => [cmakeJs, command, '--directory', root, '--out', cmakeOut, '--CDTORCHEDIT_PREBUILD=ON', ...cmakeArgs];

if (process.argv[2] === 'rebuild') {
  // prebuildify's node-gyp step: build, then put the result where prebuildify looks.
  run(process.execPath, [...cmake('build'), '--parallel', jobs]);
  const out = join(process.cwd(), 'build', 'Release');
  mkdirSync(out, { recursive: true });
  copyFileSync(join(cmakeOut, 'Release', 'torchedit.node'), join(out, 'torchedit.node'));
  process.exit(0);
}

if (process.argv[2] === '--check') {
  // prepublishOnly: every prebuild shipped must have been built from the sources shipped.
  const { sourceHash } = await import(pathToFileURL(join(root, 'scripts', 'sourceHash.mjs')).href);
  const hash = sourceHash(root);
  const dir = join(root, 'prebuilds');
  const files = existsSync(dir)
    ? readdirSync(dir, { recursive: true })
        .filter((f) => String(f).endsWith('.node'))
        .map(String)
    : [];
  const stale = files.filter((f) => {
    try {
      return JSON.parse(readFileSync(join(dir, f.replace(/\.node$/, '.json')), 'utf8')).sourceHash !== hash;
    } catch {
      return true;
    }
  });
  if (files.length === 0 || stale.length) {
    console.error(
      files.length === 0
        ? 'prebuild: no prebuilds: run npm run build:prebuild'
        : `prebuild: built from other sources than these (run npm run build:prebuild): ${stale.join(', ')}`,
    );
    process.exit(1);
  }
  console.log(`prebuild: ${files.join(', ')} match the sources`);
  process.exit(0);
}

const dist = join(root, 'dist', 'lib', 'loader');
if (!existsSync(join(dist, 'addons.js'))) {
  console.error('prebuild: compile the TypeScript first (npm run build:ts)');
  process.exit(1);
}
const { prebuildName, platformDir } = await import(pathToFileURL(join(dist, 'addons.js')).href);
const { readElfDynamic } = await import(pathToFileURL(join(dist, 'elf.js')).href);
const { sourceHash } = await import(pathToFileURL(join(root, 'scripts', 'sourceHash.mjs')).href);

process.env.TORCHEDIT_PREBUILD_CMAKE_ARGS = process.argv.slice(2).join('\n');
cmakeArgs.push(...process.argv.slice(2));

// 1. Configure: CMake finds libtorch and writes what it found next to the target (the sidecar).
run(process.execPath, cmake('configure'));
const built = JSON.parse(readFileSync(join(cmakeOut, 'Release', 'torchedit.json'), 'utf8'));
if (typeof built.cxx11Abi !== 'boolean') {
  console.error('prebuild: the C++ ABI of this libtorch is unknown (TORCH_CXX_FLAGS has no _GLIBCXX_USE_CXX11_ABI)');
  process.exit(1);
}
const tags = { torch: built.torchVersion.split('.').slice(0, 2).join('.'), cxx11Abi: built.cxx11Abi, compute: built.compute };
const name = prebuildName(tags);

// 2. prebuildify: build (through this script), strip, name and place.
mkdirSync(stage, { recursive: true });
const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
run(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', '--name', name, '--node-gyp', self, '--out', root, stage]);
const file = join(root, 'prebuilds', platformDir(), `${name}.glibc.node`);

// 3. Check it links what it must: libtorch's libraries by the names the loader will compare,
//    and libtorch_cuda for a CUDA build (not dropped by --as-needed).
const needed = readElfDynamic(file)?.needed ?? [];
const torchNeeded = needed.filter((n) => /^lib(torch|c10)/.test(n));
if (
  !torchNeeded.some((n) => n.startsWith('libtorch_cpu')) ||
  (tags.compute === 'cuda' && !torchNeeded.some((n) => n.startsWith('libtorch_cuda')))
) {
  console.error(
    `prebuild: ${file} links ${torchNeeded.join(', ') || 'no libtorch library'}; expected libtorch_cpu${tags.compute === 'cuda' ? ' and libtorch_cuda' : ''}`,
  );
  process.exit(1);
}

// 4. The sidecar: what it was built against and from which sources.
let builtAgainst = `libtorch ${built.torchVersion} in ${built.libDir}`;
const dpkg = spawnSync('dpkg-query', ['-S', join(built.libDir, `libtorch_cpu.so`)], { encoding: 'utf8' });
const pkg = dpkg.status === 0 ? dpkg.stdout.split(':')[0] : null;
if (pkg) {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const version = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' }).stdout;
  builtAgainst += ` (Debian package ${pkg} ${version})`;
}
const sidecar = {
  torchVersion: built.torchVersion,
  cxx11Abi: built.cxx11Abi,
  compute: built.compute,
  cudaVersion: built.cudaVersion || null,
  needed: torchNeeded,
  builtAgainst,
  sourceHash: sourceHash(root),
  napi: 8,
  builtWith: `node ${process.version}`,
};
writeFileSync(file.replace(/\.node$/, '.json'), `${JSON.stringify(sidecar, null, 2)}\n`);
console.log(`prebuild: ${relative(root, file)} (${(statSync(file).size / 1024).toFixed(0)} KiB) for ${builtAgainst}`);
