// The repository stands on its own: a clone with nothing beside it (an empty temporary folder,
// no sibling folders) runs the README's quick-start command as written, and no tracked file
// refers to a path outside the repository. The command is read from the README itself, so the
// test follows the README rather than a copy of it. Needs git, and npm's registry or its cache
// for `npm ci` (the quick start's setup step).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { repoRoot } from '../helpers.js';

const work = mkdtempSync(join(tmpdir(), 'torchedit-clone-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The environment without the npm_* variables of the `npm test` running this. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith('npm_') && k !== 'INIT_CWD') env[k] = v;
  return env;
}

/** The first line of the README's quick-start code block: the command that runs the main job. */
function quickStartCommand(): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.split(/^## Quick start\s*$/m)[1];
  assert.ok(section, 'README.md has no "## Quick start" section');
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'the quick start has no sh code block');
  const lines = block[1].split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 2, `the quick start should be two commands, found: ${lines.join(' | ')}`);
  assert.match(lines[1], /^npm test\b/, 'the second quick-start command runs the tests');
  return lines[0];
}

test('no tracked file refers to a path outside the repository', () => {
  // Built from pieces so that this file does not match itself.
  const outside = ['\\.\\./' + 'shared', '/work/' + 'shared', 'shared/' + 'design', 'shared/' + 'data'];
  const grep = spawnSync('git', ['grep', '-n', '-I', '-E', outside.join('|')], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(grep.status, 1, `files refer outside the repository:\n${grep.stdout}${grep.stderr}`);
});

test('a clone with nothing beside it runs the README quick start', { timeout: 20 * 60_000 }, async () => {
  const command = quickStartCommand();
  const clone = join(work, 'torchedit');
  const cloned = spawnSync('git', ['clone', '-q', repoRoot, clone], { encoding: 'utf8' });
  assert.equal(cloned.status, 0, cloned.stderr);
  assert.deepEqual(readdirSync(work), ['torchedit'], 'the clone must have no sibling folders');

  const run = spawnSync('bash', ['-c', command], { cwd: clone, env: cleanEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(run.status, 0, `"${command}" failed (${run.status}):\n${run.stdout.slice(-4000)}\n${run.stderr.slice(-4000)}`);

  const out = /--out\s+(\S+)/.exec(command)?.[1];
  assert.ok(out, `the quick start names no --out file: ${command}`);
  assert.ok(existsSync(join(clone, out)), `${out} was not written`);
  // The edit did what the command says: the input's red object is now blue where it changed.
  const input = /edit\s+(\S+\.png)/.exec(command)?.[1];
  assert.ok(input, `the quick start edits no PNG: ${command}`);
  const [before, afterEdit] = await Promise.all(
    [input, out].map((f) => sharp(join(clone, f)).removeAlpha().raw().toBuffer({ resolveWithObject: true })),
  );
  assert.deepEqual([afterEdit.info.width, afterEdit.info.height], [before.info.width, before.info.height]);
  let changed = 0;
  const sum = [0, 0, 0];
  for (let i = 0; i < before.data.length; i += 3) {
    const d =
      Math.abs(before.data[i] - afterEdit.data[i]) +
      Math.abs(before.data[i + 1] - afterEdit.data[i + 1]) +
      Math.abs(before.data[i + 2] - afterEdit.data[i + 2]);
    if (d < 90) continue;
    changed++;
    for (let c = 0; c < 3; c++) sum[c] += afterEdit.data[i + c];
  }
  assert.ok(changed >= 20, `the edit changed only ${changed} pixels`);
  const [r, g, b] = sum.map((s) => s / changed);
  assert.ok(b > r + 40 && b > g + 40, `the changed pixels are not blue: mean rgb ${[r, g, b].map(Math.round).join(', ')}`);
});
