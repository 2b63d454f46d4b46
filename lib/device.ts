/** Device names and the one-time notice when `'auto'` falls back to the CPU. */
import { native } from './binding.js';
import { callNative, invalidOption } from './errors.js';

/** Where tensors live and modules run. `'auto'` is CUDA device 0 when there is one, else the CPU. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}` | 'auto';

let warnedAutoFallback = false;

/**
 * Resolves a device name to the canonical one ("cpu", "cuda:0"). `'cuda'` without CUDA throws
 * ERR_DEVICE_UNAVAILABLE; `'auto'` falls back to the CPU and says so once per process.
 */
export function resolveDevice(device: unknown = 'cpu'): string {
  if (typeof device !== 'string') throw invalidOption('device', "'cpu', 'cuda', 'cuda:N' or 'auto'", device);
  const resolved = callNative(() => native().resolveDevice(device));
  if (resolved.fallback && !warnedAutoFallback) {
    warnedAutoFallback = true;
    process.emitWarning(`torchedit: ${resolved.fallback}`, { code: 'TORCHEDIT_AUTO_DEVICE' });
  }
  return resolved.name;
}
