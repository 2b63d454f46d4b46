#!/usr/bin/env node
// Builds the addon with cmake-js into build/Release/torchedit.node (node-gyp-build looks there
// when no prebuild in prebuilds/ matches). `npm install` runs this only when no prebuild fits.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const jobs = String(Math.max(1, Number(process.env.TORCHEDIT_BUILD_JOBS ?? 2)));
const args = [cmakeJs, 'build', '--directory', root, '--out', join(root, 'build'), '--parallel', jobs, ...process.argv.slice(2)];
const result = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
