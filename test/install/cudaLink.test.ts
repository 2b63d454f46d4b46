// cmake/TorcheditLinkLibtorch.cmake against a fake CUDA libtorch (stub libraries built here):
// with a compiler that passes --as-needed first, as Ubuntu's does, libtorch_cuda — which the
// addon references no symbol of — must still be in NEEDED, or its CUDA backend never loads.
// This is the part of CUDA support that can be checked without a GPU or a CUDA libtorch.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readElfDynamic } from '../../lib/loader/elf.js';
import { repoRoot } from '../helpers.js';

const work = mkdtempSync(join(tmpdir(), 'torchedit-cudalink-'));
after(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[], cwd = work): void {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${command} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
}

/** Builds the test project against `lib` and returns the addon's path; `useFunction` false is the control. */
function buildAddon(name: string, lib: string, useFunction: boolean): string {
  const src = join(work, name);
  mkdirSync(src);
  writeFileSync(
    join(src, 'addon.cc'),
    useFunction
      ? 'extern "C" const char* torchedit_compute() { return "compute=" TORCHEDIT_COMPUTE ";cuda=" TORCHEDIT_CUDA_VERSION; }\n'
      : 'extern "C" int answer() { return 42; }\n',
  );
  writeFileSync(
    join(src, 'CMakeLists.txt'),
    `cmake_minimum_required(VERSION 3.18)
project(cudalink CXX)
set(TORCH_LIBRARY "${lib}/libtorch.so")
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")
set(Torch_VERSION 2.1.0)
set(CUDA_VERSION 12.1)
include("${join(repoRoot, 'cmake', 'TorcheditLinkLibtorch.cmake')}")
add_library(addon SHARED addon.cc)
set_target_properties(addon PROPERTIES PREFIX "" SUFFIX ".node")
target_link_libraries(addon PRIVATE "${lib}/libtorch.so")
${useFunction ? 'torchedit_link_libtorch_runtime(addon)' : `target_link_libraries(addon PRIVATE "${lib}/libtorch_cuda.so")`}
`,
  );
  const out = join(src, 'out');
  run('cmake', ['-S', src, '-B', out, `-DCMAKE_CXX_COMPILER=${join(work, 'ubuntu-c++')}`, '-DCMAKE_BUILD_TYPE=Release']);
  run('cmake', ['--build', out]);
  return join(out, 'addon.node');
}

test('a CUDA libtorch is linked with libtorch_cuda in NEEDED despite --as-needed, and says so', () => {
  // Ubuntu's gcc puts --as-needed before everything on the link line; this wrapper does the same.
  writeFileSync(join(work, 'ubuntu-c++'), '#!/bin/sh\nexec c++ -Wl,--as-needed "$@"\n');
  chmodSync(join(work, 'ubuntu-c++'), 0o755);
  const lib = join(work, 'libtorch', 'lib');
  mkdirSync(lib, { recursive: true });
  writeFileSync(join(work, 'stub.c'), 'int torch_stub_symbol(void) { return 0; }\n');
  for (const name of ['libtorch', 'libtorch_cuda', 'libc10_cuda']) {
    run('cc', ['-shared', '-fPIC', `-Wl,-soname,${name}.so`, '-o', join(lib, `${name}.so`), join(work, 'stub.c')]);
  }

  // Control: linked plainly, --as-needed drops libtorch_cuda (the bug the CMake code prevents).
  const plain = readElfDynamic(buildAddon('control', lib, false))!;
  assert.ok(!plain.needed.includes('libtorch_cuda.so'), `control kept libtorch_cuda: ${plain.needed.join(', ')}`);

  const addon = buildAddon('cuda', lib, true);
  const dyn = readElfDynamic(addon)!;
  assert.ok(dyn.needed.includes('libtorch_cuda.so'), dyn.needed.join(', '));
  assert.ok(dyn.needed.includes('libc10_cuda.so'), dyn.needed.join(', '));
  assert.deepEqual(dyn.runpath, [lib]);
  assert.ok(readFileSync(addon).includes('compute=cuda;cuda=12.1'), 'TORCHEDIT_COMPUTE / TORCHEDIT_CUDA_VERSION not compiled in');
  const sidecar = JSON.parse(readFileSync(addon.replace(/\.node$/, '.json'), 'utf8'));
  assert.deepEqual(sidecar, { torchVersion: '2.1.0', cxx11Abi: true, compute: 'cuda', cudaVersion: '12.1', libDir: lib });
});
