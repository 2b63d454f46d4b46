/**
 * Small predicates for option validation (after sharp's lib/is.mjs). Every check throws the
 * same way: "Expected <what> for <name> but received <value>" with code ERR_INVALID_OPTION.
 */
import { invalidOption } from '../errors.js';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(name, `integer between ${min} and ${max}`, value);
  }
  return value;
}

export function numberIn(name: string, value: unknown, min: number, max: number, opts: { minExclusive?: boolean; maxExclusive?: boolean } = {}): number {
  const lowOk = opts.minExclusive ? (value as number) > min : (value as number) >= min;
  const highOk = opts.maxExclusive ? (value as number) < max : (value as number) <= max;
  if (typeof value !== 'number' || !Number.isFinite(value) || !lowOk || !highOk) {
    const low = opts.minExclusive ? `(${min}` : `[${min}`;
    const high = opts.maxExclusive ? `${max})` : `${max}]`;
    throw invalidOption(name, `number in ${low}, ${high}`, value);
  }
  return value;
}

export function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw invalidOption(name, 'non-empty string', value);
  return value;
}

export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw invalidOption(name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  }
  return value as T;
}

/** A seed: a non-negative safe integer or a bigint in [0, 2^64). */
export function seed(name: string, value: unknown): bigint {
  if (typeof value === 'bigint' && value >= 0n && value < 1n << 64n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw invalidOption(name, 'non-negative integer seed', value);
}

export function optionalSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw invalidOption(name, 'AbortSignal', value);
  return value;
}

export function optionalFunction<T extends (...args: never[]) => unknown>(name: string, value: unknown): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw invalidOption(name, 'function', value);
  return value as T;
}
