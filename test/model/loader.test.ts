import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { loadModel, memory, Tensor } from '../../lib/index.js';
import { python, rejectsWithCode, testBundle } from '../helpers.js';

/** A writable copy of the tiny bundle, changed by `edit`. */
function brokenCopy(edit: (dir: string) => void): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'torchedit-bundle-')), 'bundle');
  cpSync(testBundle(), dir, { recursive: true });
  edit(dir);
  return dir;
}

// biome-ignore lint/suspicious/noExplicitAny: the tests write arbitrary (also wrong) model.json fields
function editJson(dir: string, change: (json: Record<string, any>) => void): void {
  const file = join(dir, 'model.json');
  const json = JSON.parse(readFileSync(file, 'utf8'));
  change(json);
  writeFileSync(file, JSON.stringify(json));
}

async function rejectsNaming(promise: Promise<unknown>, code: string, ...words: string[]): Promise<void> {
  await assert.rejects(promise, (e: { code: string; message: string }) => {
    assert.equal(e.code, code, e.message);
    for (const w of words) assert.ok(e.message.includes(w), `message names ${w}: ${e.message}`);
    return true;
  });
}

test('a valid bundle loads with its config, tokenizer and modules', async () => {
  const model = await loadModel(testBundle());
  assert.equal(model.config.textEncoder.hiddenSize, 32);
  assert.equal(model.imageSize, 64);
  assert.equal(model.device, 'cpu');
  assert.equal(model.dtype, 'float32');
  assert.deepEqual(Array.from(model.tokenizer.encode('a photo of a cat').slice(0, 8)), [49406, 320, 1125, 539, 320, 2368, 49407, 49407]);
  const { unet } = model.modules();
  assert.ok(unet.parameterCount > 1000);
  model.dispose();
  await rejectsWithCode(model.encodePrompt('x'), 'ERR_DISPOSED');
  assert.equal(memory().liveModels, 0);
});

test('missing bundle, missing file, bad JSON and bad fields reject naming the file and field', async () => {
  await rejectsNaming(loadModel('/nonexistent/bundle'), 'ERR_MODEL_NOT_FOUND', '/nonexistent/bundle');
  await rejectsNaming(loadModel(brokenCopy((d) => rmSync(join(d, 'unet.pt')))), 'ERR_MODEL_NOT_FOUND', 'unet.pt');
  await rejectsNaming(loadModel(brokenCopy((d) => rmSync(join(d, 'tokenizer', 'merges.txt')))), 'ERR_MODEL_NOT_FOUND', 'merges.txt');
  await rejectsNaming(
    loadModel(brokenCopy((d) => writeFileSync(join(d, 'model.json'), '{"format": "torchedit-bundle",'))),
    'ERR_MODEL_CONFIG',
    'model.json',
    'not valid JSON',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.formatVersion = 3;
        }),
      ),
    ),
    'ERR_MODEL_VERSION',
    'formatVersion 3',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.format = 'diffusers';
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'format',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.scheduler.betaStart = -1;
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'scheduler.betaStart',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.predictionType = 'sample';
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'predictionType',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          delete j.textEncoder.padTokenId;
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'textEncoder.padTokenId',
  );
  await rejectsNaming(
    loadModel(brokenCopy((d) => writeFileSync(join(d, 'vae_decoder.pt'), 'garbage'))),
    'ERR_MODULE_LOAD',
    'vae_decoder.pt',
  );
});

test('model.json textEncoder.knownTokenIds: sorted unique ids of the vocabulary, or ERR_MODEL_CONFIG naming the field', async () => {
  const withIds = (ids: unknown) =>
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.textEncoder.knownTokenIds = ids;
        }),
      ),
    );
  for (const [ids, field, found] of [
    ['320', 'textEncoder.knownTokenIds', '"320"'],
    [{ 0: 320 }, 'textEncoder.knownTokenIds', '{"0":320}'],
    [[267, '320'], 'textEncoder.knownTokenIds[1]', '"320"'],
    [[267, 320.5], 'textEncoder.knownTokenIds[1]', '320.5'],
    [[-1, 320], 'textEncoder.knownTokenIds[0]', '-1'],
    [[267, 2 ** 24 + 1], 'textEncoder.knownTokenIds[1]', '16777217'],
    [[320, 267], 'textEncoder.knownTokenIds[1]', '267'],
    [[267, 320, 320], 'textEncoder.knownTokenIds[2]', '320'],
    [[320, 49406, 49408], 'textEncoder.knownTokenIds[2]', '49408'], // the CLIP vocabulary's ids are 0–49407
  ] as const) {
    await rejectsNaming(withIds(ids), 'ERR_MODEL_CONFIG', 'model.json', `for ${field} but found ${found}`);
  }
  using model = await loadModel(brokenCopy((d) => editJson(d, (j) => Object.assign(j.textEncoder, { knownTokenIds: [0, 320, 49407] }))));
  assert.deepEqual(model.config.textEncoder.knownTokenIds, [0, 320, 49407]);
  using empty = await withIds([]);
  assert.deepEqual(empty.config.textEncoder.knownTokenIds, []);
});

test('modules that disagree with model.json are rejected at load, naming file and field', async () => {
  await rejectsNaming(
    loadModel(testBundle('bad-unet-channels', ['--variant', 'bad-unet-channels'])),
    'ERR_MODEL_MISMATCH',
    'unet.pt',
    'latentChannels',
  );
  await rejectsNaming(
    loadModel(testBundle('bad-hidden-size', ['--variant', 'bad-hidden-size'])),
    'ERR_MODEL_MISMATCH',
    'text_encoder.pt',
    'hiddenSize',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.latentChannels = 8;
        }),
      ),
    ),
    'ERR_MODEL_MISMATCH',
    'latentChannels',
  );
});

test('a TorchScript file written by a newer torch is reported as such', async () => {
  const dir = brokenCopy((d) => {
    // Rewrite the archive's format version as a newer torch would write it.
    const code = `import zipfile, sys
src = sys.argv[1]; dst = src + '.new'
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
    for item in zin.infolist():
        data = zin.read(item.filename)
        if item.filename.endswith('/version'): data = b'99\\n'
        zout.writestr(item, data)
import os; os.replace(dst, src)`;
    const r = spawnSync(python, ['-c', code, join(d, 'unet.pt')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    editJson(d, (j) => {
      j.exportedWith = { torch: '2.4.0' };
    });
  });
  await rejectsNaming(loadModel(dir), 'ERR_MODEL_TORCH_VERSION', 'unet.pt', '2.4.0', '1.13');
});

test('bad load options reject', async () => {
  await rejectsWithCode(loadModel(testBundle(), { device: 'cuda:0' }), 'ERR_DEVICE_UNAVAILABLE');
  await rejectsWithCode(loadModel(testBundle(), { dtype: 'int8' as never }), 'ERR_INVALID_OPTION');
  await rejectsWithCode(loadModel(''), 'ERR_INVALID_OPTION');
  assert.ok(Tensor);
});

test('model.json `recommended` replaces the library defaults for that model; options still win; bad values are rejected', async () => {
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.recommended = { edit: { skipFraction: 1.5 } };
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'recommended.edit.skipFraction',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.recommended = { edits: {} };
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'recommended.edits',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.recommended = { concept: { scale: 'big' } };
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'recommended.concept.scale',
  );
  await rejectsNaming(
    loadModel(
      brokenCopy((d) =>
        editJson(d, (j) => {
          j.recommended = { imagic: { embedding: { steps: 0, lr: 1 } } };
        }),
      ),
    ),
    'ERR_MODEL_CONFIG',
    'recommended.imagic.embedding',
  );

  const dir = brokenCopy((d) =>
    editJson(d, (j) => {
      j.recommended = {
        inversion: { steps: 12 },
        edit: { skipFraction: 0.5, guidanceScale: 4 },
        concept: { scale: 3 },
        textToImage: { steps: 4 },
      };
    }),
  );
  using plain = await loadModel(testBundle());
  using model = await loadModel(dir);
  assert.deepEqual(model.config.recommended?.edit, { skipFraction: 0.5, guidanceScale: 4 });
  using image = Tensor.randn([1, 3, 64, 64], { seed: 3 });
  using inversion = await model.invert(image, { seed: 2 });
  assert.equal(inversion.settings.steps, 12, 'the recommended inversion steps');
  const concepts = [{ prompt: 'blue' }];
  const latents = async (options: Parameters<typeof inversion.edit>[0]) => {
    using r = await inversion.edit(options);
    return r.latents.data();
  };
  // the model's defaults are what an explicit skip 6 / guidance 4 / scale 3 gives, not the library's
  const byDefault = await latents({ targetPrompt: 'a cat', concepts });
  assert.deepEqual(
    byDefault,
    await latents({ targetPrompt: 'a cat', concepts: [{ prompt: 'blue', scale: 3 }], skip: 6, guidanceScale: 4 }),
  );
  assert.notDeepEqual(
    byDefault,
    await latents({ targetPrompt: 'a cat', concepts: [{ prompt: 'blue', scale: 7 }], skip: 6, guidanceScale: 4 }),
  );
  // text-to-image: 4 steps recommended; the plain bundle's default (50) differs
  const t2i = async (m: typeof model, steps?: number) => {
    using r = await m.generate('x', { seed: 1, ...(steps ? { steps } : {}) });
    return r.latents.data();
  };
  assert.deepEqual(await t2i(model), await t2i(plain, 4));
  assert.notDeepEqual(await t2i(plain), await t2i(plain, 4));
});
