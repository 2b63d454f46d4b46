// Images made hostile, generated with sharp: PNG, JPEG, WebP, GIF and TIFF; grey, grey + alpha, RGB,
// RGBA, 16-bit, CMYK, animated, every EXIF orientation; then truncated, with flipped bytes, or a
// PNG whose header declares a huge size (a decompression bomb), or random bytes. readImage and
// model.invert must end in pixels or ERR_IMAGE_READ, in bounded time.
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import sharp from 'sharp';
import { loadModel, readImage, type StableDiffusionModel } from '../../lib/index.js';
import { rejectsWithCode } from '../helpers.js';
import { shown } from './arbitraries.js';
import { budget } from './budget.js';
import { endsWell } from './outcome.js';

const formats = ['png', 'jpeg', 'webp', 'gif', 'tiff'] as const;

const imageSpec = fc.record({
  format: fc.constantFrom(...formats),
  width: fc.integer({ min: 1, max: 96 }),
  height: fc.integer({ min: 1, max: 96 }),
  channels: fc.constantFrom(1, 2, 3, 4),
  pages: fc.constantFrom(1, 1, 1, 3),
  deep: fc.boolean(),
  cmyk: fc.boolean(),
  orientation: fc.integer({ min: 0, max: 8 }),
  seed: fc.nat(),
});
type ImageSpec = typeof imageSpec extends fc.Arbitrary<infer T> ? T : never;

/** Encodes random pixels as `spec` says; null when sharp cannot write that combination. */
async function encode(spec: ImageSpec): Promise<Buffer | null> {
  const { format, width, height, channels, pages, deep, cmyk, orientation } = spec;
  const count = width * height * pages * channels;
  let state = spec.seed | 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const pixels = deep ? new Uint16Array(count).map(() => next() & 0xffff) : new Uint8Array(count).map(() => next() & 0xff);
  try {
    let image = sharp(pixels, { raw: { width, height: height * pages, channels: channels as 1 | 2 | 3 | 4, pageHeight: height } });
    if (deep) image = image.toColourspace(channels <= 2 ? 'grey16' : 'rgb16');
    if (cmyk) image = image.toColourspace('cmyk');
    if (orientation > 0) image = image.withMetadata({ orientation });
    return await image.toFormat(format).toBuffer();
  } catch {
    return null;
  }
}

/** Sets a PNG's declared width and height (IHDR) and fixes its CRC, leaving the pixels as they are. */
function declareSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

const corruption = fc
  .oneof(
    { weight: 3, arbitrary: fc.constant({ label: 'intact', apply: (b: Buffer) => b }) },
    {
      weight: 2,
      arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((at) => ({
        label: `truncated at ${at.toFixed(3)}`,
        apply: (b: Buffer) => b.subarray(0, Math.floor(b.length * at)),
      })),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 })
        .map((flips) => ({
          label: `flipped ${shown(flips)}`,
          apply: (b: Buffer) => {
            const out = Buffer.from(b);
            for (const [at, xor] of flips) out[Math.floor(at * (out.length - 1))] ^= xor;
            return out;
          },
        })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(1, 64, 20_000, 65_535, 100_000, 2 ** 31 - 1), fc.constantFrom(1, 64, 20_000, 65_535, 100_000, 2 ** 31 - 1))
        .map(([w, h]) => ({
          label: `declares ${w}×${h}`,
          apply: (b: Buffer) => (b.subarray(1, 4).toString() === 'PNG' ? declareSize(b, w, h) : b),
        })),
    },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 300 }).map((r) => ({ label: `random ${r.length} bytes`, apply: () => Buffer.from(r) })),
    },
  )
  .map((c) => Object.assign(c, { [fc.toStringMethod]: () => c.label }));

/** Checks a decoded image: the asked size, every value finite and in [-1, 1]. */
function checkPixels(image: { data: Float32Array; shape: number[] }, width: number, height: number): void {
  assert.deepEqual(image.shape, [1, 3, height, width]);
  assert.ok(
    image.data.every((v) => Number.isFinite(v) && v >= -1 && v <= 1),
    'pixels in [-1, 1]',
  );
}

test('any image, intact or broken, reads into [-1, 1] or is ERR_IMAGE_READ', async () => {
  await fc.assert(
    fc.asyncProperty(
      imageSpec,
      corruption,
      fc.constantFrom('cover', 'contain', 'fill') as fc.Arbitrary<'cover' | 'contain' | 'fill'>,
      async (spec, broken, resize) => {
        const bytes = await encode(spec);
        fc.pre(bytes !== null);
        const input = broken.apply(bytes!);
        const read = await endsWell(() => readImage(input, { width: 64, height: 48, resize }), ['ERR_IMAGE_READ'], 20_000);
        if (read.ok) checkPixels(read.value, 64, 48);
      },
    ),
    budget(150, 5),
  );
});

let model: StableDiffusionModel;
before(async () => {
  model = await loadModel();
});
after(() => model?.dispose());

test('any image inverts or is ERR_IMAGE_READ', async () => {
  await fc.assert(
    fc.asyncProperty(imageSpec, corruption, async (spec, broken) => {
      const bytes = await encode(spec);
      fc.pre(bytes !== null);
      const inverted = await endsWell(() => model.invert(broken.apply(bytes!), { steps: 1, seed: 0 }), ['ERR_IMAGE_READ'], 20_000);
      if (inverted.ok) inverted.value.dispose();
    }),
    budget(20),
  );
});

test('regression: a small PNG declaring 2^31 − 1 × 2^31 − 1 pixels is refused from its header', async () => {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } })
    .png()
    .toBuffer();
  const start = performance.now();
  await rejectsWithCode(readImage(declareSize(png, 2 ** 31 - 1, 2 ** 31 - 1), { width: 64, height: 64 }), 'ERR_IMAGE_READ');
  assert.ok(performance.now() - start < 5000);
});
