// The one property every fuzz case checks: a call ends, in time, in a value or a TorchEditError
// with one of the codes documented for it. Never a crash (the process dies and the file fails), a
// hang (the timeout), an unhandled rejection, ERR_INTERNAL ("a bug, please report it") or
// another kind of error (a TypeError escaping a parser).
import assert from 'node:assert/strict';
import { TorchEditError, type ErrorCode } from '../../lib/index.js';

/** Unhandled rejections seen since the last case; every case asserts there were none. */
const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: TorchEditError };

/**
 * Runs `action` and checks how it ends. `codes` are the documented codes this call may reject with.
 * Resolves with the outcome, so a case can go on with a value (and must dispose it).
 */
export async function endsWell<T>(action: () => T | Promise<T>, codes: readonly ErrorCode[], timeoutMs = 30_000): Promise<Outcome<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(timeoutMs)), timeoutMs);
  });
  let outcome: Outcome<T>;
  try {
    outcome = { ok: true, value: await Promise.race([Promise.resolve().then(action), timeout]) };
  } catch (error) {
    if (error instanceof HangError) throw error;
    if (!(error instanceof TorchEditError)) {
      assert.fail(`expected a value or a TorchEditError, got ${(error as Error)?.constructor?.name}: ${(error as Error)?.stack ?? error}`);
    }
    assert.ok(codes.includes(error.code), `expected one of ${codes.join(', ')}, got ${error.code}: ${error.message}\n${error.stack ?? ''}`);
    outcome = { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
  await new Promise((resolve) => setImmediate(resolve)); // let a stray rejection surface
  assert.deepEqual(unhandled.splice(0), [], 'an unhandled rejection');
  return outcome;
}

class HangError extends Error {
  constructor(ms: number) {
    super(`did not settle within ${ms} ms (a hang)`);
  }
}
