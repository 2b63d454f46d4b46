/**
 * The service under load (not part of `npm test`): `torchedit serve` in a child process with the
 * shipped model, N clients that each submit a small LEDITS edit of one shared inversion, poll it
 * to its end and submit the next (a 429 waits its Retry-After), and one more client that polls
 * /healthz every 50 ms, all for a fixed time. Reports edits per minute, /healthz latency while
 * busy (p50, p99, max; the target is p99 < 50 ms: a job never blocks the event loop), 429s,
 * errors, and the server's RSS before and after. Writes the table to bench/RESULTS.md (section
 * `serve`).
 *
 *   npm run bench:serve -- [options], or node dist/bench/serve.js [--clients N] [--seconds S] [--max-queue Q] [--steps T] [--no-write]
 *
 * Defaults: 4 clients, 60 s, a queue of 2 (smaller than the clients, so that 429s happen and
 * are handled), an inversion of 50 steps edited with the model's skip (0.6: 20 edit steps).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentLoad, fmt, machine, writeSection } from './measure.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function argument(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const clients = argument('clients', 4);
const seconds = argument('seconds', 60);
const maxQueue = argument('max-queue', 2);
const steps = argument('steps', 50);
const write = !process.argv.includes('--no-write');

function rssMB(pid: number): number {
  const kB = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
  return kB / 1024;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The fields of the answers this client reads. */
interface Reply {
  id?: string;
  job: { id: string; state: string; result?: { inversionId?: string }; error?: { message: string } };
}

async function json(base: string, method: string, path: string, body?: unknown, type = 'application/json') {
  const response = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': type },
    body: body === undefined ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Reply };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'torchedit-bench-serve-'));
  const child = spawn(
    process.execPath,
    [
      join(root, 'bin', 'torchedit.js'),
      'serve',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--max-queue',
      String(maxQueue),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const base = await new Promise<string>((resolve, reject) => {
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      const match = /serving on (http:\/\/[\d.:]+)/.exec(err);
      if (match) resolve(match[1]);
    });
    child.on('close', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  try {
    const image = (await json(base, 'POST', '/v1/images', readFileSync(join(root, 'examples', 'red-circle.png')), 'image/png')).body
      .id as string;
    const invert = (await json(base, 'POST', '/v1/inversions', { image, steps, seed: 0 })).body.job.id as string;
    let inversionId = '';
    while (!inversionId) {
      const job = (await json(base, 'GET', `/v1/jobs/${invert}`)).body.job;
      if (job.state === 'failed') throw new Error(job.error?.message);
      inversionId = job.result?.inversionId ?? '';
      await sleep(100);
    }
    // One edit to warm up (prompt encoding, allocator), then measure.
    const warm = (await json(base, 'POST', `/v1/inversions/${inversionId}/edits`, { concepts: [{ prompt: 'blue' }] })).body.job.id;
    while ((await json(base, 'GET', `/v1/jobs/${warm}`)).body.job.state !== 'succeeded') await sleep(100);
    const rssBefore = rssMB(child.pid!);
    const loadStart = currentLoad();

    let done = 0;
    let tooMany = 0;
    let errors = 0;
    const editSeconds: number[] = [];
    const health: number[] = [];
    const until = Date.now() + seconds * 1000;
    const prompts = ['blue', 'green', 'yellow', 'red'];
    const client = async (n: number) => {
      let i = 0;
      while (Date.now() < until) {
        const t0 = performance.now();
        const body = { concepts: [{ prompt: prompts[(n + i++) % prompts.length] }] };
        const submitted = await json(base, 'POST', `/v1/inversions/${inversionId}/edits`, body);
        if (submitted.status === 429) {
          tooMany++;
          await sleep(Math.min(1000, Number(submitted.headers.get('retry-after') ?? 1) * 1000));
          continue;
        }
        if (submitted.status !== 202) {
          errors++;
          continue;
        }
        for (;;) {
          await sleep(100);
          const job = (await json(base, 'GET', `/v1/jobs/${submitted.body.job.id}`)).body.job;
          if (job.state === 'succeeded') {
            done++;
            editSeconds.push((performance.now() - t0) / 1000);
            break;
          }
          if (job.state === 'failed' || job.state === 'cancelled') {
            errors++;
            break;
          }
        }
      }
    };
    const healthz = async () => {
      while (Date.now() < until) {
        const t0 = performance.now();
        const response = await fetch(`${base}/healthz`);
        await response.arrayBuffer();
        if (response.status !== 200) errors++;
        health.push(performance.now() - t0);
        await sleep(50);
      }
    };
    const started = performance.now();
    await Promise.all([...Array.from({ length: clients }, (_, n) => client(n)), healthz()]);
    const elapsed = (performance.now() - started) / 1000;
    const rssAfter = rssMB(child.pid!);
    const m = machine(1);
    const row = {
      clients,
      seconds: elapsed,
      edits: done,
      perMinute: (done / elapsed) * 60,
      latency: percentile(editSeconds, 50),
      p50: percentile(health, 50),
      p99: percentile(health, 99),
      max: Math.max(...health),
      tooMany,
      errors,
      rssBefore,
      rssAfter,
    };
    const table = [
      '## The service under load (bench/serve.ts)',
      '',
      `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB memory; ${m.os}; node ${m.node}`,
      `- date ${m.date}; load average at start ${loadStart}, at end ${currentLoad()}`,
      `- \`torchedit serve\` (a child process, the shipped model shapes-64, libtorch's default threads), queue limit ${maxQueue}; one inversion of ${steps} steps; each client submits an edit with one concept (the model's skip: ${Math.round(steps * 0.4)} edit steps), polls it every 100 ms to its end, and submits the next; a 429 waits its Retry-After (at most 1 s); one more client polls /healthz every 50 ms`,
      '',
      '| clients | seconds | edits | edits/min | edit latency p50 s (submit → done) | /healthz p50 ms | /healthz p99 ms (target < 50) | /healthz max ms | 429s | errors | server RSS MB before → after |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      `| ${row.clients} | ${fmt(row.seconds, 0)} | ${row.edits} | ${fmt(row.perMinute, 1)} | ${fmt(row.latency, 2)} | ${fmt(row.p50, 1)} | ${fmt(row.p99, 1)} ${row.p99 < 50 ? '✓' : '✗'} | ${fmt(row.max, 1)} | ${row.tooMany} | ${row.errors} | ${fmt(row.rssBefore, 0)} → ${fmt(row.rssAfter, 0)} |`,
      '',
      'Edits run one at a time (one CPU worker), so edits/min is the single-job throughput whatever the number of clients; more clients raise the latency of each and the 429s, not the rate. /healthz is answered by the event loop while a job runs on the worker thread.',
    ].join('\n');
    process.stdout.write(`${table}\n`);
    if (write) {
      writeSection('serve', table);
      process.stderr.write('bench: wrote bench/RESULTS.md, section serve\n');
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('close', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
