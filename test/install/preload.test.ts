// Loading libtorch from a folder the dynamic linker does not search, without LD_LIBRARY_PATH:
// a copy of Debian's libtorch in a temporary folder, the prebuild (no RUNPATH), and a child
// process whose memory map must show the copy — not /usr/lib's libtorch — in use.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { repoRoot } from '../helpers.js';

const debian = '/usr/lib/x86_64-linux-gnu';
const work = mkdtempSync(join(tmpdir(), 'torchedit-preload-'));
after(() => rmSync(work, { recursive: true, force: true }));

const child = `
import { readFileSync } from 'node:fs';
const m = await import(${JSON.stringify(join(repoRoot, 'dist', 'lib', 'index.js'))});
const t = m.Tensor.from(new Float32Array([1, 2, 3]), [3]);
const doubled = await (await t.to('float64')).data();
const maps = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /libtorch_cpu|libc10|torchedit/.test(p)))];
console.log(JSON.stringify({ data: Array.from(doubled), maps }));
`;

test('libtorch outside the linker paths is loaded by absolute path, with no LD_LIBRARY_PATH', () => {
  const lib = join(work, 'libtorch', 'lib');
  mkdirSync(lib, { recursive: true });
  for (const name of ['libc10.so.1.13', 'libtorch_cpu.so.1.13', 'libtorch.so.1.13']) copyFileSync(join(debian, name), join(lib, name));
  const prebuilds = join(repoRoot, 'prebuilds', 'linux-x64');
  const addon = join(prebuilds, readdirSync(prebuilds).find((n) => n.endsWith('.node'))!);
  const env: NodeJS.ProcessEnv = { ...process.env, TORCHEDIT_LIBTORCH: join(work, 'libtorch'), TORCHEDIT_ADDON: addon };
  delete env.LD_LIBRARY_PATH;
  delete env.LD_PRELOAD;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', child], { env, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as { data: number[]; maps: string[] };
  assert.deepEqual(out.data, [1, 2, 3]);
  assert.ok(out.maps.includes(join(lib, 'libtorch_cpu.so.1.13')), out.maps.join('\n'));
  assert.ok(out.maps.includes(join(lib, 'libc10.so.1.13')), out.maps.join('\n'));
  assert.ok(out.maps.includes(addon), out.maps.join('\n'));
  assert.ok(
    !out.maps.some((p) => p.startsWith(debian) && /libtorch_cpu|libc10/.test(p)),
    `the system libtorch was loaded too:\n${out.maps.join('\n')}`,
  );
});
