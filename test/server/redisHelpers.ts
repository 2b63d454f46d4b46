// Support for the scale-out tests: a real redis-server (Debian's, installed by scripts/setup.sh)
// on a free loopback port with no persistence, and `torchedit worker` child processes.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';

const bin = join(repoRoot, 'bin', 'torchedit.js');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  url: string;
  port: number;
  /** Its working folder. */
  dir: string;
  /** Stops it (its data is gone: no persistence). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

/** Starts redis-server; fails with a clear message when it is not installed (CI installs it). */
export async function startRedis(): Promise<RedisServer> {
  if (spawnSync('redis-server', ['--version']).error)
    throw new Error(
      'redis-server is not installed: the scale-out tests need it (scripts/setup.sh installs it: apt-get install -y redis-server)',
    );
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-redis-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        if (out.includes('Ready to accept connections')) resolve();
      });
      child!.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    });
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    start,
    stop: async () => {
      await stop();
    },
  };
}

/** Stops Redis and deletes its folder (for `after`). */
export async function removeRedis(redis: RedisServer | undefined): Promise<void> {
  await redis?.stop();
  if (redis) rmSync(redis.dir, { recursive: true, force: true });
}

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it wrote on stderr so far. */
  log(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `torchedit worker` (one thread) and resolves once it says it is ready. */
export function startWorker(redisUrl: string, queue: string, model: string, extra: string[] = []): Promise<WorkerProcess> {
  const child = spawn(
    process.execPath,
    [
      bin,
      'worker',
      '--redis',
      redisUrl,
      '--queue',
      queue,
      '--model',
      model,
      '--threads',
      '1',
      '--lock-duration',
      '2000',
      '--stalled-interval',
      '1000',
      ...extra,
    ],
    { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      if (stderr.includes('ready:')) resolve({ child, log: () => stderr, exited });
    });
    exited.then(({ code }) => reject(new Error(`worker exited (${code}) before it was ready: ${stderr}`)));
  });
}

/** SIGTERM and wait. */
export async function stopWorker(worker: WorkerProcess | undefined): Promise<void> {
  if (!worker || worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  worker.child.kill('SIGTERM');
  await worker.exited;
}

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
