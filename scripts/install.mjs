#!/usr/bin/env node
// npm's install step. Decides with the run-time loader's own logic (dist/lib/loader/) whether a
// shipped prebuild fits the libtorch on this machine; builds from source only when none does
// and a compiler is there. Never fails the install for a missing or mismatched libtorch: the
// addon is chosen again at every load, so installing libtorch later just works, and until then
// loading throws ERR_LIBTORCH_NOT_FOUND / ERR_LIBTORCH_MISMATCH and `torchedit doctor` explains.
// (A source build that fails does fail the install: that is a real error to see.)
//
//   npm rebuild torchedit --build-from-source    force a source build (or TORCHEDIT_BUILD_FROM_SOURCE=1)
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fromSource = process.env.npm_config_build_from_source === 'true' || process.env.TORCHEDIT_BUILD_FROM_SOURCE === '1';
const say = (line) => console.log(`torchedit: ${line}`);

function build(reason, extraArgs = []) {
  say(`building the native addon from source (cmake-js): ${reason}`);
  const result = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), ...extraArgs], { stdio: 'inherit', cwd: root });
  process.exit(result.status ?? 1);
}

function onPath(names) {
  return names.some((name) =>
    (process.env.PATH ?? '').split(delimiter).some((dir) => {
      try {
        return dir !== '' && statSync(join(dir, name)).isFile();
      } catch {
        return false;
      }
    }),
  );
}
const canCompile = () => onPath(['cmake']) && onPath(['c++', 'g++', 'clang++']);

if (fromSource) build('requested (--build-from-source)');
if (existsSync(join(root, 'build', 'Release', 'torchedit.node'))) {
  say('using the existing source build build/Release/torchedit.node');
  process.exit(0);
}

const loaderFile = join(root, 'dist', 'lib', 'loader', 'load.js');
if (!existsSync(loaderFile)) build('no compiled loader (dist/), as in a fresh git checkout');
const { inspectLoad } = await import(pathToFileURL(loaderFile).href);
const { describeLibtorch } = await import(pathToFileURL(join(root, 'dist', 'lib', 'loader', 'libtorch.js')).href);
const inspection = inspectLoad({ root });

// In a git checkout a prebuild must have been built from these very sources; a published
// package's prebuilds are checked against its sources before publishing (prepublishOnly).
if (existsSync(join(root, '.git')) && inspection.plan?.addon.kind === 'prebuild') {
  const { sourceHash } = await import(pathToFileURL(join(root, 'scripts', 'sourceHash.mjs')).href);
  if (inspection.plan.addon.info?.sourceHash !== sourceHash(root)) {
    build(`${relative(root, inspection.plan.addon.path)} was built from other sources than this checkout's`);
  }
}

const preferred = inspection.located.candidates[0];
if (!preferred) {
  console.error(`torchedit: ${inspection.error.message.split('\n').join('\ntorchedit: ')}`);
  say('installed without a usable libtorch: loading torchedit will fail with ERR_LIBTORCH_NOT_FOUND until one is installed');
  process.exit(0);
}

// A source build for the preferred libtorch when no addon fits it (CMake is told which one).
const torchDir = preferred.cmakeDir ? [`--CDTorch_DIR=${preferred.cmakeDir}`] : [];
if (inspection.plan && inspection.plan.libtorch === preferred) {
  const { addon, libtorch } = inspection.plan;
  say(
    `using prebuilt addon ${relative(root, addon.path)} for libtorch ${describeLibtorch(libtorch)} in ${libtorch.libDir} (${libtorch.origin})`,
  );
  process.exit(0);
}
if (canCompile()) build(`no prebuilt addon fits libtorch ${describeLibtorch(preferred)} in ${preferred.libDir}`, torchDir);
if (inspection.plan) {
  const { addon, libtorch } = inspection.plan;
  say(
    `using prebuilt addon ${relative(root, addon.path)} for libtorch ${describeLibtorch(libtorch)} in ${libtorch.libDir}; ` +
      `libtorch ${describeLibtorch(preferred)} in ${preferred.libDir} would need a source build (install cmake and g++, then npm rebuild torchedit --build-from-source)`,
  );
  process.exit(0);
}
console.error(`torchedit: ${inspection.error.message.split('\n').join('\ntorchedit: ')}`);
say('no compiler (cmake and g++) to build one: loading torchedit will fail with ERR_LIBTORCH_MISMATCH');
process.exit(0);
