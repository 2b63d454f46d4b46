import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { TorchEditError } from '../../lib/errors.js';
import { checkImageSize, readImage, type ImageData, type ResizeMode } from '../../lib/image/read.js';
import { ImageResult, type ImageFormat } from '../../lib/image/write.js';

type Rgb = readonly [number, number, number];

const RED: Rgb = [255, 0, 0];
const GREEN: Rgb = [0, 255, 0];
const BLUE: Rgb = [0, 0, 255];
const YELLOW: Rgb = [255, 255, 0];
const MAGENTA: Rgb = [255, 0, 255];
const CYAN: Rgb = [0, 255, 255];
const BLACK: Rgb = [0, 0, 0];

/**
 * The synthetic 100×60 test picture: a magenta band on the left (x < 20), a
 * cyan band on the right (x ≥ 80), and between them a 60×60 square of four
 * quadrants: red | green over blue | yellow.
 */
const SRC_W = 100;
const SRC_H = 60;
function sourceColour(x: number, y: number): Rgb {
  if (x < 20) return MAGENTA;
  if (x >= 80) return CYAN;
  if (y < 30) return x < 50 ? RED : GREEN;
  return x < 50 ? BLUE : YELLOW;
}
const X_EDGES = [20, 50, 80];
const Y_EDGES = [30];

function syntheticRgb(): Buffer {
  const raw = Buffer.alloc(SRC_W * SRC_H * 3);
  for (let y = 0; y < SRC_H; y++) {
    for (let x = 0; x < SRC_W; x++) raw.set(sourceColour(x, y), (y * SRC_W + x) * 3);
  }
  return raw;
}
const synthetic = () => sharp(syntheticRgb(), { raw: { width: SRC_W, height: SRC_H, channels: 3 } });

/** Tolerance for values that should be exact, allowing only float32 rounding. */
const EXACT = 1e-4;
/** Largest difference (in 0–255 levels) tolerated per input encoding, in flat areas. */
const TOLERANCE = { png: 1, jpeg: 16, webp: 16 } as const;
const FORMATS = ['png', 'jpeg', 'webp'] as const;
const MODES: ResizeMode[] = ['cover', 'contain', 'fill'];
const SIZES = [
  [64, 64],
  [128, 64],
] as const;

let dir: string;
const files: Record<(typeof FORMATS)[number], string> = { png: '', jpeg: '', webp: '' };

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torchedit-'));
  files.png = path.join(dir, 'quadrants.png');
  files.jpeg = path.join(dir, 'quadrants.jpg');
  files.webp = path.join(dir, 'quadrants.webp');
  await synthetic().png().toFile(files.png);
  await synthetic().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toFile(files.jpeg);
  await synthetic().webp({ quality: 95 }).toFile(files.webp);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The pixel at (x, y) of a read image, back in 0–255 levels. */
function pixel(image: ImageData, x: number, y: number): Rgb {
  const [, , h, w] = image.shape;
  assert.ok(x >= 0 && x < w && y >= 0 && y < h, `pixel (${x}, ${y}) outside ${w}×${h}`);
  const at = (c: number) => (image.data[c * w * h + y * w + x] + 1) * 127.5;
  return [at(0), at(1), at(2)];
}

function assertColour(actual: Rgb, expected: Rgb, tolerance: number, where: string): void {
  const diff = Math.max(...actual.map((v, c) => Math.abs(v - expected[c])));
  assert.ok(diff <= tolerance, `${where}: got [${actual.map((v) => v.toFixed(1))}], expected [${expected}]`);
}

function assertShape(image: ImageData, width: number, height: number): void {
  assert.deepEqual(image.shape, [1, 3, height, width]);
  assert.ok(image.data instanceof Float32Array);
  assert.equal(image.data.length, 3 * width * height);
  for (const v of image.data) assert.ok(v >= -1 && v <= 1, `value ${v} outside [-1, 1]`);
}

/**
 * Where output pixel (x, y) comes from in the source under each resize mode,
 * and how far (in output pixels) that is from the nearest colour edge.
 * Returns null when the pixel is padding.
 */
function expectedAt(mode: ResizeMode, w: number, h: number, x: number, y: number) {
  let sx: number, sy: number, scaleX: number, scaleY: number;
  if (mode === 'fill') {
    [scaleX, scaleY] = [w / SRC_W, h / SRC_H];
    [sx, sy] = [(x + 0.5) / scaleX, (y + 0.5) / scaleY];
  } else {
    const scale = (mode === 'cover' ? Math.max : Math.min)(w / SRC_W, h / SRC_H);
    [scaleX, scaleY] = [scale, scale];
    sx = (x + 0.5 - (w - SRC_W * scale) / 2) / scale;
    sy = (y + 0.5 - (h - SRC_H * scale) / 2) / scale;
  }
  // In 'contain' the image edges border the padding; elsewhere they are not colour edges.
  const xEdges = mode === 'contain' ? [0, ...X_EDGES, SRC_W] : X_EDGES;
  const yEdges = mode === 'contain' ? [0, ...Y_EDGES, SRC_H] : Y_EDGES;
  const distance = Math.min(...xEdges.map((e) => Math.abs(sx - e) * scaleX), ...yEdges.map((e) => Math.abs(sy - e) * scaleY));
  const inside = sx >= 0 && sx < SRC_W && sy >= 0 && sy < SRC_H;
  return { colour: inside ? sourceColour(Math.floor(sx), Math.floor(sy)) : null, distance };
}

/** Compare every pixel at least `margin` output pixels from a colour edge with the model. */
function assertMatchesModel(image: ImageData, mode: ResizeMode, tolerance: number, background: Rgb): Set<string> {
  const [, , h, w] = image.shape;
  const seen = new Set<string>();
  let checked = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const { colour, distance } = expectedAt(mode, w, h, x, y);
      if (distance < 5) continue; // Lanczos-3 support plus rounding of the crop/pad offset
      const expected = colour ?? background;
      assertColour(pixel(image, x, y), expected, tolerance, `${mode} ${w}×${h} at (${x}, ${y})`);
      seen.add(colour === null ? 'padding' : expected.join());
      checked++;
    }
  }
  assert.ok(checked > (w * h) / 6, `only ${checked} pixels far enough from edges to check`);
  return seen;
}

describe('readImage resize modes', () => {
  for (const format of FORMATS) {
    for (const mode of MODES) {
      for (const [w, h] of SIZES) {
        test(`${format} → ${mode} ${w}×${h}`, async () => {
          const image = await readImage(files[format], { width: w, height: h, resize: mode });
          assertShape(image, w, h);
          const seen = assertMatchesModel(image, mode, TOLERANCE[format], BLACK);
          for (const c of [RED, GREEN, BLUE, YELLOW]) assert.ok(seen.has(c.join()), `no ${c} region found`);
          assert.equal(seen.has('padding'), mode === 'contain');
        });
      }
    }
  }

  test('cover crops the sides: at 64×64 the bands are gone, the quadrants fill the frame', async () => {
    const image = await readImage(files.png, { width: 64, height: 64 }); // default mode is cover
    assertColour(pixel(image, 1, 1), RED, 1, 'top-left');
    assertColour(pixel(image, 62, 1), GREEN, 1, 'top-right');
    assertColour(pixel(image, 1, 62), BLUE, 1, 'bottom-left');
    assertColour(pixel(image, 62, 62), YELLOW, 1, 'bottom-right');
  });

  test('cover at 128×64 keeps the full width and crops top and bottom', async () => {
    const image = await readImage(files.png, { width: 128, height: 64, resize: 'cover' });
    assertColour(pixel(image, 1, 32), MAGENTA, 1, 'left edge');
    assertColour(pixel(image, 126, 32), CYAN, 1, 'right edge');
  });

  test('contain pads with the background: black by default, or as given', async () => {
    const black = await readImage(files.png, { width: 64, height: 64, resize: 'contain' });
    const orange = await readImage(files.png, {
      width: 64,
      height: 64,
      resize: 'contain',
      background: { r: 255, g: 128, b: 0 },
    });
    for (const x of [0, 32, 63]) {
      for (const y of [0, 5, 58, 63]) {
        assertColour(pixel(black, x, y), BLACK, EXACT, `black padding (${x}, ${y})`);
        assertColour(pixel(orange, x, y), [255, 128, 0], EXACT, `orange padding (${x}, ${y})`);
      }
    }
    assertColour(pixel(black, 2, 32), MAGENTA, 1, 'image starts at the left edge');
    assertMatchesModel(orange, 'contain', 1, [255, 128, 0]);
  });

  test('contain at 128×64 pads left and right', async () => {
    const image = await readImage(files.png, { width: 128, height: 64, resize: 'contain' });
    assertColour(pixel(image, 2, 32), BLACK, EXACT, 'left padding');
    assertColour(pixel(image, 125, 32), BLACK, EXACT, 'right padding');
    assertColour(pixel(image, 40, 1), RED, 1, 'image reaches the top');
  });

  test('fill stretches without cropping or padding', async () => {
    const image = await readImage(files.png, { width: 64, height: 64, resize: 'fill' });
    assertColour(pixel(image, 0, 0), MAGENTA, 1, 'top-left corner');
    assertColour(pixel(image, 63, 63), CYAN, 1, 'bottom-right corner');
    assertColour(pixel(image, 22, 10), RED, 1, 'red quadrant');
    assertColour(pixel(image, 42, 54), YELLOW, 1, 'yellow quadrant');
  });

  test('reading at the native size is lossless for PNG', async () => {
    const image = await readImage(files.png, { width: SRC_W, height: SRC_H, resize: 'fill' });
    for (let y = 0; y < SRC_H; y++) {
      for (let x = 0; x < SRC_W; x++) assertColour(pixel(image, x, y), sourceColour(x, y), EXACT, `(${x}, ${y})`);
    }
  });
});

describe('readImage inputs', () => {
  test('applies EXIF orientation 6 (rotate 90° clockwise): width and height swap', async () => {
    const file = path.join(dir, 'rotated.jpg');
    await synthetic().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toFile(file);
    const meta = await sharp(file).metadata();
    assert.equal(meta.orientation, 6);
    assert.deepEqual([meta.width, meta.height], [SRC_W, SRC_H]);

    const image = await readImage(file, { width: SRC_H, height: SRC_W, resize: 'fill' });
    assertShape(image, SRC_H, SRC_W);
    // The stored left band is now at the top, the stored top-left corner at the top right.
    assertColour(pixel(image, 59, 0), MAGENTA, TOLERANCE.jpeg, 'top-right corner');
    assertColour(pixel(image, 0, 99), CYAN, TOLERANCE.jpeg, 'bottom-left corner');
    assertColour(pixel(image, 45, 35), RED, TOLERANCE.jpeg, 'red quadrant');
    assertColour(pixel(image, 45, 65), GREEN, TOLERANCE.jpeg, 'green quadrant');
    assertColour(pixel(image, 15, 35), BLUE, TOLERANCE.jpeg, 'blue quadrant');
    assertColour(pixel(image, 15, 65), YELLOW, TOLERANCE.jpeg, 'yellow quadrant');

    // Portrait now: fitting it into a square pads left and right, not top and bottom.
    const square = await readImage(file, { width: 64, height: 64, resize: 'contain' });
    assertColour(pixel(square, 1, 32), BLACK, EXACT, 'left padding');
    assertColour(pixel(square, 32, 1), MAGENTA, TOLERANCE.jpeg, 'top band');
  });

  test('a Buffer or Uint8Array gives the same result as the path', async () => {
    const options = { width: 128, height: 64, resize: 'contain' } as const;
    const fromPath = await readImage(files.png, options);
    const bytes = fs.readFileSync(files.png);
    assert.deepEqual(await readImage(bytes, options), fromPath);
    assert.deepEqual(await readImage(new Uint8Array(bytes), options), fromPath);
  });

  test('a sharp instance is read through a clone and is still usable afterwards', async () => {
    const instance = sharp(files.png);
    const image = await readImage(instance, { width: 64, height: 64, resize: 'fill' });
    assert.deepEqual(image, await readImage(files.png, { width: 64, height: 64, resize: 'fill' }));
    const { info } = await instance.raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [SRC_W, SRC_H, 3]);
    // It can be read again.
    assert.deepEqual(await readImage(instance, { width: 64, height: 64, resize: 'fill' }), image);
  });

  test('a stream-fed sharp instance works and is not consumed', async () => {
    const instance = sharp();
    fs.createReadStream(files.png).pipe(instance);
    const image = await readImage(instance, { width: 64, height: 64, resize: 'cover' });
    assert.deepEqual(image, await readImage(files.png, { width: 64, height: 64, resize: 'cover' }));
    const meta = await sharp(await instance.png().toBuffer()).metadata();
    assert.deepEqual([meta.width, meta.height], [SRC_W, SRC_H]);
  });

  test('operations set on a sharp instance before resizing are kept (extract)', async () => {
    const square = sharp(files.png).extract({ left: 20, top: 0, width: 60, height: 60 });
    const image = await readImage(square, { width: 60, height: 60, resize: 'fill' });
    assertColour(pixel(image, 0, 0), RED, 1, 'band cropped away');
    assertColour(pixel(image, 59, 59), YELLOW, 1, 'band cropped away');
  });

  test('transparency is flattened onto the background (black by default)', async () => {
    const rgba = Buffer.alloc(40 * 20 * 4);
    for (let i = 0; i < 40 * 20; i++) {
      const opaque = i % 40 < 20;
      rgba.set(opaque ? [255, 0, 0, 255] : [0, 255, 0, 0], i * 4);
    }
    const file = path.join(dir, 'alpha.png');
    await sharp(rgba, { raw: { width: 40, height: 20, channels: 4 } })
      .png()
      .toFile(file);
    assert.equal((await sharp(file).metadata()).hasAlpha, true);

    const onBlack = await readImage(file, { width: 40, height: 20, resize: 'fill' });
    assertShape(onBlack, 40, 20);
    assertColour(pixel(onBlack, 5, 10), RED, EXACT, 'opaque half');
    assertColour(pixel(onBlack, 35, 10), BLACK, EXACT, 'transparent half');
    const onWhite = await readImage(file, { width: 40, height: 20, resize: 'fill', background: { r: 255, g: 255, b: 255 } });
    assertColour(pixel(onWhite, 35, 10), [255, 255, 255], EXACT, 'transparent half on white');
  });

  test('greyscale is expanded to three equal channels', async () => {
    const grey = Buffer.alloc(40 * 20);
    for (let i = 0; i < grey.length; i++) grey[i] = i % 40 < 20 ? 64 : 192;
    const file = path.join(dir, 'grey.png');
    await sharp(grey, { raw: { width: 40, height: 20, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(file);
    assert.equal((await sharp(file).metadata()).channels, 1);

    const image = await readImage(file, { width: 40, height: 20, resize: 'fill' });
    assertShape(image, 40, 20);
    assert.deepEqual(
      pixel(image, 5, 5).map((v) => Math.round(v)),
      [64, 64, 64],
    );
    assert.deepEqual(
      pixel(image, 35, 5).map((v) => Math.round(v)),
      [192, 192, 192],
    );
    assert.equal(image.data[0], Math.fround(64 / 127.5 - 1));
  });

  test('16-bit PNGs are read at 16-bit precision', async () => {
    const values = [40000, 1000, 65535];
    const rgb16 = new Uint16Array(8 * 8 * 3).map((_, i) => values[i % 3]);
    const file = path.join(dir, 'deep.png');
    await sharp(rgb16, { raw: { width: 8, height: 8, channels: 3 } })
      .toColourspace('rgb16')
      .png()
      .toFile(file);
    assert.equal((await sharp(file).metadata()).depth, 'ushort');

    const image = await readImage(file, { width: 8, height: 8, resize: 'fill' });
    assertShape(image, 8, 8);
    values.forEach((v, c) => {
      const actual = image.data[c * 64 + 9];
      assert.ok(Math.abs(actual - (v / 32767.5 - 1)) < 1e-6, `channel ${c}: ${actual}`);
    });
    // 40000 is not an 8-bit level: an 8-bit read would be off by about 0.36 of a level.
    assert.ok(Math.abs(image.data[9] - (Math.round(40000 / 257) / 127.5 - 1)) > 1e-3);

    const grey16 = path.join(dir, 'deep-grey.png');
    await sharp(new Uint16Array(16).fill(30000), { raw: { width: 4, height: 4, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toFile(grey16);
    const grey = await readImage(grey16, { width: 4, height: 4, resize: 'fill' });
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(grey.data[c * 16] - (30000 / 32767.5 - 1)) < 1e-6);
  });
});

/** Assert that a promise rejects with a TorchEditError of the given code. */
async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp | string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TorchEditError, `not a TorchEditError: ${String(error)}`);
    assert.equal((error as TorchEditError & { code: string }).code, code);
    if (typeof message === 'string') assert.equal(error.message, message);
    else if (message) assert.match(error.message, message);
    return true;
  });
}

function throwsWith(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TorchEditError, `not a TorchEditError: ${String(error)}`);
    assert.equal((error as TorchEditError & { code: string }).code, code);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('readImage errors', () => {
  test('a missing file is ERR_IMAGE_READ naming the path', async () => {
    const missing = path.join(dir, 'no-such-image.png');
    await rejectsWith(readImage(missing, { width: 64, height: 64 }), 'ERR_IMAGE_READ', /no-such-image\.png/);
  });

  test('undecodable data is ERR_IMAGE_READ', async () => {
    const options = { width: 64, height: 64 };
    await rejectsWith(readImage(Buffer.from('definitely not an image'), options), 'ERR_IMAGE_READ');
    await rejectsWith(readImage(Buffer.alloc(0), options), 'ERR_IMAGE_READ');
    const png = fs.readFileSync(files.png);
    await rejectsWith(readImage(png.subarray(0, png.length >> 1), options), 'ERR_IMAGE_READ');
    const garbageFile = path.join(dir, 'garbage.png');
    fs.writeFileSync(garbageFile, 'not a png');
    await rejectsWith(readImage(garbageFile, options), 'ERR_IMAGE_READ', /garbage\.png/);
  });

  test('a width or height that is not a positive integer is ERR_INVALID_OPTION', async () => {
    await rejectsWith(
      readImage(files.png, { width: 0, height: 64 }),
      'ERR_INVALID_OPTION',
      'Expected positive integer for width but received 0 of type number',
    );
    await rejectsWith(readImage(files.png, { width: 64, height: -64 }), 'ERR_INVALID_OPTION', /for height/);
    await rejectsWith(readImage(files.png, { width: 1.5, height: 64 }), 'ERR_INVALID_OPTION', /received 1\.5/);
    await rejectsWith(readImage(files.png, { width: '64' as unknown as number, height: 64 }), 'ERR_INVALID_OPTION', /of type string/);
  });

  test('other invalid options are ERR_INVALID_OPTION', async () => {
    const base = { width: 64, height: 64 };
    await rejectsWith(readImage(files.png, { ...base, resize: 'stretch' as ResizeMode }), 'ERR_INVALID_OPTION', /resize/);
    await rejectsWith(readImage(files.png, { ...base, background: { r: 300, g: 0, b: 0 } }), 'ERR_INVALID_OPTION', /background/);
    await rejectsWith(readImage(42 as unknown as string, base), 'ERR_INVALID_OPTION', /for input/);
  });
});

describe('checkImageSize', () => {
  test('accepts multiples', () => {
    checkImageSize(512, 768, 64);
    checkImageSize(64, 64, 64);
  });

  test('rejects other sizes with the nearest valid ones', () => {
    throwsWith(() => checkImageSize(500, 512, 64), 'ERR_INVALID_OPTION', /width.*multiple of 64.*500.*448 or 512/);
    throwsWith(() => checkImageSize(512, 520, 64), 'ERR_INVALID_OPTION', /height.*520.*512 or 576/);
    throwsWith(() => checkImageSize(32, 64, 64), 'ERR_INVALID_OPTION', /nearest valid: 64\)/);
    throwsWith(() => checkImageSize(0, 64, 64), 'ERR_INVALID_OPTION', /positive integer for width/);
  });
});

/** A deterministic pseudo-random RGB image. */
function noise(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  let state = 12345;
  for (let i = 0; i < out.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

describe('ImageResult', () => {
  test('raw → PNG → readImage(fill, same size) is exact', async () => {
    const [w, h] = [48, 32];
    const rgb = noise(w, h);
    const result = ImageResult.fromRgb(rgb, w, h);
    assert.deepEqual([result.width, result.height], [w, h]);
    assert.deepEqual(result.raw(), rgb);

    const image = await readImage(await result.toBuffer('png'), { width: w, height: h, resize: 'fill' });
    assertShape(image, w, h);
    for (let i = 0; i < w * h; i++) {
      for (let c = 0; c < 3; c++) {
        const expected = rgb[i * 3 + c] / 127.5 - 1;
        assert.ok(Math.abs(image.data[c * w * h + i] - expected) < 1e-6, `pixel ${i} channel ${c}`);
      }
    }
    assert.deepEqual(new ImageResult({ data: image.data, width: w, height: h }).raw(), rgb);
  });

  test('quantises like diffusers: clamp, scale, round half to even', () => {
    const tieDown = Math.fround((2 * 64.5) / 255 - 1); // float32 arithmetic lands exactly on 64.5
    const tieUp = Math.fround((2 * 65.5) / 255 - 1); // … and on 65.5
    const values = [-1, 1, 0, -2, 2, 0.5, tieDown, tieUp, Number.NaN];
    const data = new Float32Array(values.length * 3);
    data.set(values, 0); // red plane; green and blue stay 0
    const raw = new ImageResult({ data, width: values.length, height: 1 }).raw();
    assert.deepEqual(
      Array.from(values, (_, i) => raw[i * 3]),
      [0, 255, 128, 0, 255, 191, 64, 66, 0],
    );
    assert.equal(raw[1], 128);
  });

  test('raw() is interleaved RGB of length W×H×3, in row-major order', () => {
    const [w, h] = [5, 3];
    const data = new Float32Array(3 * w * h).fill(-1);
    data[1 * w + 2] = 1; // red at (2, 1)
    data[w * h + 2 * w + 4] = 1; // green at (4, 2)
    const raw = new ImageResult({ data, width: w, height: h }).raw();
    assert.equal(raw.length, w * h * 3);
    assert.deepEqual([...raw.subarray((1 * w + 2) * 3, (1 * w + 2) * 3 + 3)], [255, 0, 0]);
    assert.deepEqual([...raw.subarray((2 * w + 4) * 3, (2 * w + 4) * 3 + 3)], [0, 255, 0]);
    assert.equal(
      raw.reduce((sum, v) => sum + v, 0),
      2 * 255,
    );
    raw.fill(7); // a copy: the result is unchanged
    assert.equal(new ImageResult({ data, width: w, height: h }).raw()[0], 0);
  });

  for (const format of FORMATS) {
    test(`toBuffer('${format}') decodes to the right size and close to the pixels`, async () => {
      const [w, h] = [96, 40];
      const smooth = await synthetic().resize(w, h, { fit: 'fill' }).raw().toBuffer();
      const buffer = await ImageResult.fromRgb(smooth, w, h).toBuffer(format, { quality: 95 });
      const meta = await sharp(buffer).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], [format, w, h]);
      if (format === 'png') {
        assert.deepEqual(await sharp(buffer).raw().toBuffer(), smooth);
      }
    });
  }

  test('toBuffer() defaults to PNG; quality changes JPEG and WebP size', async () => {
    const result = ImageResult.fromRgb(noise(64, 64), 64, 64);
    const png = await result.toBuffer();
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    for (const format of ['jpeg', 'webp'] as const) {
      const low = await result.toBuffer(format, { quality: 10 });
      const high = await result.toBuffer(format, { quality: 95 });
      assert.ok(low.length < high.length, `${format}: q10 ${low.length} ≥ q95 ${high.length}`);
    }
  });

  test('every resize mode round trips through every output format with the right size', async () => {
    for (const mode of MODES) {
      for (const [w, h] of SIZES) {
        const input = await readImage(files.png, { width: w, height: h, resize: mode });
        const result = new ImageResult({ data: input.data, width: w, height: h });
        for (const format of FORMATS) {
          const buffer = await result.toBuffer(format, { quality: 95 });
          const meta = await sharp(buffer).metadata();
          assert.deepEqual([meta.format, meta.width, meta.height], [format, w, h], `${mode} ${format}`);
          const back = await readImage(buffer, { width: w, height: h, resize: 'fill' });
          assertMatchesModel(back, mode, TOLERANCE[format], BLACK);
        }
      }
    }
  });

  test('toFile picks the format from the extension', async () => {
    const result = ImageResult.fromRgb(noise(72, 24), 72, 24);
    const cases = [
      ['out.png', 'png'],
      ['out.jpg', 'jpeg'],
      ['out.jpeg', 'jpeg'],
      ['out.webp', 'webp'],
      ['OUT.PNG', 'png'],
    ] as const;
    for (const [name, format] of cases) {
      const file = path.join(dir, name);
      await result.toFile(file);
      const meta = await sharp(file).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], [format, 72, 24], name);
    }
  });

  test('toSharp() gives a pipeline over the same pixels', async () => {
    const rgb = noise(10, 6);
    const { data, info } = await ImageResult.fromRgb(rgb, 10, 6).toSharp().raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [10, 6, 3]);
    assert.deepEqual(new Uint8Array(data), rgb);
  });

  test('invalid use is ERR_INVALID_OPTION; a failed write is ERR_IMAGE_WRITE', async () => {
    const result = ImageResult.fromRgb(noise(8, 8), 8, 8);
    const gif = path.join(dir, 'out.gif');
    await rejectsWith(result.toFile(gif), 'ERR_INVALID_OPTION', /out\.gif/);
    assert.equal(fs.existsSync(gif), false);
    await rejectsWith(result.toFile(path.join(dir, 'no-extension')), 'ERR_INVALID_OPTION');
    await rejectsWith(result.toBuffer('gif' as ImageFormat), 'ERR_INVALID_OPTION', /format/);
    await rejectsWith(result.toBuffer('jpeg', { quality: 0 }), 'ERR_INVALID_OPTION', /quality/);
    await rejectsWith(result.toFile(path.join(dir, 'missing-dir', 'out.png')), 'ERR_IMAGE_WRITE', /missing-dir/);
    throwsWith(() => new ImageResult({ data: new Float32Array(10), width: 2, height: 2 }), 'ERR_INVALID_OPTION', /length/);
    throwsWith(() => ImageResult.fromRgb(new Uint8Array(12), 0, 2), 'ERR_INVALID_OPTION', /positive integer for width/);
  });
});
