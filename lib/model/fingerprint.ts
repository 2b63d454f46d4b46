/**
 * A cheap content fingerprint of a bundle, stored in files torchedit writes (inversions, Imagic
 * results) so they are not applied to another model. It hashes model.json and, for each
 * TorchScript file, its size and the zip central directory at its end, which holds the CRC-32 of
 * every stored tensor: any change to any weight changes it, without reading gigabytes.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const tailBytes = 256 * 1024;
const modules = ['text_encoder.pt', 'unet.pt', 'vae_encoder.pt', 'vae_decoder.pt'];

export async function bundleFingerprint(dir: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readFile(join(dir, 'model.json')));
  for (const name of modules) {
    const file = await open(join(dir, name), 'r');
    try {
      const { size } = await file.stat();
      const length = Math.min(size, tailBytes);
      const { buffer } = await file.read(Buffer.alloc(length), 0, length, size - length);
      hash.update(`${name}:${size}:`).update(buffer);
    } finally {
      await file.close();
    }
  }
  return hash.digest('hex');
}
