/**
 * TorchScript files are zip archives. libtorch 1.13's reader leaks its zip state (about 22 KB, in
 * miniz) for every file it cannot open, which `npm run test:asan` reports; a file that does not
 * even start and end like a zip (empty, text, truncated, random) is refused here instead.
 */
import { open } from 'node:fs/promises';

/** The end-of-central-directory record is within the last 22 + 65535 bytes (its comment). */
const TAIL = 22 + 65535;

/** Why `path` cannot be a zip archive, or undefined when it starts and ends like one. */
export async function notAZipArchive(path: string): Promise<string | undefined> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const head = Buffer.alloc(4);
    await file.read(head, 0, 4, 0);
    if (size < 22 || head.readUInt32LE(0) !== 0x04034b50) return `${path} is not a TorchScript archive (not a zip file)`;
    const length = Math.min(size, TAIL);
    const { buffer } = await file.read(Buffer.alloc(length), 0, length, size - length);
    for (let i = length - 22; i >= 0; i--) if (buffer.readUInt32LE(i) === 0x06054b50) return undefined;
    return `${path} is not a TorchScript archive (truncated: no zip central directory)`;
  } finally {
    await file.close();
  }
}
