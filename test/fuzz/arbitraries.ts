// Hostile values shared by the fuzz properties: any JavaScript value an option may receive, text
// that breaks tokenizers, and edits of a valid safetensors file (the format of every artifact).
import fc from 'fast-check';

/** Numbers at the edges: NaN, ±Infinity, -0, past 2^53, tiny, huge, negative. */
export const edgeNumber = fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, 0.5, 1, -1, 2 ** 31, 2 ** 53 + 2, 2 ** 64, 1e308, 5e-324, -1e9);

/** Any JSON value, with edge numbers (what a file's JSON may hold; NaN and ±Infinity become null). */
export const jsonish: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 2, arbitrary: edgeNumber },
  { weight: 2, arbitrary: fc.integer({ min: -5, max: 2000 }) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, '', [], {}) },
);

/**
 * Any value a caller might pass where an option goes: JSON (objects, arrays, strings, numbers),
 * the edge numbers, bigints, undefined, symbols and functions.
 */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 3, arbitrary: edgeNumber },
  { weight: 2, arbitrary: fc.integer({ min: -5, max: 2000 }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }) },
  { weight: 1, arbitrary: fc.constantFrom(undefined, null, true, false, '', Symbol('x'), () => 1, [], {}, new Date(0)) },
);

/** One character of hostile text: any code point, lone surrogates, NUL, controls, CLIP's special tokens, HTML entities. */
const hostileChunk = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '\0',
      '\u0345',
      '\u017f',
      'İ',
      '\ufeff',
      '\u0085',
      '\u001c',
      '<|startoftext|>',
      '<|endoftext|>',
      '<|ENDOFTEXT|>',
      '&amp;amp;',
      '&#0;',
      '&#x110000;',
      '&#xd800;',
      '&copy2024',
      "'s",
      ' \t\n ',
      'a'.repeat(200),
      '丁丂七丄丅丆万丈三上下',
    ),
  },
);

/** Prompts: short and hostile, or very long. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.array(hostileChunk, { maxLength: 12 }).map((parts) => parts.join('')) },
  { weight: 1, arbitrary: fc.tuple(hostileChunk, fc.integer({ min: 1000, max: 20000 })).map(([s, n]) => (s || 'x').repeat(n)) },
);

/** A safetensors file split into its JSON header (parsed) and its data bytes. */
export interface SafetensorsParts {
  header: Record<string, unknown>;
  data: Buffer;
}

export function splitSafetensors(bytes: Buffer): SafetensorsParts {
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')), data: bytes.subarray(8 + length) };
}

/** A safetensors file from header text and data; `declared` overrides the header length prefix. */
export function joinSafetensors(headerText: string, data: Buffer, declared?: bigint): Buffer {
  const header = Buffer.from(headerText, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declared ?? BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}

/** One entry of a header: a tensor's `{ dtype, shape, data_offsets }`. */
type Entry = Record<string, unknown>;

/** How a counterexample is shown: fast-check prints a value with its toString method. */
export function shown(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' || value === undefined || typeof value === 'symbol' || typeof value === 'function') return String(value);
  try {
    const text = JSON.stringify(value) ?? String(value);
    return text.length > 120 ? `${text.slice(0, 120)}…` : text;
  } catch {
    return String(value);
  }
}

/** A function with a readable name, for counterexamples. */
function labelled<F extends object>(label: string, fn: F): F {
  return Object.assign(fn, { [fc.toStringMethod]: () => label, toString: () => label });
}

/** Changes to a tensor's entry: every field wrong in type or value, or the entry itself. */
const entryChange: fc.Arbitrary<(entry: Entry) => unknown> = fc.oneof(
  jsonish.map((v) => labelled(`entry = ${shown(v)}`, () => v)),
  fc
    .tuple(fc.constantFrom('dtype', 'shape', 'data_offsets'), jsonish)
    .map(([key, v]) => labelled(`${key} = ${shown(v)}`, (e: Entry) => ({ ...e, [key]: v }))),
  fc.constantFrom('dtype', 'shape', 'data_offsets').map((key) =>
    labelled(`no ${key}`, (e: Entry) => {
      const { [key]: _, ...rest } = e;
      return rest;
    }),
  ),
  fc
    .constantFrom('F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'U64', 'f32', '')
    .map((dtype) => labelled(`dtype = ${dtype}`, (e: Entry) => ({ ...e, dtype }))),
  fc
    .array(fc.oneof(fc.integer({ min: -2, max: 70 }), edgeNumber), { maxLength: 6 })
    .map((shape) => labelled(`shape = ${shown(shape)}`, (e: Entry) => ({ ...e, shape }))),
  fc
    .tuple(fc.oneof(fc.integer({ min: -8, max: 1 << 20 }), edgeNumber), fc.oneof(fc.integer({ min: -8, max: 1 << 20 }), edgeNumber))
    .map((offsets) => labelled(`data_offsets = ${shown(offsets)}`, (e: Entry) => ({ ...e, data_offsets: offsets }))),
  // Overlapping the first tensor's bytes.
  fc.constant(
    labelled('data_offsets from 0', (e: Entry) => ({
      ...e,
      data_offsets: [0, (e.data_offsets as number[])[1] - (e.data_offsets as number[])[0]],
    })),
  ),
);

/** Changes to `__metadata__`: wrong types, wrong settings, another model's fingerprint, another format. */
const metadataChange: fc.Arbitrary<(metadata: Record<string, unknown>) => unknown> = fc.oneof(
  jsonish.map((v) => labelled(`__metadata__ = ${shown(v)}`, () => v)),
  fc
    .tuple(fc.constantFrom('format', 'version', 'settings', 'modelFingerprint', 'modelName', 'extra'), jsonish)
    .map(([key, v]) => labelled(`__metadata__.${key} = ${shown(v)}`, (m: Record<string, unknown>) => ({ ...m, [key]: v }))),
  fc.constantFrom('format', 'version', 'settings', 'modelFingerprint').map((key) =>
    labelled(`no __metadata__.${key}`, (m: Record<string, unknown>) => {
      const { [key]: _, ...rest } = m;
      return rest;
    }),
  ),
  // settings that parse, with one field of the wrong type or range (a known one or a new one)
  fc.tuple(fc.nat(), fc.boolean(), jsonish).map(([i, known, v]) =>
    labelled(`settings field ${known ? `#${i}` : `'x${i}'`} = ${shown(v)}`, (m: Record<string, unknown>) => {
      const settings = JSON.parse(m.settings as string) as Record<string, unknown>;
      const keys = Object.keys(settings);
      const key = known ? keys[i % keys.length] : `x${i}`;
      return { ...m, settings: JSON.stringify({ ...settings, [key]: v }) };
    }),
  ),
  fc
    .string({ maxLength: 30 })
    .map((text) => labelled(`settings = ${shown(text)}`, (m: Record<string, unknown>) => ({ ...m, settings: text }))),
);

/** A change to a file's bytes, shown by its label in counterexamples. */
export interface Mutation {
  label: string;
  apply: (file: Buffer) => Buffer;
}

/**
 * A change to a valid safetensors file, as bytes: random bytes, truncation, a header length past the
 * end or near 2^64, a header that is not JSON or not an object, changed or missing entries,
 * duplicate names, changed metadata, flipped bytes anywhere.
 */
export const safetensorsMutation: fc.Arbitrary<Mutation> = fc
  .oneof(
    fc
      .uint8Array({ maxLength: 256 })
      .map((bytes) => ({ label: `random bytes ${Buffer.from(bytes).toString('hex')}`, apply: () => Buffer.from(bytes) })),
    fc.double({ min: 0, max: 1, noNaN: true }).map((at) => ({
      label: `truncated at ${at.toFixed(3)}`,
      apply: (file: Buffer) => file.subarray(0, Math.floor(file.length * at)),
    })),
    fc
      .oneof(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.constantFrom(2n ** 64n - 1n, 2n ** 63n, 2n ** 53n + 1n, 2n ** 32n, 0n, 1n, 7n),
        fc.bigInt({ min: 2n ** 64n - 4096n, max: 2n ** 64n - 1n }),
      )
      .map((declared) => ({
        label: `header length ${declared}`,
        apply: (file: Buffer) => {
          const out = Buffer.from(file);
          out.writeBigUInt64LE(declared);
          return out;
        },
      })),
    fc.tuple(fc.nat(), entryChange).map(([i, change]) => ({
      label: `tensor #${i}: ${String(change)}`,
      apply: (file: Buffer) => {
        const { header, data } = splitSafetensors(file);
        const names = Object.keys(header).filter((n) => n !== '__metadata__');
        const name = names[i % names.length];
        return joinSafetensors(JSON.stringify({ ...header, [name]: change(header[name] as Entry) }) ?? 'null', data);
      },
    })),
    fc.tuple(fc.nat(), fc.boolean()).map(([i, first]) => ({
      label: `${first ? 'missing' : 'duplicate'} tensor #${i}`,
      apply: (file: Buffer) => {
        const { header, data } = splitSafetensors(file);
        const names = Object.keys(header).filter((n) => n !== '__metadata__');
        const name = names[i % names.length];
        if (first) {
          const { [name]: _, ...rest } = header;
          return joinSafetensors(JSON.stringify(rest), data);
        }
        // The same name twice, the first occurrence pointing at other bytes (JSON.parse keeps the last).
        const other = header[names[(i + 1) % names.length]];
        const text = JSON.stringify(header).replace(/^\{/, `{${JSON.stringify(name)}:${JSON.stringify(other)},`);
        return joinSafetensors(text, data);
      },
    })),
    metadataChange.map((change) => ({
      label: String(change),
      apply: (file: Buffer) => {
        const { header, data } = splitSafetensors(file);
        return joinSafetensors(JSON.stringify({ ...header, __metadata__: change(header.__metadata__ as Record<string, unknown>) }), data);
      },
    })),
    fc.oneof(jsonish, fc.string({ unit: 'binary', maxLength: 40 })).map((v) => ({
      label: `header = ${shown(v)}`,
      apply: (file: Buffer) => joinSafetensors(typeof v === 'string' ? v : (JSON.stringify(v) ?? ''), splitSafetensors(file).data),
    })),
    // Mostly in the first 2 KiB, where the length and the header are.
    fc
      .array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 })
      .map((flips) => ({
        label: `flipped bytes ${shown(flips)}`,
        apply: (file: Buffer) => {
          const out = Buffer.from(file);
          const span = Math.min(out.length, 2048);
          for (const [at, xor] of flips) out[Math.min(span - 1, Math.floor(at * span))] ^= xor;
          return out;
        },
      })),
  )
  .map((m) => labelled(m.label, m));
