// Embedding: an existing fastify app registers `torcheditRoutes` under a prefix (the package's
// `torchedit/server` subpath); its own routes and its own 404s are left alone.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Fastify from 'fastify';
import { torcheditRoutes } from '../../lib/server/index.js';
import { api } from './serverHelpers.js';

test('torcheditRoutes mounts under a prefix in an existing fastify app', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-embed-'));
  const app = Fastify();
  app.get('/hello', async () => ({ hello: 'world' }));
  await app.register(torcheditRoutes, { prefix: '/edit', dataDir: dir, tokens: ['a-token-of-enough-length'] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const base = typeof address === 'object' && address ? `http://127.0.0.1:${address.port}` : '';
  try {
    assert.deepEqual((await api(base, 'GET', '/hello')).body, { hello: 'world' });
    assert.equal((await api(base, 'GET', '/edit/healthz')).body.status, 'ok');
    assert.equal((await api(base, 'GET', '/edit/v1/models')).status, 401);
    const models = await api(base, 'GET', '/edit/v1/models', undefined, { authorization: 'Bearer a-token-of-enough-length' });
    assert.equal(models.body.models[0].name, 'shapes-64');
    const doc = (await api(base, 'GET', '/edit/v1/openapi.json', undefined, { authorization: 'Bearer a-token-of-enough-length' })).body;
    assert.ok(doc.paths['/v1/jobs/{id}/events']);
    assert.equal((await api(base, 'GET', '/edit/')).status, 200);
    const bare = await fetch(`${base}/edit`, { redirect: 'manual' });
    assert.equal(bare.status, 302);
    assert.equal(bare.headers.get('location'), '/edit/');
    // The app's own unknown routes get fastify's own 404, not the service's body.
    const missing = await api(base, 'GET', '/nothing');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, 'Not Found');
    assert.equal(
      (await api(base, 'GET', '/edit/v1/nothing', undefined, { authorization: 'Bearer a-token-of-enough-length' })).body.error.code,
      'ERR_NOT_FOUND',
    );
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
