// The benchmark harness (bench/) keeps working: one quick txt2img run on the small bundle through
// both sides prints a table row with numbers from each, in float32 and with --autocast bfloat16;
// the UNet-evaluation arithmetic the table relies on; --autocast's parsing; where RESULTS.md's
// bf16 section goes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { placeSection } from '../../bench/measure.js';
import { parseArgs, selectedWorkloads } from '../../bench/run.js';
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

test("bench: --quick on the small bundle prints both sides' numbers", { timeout: 120_000 }, () => {
  testBundle('tiny'); // the small bundle while models/shapes-64 does not exist
  const result = spawnSync(
    process.execPath,
    [join(repoRoot, 'dist', 'bench', 'run.js'), '--quick', '--bundle', 'small', '--workload', 'txt2img', '--reps', '1', '--no-write'],
    { encoding: 'utf8', timeout: 110_000 },
  );
  assert.equal(result.status, 0, `bench failed: ${result.stderr}`);
  const row = result.stdout.split('\n').find((l) => l.startsWith('| small | txt2img |'));
  assert.ok(row, `no txt2img row in:\n${result.stdout}`);
  const cells = row
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
  const [, , evaluations, teSeconds, pySeconds, ratio, perStep, faults, rss, loop, , same] = cells;
  assert.equal(evaluations, '3 × 2');
  for (const value of [teSeconds, pySeconds, ratio]) assert.ok(Number(value) > 0, `expected a positive number, got ${value} in ${row}`);
  for (const pair of [perStep, faults]) {
    const [te, py] = pair.split('·').map((s) => Number(s.trim()));
    assert.ok(Number.isFinite(te) && Number.isFinite(py), `expected two numbers in ${pair}`);
  }
  const rssMatch = /^(\d+) · (\d+) \(([\d.]+)\)$/.exec(rss);
  assert.ok(rssMatch && Number(rssMatch[1]) > 0 && Number(rssMatch[2]) > 0, `peak RSS cell ${rss}`);
  // torchedit's worst delay, then the idle harness process's during each side's job
  const loopMatch = /^([\d.]+) \(([\d.]+) · ([\d.]+)\)$/.exec(loop);
  assert.ok(loopMatch, `event-loop delay cell ${loop}`);
  assert.ok(
    loopMatch.slice(1).every((v) => Number(v) >= 0),
    `event-loop delays ${loop}`,
  );
  assert.match(same, /^✓/, 'both sides computed the same latents');
  assert.match(result.stdout, /OPENBLAS_CORETYPE=/);
});

const runJs = join(repoRoot, 'dist', 'bench', 'run.js');

test('bench: --autocast takes bfloat16 only, implies --no-scaling, and leaves Imagic out unless named', () => {
  assert.equal(parseArgs([]).autocast, null);
  assert.equal(parseArgs([]).scaling, true);
  const bf16 = parseArgs(['--autocast', 'bfloat16']);
  assert.equal(bf16.autocast, 'bfloat16');
  assert.equal(bf16.scaling, false);
  assert.equal(parseArgs(['--autocast', 'bfloat16', '--no-scaling']).scaling, false);
  assert.deepEqual(selectedWorkloads(bf16), ['txt2img', 'invert', 'edit-0', 'edit-1', 'edit-3']);
  assert.deepEqual(selectedWorkloads(parseArgs(['--autocast', 'bfloat16', '--workload', 'imagic,txt2img'])), ['txt2img', 'imagic']);
  assert.ok(selectedWorkloads(parseArgs([])).includes('imagic'));
  // Errors exit the process (usage), so they run in a child: exit 2, the reason, the usage line.
  for (const [args, reason] of [
    [['--autocast', 'float16'], /--autocast is bfloat16, not float16/],
    [['--autocast'], /--autocast needs a value/],
    [['--autocast', 'bfloat16', '--scaling'], /--autocast implies --no-scaling/],
  ] as const) {
    const result = spawnSync(process.execPath, [runJs, ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2, `${args.join(' ')}: exit ${result.status}, ${result.stderr}`);
    assert.match(result.stderr, reason);
    assert.match(result.stderr, /usage: .*--autocast bfloat16/);
    assert.equal(result.stdout, '', 'nothing measured');
  }
});

test('bench: a missing bf16 section goes right after the main one; an existing one is replaced', () => {
  const file = 'head\n\n<!-- main:begin -->\nM\n<!-- main:end -->\n\n<!-- scaling:begin -->\nS\n<!-- scaling:end -->\n';
  const added = placeSection(file, 'bf16', 'B1\n');
  assert.equal(
    added,
    'head\n\n<!-- main:begin -->\nM\n<!-- main:end -->\n\n<!-- bf16:begin -->\nB1\n<!-- bf16:end -->\n\n<!-- scaling:begin -->\nS\n<!-- scaling:end -->\n',
  );
  assert.equal(placeSection(added, 'bf16', 'B2'), added.replace('B1', 'B2'));
  assert.equal(placeSection(added, 'main', 'M2'), added.replace('\nM\n', '\nM2\n'));
  // No main section: at the end.
  assert.equal(placeSection('head\n', 'bf16', 'B'), 'head\n\n<!-- bf16:begin -->\nB\n<!-- bf16:end -->\n');
});

test('bench: --quick --autocast bfloat16 prints its own table: no time target, the accuracy cost, not a pass mark', {
  timeout: 120_000,
}, () => {
  testBundle('tiny'); // the small bundle while models/shapes-64 does not exist
  const result = spawnSync(
    process.execPath,
    [runJs, '--quick', '--bundle', 'small', '--workload', 'txt2img', '--autocast', 'bfloat16', '--no-write'],
    { encoding: 'utf8', timeout: 110_000 },
  );
  assert.equal(result.status, 0, `bench failed: ${result.stderr}`);
  assert.match(result.stdout, /^## torchedit in bfloat16 autocast vs Python float32 \(quick\)$/m);
  assert.match(result.stdout, /torchedit ran bfloat16 autocast, Python float32/);
  assert.doesNotMatch(result.stdout, /float32 on both sides;/);
  assert.match(result.stdout, /\| relative difference vs Python float32 \(bfloat16 accuracy cost\) \|$/m);
  const row = result.stdout.split('\n').find((l) => l.startsWith('| small | txt2img |'));
  assert.ok(row, `no txt2img row in:\n${result.stdout}`);
  const cells = row
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
  const [, , evaluations, teSeconds, pySeconds, , , , , , targets, cost] = cells;
  assert.equal(evaluations, '3 × 2');
  for (const value of [teSeconds, pySeconds]) assert.ok(Number(value) > 0, `expected a positive number, got ${value} in ${row}`);
  assert.match(targets, /^– · ≤1\.1 [✓✗] · ≤20 [✓✗]$/);
  // A bare relative difference; bf16 moves the latents more than float32's 1e-8 but by well under 100%.
  assert.match(cost, /^\d\.\de[-+]\d+$/, `accuracy-cost cell ${cost}`);
  assert.ok(Number(cost) > 0 && Number(cost) < 1, `relative difference ${cost}`);
});
