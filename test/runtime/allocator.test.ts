import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { configure, emptyCache, memory, Tensor } from '../../lib/index.js';
import { repoRoot, rejectsWithCode, testBundle } from '../helpers.js';

/** Runs a 20-step 256×256 text-to-image in a fresh process; returns its latents' checksum and page faults. */
function run(env: Record<string, string>) {
  const script = `
    import { loadModel } from './dist/lib/index.js';
    const model = await loadModel(${JSON.stringify(testBundle())});
    await model.generate('x', { steps: 2, seed: 1, width: 256, height: 256 });
    const before = process.resourceUsage().minorPageFault;
    const result = await model.generate('x', { steps: 20, seed: 1, width: 256, height: 256 });
    const faults = process.resourceUsage().minorPageFault - before;
    const data = await result.latents.data();
    console.log(JSON.stringify({ faults, sum: Array.from(data).reduce((a, b) => a + b, 0) }));`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  assert.equal(out.status, 0, out.stderr);
  return JSON.parse(out.stdout.trim().split('\n').at(-1)!) as { faults: number; sum: number };
}

test('the caching CPU allocator removes per-step page faults and changes no result', () => {
  const cached = run({});
  const uncached = run({ TORCHEDIT_CPU_CACHE: '0' });
  console.log(`# page faults during 20 steps: ${cached.faults} cached, ${uncached.faults} uncached`);
  assert.equal(cached.sum, uncached.sum);
  // At least 4× fewer: since the fused attention kernel (issue 17) the step's largest temporaries
  // (the attention scores) are gone, so uncached runs fault less than before (3,500–8,000 here vs
  // 200–650 cached, both varying with the machine's load); the margin was 10× when they existed.
  assert.ok(cached.faults * 4 < uncached.faults, `${cached.faults} vs ${uncached.faults}`);
});

test('the CPU cache can be limited, emptied and turned off', () => {
  configure({ cpuCache: true });
  const big = Tensor.zeros([1024, 1024]);
  big.dispose();
  assert.ok(memory().cpuCache.cachedBytes >= 4 * 1024 * 1024);
  const again = Tensor.zeros([1024, 1024]);
  assert.ok(memory().cpuCache.hits >= 1);
  again.dispose();
  emptyCache();
  assert.equal(memory().cpuCache.cachedBytes, 0);
  configure({ cpuCacheLimit: 1024 });
  Tensor.zeros([1024, 1024]).dispose();
  assert.equal(memory().cpuCache.cachedBytes, 0, 'over the limit: freed, not cached');
  configure({ cpuCache: false, cpuCacheLimit: 2 ** 30 });
  assert.equal(memory().cpuCache.enabled, false);
  Tensor.zeros([1024, 1024]).dispose();
  assert.equal(memory().cpuCache.cachedBytes, 0);
  configure({ cpuCache: true });
  assert.throws(() => configure({ cpuCacheLimit: -1 }), { code: 'ERR_INVALID_OPTION' });
  return rejectsWithCode(() => configure({ cpuCache: 'yes' as never }), 'ERR_INVALID_OPTION');
});

test('configure({ libtorch }) is the only place looked at, and must come before the first load', () => {
  assert.throws(() => configure({ libtorch: '/somewhere/else' }), { code: 'ERR_INVALID_OPTION' });
  const script = `
    import { mkdtempSync } from 'node:fs';
    import { tmpdir } from 'node:os';
    import { join } from 'node:path';
    import { configure, Tensor } from './dist/lib/index.js';
    configure({ libtorch: mkdtempSync(join(tmpdir(), 'no-libtorch-')) });
    try { Tensor.zeros([1]); console.log('loaded'); } catch (e) { console.log(e.code); }`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(out.stdout.trim(), 'ERR_LIBTORCH_NOT_FOUND', out.stderr);
});

/**
 * Runs `body` (after importing configure, runtimeInfo and Tensor) in a fresh process whose BLAS
 * thread variables are only those in `env`; returns the JSON of its last output line.
 */
function inFreshProcess<T>(env: Record<string, string>, body: string): T {
  const script = `import { configure, runtimeInfo, Tensor } from './dist/lib/index.js';\n${body}`;
  const environment: Record<string, string | undefined> = {
    ...process.env,
    OPENBLAS_NUM_THREADS: undefined,
    GOTO_NUM_THREADS: undefined,
    ...env,
  };
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: repoRoot,
    env: environment as NodeJS.ProcessEnv,
    encoding: 'utf8',
  });
  assert.equal(out.status, 0, out.stderr);
  return JSON.parse(out.stdout.trim().split('\n').at(-1)!) as T;
}

/** Runs one job in a fresh process and reports the BLAS thread pool before and after it. */
function blasAfterJob(env: Record<string, string>, threads?: number) {
  return inFreshProcess<{ before?: { threads: number }; after?: { library: string; threads: number }; intraOp: number }>(
    env,
    `
    ${threads ? `configure({ threads: ${threads} });` : ''}
    const before = runtimeInfo().blas;
    await Tensor.zeros([4]).data();
    const info = runtimeInfo();
    console.log(JSON.stringify({ before, after: info.blas, intraOp: info.intraOpThreads }));`,
  );
}

test('the BLAS thread pool follows the worker threads (OpenBLAS spins one thread per core otherwise)', () => {
  // setup.sh installs libopenblas0-pthread, so the BLAS must be found here.
  const unconfigured = blasAfterJob({});
  assert.equal(unconfigured.after?.library, 'OpenBLAS', JSON.stringify(unconfigured));
  assert.equal(unconfigured.after?.threads, unconfigured.intraOp, "unconfigured, BLAS follows libtorch's intra-op count");
  assert.equal(blasAfterJob({}, 2).after?.threads, 2, 'configure({ threads: 2 }) sets both');
  // The user's environment choice stands unless configure() says otherwise.
  assert.equal(blasAfterJob({ OPENBLAS_NUM_THREADS: '2' }).after?.threads, 2);
  assert.equal(blasAfterJob({ OPENBLAS_NUM_THREADS: '2' }, 1).after?.threads, 1);
  // configure() after a first, unconfigured job still sets the pool, also to libtorch's own count
  const late = inFreshProcess<{ before: number; after: number; intraOp: number }>(
    { OPENBLAS_NUM_THREADS: '2' },
    `
    await Tensor.zeros([4]).data();
    const before = runtimeInfo().blas.threads;
    configure({ threads: runtimeInfo().intraOpThreads });
    await Tensor.zeros([4]).data();
    console.log(JSON.stringify({ before, after: runtimeInfo().blas.threads, intraOp: runtimeInfo().intraOpThreads }));`,
  );
  assert.equal(late.before, 2, "the environment's choice stands while unconfigured");
  assert.equal(late.after, late.intraOp, JSON.stringify(late));
});
