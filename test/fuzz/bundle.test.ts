// Model bundles made hostile: model.json with wrong types, out-of-range numbers, extra and missing
// fields; each file of the folder empty, truncated, random, missing, a folder, a symlink out of the
// bundle (to /dev/zero, /dev/null, a FIFO, another file) or a symlink loop. loadModel must end in a
// model (that then generates) or a documented error.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { loadModel } from '../../lib/index.js';
import { bundleFiles } from '../../lib/model/config.js';
import { rejectsWithCode, testBundle } from '../helpers.js';
import { jsonish, shown } from './arbitraries.js';
import { budget } from './budget.js';
import { endsWell } from './outcome.js';

const base = testBundle();
const work = mkdtempSync(join(tmpdir(), 'torchedit-fuzz-bundle-'));
const fifo = join(work, 'fifo');
execFileSync('mkfifo', [fifo]);
after(() => rmSync(work, { recursive: true, force: true }));

const files = ['model.json', ...bundleFiles];

/** What a file of the bundle becomes. */
type FileChange =
  | { kind: 'bytes'; bytes: (original: Buffer) => Buffer; label: string }
  | { kind: 'missing' | 'folder' | 'loop' }
  | { kind: 'link'; target: string };

const fileChange: fc.Arbitrary<FileChange> = fc.oneof(
  fc.constant<FileChange>({ kind: 'bytes', bytes: () => Buffer.alloc(0), label: 'empty' }),
  fc.double({ min: 0, max: 1, noNaN: true }).map<FileChange>((at) => ({
    kind: 'bytes',
    bytes: (b) => b.subarray(0, Math.floor(b.length * at)),
    label: `truncated at ${at.toFixed(3)}`,
  })),
  fc
    .uint8Array({ maxLength: 512 })
    .map<FileChange>((r) => ({ kind: 'bytes', bytes: () => Buffer.from(r), label: `random ${r.length} bytes` })),
  fc
    .array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 })
    .map<FileChange>((flips) => ({
      kind: 'bytes',
      bytes: (b) => {
        const out = Buffer.from(b);
        for (const [at, xor] of flips) if (out.length > 0) out[Math.floor(at * (out.length - 1))] ^= xor;
        return out;
      },
      label: `flipped ${shown(flips)}`,
    })),
  fc.constantFrom<FileChange>({ kind: 'missing' }, { kind: 'folder' }, { kind: 'loop' }),
  fc.constantFrom('/dev/zero', '/dev/null', '/etc/hostname', fifo, '/').map<FileChange>((target) => ({ kind: 'link', target })),
);

/** A change to model.json's value: a field (nested too) set to any JSON value, removed or added. */
const jsonChange = fc.oneof(
  fc.tuple(fc.nat(), fc.nat(), jsonish).map(([i, j, v]) => ({ path: [i, j], value: v as unknown, remove: false })),
  fc.tuple(fc.nat(), fc.nat()).map(([i, j]) => ({ path: [i, j], value: undefined as unknown, remove: true })),
  fc.tuple(fc.string({ maxLength: 8 }), jsonish).map(([key, v]) => ({ path: [key], value: v as unknown, remove: false })),
);

/** Applies a change: numbers pick a key of the object at that depth (the second only when it is an object). */
function changeJson(json: Record<string, unknown>, change: { path: (number | string)[]; value: unknown; remove: boolean }): string {
  const copy = structuredClone(json);
  let target: Record<string, unknown> = copy;
  let key = '';
  for (const [depth, step] of change.path.entries()) {
    const keys = Object.keys(target);
    key = typeof step === 'string' ? step : keys[step % keys.length];
    const inner = target[key];
    if (depth + 1 < change.path.length && typeof inner === 'object' && inner !== null && !Array.isArray(inner))
      target = inner as Record<string, unknown>;
    else break;
  }
  if (change.remove) delete target[key];
  else target[key] = change.value;
  return JSON.stringify(copy);
}

let made = 0;

/** A new bundle folder of symlinks to the tiny bundle, but for `changes`. */
function bundle(changes: Map<string, FileChange>, modelJson?: string): string {
  const dir = join(work, `bundle-${made++}`);
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  for (const name of files) {
    const path = join(dir, name);
    const change = changes.get(name);
    if (name === 'model.json' && modelJson !== undefined && change === undefined) writeFileSync(path, modelJson);
    else if (change === undefined) symlinkSync(join(base, name), path);
    else if (change.kind === 'bytes') writeFileSync(path, change.bytes(readFileSync(join(base, name))));
    else if (change.kind === 'folder') mkdirSync(path);
    else if (change.kind === 'loop') symlinkSync(path, path);
    else if (change.kind === 'link') symlinkSync(change.target, path);
  }
  return dir;
}

const loadCodes = [
  'ERR_MODEL_NOT_FOUND',
  'ERR_MODEL_CONFIG',
  'ERR_MODEL_VERSION',
  'ERR_MODEL_LOAD',
  'ERR_MODEL_MISMATCH',
  'ERR_MODEL_TORCH_VERSION',
  'ERR_MODULE_LOAD',
] as const;

/** Loads the bundle and, when it loads, generates one step from it. */
async function loadAndGenerate(dir: string): Promise<void> {
  const loaded = await endsWell(() => loadModel(dir), loadCodes);
  if (!loaded.ok) return;
  using model = loaded.value;
  const generated = await endsWell(
    () => model.generate('a red circle', { steps: 1, seed: 0, signal: AbortSignal.timeout(20_000) }),
    ['ERR_ABORTED', 'ERR_FORWARD'],
  );
  if (generated.ok) generated.value.dispose();
}

const baseJson = JSON.parse(readFileSync(join(base, 'model.json'), 'utf8')) as Record<string, unknown>;

test('model.json with fields of any type and value loads or is refused with a documented code', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(jsonChange, { minLength: 1, maxLength: 3 }), async (changes) => {
      const json = changes.reduce<string>((text, change) => changeJson(JSON.parse(text), change), JSON.stringify(baseJson));
      const dir = bundle(new Map(), json);
      await loadAndGenerate(dir);
      rmSync(dir, { recursive: true });
    }),
    budget(40),
  );
});

test('bundle files that are empty, truncated, random, missing, folders or symlinks out load or are refused', async () => {
  await fc.assert(
    fc.asyncProperty(fc.dictionary(fc.constantFrom(...files), fileChange, { minKeys: 1, maxKeys: 2 }), async (changes) => {
      const dir = bundle(new Map(Object.entries(changes)));
      await loadAndGenerate(dir);
      rmSync(dir, { recursive: true });
    }),
    budget(40, 5),
  );
});

test('regression: a sampleSize that is not a multiple of 8 is ERR_MODEL_CONFIG, not a model whose every default call fails', async () => {
  const dir = bundle(new Map(), JSON.stringify({ ...baseJson, sampleSize: 63 }));
  await rejectsWithCode(loadModel(dir), 'ERR_MODEL_CONFIG');
});

test('regression: a bundle file that is a FIFO or /dev/zero is refused at once, not read forever', async () => {
  for (const target of [fifo, '/dev/zero']) {
    for (const name of ['model.json', 'tokenizer/vocab.json', 'unet.pt']) {
      const dir = bundle(new Map([[name, { kind: 'link', target } as FileChange]]));
      await rejectsWithCode(loadModel(dir), 'ERR_MODEL_NOT_FOUND');
      rmSync(dirname(join(dir, 'model.json')), { recursive: true });
    }
  }
});
