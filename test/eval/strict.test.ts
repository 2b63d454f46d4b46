// The strict evaluation's one definition of success (eval/strict.py, see eval/README.md) on
// synthetic edit pairs whose truth is known: rendered with scenes.py by test/eval/strict_pairs.py
// and scored through the same CLI eval/run.ts uses.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { python, repoRoot } from '../../eval/score.js';

interface Score {
  strict: boolean;
  reason: string;
  checks: { count: boolean; color: boolean; shape: boolean; moved: boolean; background: boolean };
  bg_psnr: number;
}

function run(args: string[]): string {
  const r = spawnSync(python, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, `${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

test('eval/strict.py: strict success holds for a clean recolour and fails for each broken condition', () => {
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-strict-'));
  try {
    const names = run([join(repoRoot, 'test', 'eval', 'strict_pairs.py'), dir])
      .trim()
      .split('\n');
    const scores = run([join(repoRoot, 'eval', 'strict.py'), 'edits', join(dir, 'cases.json'), join(dir, 'src.npy'), join(dir, 'res.npy')])
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Score);
    assert.equal(scores.length, names.length);
    const by = new Map(names.map((n, i) => [n, scores[i]]));
    const get = (name: string) => {
      const s = by.get(name);
      assert.ok(s, `no case "${name}"`);
      return s;
    };
    const failsOnly = (name: string, check: keyof Score['checks']) => {
      const s = get(name);
      assert.equal(s.strict, false, `${name} must fail: ${JSON.stringify(s.checks)}`);
      for (const [k, v] of Object.entries(s.checks)) assert.equal(v, k !== check, `${name}: check ${k} (${s.reason})`);
    };
    assert.equal(get('perfect recolour').strict, true, get('perfect recolour').reason);
    failsOnly('background +20 grey levels', 'background');
    // 20/255 everywhere: 20·log10(255/20) = 22.1 dB < 25
    assert.ok(Math.abs(get('background +20 grey levels').bg_psnr - 22.11) < 0.05);
    failsOnly('circle to triangle', 'shape');
    failsOnly('moved 5 px', 'moved');
    assert.equal(get('moved 3 px').strict, true, get('moved 3 px').reason);
    failsOnly('colour unchanged', 'color');
    failsOnly('an object added', 'count');
    failsOnly('ellipse instead of the circle', 'shape');
    assert.match(get('ellipse instead of the circle').reason, /shape other/);
    assert.equal(get('one of two recoloured').strict, true, get('one of two recoloured').reason);
    failsOnly('one of two: the other recoloured too', 'color');
    assert.match(get('one of two: the other recoloured too').reason, /obj2 colour blue/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
