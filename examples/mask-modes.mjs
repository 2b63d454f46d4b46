// LEDITS++'s mask modes side by side on the example picture (README "Keep an edit on its object").
//
//   node examples/mask-modes.mjs [out.png]      (after `npm run build:ts`; default docs/images/mask-modes.png)
//
// Inverts examples/red-circle.png once, edits it with "+blue −red" under each `implicitMask`, and
// writes one picture: top row the input and the four results, bottom row each result with the
// "+blue" concept's mask (red, averaged over the steps) drawn over it.
import { fileURLToPath } from 'node:url';
import { ImageResult, loadModel } from 'torchedit';

const out = process.argv[2] ?? fileURLToPath(new URL('../docs/images/mask-modes.png', import.meta.url));
const model = await loadModel(); // the shipped model
const inversion = await model.invert(fileURLToPath(new URL('red-circle.png', import.meta.url)), { seed: 0 });
const concepts = [{ prompt: 'blue' }, { prompt: 'red', remove: true }];
const modes = [
  ['no mask', { implicitMask: 'off', concepts: concepts.map((c) => ({ ...c, threshold: 0 })) }],
  ['noise M²', { implicitMask: 'off', concepts }],
  ['attention M¹', { implicitMask: 'attention', concepts }],
  ['intersect', { implicitMask: 'intersect', concepts }],
];
const top = [ImageResult.fromRgb(await inputPixels(), model.imageSize, model.imageSize)];
const bottom = [top[0]];
for (const [name, options] of modes) {
  const result = await inversion.edit({ ...options, returnMasks: true });
  top.push(result.image);
  bottom.push((await result.maskImages())[0]);
  result.dispose(); // the images stay usable: they are JavaScript memory
  console.log(`${name}: done`);
}
await grid([top, bottom], 4).toFile(out);
console.log(`wrote ${out}`);
inversion.dispose();
model.dispose();

/** The input as the model sees it: its VAE round trip would hide nothing here, so the file itself. */
async function inputPixels() {
  const { readFile } = await import('node:fs/promises');
  const { default: sharp } = await import('sharp');
  const png = await readFile(fileURLToPath(new URL('red-circle.png', import.meta.url)));
  return new Uint8Array(await sharp(png).removeAlpha().raw().toBuffer());
}

/** Rows of equal-size images, scaled ×`scale` (nearest) with 4-px grey gaps, as one ImageResult. */
function grid(rows, scale) {
  const { width: w, height: h } = rows[0][0];
  const gap = 4;
  const cols = Math.max(...rows.map((r) => r.length));
  const W = cols * (w * scale + gap) + gap;
  const H = rows.length * (h * scale + gap) + gap;
  const rgb = new Uint8Array(W * H * 3).fill(128);
  rows.forEach((row, r) =>
    row.forEach((image, c) => {
      const px = image.raw();
      for (let y = 0; y < h * scale; y++)
        for (let x = 0; x < w * scale; x++) {
          const src = (Math.floor(y / scale) * w + Math.floor(x / scale)) * 3;
          const dst = ((gap + r * (h * scale + gap) + y) * W + gap + c * (w * scale + gap) + x) * 3;
          rgb.set(px.subarray(src, src + 3), dst);
        }
    }),
  );
  return ImageResult.fromRgb(rgb, W, H);
}
