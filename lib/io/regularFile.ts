/**
 * Every file torchedit reads is checked to be a regular file first (symlinks followed): a FIFO
 * blocks the reader forever and a device such as /dev/zero never ends, and either would hold a
 * thread (libuv's, or the device's worker for a TorchScript file) for good.
 */
import { stat } from 'node:fs/promises';

/** Why `path` cannot be read as a file, or undefined when it is a regular file. */
export async function notARegularFile(path: string): Promise<{ missing: boolean; why: string; cause?: unknown } | undefined> {
  try {
    const info = await stat(path);
    return info.isFile() ? undefined : { missing: false, why: `${path} is not a regular file` };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    return { missing: code === 'ENOENT' || code === 'ENOTDIR', why: `cannot read ${path} (${code})`, cause };
  }
}
