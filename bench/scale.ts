/**
 * Scale-out throughput (not part of `npm test`): LEDITS edits per minute through the HTTP API with
 * the shipped model, for the in-process server and for a server with `scale` (BullMQ on a
 * private redis-server) in front of 1 and 2 `torchedit worker` processes, every one at one
 * libtorch thread. N clients each submit an edit of one shared inversion, poll it to its end and
 * submit the next, for a fixed time. Writes the table to bench/RESULTS.md (section `scale`).
 *
 *   npm run build:ts && node dist/bench/scale.js [--clients N] [--seconds S] [--steps T] [--no-write]
 *
 * On a 2-core machine two single-thread workers can at best double one; a core that is busy
 * with something else (the load is printed) caps it lower.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultModelPath } from '../lib/model/model.js';
import { createServer } from '../lib/server/index.js';
import { removeRedis, startRedis, startWorker, stopWorker, tempDir, type WorkerProcess } from '../test/server/redisHelpers.js';
import { currentLoad, fmt, repoRoot, writeSection } from './measure.js';

function argument(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const clients = argument('clients', 4);
const seconds = argument('seconds', 60);
const steps = argument('steps', 50);
const write = !process.argv.includes('--no-write');
const example = readFileSync(join(repoRoot, 'examples', 'red-circle.png'));

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
async function call(base: string, method: string, path: string, body?: unknown): Promise<any> {
  const init: RequestInit = { method };
  if (Buffer.isBuffer(body)) init.body = body;
  else if (body !== undefined) init.body = JSON.stringify(body);
  init.headers = { 'content-type': Buffer.isBuffer(body) ? 'image/png' : 'application/json' };
  return (await fetch(base + path, init)).json();
}

// biome-ignore lint/suspicious/noExplicitAny: a job record
async function finish(base: string, id: string): Promise<any> {
  for (;;) {
    const { job } = await call(base, 'GET', `/v1/jobs/${id}`);
    if (['succeeded', 'failed', 'cancelled'].includes(job.state)) return job;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Edits per minute (and failures) against a listening server. */
async function measure(base: string): Promise<{ perMinute: number; failed: number }> {
  const image = (await call(base, 'POST', '/v1/images', example)).id;
  const inverted = await finish(base, (await call(base, 'POST', '/v1/inversions', { image, steps, seed: '1' })).job.id);
  const inversionId = inverted.result.inversionId;
  // One warm-up edit: first-call costs are not throughput.
  await finish(base, (await call(base, 'POST', `/v1/inversions/${inversionId}/edits`, { concepts: [{ prompt: 'blue' }] })).job.id);
  const until = Date.now() + seconds * 1000;
  let done = 0;
  let failed = 0;
  const start = Date.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < until) {
        const submitted = await call(base, 'POST', `/v1/inversions/${inversionId}/edits`, { concepts: [{ prompt: 'blue' }] });
        if (!submitted.job) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        const job = await finish(base, submitted.job.id);
        if (job.state === 'succeeded') done++;
        else failed++;
      }
    }),
  );
  return { perMinute: (done * 60_000) / (Date.now() - start), failed };
}

async function listen(options: Parameters<typeof createServer>[0]): Promise<{ base: string; close: () => Promise<void> }> {
  const app = await createServer({
    logger: false,
    models: { 'shapes-64': defaultModelPath },
    threads: 1,
    limits: { queue: 64 },
    ...options,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return { base: `http://127.0.0.1:${port}`, close: () => app.close() };
}

const rows: { setup: string; perMinute: number; failed: number }[] = [];
const data = tempDir('torchedit-bench-scale-');
const redis = await startRedis();
try {
  process.stderr.write(`bench scale: ${clients} clients, ${seconds} s each, inversion of ${steps} steps; load ${currentLoad()}\n`);
  {
    const server = await listen({ dataDir: join(data.path, 'in-process') });
    rows.push({ setup: 'in-process server (1 thread)', ...(await measure(server.base)) });
    await server.close();
  }
  for (const n of [1, 2]) {
    const queue = `bench${n}`;
    const server = await listen({ dataDir: join(data.path, queue), scale: { redis: redis.url, queue } });
    const workers: WorkerProcess[] = [];
    for (let i = 0; i < n; i++) workers.push(await startWorker(redis.url, queue, defaultModelPath));
    try {
      rows.push({ setup: `server + ${n} worker${n > 1 ? 's' : ''} (1 thread each)`, ...(await measure(server.base)) });
    } finally {
      await Promise.all(workers.map(stopWorker));
      await server.close();
    }
  }
} finally {
  await removeRedis(redis);
  data.remove();
}
const table = [
  '## Scale-out throughput (bench/scale.ts)',
  '',
  `LEDITS edits of one inversion (${steps} steps, shapes-64), ${clients} clients for ${seconds} s per row; load at the end: ${currentLoad()}.`,
  '',
  '| setup | edits/min | failed |',
  '| --- | ---: | ---: |',
  ...rows.map((r) => `| ${r.setup} | ${fmt(r.perMinute, 1)} | ${r.failed} |`),
  '',
].join('\n');
process.stdout.write(`${table}\n`);
if (write) writeSection('scale', table);
process.exit(0);
