#!/usr/bin/env node
// npm's install step: use a prebuilt addon from prebuilds/ (or an existing build/) when
// node-gyp-build finds one for this platform, else build from source with cmake-js.
// (node-gyp-build's own CLI can only run node-gyp, which has no CMake backend.)
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const fromSource = process.env.npm_config_build_from_source === 'true' || process.env.TORCHEDIT_BUILD_FROM_SOURCE === '1';

if (!fromSource) {
  try {
    const found = require('node-gyp-build').path(root);
    console.log(`torchedit: using prebuilt addon ${found}`);
    process.exit(0);
  } catch {
    // no prebuild for this platform: build below
  }
}
console.log('torchedit: building the native addon from source (cmake-js)');
const result = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
