// The package as users get it: `npm pack`, then `npm install <tarball>` into a fresh folder,
// preferring the npm cache for dependencies (`npm ci` fills it with their tarballs but not with
// the registry metadata that installing a tarball resolves ranges against, so a fresh machine
// needs the registry for that: --prefer-offline, not --offline), with no compiler on PATH — so a
// source build could not even start — then load it and run a tensor op. And with libtorch hidden
// (TORCHEDIT_LIBTORCH pointing at an empty folder) loading must fail with ERR_LIBTORCH_NOT_FOUND
// and the documented message, not a dynamic-linker error. Needs dist/ (npm test compiles it first).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { repoRoot } from '../helpers.js';

const work = mkdtempSync(join(tmpdir(), 'torchedit-pack-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** npm's CLI script, run with this node: the test does not depend on `npm` being on PATH. */
function npmCli(): string {
  const candidates = [process.env.npm_execpath, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')];
  const found = candidates.find((p) => p?.endsWith('npm-cli.js') && existsSync(p));
  assert.ok(found, `npm-cli.js not found (tried ${candidates.join(', ')})`);
  return found;
}

/** The environment without the npm_* variables of the `npm test` running this. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith('npm_') && k !== 'INIT_CWD') env[k] = v;
  return { ...env, ...extra };
}

const check = `
import { readFileSync } from 'node:fs';
try {
  const m = await import('torchedit');
  const t = m.Tensor.from(new Float32Array([1, 2, 3]), [3]);
  const data = Array.from(await t.data());
  const addons = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /torchedit[^/]*\\.node$/.test(p)))];
  console.log(JSON.stringify({ ok: true, data, addons }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
}
`;

test('the packed package installs without compiling and loads; hidden libtorch is ERR_LIBTORCH_NOT_FOUND', { timeout: 240_000 }, () => {
  const npm = npmCli();
  const pack = spawnSync(process.execPath, [npm, 'pack', '--json', '--pack-destination', work], {
    cwd: repoRoot,
    env: cleanEnv({}),
    encoding: 'utf8',
  });
  assert.equal(pack.status, 0, pack.stderr);
  const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = packed.files.map((f) => f.path);
  for (const needed of [
    'package.json',
    'dist/lib/index.js',
    'dist/lib/loader/load.js',
    'scripts/install.mjs',
    'scripts/build-native.mjs',
    'CMakeLists.txt',
    'cmake/FindLibtorch.cmake',
    'cmake/TorcheditLinkLibtorch.cmake',
    'native/napi/addon.cc',
  ]) {
    assert.ok(files.includes(needed), `${needed} is not in the package`);
  }
  const prebuild = files.find((f) => /^prebuilds\/linux-x64\/torchedit\.napi\.torch1-13\.cxx11\.cpu\.glibc\.node$/.test(f));
  assert.ok(prebuild, `no linux-x64 CPU prebuild in the package: ${files.filter((f) => f.startsWith('prebuilds')).join(', ')}`);
  for (const f of files)
    assert.ok(!/^(test|dist\/test|build|build-prebuild|bench|scripts\/tinysd)\//.test(f), `${f} should not be in the package`);

  // A PATH with only node and sh: no cmake, no c++ — a source build would fail at once.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const install = spawnSync(
    process.execPath,
    [npm, 'install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', join(work, packed.filename)],
    { cwd: app, env: cleanEnv({ PATH: bin }), encoding: 'utf8' },
  );
  const log = install.stdout + install.stderr;
  assert.equal(install.status, 0, log);
  assert.match(
    log,
    /torchedit: using prebuilt addon prebuilds\/linux-x64\/torchedit\.napi\.torch1-13\.cxx11\.cpu\.glibc\.node for libtorch 1\.13/,
  );
  assert.doesNotMatch(log, /building the native addon from source/);
  const installed = join(app, 'node_modules', 'torchedit');
  assert.ok(!existsSync(join(installed, 'build')), 'a build/ folder exists: something compiled');

  const loaded = spawnSync(process.execPath, ['--input-type=module', '-e', check], { cwd: app, env: cleanEnv({}), encoding: 'utf8' });
  assert.equal(loaded.status, 0, loaded.stderr);
  const ok = JSON.parse(loaded.stdout) as { ok: boolean; data: number[]; addons: string[]; message?: string };
  assert.ok(ok.ok, ok.message);
  assert.deepEqual(ok.data, [1, 2, 3]);
  assert.deepEqual(ok.addons, [join(installed, prebuild)]);

  const empty = join(work, 'no-libtorch-here');
  mkdirSync(empty);
  const hidden = spawnSync(process.execPath, ['--input-type=module', '-e', check], {
    cwd: app,
    env: cleanEnv({ TORCHEDIT_LIBTORCH: empty }),
    encoding: 'utf8',
  });
  assert.equal(hidden.status, 0, hidden.stderr);
  const failed = JSON.parse(hidden.stdout) as { ok: boolean; code: string; message: string };
  assert.equal(failed.ok, false);
  assert.equal(failed.code, 'ERR_LIBTORCH_NOT_FOUND');
  const lines = failed.message.split('\n');
  assert.equal(lines[0], 'libtorch was not found. torchedit needs libtorch 1.13 (C++11 ABI, CPU).');
  assert.equal(lines[1], 'Looked in:');
  assert.equal(lines[2], `  - TORCHEDIT_LIBTORCH: ${empty}: no libtorch_cpu.so in ${empty}/lib, ${empty} or ${empty}/lib/x86_64-linux-gnu`);
  assert.equal(lines[3], 'TORCHEDIT_LIBTORCH is set, so it is the only place looked at.');
  assert.ok(lines.includes('  - Debian/Ubuntu: sudo apt-get install libtorch-dev libopenblas0-pthread'), failed.message);
  assert.doesNotMatch(failed.message, /cannot open shared object|undefined symbol|dlopen/);
});
