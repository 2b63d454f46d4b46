// The service's storage alone (no model): atomic writes survive a reopen, temporary files of an
// interrupted write are removed, counts per kind evict the least recently used, the TTL sweeper
// deletes what was not used, and ids that are not ids never reach the file system.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Storage } from '../../lib/server/storage.js';

const limits = (image: number, ttlMs = 0) => ({ counts: { image, inversion: 10, result: 10, imagic: 1 }, cacheBytes: 1 << 20, ttlMs });

test('storage: reopen keeps every object, drops half-written ones, evicts by count and by TTL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'torchedit-storage-'));
  try {
    const store = new Storage(dir, limits(2));
    await store.open();
    const a = await store.putBytes('image', Buffer.from('a'), { format: 'png' });
    const b = await store.putBytes('image', Buffer.from('bb'), { format: 'png' });
    await store.getBytes('image', a.id); // a is now the most recently used
    const c = await store.putBytes('image', Buffer.from('ccc'), { format: 'png' });
    assert.equal(store.count('image'), 2);
    assert.ok(store.has('image', a.id) && store.has('image', c.id) && !store.has('image', b.id), 'the least recently used (b) goes');
    assert.ok(!existsSync(store.path('image', b.id)));
    // A write interrupted before its rename leaves a temporary file; a file without its sidecar is a half-deleted entry.
    writeFileSync(join(dir, 'images', `${'1'.repeat(32)}.tmp-abc.bin`), 'x');
    writeFileSync(join(dir, 'images', `${'2'.repeat(32)}.bin`), 'x');
    writeFileSync(join(dir, 'images', `${'3'.repeat(32)}.json`), '{}'); // and a sidecar without its file
    store.close();

    const reopened = new Storage(dir, limits(2, 60_000));
    await reopened.open();
    assert.deepEqual((await reopened.getBytes('image', a.id))?.bytes.toString(), 'a');
    assert.deepEqual((await reopened.getBytes('image', c.id))?.meta.bytes, 3);
    assert.equal(reopened.count('image'), 2);
    const left = readdirSync(join(dir, 'images'));
    assert.ok(!left.some((f) => f.includes('.tmp-') || f.startsWith('2'.repeat(32)) || f.startsWith('3'.repeat(32))), left.join(', '));
    for (const bad of ['../jobs.jsonl', `${a.id}/..`, a.id.toUpperCase(), '', null, 42]) {
      assert.equal(reopened.has('image', bad), false);
      assert.equal(await reopened.getBytes('image', bad), undefined);
    }
    assert.equal(await reopened.sweep(Date.now()), 0);
    assert.equal(await reopened.sweep(Date.now() + 120_000), 2);
    assert.equal(reopened.count('image'), 0);
    assert.deepEqual(
      readdirSync(join(dir, 'images')).filter((f) => !f.startsWith('2')),
      [],
    );
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
