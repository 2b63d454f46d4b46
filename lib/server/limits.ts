/**
 * The service's own bounds on top of the library's validation (which runs first, so a request
 * sees the library's message for a value the library refuses): steps, concepts, Imagic steps,
 * images per request. Exceeding one is 400 `ERR_INVALID_OPTION`, worded as the library words it.
 */
import { invalidOption } from '../errors.js';
import type { ResolvedLimits } from './options.js';

export function checkAtMost(name: string, value: number, max: number, what = 'integer'): void {
  if (value > max) throw invalidOption(name, `${what} at most ${max} (this server's limit)`, value, name);
}

export function checkSteps(steps: number, limits: ResolvedLimits, name = 'steps'): void {
  checkAtMost(name, steps, limits.steps);
}
