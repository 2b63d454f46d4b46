import assert from 'node:assert/strict';
import { test } from 'node:test';
import { native } from '../../lib/binding.js';
import { runJob, type JobProgress } from '../../lib/jobs.js';
import { Tensor, configure, loadModule } from '../../lib/index.js';
import { rejectsWithCode, runtimeFixture } from '../helpers.js';

const stepJob = (steps: number, ms: number, options: Parameters<typeof runJob>[1] = {}) =>
  runJob((onProgress) => native().testing.stepJob('cpu', steps, ms, onProgress), options);

test('200 concurrent forwards all resolve with the right results', async () => {
  const module = await loadModule(runtimeFixture('multi.pt'));
  const jobs = Array.from({ length: 200 }, async (_, i) => {
    const a = Tensor.from(new Float32Array([i, i + 1]), [2]);
    const b = Tensor.from(new Float32Array([2, 3]), [2]);
    const out = (await module.forward(a, b)) as Tensor[];
    const [sum, product] = await Promise.all(out.map((t) => t.data()));
    return { i, sum: Array.from(sum as Float32Array), product: Array.from(product as Float32Array) };
  });
  const results = await Promise.all(jobs);
  for (const { i, sum, product } of results) {
    assert.deepEqual(sum, [i + 2, i + 4]);
    assert.deepEqual(product, [2 * i, 3 * (i + 1)]);
  }
});

test('an already aborted signal rejects without running the job', async () => {
  const controller = new AbortController();
  controller.abort();
  let started = false;
  await rejectsWithCode(
    runJob(
      () => {
        started = true;
        return native().testing.stepJob('cpu', 1, 1);
      },
      { signal: controller.signal },
    ),
    'ERR_ABORTED',
  );
  assert.equal(started, false);
});

test('aborting a queued job rejects at once; aborting a running job stops it at the next step', async () => {
  const running = new AbortController();
  const first = stepJob(200, 10, { signal: running.signal }); // ~2 s if not stopped
  const queued = new AbortController();
  const second = stepJob(1, 1, { signal: queued.signal });
  const t0 = performance.now();
  queued.abort();
  await rejectsWithCode(second, 'ERR_ABORTED');
  assert.ok(performance.now() - t0 < 100, 'the queued job rejected at once, not after the running one');
  await new Promise((r) => setTimeout(r, 100));
  const t1 = performance.now();
  running.abort(new Error('user stopped'));
  const error = await first.catch((e) => e);
  assert.equal(error.code, 'ERR_ABORTED');
  assert.equal(error.name, 'AbortError');
  assert.equal((error.cause as Error).message, 'user stopped');
  assert.ok(performance.now() - t1 < 200, 'the running job stopped within a step or two');
  // The queue keeps working after aborts.
  assert.equal(await stepJob(3, 1), 3);
});

test('jobs on one device run in the order they were queued', async () => {
  const order: number[] = [];
  await Promise.all([0, 1, 2, 3].map((i) => stepJob(2, 5).then(() => order.push(i))));
  assert.deepEqual(order, [0, 1, 2, 3]);
});

test('progress reports phase, step, total and timing, throttled, ending at the last step', async () => {
  const seen: JobProgress[] = [];
  assert.equal(await stepJob(40, 5, { onProgress: (p) => seen.push(p) }), 40);
  assert.ok(seen.length >= 2 && seen.length < 40, `throttled: ${seen.length} reports for 40 steps`);
  const last = seen.at(-1)!;
  assert.equal(last.phase, 'step');
  assert.equal(last.step, 40);
  assert.equal(last.total, 40);
  assert.equal(last.value, 39);
  assert.ok(seen.every((p, i) => i === 0 || p.step > seen[i - 1].step));
  assert.ok(last.elapsedMs > 50 && last.etaMs === 0);
  // A throwing callback does not stop the job.
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  assert.equal(
    await stepJob(5, 20, {
      onProgress: () => {
        throw new Error('boom');
      },
    }),
    5,
  );
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  assert.ok(warnings.some((w) => w.includes('boom')));
});

test('the event loop keeps running while a 2-second forward runs', async () => {
  configure({ threads: 1 });
  const module = await loadModule(runtimeFixture('slow.pt'));
  const x = Tensor.randn([256, 256], { seed: 0 });
  // Calibrate n so the job lasts about 2 s on this machine (the first call also optimises the graph).
  await module.forward(x, Tensor.from(new BigInt64Array([50n]), []));
  const probe = performance.now();
  await module.forward(x, Tensor.from(new BigInt64Array([200n]), []));
  const perIteration = (performance.now() - probe) / 200;
  const n = BigInt(Math.max(100, Math.round(2000 / perIteration)));
  let worst = 0;
  let ticks = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 10);
    last = now;
    ticks++;
  }, 10);
  const t0 = performance.now();
  await module.forward(x, Tensor.from(new BigInt64Array([n]), []));
  const elapsed = performance.now() - t0;
  clearInterval(timer);
  console.log(`# 2-second job: ran ${elapsed.toFixed(0)} ms, ${ticks} ticks of a 10 ms interval, worst extra delay ${worst.toFixed(1)} ms`);
  assert.ok(elapsed > 1000, `the job ran ${elapsed} ms`);
  assert.ok(ticks > elapsed / 20, `interval fired ${ticks} times in ${elapsed} ms`);
  assert.ok(worst < 50, `worst event-loop delay ${worst} ms`);
});
