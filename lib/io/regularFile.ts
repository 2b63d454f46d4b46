/**
 * Every file torchedit reads is checked to be a regular file first (symlinks followed): a FIFO
 * blocks the reader forever and a device such as /dev/zero never ends, and either would hold a
 * thread (libuv's, or the device's worker for a TorchScript file) for good.
 */
import { stat } from 'node:fs/promises';

/**
 * Why `path` cannot be read as a file, or undefined when it is a regular file. `missing`: it does
 * not exist; `directory`: it is a folder.
 */
export async function notARegularFile(
  path: string,
): Promise<{ missing: boolean; directory: boolean; why: string; cause?: unknown } | undefined> {
  try {
    const info = await stat(path);
    if (info.isFile()) return undefined;
    return { missing: false, directory: info.isDirectory(), why: `${path} is not a regular file` };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    return { missing: code === 'ENOENT' || code === 'ENOTDIR', directory: false, why: `cannot read ${path} (${code})`, cause };
  }
}
