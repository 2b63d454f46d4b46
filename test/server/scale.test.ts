// Scale-out (lib/server/scale) on a real Redis: `torchedit worker` processes behind servers with
// `scale`; results equal the in-process library's for the same seeds, exactly once; a worker
// killed mid-job loses it to another; a cancel through another server stops the worker; Redis
// going away is 503 and recovery; a worker with another model refuses the job.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { QueueEvents } from 'bullmq';
import { loadModel, type StableDiffusionModel } from '../../lib/index.js';
import { configure } from '../../lib/runtime.js';
import { repoRoot, testBundle } from '../helpers.js';
import { type RedisServer, removeRedis, startRedis, startWorker, stopWorker, tempDir, type WorkerProcess } from './redisHelpers.js';
import { api, readEvents, start, type Started, waitJob } from './serverHelpers.js';

const example = readFileSync(join(repoRoot, 'examples', 'red-circle.png'));
const limits = { queue: 200, steps: 1000 };

/** Polls until the job is running and has reported at least `step` steps. */
// biome-ignore lint/suspicious/noExplicitAny: a job record as JSON
async function waitProgress(base: string, id: string, step: number, timeoutMs = 60_000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await api(base, 'GET', `/v1/jobs/${id}`);
    if (body.job.state === 'running' && (body.job.progress?.step ?? 0) >= step) return body.job;
    if (['succeeded', 'failed', 'cancelled'].includes(body.job.state))
      throw new Error(`job ${id} ended before step ${step}: ${body.job.state}`);
    if (Date.now() > until) throw new Error(`job ${id} never reached step ${step}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Counts each job's `completed` events (exactly once means 1 each). */
function completions(url: string, queue: string): { counts: Map<string, number>; stalled: string[]; close: () => Promise<void> } {
  const counts = new Map<string, number>();
  const stalled: string[] = [];
  const events = new QueueEvents(queue, { connection: { url } });
  events.on('error', () => {});
  events.on('completed', ({ jobId }) => counts.set(jobId, (counts.get(jobId) ?? 0) + 1));
  events.on('stalled', ({ jobId }) => stalled.push(jobId));
  return { counts, stalled, close: () => events.close() };
}

describe('scale-out with BullMQ on Redis', { timeout: 600_000 }, () => {
  let redis: RedisServer;
  let bundle: string;
  let reference: StableDiffusionModel;
  const dirs: { remove: () => void }[] = [];

  before(async () => {
    redis = await startRedis();
    bundle = testBundle('tiny');
    configure({ threads: 1 }); // the workers' setting: the same reductions, the same bits
    reference = await loadModel(bundle);
  });
  after(async () => {
    reference?.dispose();
    await removeRedis(redis);
    for (const d of dirs) d.remove();
  });

  const serve = async (queue: string, artifacts?: { type: 'dir'; dir: string }): Promise<Started> => {
    const data = tempDir('torchedit-scale-serve-');
    dirs.push(data);
    return start({ dataDir: data.path, models: { tiny: bundle }, limits, scale: { redis: redis.url, queue, backoffMs: 200, artifacts } });
  };

  const png = async (image: { toBuffer(format: 'png'): Promise<Buffer> }) => image.toBuffer('png');

  test('two workers and one server: 30 mixed jobs complete exactly once, with the in-process results for the same seeds', async () => {
    const queue = 'mixed';
    const watch = completions(redis.url, queue);
    const server = await serve(queue);
    const workers = await Promise.all([startWorker(redis.url, queue, bundle), startWorker(redis.url, queue, bundle)]);
    try {
      const image = (await api(server.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).body.id;
      const ids: string[] = [];
      const inverts = [];
      const generates = [];
      for (let i = 0; i < 10; i++) {
        inverts.push((await api(server.base, 'POST', '/v1/inversions', { image, steps: 12, seed: String(i + 1) })).body.job.id);
        generates.push(
          (await api(server.base, 'POST', '/v1/generate', { prompt: `shape ${i}`, steps: 8, seed: String(100 + i) })).body.job.id,
        );
      }
      ids.push(...inverts, ...generates);
      const sse = readEvents(server.base, inverts[9]);
      const edits: { id: string; invert: number }[] = [];
      const inverted = [];
      for (const [i, id] of inverts.entries()) {
        const job = await waitJob(server.base, id, {}, 120_000);
        assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
        assert.equal(job.seed, String(i + 1));
        inverted.push(job);
        const edit = await api(server.base, 'POST', `/v1/inversions/${job.result.inversionId}/edits`, { concepts: [{ prompt: 'blue' }] });
        assert.equal(edit.status, 202, JSON.stringify(edit.body));
        edits.push({ id: edit.body.job.id, invert: i });
        ids.push(edit.body.job.id);
      }
      assert.equal(ids.length, 30);
      const records = [];
      for (const id of ids) records.push(await waitJob(server.base, id, {}, 120_000));
      assert.deepEqual(
        records.filter((r) => r.state !== 'succeeded').map((r) => r.error),
        [],
      );
      assert.equal(new Set(records.map((r) => r.worker)).size, 2, 'both workers took jobs');
      const events = await sse;
      assert.equal(events.at(-1)?.type, 'done');
      assert.ok(events.some((e) => e.type === 'progress'));

      // The same results as the library in this process, bit for bit.
      for (const [i, job] of inverted.entries()) {
        using inversion = await reference.invert(example, { steps: 12, seed: BigInt(i + 1) });
        using decoded = await reference.decodeLatents(inversion.tensors.x0);
        const { toImages } = await import('../../lib/pipelines/result.js');
        const [picture] = await toImages(decoded);
        const served = (await api(server.base, 'GET', job.result.reconstructionUrl)).bytes;
        assert.ok(served.equals(await png(picture)), `reconstruction ${i} differs`);
        const edit = records[ids.indexOf(edits[i].id)];
        using edited = await inversion.edit({ concepts: [{ prompt: 'blue' }] });
        assert.ok((await api(server.base, 'GET', edit.result.url)).bytes.equals(await png(edited.image)), `edit ${i} differs`);
      }
      for (const [i, id] of generates.entries()) {
        const job = records[ids.indexOf(id)];
        using generated = await reference.generate(`shape ${i}`, { steps: 8, seed: BigInt(100 + i) });
        assert.ok(
          (await api(server.base, 'GET', job.result.results[0].url)).bytes.equals(await png(generated.images[0])),
          `generate ${i} differs`,
        );
      }
      // Exactly once: one completion each, nothing left behind.
      await new Promise((r) => setTimeout(r, 300));
      for (const id of ids) assert.equal(watch.counts.get(id), 1, `job ${id} completed ${watch.counts.get(id) ?? 0} times`);
      const stats = (await api(server.base, 'GET', '/v1/jobs?limit=1000')).body.queue;
      assert.deepEqual([stats.waiting, stats.running, stats.byState.succeeded, stats.byState.failed], [0, 0, 30, 0]);
    } finally {
      await Promise.all(workers.map(stopWorker));
      await server.app.close();
      await watch.close();
    }
  });

  test('SIGKILL of the worker in the middle of an edit: another worker completes it, with the reference result, once', async () => {
    const queue = 'kill';
    const shared = tempDir('torchedit-scale-artifacts-');
    dirs.push(shared);
    const watch = completions(redis.url, queue);
    const server = await serve(queue, { type: 'dir', dir: shared.path });
    const args = ['--artifacts-dir', shared.path];
    const workers: WorkerProcess[] = [await startWorker(redis.url, queue, bundle, args), await startWorker(redis.url, queue, bundle, args)];
    try {
      const image = (await api(server.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).body.id;
      const steps = 1000;
      const inverted = await waitJob(
        server.base,
        (await api(server.base, 'POST', '/v1/inversions', { image, steps, seed: '5' })).body.job.id,
        {},
        120_000,
      );
      assert.equal(inverted.state, 'succeeded', JSON.stringify(inverted.error));
      const body = { concepts: [{ prompt: 'blue' }] };
      const id = (await api(server.base, 'POST', `/v1/inversions/${inverted.result.inversionId}/edits`, body)).body.job.id;
      const running = await waitProgress(server.base, id, steps / 5);
      const victim = workers.find((w) => running.worker.endsWith(`:${w.child.pid}`));
      assert.ok(victim, `no worker ${running.worker}`);
      victim.child.kill('SIGKILL');
      assert.equal((await victim.exited).signal, 'SIGKILL');
      const done = await waitJob(server.base, id, {}, 120_000);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.notEqual(done.worker, running.worker);
      assert.equal(done.attempts, 2);
      using inversion = await reference.invert(example, { steps, seed: 5n });
      using edited = await inversion.edit(body);
      assert.ok(
        (await api(server.base, 'GET', done.result.url)).bytes.equals(await png(edited.image)),
        'the result differs from the reference',
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(watch.counts.get(id), 1);
      assert.deepEqual(watch.stalled, [id]);
      const stats = (await api(server.base, 'GET', '/v1/jobs')).body.queue;
      assert.deepEqual([stats.waiting, stats.running, stats.byState.failed], [0, 0, 0]);
    } finally {
      await Promise.all(workers.map(stopWorker));
      await server.app.close();
      await watch.close();
    }
  });

  test('a cancel through a second server stops the job on its worker within a step; a queued job leaves at once; neither is retried', async () => {
    const queue = 'cancel';
    const first = await serve(queue);
    const second = await serve(queue);
    const worker = await startWorker(redis.url, queue, bundle);
    try {
      const image = (await api(first.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).body.id;
      const id = (await api(first.base, 'POST', '/v1/inversions', { image, steps: 1000, seed: '3' })).body.job.id;
      const queued = (await api(first.base, 'POST', '/v1/inversions', { image, steps: 10, seed: '4' })).body.job.id;
      const running = await waitProgress(first.base, id, 100);
      const cancelledQueued = await api(second.base, 'DELETE', `/v1/jobs/${queued}`);
      assert.equal(cancelledQueued.status, 200);
      assert.equal(cancelledQueued.body.job.state, 'cancelled');
      const asked = Date.now();
      const answer = await api(second.base, 'DELETE', `/v1/jobs/${id}`);
      assert.equal(answer.status, 202, JSON.stringify(answer.body));
      const job = await waitJob(first.base, id);
      const latency = Date.now() - asked;
      assert.equal(job.state, 'cancelled');
      assert.equal(job.error.code, 'ERR_ABORTED');
      // A step of this model takes ~3 ms, Redis round trips a few: far less than the job's rest.
      assert.ok(latency < 2000, `stopped ${latency} ms after the cancel`);
      assert.ok(running.progress.step < 1000);
      await new Promise((r) => setTimeout(r, 1000)); // longer than the backoff: a retry would show
      const later = (await api(second.base, 'GET', `/v1/jobs/${id}`)).body.job;
      assert.equal(later.state, 'cancelled');
      assert.equal(later.attempts, 1);
      assert.equal((await api(first.base, 'GET', `/v1/jobs/${queued}`)).body.job.state, 'cancelled');
      assert.match(worker.log(), new RegExp(`job ${id} cancelled`));
      assert.doesNotMatch(worker.log(), new RegExp(`job ${queued} .*started`));
    } finally {
      await stopWorker(worker);
      await first.app.close();
      await second.app.close();
    }
  });

  test("a worker with another model refuses a job on this model's inversion with ERR_MODEL_MISMATCH, without retry", async () => {
    const queue = 'mismatch';
    const server = await serve(queue);
    const right = await startWorker(redis.url, queue, bundle);
    let wrong: WorkerProcess | undefined;
    try {
      const image = (await api(server.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).body.id;
      const inverted = await waitJob(server.base, (await api(server.base, 'POST', '/v1/inversions', { image, steps: 10 })).body.job.id);
      assert.equal(inverted.state, 'succeeded');
      await stopWorker(right);
      wrong = await startWorker(redis.url, queue, testBundle('tiny-other', ['--seed', '1']));
      const id = (await api(server.base, 'POST', `/v1/inversions/${inverted.result.inversionId}/edits`, { concepts: [{ prompt: 'x' }] }))
        .body.job.id;
      const job = await waitJob(server.base, id);
      assert.equal(job.state, 'failed');
      assert.equal(job.error.code, 'ERR_MODEL_MISMATCH', job.error.message);
      assert.match(job.error.message, /needs model tiny/);
      assert.equal(job.attempts, 1);
    } finally {
      await stopWorker(right);
      await stopWorker(wrong);
      await server.app.close();
    }
  });

  test('Redis stopped during a run: the server answers 503 and stays up, workers too; after a restart both reconnect and jobs run', async () => {
    const queue = 'outage';
    const shared = tempDir('torchedit-scale-artifacts-');
    dirs.push(shared);
    const server = await serve(queue, { type: 'dir', dir: shared.path });
    const worker = await startWorker(redis.url, queue, bundle, ['--artifacts-dir', shared.path]);
    try {
      const image = (await api(server.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).body.id;
      assert.equal(
        (await waitJob(server.base, (await api(server.base, 'POST', '/v1/inversions', { image, steps: 10 })).body.job.id)).state,
        'succeeded',
      );
      await redis.stop();
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 3; i++) {
        const refused = await api(server.base, 'POST', '/v1/inversions', { image, steps: 10 });
        assert.equal(refused.status, 503, JSON.stringify(refused.body));
        assert.equal(refused.body.error.code, 'ERR_QUEUE_UNAVAILABLE');
        assert.ok(refused.headers.get('retry-after'));
        const health = await api(server.base, 'GET', '/healthz');
        assert.equal(health.status, 200);
        assert.equal(health.body.status, 'degraded');
        await new Promise((r) => setTimeout(r, 500));
      }
      await redis.start();
      const until = Date.now() + 20_000;
      while ((await api(server.base, 'GET', '/healthz')).body.status !== 'ok') {
        assert.ok(Date.now() < until, 'the server never reconnected');
        await new Promise((r) => setTimeout(r, 100));
      }
      const again = await api(server.base, 'POST', '/v1/inversions', { image, steps: 10 });
      assert.equal(again.status, 202, JSON.stringify(again.body));
      const job = await waitJob(server.base, again.body.job.id, {}, 30_000);
      assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
      assert.equal(worker.child.exitCode, null, 'the worker exited');
    } finally {
      await stopWorker(worker);
      await server.app.close();
    }
  });
});
