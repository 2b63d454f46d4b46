// Shared test support: paths, fixtures made by the project's own scripts, and small asserts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, type RawTensor } from '../lib/io/safetensors.js';

/** Compiled tests run from dist/test/, two folders below the repository root. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const python = '/usr/bin/python3';
export const fixturesDir = join(repoRoot, 'test', 'fixtures', 'generated');

/** Runs a Python script of the repository with Debian's torch; throws with its stderr on failure. */
export function runPython(script: string, args: string[], input?: string): string {
  const result = spawnSync(python, [join(repoRoot, script), ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`${script} failed (${result.status}): ${result.stderr || result.error}`);
  return result.stdout;
}

/** The runtime fixtures (scripts/make_fixtures.py); made on first use so a test never silently skips. */
export function runtimeFixture(name: string): string {
  if (!existsSync(join(fixturesDir, 'manifest.json'))) runPython('scripts/make_fixtures.py', [fixturesDir]);
  return join(fixturesDir, name);
}

export async function fixtureTensors(name: string): Promise<Map<string, RawTensor>> {
  return (await readSafetensors(runtimeFixture(name))).tensors;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/**
 * maxAbsDiff relative to the reference's scale, max |reference| (at least `floor`): float32
 * round-off grows with the values, so comparisons after many steps use this.
 */
export function relativeMaxDiff(ours: ArrayLike<number>, reference: ArrayLike<number>, floor = 0): number {
  let scale = floor;
  for (let i = 0; i < reference.length; i++) scale = Math.max(scale, Math.abs(reference[i]));
  return maxAbsDiff(ours, reference) / scale;
}

/** Asserts that a promise rejects (or a function throws) with a TorchEditError of `code`. */
export async function rejectsWithCode(action: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  await assert.rejects(
    async () => (typeof action === 'function' ? action() : action),
    (error: { code?: string; name?: string; message?: string }) => {
      assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
      return true;
    },
  );
}

/**
 * A small random-weight bundle made by scripts/make_test_bundle.py (cached under
 * test/fixtures/generated/bundles/<name>), with the given extra arguments.
 */
export function testBundle(name = 'tiny', args: string[] = []): string {
  const dir = join(fixturesDir, 'bundles', name);
  if (!existsSync(join(dir, 'model.json'))) runPython('scripts/make_test_bundle.py', [dir, ...args]);
  return dir;
}
