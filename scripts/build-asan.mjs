#!/usr/bin/env node
// The addon built with AddressSanitizer and UndefinedBehaviorSanitizer (gcc), into
// build-asan/Release/torchedit.node, for `npm run test:asan` (scripts/test-asan.mjs). A separate
// cmake build folder, so the ordinary build/ is untouched. -O1 with frame pointers keeps the
// reports' stacks readable; UBSan stops at the first error (-fno-sanitize-recover), so a report fails the run.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const jobs = String(Math.max(1, Number(process.env.TORCHEDIT_BUILD_JOBS ?? 2)));
// vptr is off: it needs the typeinfo of libtorch classes libtorch does not export (c10::DynamicType).
const sanitize = '-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer';
const args = [
  cmakeJs,
  'build',
  '--directory',
  root,
  '--out',
  join(root, 'build-asan'),
  '--parallel',
  jobs,
  // cmake-js sets CMAKE_CXX_FLAGS itself (last wins), so the flags go in the Release configuration's.
  `--CDCMAKE_CXX_FLAGS_RELEASE=${sanitize} -g -O1 -DNDEBUG`,
  `--CDCMAKE_SHARED_LINKER_FLAGS=${sanitize}`,
];
const started = Date.now();
const result = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
console.log(`build-asan: ${result.status === 0 ? 'built' : 'failed'} in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(result.status ?? 1);
