// The benchmark harness (bench/) keeps working: one quick txt2img run on the small bundle through
// both sides prints a table row with numbers from each; and the UNet-evaluation arithmetic the
// table relies on.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { unetEvaluations, warmupOf, workloads } from '../../bench/workloads.js';
import { repoRoot, testBundle } from '../helpers.js';

test('bench: UNet evaluations follow the batch structure of each workload', () => {
  const w = workloads(false);
  assert.deepEqual(unetEvaluations(w.txt2img), { calls: 20, batch: 2, backward: false });
  assert.deepEqual(unetEvaluations(w.invert), { calls: 50, batch: 2, backward: false });
  assert.deepEqual(unetEvaluations(w['edit-0']), { calls: 35, batch: 2, backward: false });
  assert.deepEqual(unetEvaluations(w['edit-1']), { calls: 35, batch: 3, backward: false });
  assert.deepEqual(unetEvaluations(w['edit-3']), { calls: 35, batch: 4, backward: false });
  assert.deepEqual(unetEvaluations(w.imagic), { calls: 20, batch: 1, backward: true, phases: { embedding: 10, finetune: 10 } });
  // The warm-up keeps the shapes (batch) and changes the prompts and the step count only.
  for (const spec of Object.values(w)) {
    const warm = warmupOf(spec);
    assert.equal(unetEvaluations(warm).batch, unetEvaluations(spec).batch);
    assert.notDeepEqual(warm, spec);
  }
});

test('bench: --quick on the small bundle prints both sides\' numbers', { timeout: 120_000 }, () => {
  testBundle('tiny'); // the small bundle while models/shapes-64 does not exist
  const result = spawnSync(process.execPath, [join(repoRoot, 'dist', 'bench', 'run.js'),
    '--quick', '--bundle', 'small', '--workload', 'txt2img', '--reps', '1', '--no-write'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(result.status, 0, `bench failed: ${result.stderr}`);
  const row = result.stdout.split('\n').find((l) => l.startsWith('| small | txt2img |'));
  assert.ok(row, `no txt2img row in:\n${result.stdout}`);
  const cells = row.split('|').slice(1, -1).map((c) => c.trim());
  const [, , evaluations, teSeconds, pySeconds, ratio, perStep, faults, rss, loop, , same] = cells;
  assert.equal(evaluations, '3 × 2');
  for (const value of [teSeconds, pySeconds, ratio]) assert.ok(Number(value) > 0, `expected a positive number, got ${value} in ${row}`);
  for (const pair of [perStep, faults]) {
    const [te, py] = pair.split('·').map((s) => Number(s.trim()));
    assert.ok(Number.isFinite(te) && Number.isFinite(py), `expected two numbers in ${pair}`);
  }
  const rssMatch = /^(\d+) · (\d+) \(([\d.]+)\)$/.exec(rss);
  assert.ok(rssMatch && Number(rssMatch[1]) > 0 && Number(rssMatch[2]) > 0, `peak RSS cell ${rss}`);
  assert.ok(Number(loop) >= 0, `event-loop delay ${loop}`);
  assert.match(same, /^✓/, 'both sides computed the same latents');
  assert.match(result.stdout, /OPENBLAS_CORETYPE=/);
});
