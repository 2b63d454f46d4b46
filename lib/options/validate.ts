/**
 * Small predicates for option validation (after sharp's lib/is.mjs). Every check throws the
 * same way: "Expected <what> for <name> but received <value>" with code ERR_INVALID_OPTION.
 * The `…Text` functions are the one wording of each range, shared with the option schema's
 * validation (lib/options/resolve.ts) and its generated docs.
 */
import { invalidOption } from '../errors.js';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function integerText(min: number | string, max: number | string): string {
  return `integer between ${min} and ${max}`;
}

export function numberText(min: number, max: number | string, opts: { minExclusive?: boolean; maxExclusive?: boolean } = {}): string {
  return `number in ${opts.minExclusive ? '(' : '['}${min}, ${max}${opts.maxExclusive ? ')' : ']'}`;
}

export function oneOfText(allowed: readonly string[]): string {
  return `one of ${allowed.map((a) => `'${a}'`).join(', ')}`;
}

export const SEED_TEXT = 'non-negative integer seed';

export function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

export function isNumberIn(
  value: unknown,
  min: number,
  max: number,
  opts: { minExclusive?: boolean; maxExclusive?: boolean } = {},
): value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return false;
  const lowOk = opts.minExclusive ? value > min : value >= min;
  const highOk = opts.maxExclusive ? value < max : value <= max;
  return lowOk && highOk;
}

/** A seed as a bigint, or undefined when `value` is not one: a non-negative safe integer or a bigint in [0, 2^64). */
export function toSeed(value: unknown): bigint | undefined {
  if (typeof value === 'bigint' && value >= 0n && value < 1n << 64n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  return undefined;
}

export function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (!isIntegerIn(value, min, max)) throw invalidOption(name, integerText(min, max), value);
  return value;
}

export function numberIn(
  name: string,
  value: unknown,
  min: number,
  max: number,
  opts: { minExclusive?: boolean; maxExclusive?: boolean } = {},
): number {
  if (!isNumberIn(value, min, max, opts)) throw invalidOption(name, numberText(min, max, opts), value);
  return value;
}

export function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw invalidOption(name, 'non-empty string', value);
  return value;
}

export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) throw invalidOption(name, oneOfText(allowed), value);
  return value as T;
}

/** A seed: a non-negative safe integer or a bigint in [0, 2^64). */
export function seed(name: string, value: unknown): bigint {
  const parsed = toSeed(value);
  if (parsed === undefined) throw invalidOption(name, SEED_TEXT, value);
  return parsed;
}

/** An options argument: a plain object, or undefined for none (then `{}`). */
export function optionsObject<T extends object>(value: T | undefined): T {
  if (value === undefined) return {} as T;
  if (!isPlainObject(value)) throw invalidOption('options', 'object', value);
  return value;
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
