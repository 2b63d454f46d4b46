// Every option field the native option readers read (native/napi: convert.cc, ledits_bindings.cc,
// imagic_bindings.cc) is passed explicitly by the pipelines, with a value: the C++ option structs
// then need no defaults of their own (the defaults are lib/options/schema.ts's alone). The field
// lists are read from the readers' source, so a field added there is checked here too.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { native } from '../../lib/binding.js';
import { loadModel } from '../../lib/index.js';
import { repoRoot, testBundle } from '../helpers.js';

/** The keys `variable.Get("key")` reads in the function that starts with `header` in a native source file. */
function fieldsRead(file: string, header: string, variable: string): string[] {
  const text = readFileSync(join(repoRoot, 'native', 'napi', file), 'utf8');
  const start = text.indexOf(header);
  assert.ok(start >= 0, `${file}: no ${header}`);
  const body = text.slice(start, text.indexOf('\n}\n', start));
  const keys = [...body.matchAll(new RegExp(`\\b${variable}\\.Get\\("(\\w+)"\\)`, 'g'))].map((m) => m[1]);
  assert.ok(keys.length > 0, `${file} ${header}: no ${variable}.Get("…")`);
  return keys;
}

/** Asserts `object` holds each key with a value (numbers finite; null only where `nullable`). */
function assertExplicit(what: string, object: Record<string, unknown>, keys: string[], nullable: string[] = []): void {
  for (const key of keys) {
    assert.ok(key in object, `${what}: ${key} is not passed`);
    const value = object[key];
    if (value === null && nullable.includes(key)) continue;
    assert.ok(value !== undefined && value !== null, `${what}: ${key} is ${String(value)}`);
    if (typeof value === 'number') assert.ok(Number.isFinite(value), `${what}: ${key} is ${value}`);
  }
}

/** Shadows `holder[name]` with a function that records its arguments and calls the original. */
function spy(holder: object, name: string): { calls: unknown[][]; restore(): void } {
  const own = Object.getOwnPropertyDescriptor(holder, name);
  const original = (holder as Record<string, (...args: unknown[]) => unknown>)[name];
  const calls: unknown[][] = [];
  Object.defineProperty(holder, name, {
    configurable: true,
    writable: true,
    value(this: unknown, ...args: unknown[]) {
      calls.push(args);
      return original.apply(this, args);
    },
  });
  return {
    calls,
    restore: () => {
      if (own) Object.defineProperty(holder, name, own);
      else delete (holder as Record<string, unknown>)[name];
    },
  };
}

test('the pipelines pass every field the native option readers read', async () => {
  const model = await loadModel(testBundle());
  const bindings = native() as unknown as { ledits: object; imagic: object };
  const t2iFields = fieldsRead('convert.cc', 'TextToImageOptions toTextToImageOptions', 'o');

  const generate = spy(model.native, 'textToImage');
  const image = await (await model.generate('a red circle', { steps: 2, seed: 1 })).image.toBuffer('png');
  generate.restore();
  assertExplicit('textToImage', generate.calls[0][2] as Record<string, unknown>, t2iFields);

  const invert = spy(bindings.ledits, 'invert');
  const inversion = await model.invert(image, { steps: 4, seed: 0 });
  invert.restore();
  assertExplicit(
    'ledits.invert',
    invert.calls[0][4] as Record<string, unknown>,
    fieldsRead('ledits_bindings.cc', 'Napi::Value Invert(', 'o'),
  );

  const edit = spy(bindings.ledits, 'edit');
  await inversion.edit({ concepts: [{ prompt: 'blue' }, { prompt: 'red', remove: true, cooldown: 2 }] });
  edit.restore();
  const editOptions = edit.calls[0][7] as Record<string, unknown>;
  assertExplicit('ledits.edit', editOptions, [
    ...fieldsRead('ledits_bindings.cc', 'Napi::Value Edit(', 'o'),
    ...fieldsRead('ledits_bindings.cc', 'SemanticGuidanceOptions toGuidanceOptions', 'o'),
  ]);
  const conceptFields = fieldsRead('ledits_bindings.cc', 'SemanticGuidanceOptions toGuidanceOptions', 'c');
  for (const [i, concept] of (editOptions.concepts as Record<string, unknown>[]).entries()) {
    assertExplicit(`ledits.edit concepts[${i}]`, concept, conceptFields, ['cooldown']); // null: never
  }

  const train = spy(bindings.imagic, 'train');
  const result = await model.imagic(image, 'a blue circle', { embedding: { steps: 1 }, finetune: { steps: 1 }, seed: 0 });
  train.restore();
  const trainOptions = train.calls[0][3] as Record<string, Record<string, unknown>>;
  assertExplicit('imagic.train', trainOptions, fieldsRead('imagic_bindings.cc', 'Napi::Value Train(', 'o'));
  const stageFields = fieldsRead('imagic_bindings.cc', 'ImagicStage toStage', 'o');
  for (const stage of ['embedding', 'finetune']) assertExplicit(`imagic.train ${stage}`, trainOptions[stage], stageFields);

  const sample = spy(bindings.imagic, 'generate');
  await result.generate({ steps: 2, seed: 1 });
  sample.restore();
  assert.equal(typeof sample.calls[0][4], 'number', 'imagic.generate: η');
  assertExplicit('imagic.generate', sample.calls[0][6] as Record<string, unknown>, t2iFields);

  result.dispose();
  inversion.dispose();
  model.dispose();
});
