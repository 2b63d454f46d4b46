// `torchedit serve` as a child process: SIGTERM lets a running job finish and exits 0; a restart
// on the same data directory serves every id it served before (an inversion still edits
// bit-identically); after kill -9 during a job, the job reads failed with a reason.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot } from '../helpers.js';
import { api, waitJob, waitRunning } from './serverHelpers.js';

const bin = join(repoRoot, 'bin', 'torchedit.js');
const example = readFileSync(join(repoRoot, 'examples', 'red-circle.png'));

interface Served {
  child: ChildProcess;
  base: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** Starts `torchedit serve --port 0` and resolves once it says where it listens. */
function serve(dataDir: string): Promise<Served> {
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', '--grace', '20'], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      const match = /serving on (http:\/\/[\d.:]+)/.exec(stderr);
      if (match) resolve({ child, base: match[1], exited });
    });
    exited.then(({ code }) => reject(new Error(`serve exited (${code}) before listening: ${stderr}`)));
  });
}

/** Runs `torchedit` to its end (for --help and bad flags). */
function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('torchedit serve --help lists its options; a bad one is one line and exit 2, before any model loads', async () => {
  const help = await run(['serve', '--help']);
  assert.equal(help.code, 0);
  for (const flag of ['--port', '--host', '--data-dir', '--token', '--max-queue', '--grace', '--model'])
    assert.ok(help.stdout.includes(flag), flag);
  assert.match(help.stdout, /default: "127\.0\.0\.1"/);
  for (const [args, mention] of [
    [['--max-queue', '0'], '--max-queue'],
    [['--port', 'abc'], '--port'],
    [['--token', 'short'], 'at least 16 characters'],
  ] as const) {
    const bad = await run(['serve', ...args]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr.trim(), /^torchedit: .+ \[ERR_INVALID_OPTION\]$/);
    assert.ok(bad.stderr.includes(mention), bad.stderr);
  }
});

describe('torchedit serve across restarts', { timeout: 120_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'torchedit-restart-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('SIGTERM finishes the running job and exits 0; the restarted server serves every id, and the inversion edits bit-identically', async () => {
    const first = await serve(dir);
    const image = (await api(first.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).body.id;
    const invert = await waitJob(first.base, (await api(first.base, 'POST', '/v1/inversions', { image, steps: 20, seed: 7 })).body.job.id);
    const inversionId = invert.result.inversionId;
    const edit = { concepts: [{ prompt: 'blue' }], skip: 8 };
    const edited = await waitJob(first.base, (await api(first.base, 'POST', `/v1/inversions/${inversionId}/edits`, edit)).body.job.id);
    const before = (await api(first.base, 'GET', `/v1/results/${edited.result.resultId}.png`)).bytes;
    // A job running when SIGTERM comes is let finish.
    const late = (await api(first.base, 'POST', '/v1/inversions', { image, steps: 100, seed: 8 })).body.job.id;
    await waitRunning(first.base, late);
    first.child.kill('SIGTERM');
    const end = await first.exited;
    assert.equal(end.code, 0, end.stderr);

    const second = await serve(dir);
    try {
      assert.ok((await api(second.base, 'GET', `/v1/images/${image}`)).bytes.equals(example));
      assert.ok((await api(second.base, 'GET', `/v1/results/${edited.result.resultId}.png`)).bytes.equals(before));
      assert.equal((await api(second.base, 'GET', `/v1/jobs/${edited.id}`)).body.job.state, 'succeeded');
      const finished = (await api(second.base, 'GET', `/v1/jobs/${late}`)).body.job;
      assert.equal(finished.state, 'succeeded', JSON.stringify(finished));
      assert.equal((await api(second.base, 'GET', `/v1/inversions/${finished.result.inversionId}`)).status, 200);
      const again = await waitJob(second.base, (await api(second.base, 'POST', `/v1/inversions/${inversionId}/edits`, edit)).body.job.id);
      assert.equal(again.state, 'succeeded', JSON.stringify(again.error));
      const after = (await api(second.base, 'GET', `/v1/results/${again.result.resultId}.png`)).bytes;
      assert.ok(after.equals(before), 'the reloaded inversion edits differently');
    } finally {
      second.child.kill('SIGTERM');
      assert.equal((await second.exited).code, 0);
    }
  });

  test('kill -9 during a job: after a restart the job reads failed with ERR_SERVER_RESTARTED', async () => {
    const first = await serve(dir);
    const image = (await api(first.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).body.id;
    const job = (await api(first.base, 'POST', '/v1/inversions', { image, steps: 200 })).body.job.id;
    const queued = (await api(first.base, 'POST', '/v1/inversions', { image, steps: 200 })).body.job.id;
    await waitRunning(first.base, job);
    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');

    const second = await serve(dir);
    try {
      for (const id of [job, queued]) {
        const record = (await api(second.base, 'GET', `/v1/jobs/${id}`)).body.job;
        assert.equal(record.state, 'failed');
        assert.equal(record.error.code, 'ERR_SERVER_RESTARTED');
        assert.match(record.error.message, id === job ? /while this job was running/ : /while this job was queued/);
      }
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
