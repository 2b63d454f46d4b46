// The HTTP service (lib/server) on a real loopback port with the shipped model: every route's
// happy path and its errors, SSE, cancelling, the queue's bound, body and pixel limits, tokens.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { repoRoot } from '../helpers.js';
import { api, bombPng, readEvents, start, type Started, waitJob, waitRunning } from './serverHelpers.js';

const example = readFileSync(join(repoRoot, 'examples', 'red-circle.png'));
const TOKEN = 'a-test-token-of-enough-length';
const OTHER = 'another-token-of-enough-length';

describe('torchedit server', { timeout: 180_000 }, () => {
  let dir: string;
  let server: Started;
  let base: string;
  let imageId: string;
  let inversionId: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'torchedit-serve-'));
    server = await start({ dataDir: dir, limits: { queue: 2, bodyBytes: 1 << 20, concepts: 3 } });
    base = server.base;
  });

  after(async () => {
    await server.app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('POST /v1/images takes raw bytes and multipart; GET returns them; bad images are 400, 413 or 415', async () => {
    const raw = await api(base, 'POST', '/v1/images', example, { 'content-type': 'image/png' });
    assert.equal(raw.status, 201, JSON.stringify(raw.body));
    assert.match(raw.body.id, /^[0-9a-f]{32}$/);
    assert.deepEqual([raw.body.format, raw.body.width, raw.body.height], ['png', 64, 64]);
    imageId = raw.body.id;
    const back = await api(base, 'GET', `/v1/images/${imageId}`);
    assert.equal(back.status, 200);
    assert.equal(back.headers.get('content-type'), 'image/png');
    assert.ok(back.bytes.equals(example));

    const form = new FormData();
    form.append('image', new Blob([await sharp(example).jpeg().toBuffer()], { type: 'image/jpeg' }), 'photo.jpg');
    const multi = await api(base, 'POST', '/v1/images', form);
    assert.equal(multi.status, 201, JSON.stringify(multi.body));
    assert.equal(multi.body.format, 'jpeg');

    const corrupt = await api(base, 'POST', '/v1/images', example.subarray(0, 200), { 'content-type': 'image/png' });
    assert.equal(corrupt.status, 400);
    assert.equal(corrupt.body.error.code, 'ERR_IMAGE_READ');
    const junk = await api(base, 'POST', '/v1/images', Buffer.from('not an image at all'), { 'content-type': 'image/png' });
    assert.equal(junk.body.error.code, 'ERR_IMAGE_READ');

    const big = await api(base, 'POST', '/v1/images', Buffer.alloc((1 << 20) + 1), { 'content-type': 'image/png' });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'ERR_TOO_LARGE');
    const bigForm = new FormData();
    bigForm.append('image', new Blob([Buffer.alloc((1 << 20) + 10)], { type: 'image/png' }), 'big.png');
    assert.equal((await api(base, 'POST', '/v1/images', bigForm)).status, 413);

    const text = await api(base, 'POST', '/v1/images', Buffer.from('hello'), { 'content-type': 'text/plain' });
    assert.equal(text.status, 415);
  });

  test('a decompression bomb (a small PNG declaring 100000×100000 pixels) is 413 before decoding, without RSS jumping', async () => {
    const bomb = bombPng(100_000, 100_000);
    assert.ok(bomb.length < 1000);
    const rss = process.memoryUsage().rss;
    const answer = await api(base, 'POST', '/v1/images', bomb, { 'content-type': 'image/png' });
    assert.equal(answer.status, 413, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ERR_TOO_LARGE');
    assert.ok(process.memoryUsage().rss - rss < 64 << 20, 'RSS grew by more than 64 MiB');
  });

  test('POST /v1/inversions runs a job; its events come in order and end with the result; the reconstruction is served', async () => {
    // A longer job runs and `first` waits, so that the stream of `second` starts with 'queued'
    // at position 2, then moves to position 1.
    await api(base, 'POST', '/v1/inversions', { image: imageId, steps: 60, seed: 9 });
    const first = await api(base, 'POST', '/v1/inversions', { image: imageId, steps: 20, seed: 1 });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const second = await api(base, 'POST', '/v1/inversions', { image: imageId, steps: 20, seed: 2, sourcePrompt: 'a red circle' });
    assert.equal(second.status, 202);
    const events = await readEvents(base, second.body.job.id);
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(0, 3), ['queued', 'position', 'running'], types.join(','));
    assert.equal(events[0].data.position, 2);
    assert.equal(events[1].data.position, 1);
    const progress = events.filter((e) => e.type === 'progress');
    assert.ok(progress.length >= 2, types.join(','));
    assert.ok(
      progress.every((e) => e.data.progress.total > 0 && e.data.progress.step <= e.data.progress.total && e.data.progress.etaMs >= 0),
    );
    assert.equal(types.at(-1), 'done');
    const done = events.at(-1)!.data.job;
    assert.equal(done.state, 'succeeded');
    assert.match(done.result.inversionId, /^[0-9a-f]{32}$/);
    assert.equal(done.result.settings.seed, '2');

    const job = await waitJob(base, first.body.job.id);
    assert.equal(job.state, 'succeeded');
    inversionId = job.result.inversionId;
    const info = await api(base, 'GET', `/v1/inversions/${inversionId}`);
    assert.equal(info.body.settings.steps, 20);
    const reconstruction = await api(base, 'GET', job.result.reconstructionUrl);
    assert.equal(reconstruction.headers.get('content-type'), 'image/png');
    assert.equal((await sharp(reconstruction.bytes).metadata()).width, 64);
  });

  test('POST /v1/inversions/:id/edits makes an image, served as PNG, WebP and JPEG; a saved and re-uploaded inversion edits bit-identically', async () => {
    const body = { concepts: [{ prompt: 'blue' }, { prompt: 'red', remove: true }] };
    const submitted = await api(base, 'POST', `/v1/inversions/${inversionId}/edits`, body);
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const job = await waitJob(base, submitted.body.job.id);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const png = await api(base, 'GET', `/v1/results/${job.result.resultId}.png`);
    assert.equal(png.headers.get('content-type'), 'image/png');
    for (const [ext, type] of [
      ['webp', 'image/webp'],
      ['jpg', 'image/jpeg'],
    ]) {
      const other = await api(base, 'GET', `/v1/results/${job.result.resultId}.${ext}`);
      assert.equal(other.status, 200);
      assert.equal(other.headers.get('content-type'), type);
      assert.equal((await sharp(other.bytes).metadata()).format, ext === 'jpg' ? 'jpeg' : ext);
    }
    const file = await api(base, 'GET', `/v1/inversions/${inversionId}/file`);
    assert.equal(file.status, 200);
    const uploaded = await api(base, 'PUT', '/v1/inversions', file.bytes);
    assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
    const again = await waitJob(base, (await api(base, 'POST', `/v1/inversions/${uploaded.body.id}/edits`, body)).body.job.id);
    const png2 = await api(base, 'GET', `/v1/results/${again.result.resultId}.png`);
    assert.ok(png2.bytes.equals(png.bytes), 'the re-uploaded inversion edits differently');
    const notInversion = await api(base, 'PUT', '/v1/inversions', example);
    assert.equal(notInversion.status, 400);
    assert.equal(notInversion.body.error.code, 'ERR_FILE_FORMAT');
  });

  test("bad options are 400 with the library's code, message and option path", async () => {
    const cases: [string, unknown, string, string | undefined][] = [
      [`/v1/inversions/${inversionId}/edits`, { concepts: [{ prompt: 'blue', scale: -1 }] }, 'ERR_INVALID_OPTION', 'concepts[0].scale'],
      [`/v1/inversions/${inversionId}/edits`, { skip: 20 }, 'ERR_INVALID_OPTION', 'skip'],
      [`/v1/inversions/${inversionId}/edits`, { concept: [] }, 'ERR_INVALID_OPTION', 'concept'],
      [
        `/v1/inversions/${inversionId}/edits`,
        { concepts: [{ prompt: 'a' }, { prompt: 'b' }, { prompt: 'c' }, { prompt: 'd' }] },
        'ERR_INVALID_OPTION',
        'concepts',
      ],
      [`/v1/inversions/${inversionId}/edits`, { userMask: '/etc/passwd' }, 'ERR_INVALID_OPTION', 'userMask'],
      [`/v1/inversions/${inversionId}/edits`, [1, 2], 'ERR_INVALID_OPTION', undefined],
      ['/v1/inversions', { image: imageId, steps: 0 }, 'ERR_INVALID_OPTION', 'steps'],
      ['/v1/inversions', { image: imageId, steps: 500 }, 'ERR_INVALID_OPTION', 'steps'],
      ['/v1/inversions', { image: imageId, seed: -1 }, 'ERR_INVALID_OPTION', 'seed'],
      ['/v1/inversions', { image: imageId, steps: '20' }, 'ERR_INVALID_OPTION', 'steps'],
      ['/v1/inversions', { image: imageId, model: 'nope' }, 'ERR_MODEL_NOT_FOUND', undefined],
      ['/v1/inversions', { steps: 20 }, 'ERR_INVALID_OPTION', 'image'],
    ];
    for (const [path, body, code, option] of cases) {
      const answer = await api(base, 'POST', path, body);
      assert.equal(answer.status, 400, `${path} ${JSON.stringify(body)}: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, code, JSON.stringify(answer.body));
      assert.equal(answer.body.error.option, option, JSON.stringify(answer.body));
      assert.ok(answer.body.error.message.length > 0);
    }
    const skipMessage = (await api(base, 'POST', `/v1/inversions/${inversionId}/edits`, { skip: 20 })).body.error.message;
    assert.match(skipMessage, /^Expected .* for skip but received 20 of type number$/);
    const badJson = await fetch(`${base}/v1/inversions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"image":',
    });
    assert.equal(badJson.status, 400);
    assert.equal(((await badJson.json()) as { error: { code: string } }).error.code, 'ERR_BAD_REQUEST');
  });

  test('unknown routes are 404, wrong methods 405 with Allow, ids that are not ids (path traversal) 404', async () => {
    const missing = await api(base, 'GET', '/v1/nothing');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ERR_NOT_FOUND');
    const wrong = await api(base, 'PUT', '/v1/jobs');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET');
    assert.equal((await api(base, 'DELETE', `/v1/images/${imageId}`)).status, 405);
    assert.equal((await api(base, 'GET', '/metrics/')).status, 404);
    for (const path of [
      '/v1/images/..%2F..%2F..%2Fetc%2Fpasswd',
      '/v1/results/..%2Fjobs.jsonl',
      '/v1/results/%2E%2E%2Fimages%2Fx.png',
      `/v1/inversions/${'0'.repeat(32)}/file`,
      '/v1/inversions/..%2Fjobs/file',
      '/v1/jobs/..',
      `/v1/jobs/${'f'.repeat(32)}`,
    ]) {
      const answer = await api(base, 'GET', path);
      assert.equal(answer.status, 404, `${path}: ${answer.status}`);
      assert.equal(answer.body.error.code, 'ERR_NOT_FOUND');
    }
    assert.equal((await api(base, 'DELETE', `/v1/jobs/${'e'.repeat(32)}`)).status, 404);
  });

  test('DELETE cancels a queued job at once and a running one at its next step; a full queue is 429 with Retry-After', async () => {
    const long = { image: imageId, steps: 200, seed: 3 };
    const running = (await api(base, 'POST', '/v1/inversions', long)).body.job.id;
    await waitRunning(base, running);
    const queued = [
      (await api(base, 'POST', '/v1/inversions', long)).body.job.id,
      (await api(base, 'POST', '/v1/inversions', long)).body.job.id,
    ];
    const full = await api(base, 'POST', '/v1/inversions', long);
    assert.equal(full.status, 429);
    assert.equal(full.body.error.code, 'ERR_QUEUE_FULL');
    assert.ok(Number(full.headers.get('retry-after')) >= 1);

    const list = await api(base, 'GET', '/v1/jobs?state=queued');
    assert.deepEqual(list.body.jobs.map((j: { id: string }) => j.id).sort(), [...queued].sort());

    const cancelled = await api(base, 'DELETE', `/v1/jobs/${queued[0]}`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.job.state, 'cancelled');
    assert.equal((await api(base, 'GET', `/v1/jobs/${queued[1]}`)).body.job.position, 1);

    const stop = await api(base, 'DELETE', `/v1/jobs/${running}`);
    assert.equal(stop.status, 202);
    const t0 = Date.now();
    const ended = await waitJob(base, running);
    assert.equal(ended.state, 'cancelled');
    assert.equal(ended.error.code, 'ERR_ABORTED');
    assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms to stop`);
    const events = await readEvents(base, running);
    assert.deepEqual(
      events.map((e) => e.type),
      ['cancelled'],
    );
    await api(base, 'DELETE', `/v1/jobs/${queued[1]}`);
    assert.equal((await waitJob(base, queued[1])).state, 'cancelled');
  });

  test('POST /v1/generate and Imagic (train, then generate over two η) make images; GET /v1/imagic/:id has the losses', async () => {
    const gen = await api(base, 'POST', '/v1/generate', { prompt: 'a blue square', steps: 5, seed: 4, batchSize: 2 });
    assert.equal(gen.status, 202, JSON.stringify(gen.body));
    const genJob = await waitJob(base, gen.body.job.id);
    assert.equal(genJob.state, 'succeeded', JSON.stringify(genJob.error));
    assert.equal(genJob.result.results.length, 2);
    assert.equal(genJob.result.seed, '4');
    assert.equal((await api(base, 'GET', genJob.result.results[1].url)).status, 200);
    assert.equal((await api(base, 'POST', '/v1/generate', { prompt: 'x', batchSize: 9 })).body.error.option, 'batchSize');

    const train = await api(base, 'POST', '/v1/imagic', {
      image: imageId,
      targetPrompt: 'a blue circle',
      embedding: { steps: 4 },
      finetune: { steps: 4 },
      seed: 5,
    });
    assert.equal(train.status, 202, JSON.stringify(train.body));
    const trained = await waitJob(base, train.body.job.id);
    assert.equal(trained.state, 'succeeded', JSON.stringify(trained.error));
    assert.equal(trained.result.losses.embedding.length, 4);
    const info = await api(base, 'GET', `/v1/imagic/${trained.result.imagicId}`);
    assert.equal(info.body.losses.finetune.length, 4);
    const sweep = await api(base, 'POST', `/v1/imagic/${trained.result.imagicId}/generate`, { etas: [0.5, 1.2], steps: 5, seed: 6 });
    assert.equal(sweep.status, 202, JSON.stringify(sweep.body));
    const swept = await waitJob(base, sweep.body.job.id);
    assert.equal(swept.state, 'succeeded', JSON.stringify(swept.error));
    assert.deepEqual(
      swept.result.results.map((r: { eta: number }) => r.eta),
      [0.5, 1.2],
    );
    const both = await api(base, 'POST', `/v1/imagic/${trained.result.imagicId}/generate`, { eta: 1, etas: [1] });
    assert.equal(both.status, 400);
    const tooMany = await api(base, 'POST', '/v1/imagic', {
      image: imageId,
      targetPrompt: 'x',
      embedding: { steps: 1500 },
      finetune: { steps: 1500 },
    });
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.error.code, 'ERR_INVALID_OPTION');
  });

  test('GET /v1/models, /healthz, /metrics and /v1/openapi.json', async () => {
    const models = await api(base, 'GET', '/v1/models');
    assert.equal(models.body.models[0].name, 'shapes-64');
    assert.equal(models.body.models[0].default, true);
    assert.equal(models.body.limits.queue, 2);
    const health = await api(base, 'GET', '/healthz');
    assert.equal(health.body.status, 'ok');
    const metrics = await api(base, 'GET', '/metrics');
    const text = metrics.bytes.toString('utf8');
    for (const name of [
      'torchedit_queue_depth 0',
      'torchedit_jobs{state="succeeded"}',
      'torchedit_job_duration_seconds_bucket{kind="invert"',
      'process_resident_memory_bytes',
      'torchedit_storage_cache_bytes',
      'nodejs_eventloop_delay_seconds',
    ])
      assert.ok(text.includes(name), `metrics lack ${name}`);
    const doc = (await api(base, 'GET', '/v1/openapi.json')).body;
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/inversions/{id}/edits'].post.requestBody.content['application/json'].schema.properties.concepts);
    assert.ok(doc.paths['/v1/jobs/{id}'].delete);
    const page = await api(base, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal((await api(base, 'GET', '/web/app.js')).status, 200);
    assert.equal((await api(base, 'GET', '/web/..%2Fpackage.json')).status, 404);
  });

  test('with tokens: a missing or wrong token is 401, the right one passes; /healthz stays open; per-token job cap, job timeout, CORS', async () => {
    const secured = await start({
      dataDir: join(dir, 'secured'),
      tokens: [TOKEN, OTHER],
      webPage: false,
      corsOrigins: ['http://app.test'],
      limits: { perClientJobs: 1, jobTimeoutMs: 300 },
    });
    try {
      const none = await api(secured.base, 'GET', '/v1/jobs');
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, 'ERR_UNAUTHORIZED');
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((await api(secured.base, 'GET', '/v1/jobs', undefined, { authorization: `Bearer ${TOKEN}x` })).status, 401);
      assert.equal((await api(secured.base, 'GET', '/metrics')).status, 401);
      assert.equal((await api(secured.base, 'POST', '/v1/images', example, { 'content-type': 'image/png' })).status, 401);
      assert.equal((await api(secured.base, 'GET', '/v1/jobs', undefined, { authorization: `Bearer ${TOKEN}` })).status, 200);
      assert.equal((await api(secured.base, 'GET', '/healthz')).status, 200);
      // Encoded paths are routed as their decoded selves: they need the token too; so do unknown routes.
      for (const path of ['/%761/jobs', '/v1/%6aobs', '/%6detrics', '/v1/nothing']) {
        assert.equal((await api(secured.base, 'GET', path)).status, 401, path);
      }

      const auth = { authorization: `Bearer ${TOKEN}` };
      const image = (await api(secured.base, 'POST', '/v1/images', example, { ...auth, 'content-type': 'image/png' })).body.id;
      const long = (await api(secured.base, 'POST', '/v1/inversions', { image, steps: 200 }, auth)).body.job.id;
      const second = await api(secured.base, 'POST', '/v1/inversions', { image, steps: 200 }, auth);
      assert.equal(second.status, 429);
      assert.equal(second.body.error.code, 'ERR_TOO_MANY_JOBS');
      // Another token neither sees nor cancels this job.
      const other = { authorization: `Bearer ${OTHER}` };
      assert.equal((await api(secured.base, 'GET', `/v1/jobs/${long}`, undefined, other)).status, 404);
      assert.equal((await api(secured.base, 'DELETE', `/v1/jobs/${long}`, undefined, other)).status, 404);
      assert.equal((await api(secured.base, 'GET', `/v1/jobs/${long}/events`, undefined, other)).status, 404);
      assert.deepEqual((await api(secured.base, 'GET', '/v1/jobs', undefined, other)).body.jobs, []);
      const mine = (await api(secured.base, 'GET', '/v1/jobs', undefined, auth)).body.jobs;
      assert.deepEqual(
        mine.map((j: { id: string }) => j.id),
        [long],
      );
      assert.equal(mine[0].client, undefined, 'the token hash is not shown');
      const timedOut = await waitJob(secured.base, long, auth);
      assert.equal(timedOut.state, 'failed');
      assert.equal(timedOut.error.code, 'ERR_TIMEOUT');

      const cors = await api(secured.base, 'GET', '/v1/jobs', undefined, { ...auth, origin: 'http://app.test' });
      assert.equal(cors.headers.get('access-control-allow-origin'), 'http://app.test');
      const evil = await api(secured.base, 'GET', '/v1/jobs', undefined, { ...auth, origin: 'http://evil.test' });
      assert.equal(evil.headers.get('access-control-allow-origin'), null);
      const preflight = await api(secured.base, 'OPTIONS', `/v1/jobs/${long}`, undefined, {
        origin: 'http://app.test',
        'access-control-request-method': 'DELETE',
      });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /DELETE/);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/);
    } finally {
      await secured.app.close();
    }
  });
});
