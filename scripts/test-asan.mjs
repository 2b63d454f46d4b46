#!/usr/bin/env node
// The native-heavy tests (runtime, tensors, modules, jobs, aborts, disposal, LEDITS, Imagic, the
// safetensors fuzzing) against the AddressSanitizer + UBSan build of the addon
// (npm run build:asan). node itself is not instrumented, so the sanitizer runtime is preloaded
// (LD_PRELOAD) and the addon chosen with TORCHEDIT_ADDON. LeakSanitizer runs at exit with
// scripts/asan/lsan.supp, which suppresses the one-time allocations of node, libtorch and
// OpenBLAS (registries, static initialisers, thread pools), not the addon's: a leak whose stack
// goes through torchedit.node is reported.
//
//   npm run test:asan [-- test files…]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const addon = join(root, 'build-asan', 'Release', 'torchedit.node');
if (!existsSync(addon)) throw new Error(`no ${addon}: run npm run build:asan first`);
const runtime = (name) => execFileSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' }).trim();
const files =
  process.argv.length > 2
    ? process.argv.slice(2)
    : [
        'dist/test/runtime/tensor.test.js',
        'dist/test/runtime/module.test.js',
        'dist/test/runtime/jobs.test.js',
        'dist/test/runtime/allocator.test.js',
        'dist/test/runtime/options.test.js',
        'dist/test/model/loader.test.js',
        'dist/test/model/textToImage.test.js',
        'dist/test/model/ledits.test.js',
        'dist/test/model/imagic.test.js',
        'dist/test/model/abortLeaks.test.js',
        'dist/test/fuzz/safetensors.test.js',
      ];
const started = Date.now();
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
  cwd: root,
  env: {
    ...process.env,
    TORCHEDIT_ADDON: addon,
    LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so')].join(':'),
    // allocator_may_return_null: a tensor too large for the machine is ERR_OUT_OF_MEMORY, as without ASan.
    ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:allocator_may_return_null=1:detect_odr_violation=0',
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    LSAN_OPTIONS: `suppressions=${join(root, 'scripts', 'asan', 'lsan.supp')}:print_suppressions=0`,
  },
});
console.log(`test:asan: exit ${result.status} after ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(result.status ?? 1);
