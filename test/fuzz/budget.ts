// How long and with which seed the fuzz properties run. `npm test` runs each property briefly with a
// fixed seed, so a failure replays; `npm run fuzz -- --seconds N` (scripts/fuzz.mjs) sets
// FUZZ_SECONDS (per property) and a fresh FUZZ_SEED, printed so that a failure can be replayed.
import type { Parameters } from 'fast-check';

/** Seconds each property may run: FUZZ_SECONDS for a long run, else `short` (npm test). */
export function propertySeconds(short: number): number {
  const seconds = Number(process.env.FUZZ_SECONDS);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : short;
}

/** True under `npm run fuzz`: runs are bounded by time only. */
export const longRun = Number(process.env.FUZZ_SECONDS) > 0;

/** The seed of every property: FUZZ_SEED, or a fixed one so npm test replays the same cases. */
export const fuzzSeed =
  Number.isSafeInteger(Number(process.env.FUZZ_SEED)) && process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20261202;

/**
 * fast-check parameters: seeded, at most `runs` cases in npm test (unbounded in a long run) and
 * never longer than the property's seconds. Cases already started finish (each has its own timeout).
 */
export function budget<T>(runs: number, shortSeconds = 3): Parameters<T> {
  return {
    seed: fuzzSeed,
    numRuns: longRun ? 1_000_000 : runs,
    interruptAfterTimeLimit: propertySeconds(shortSeconds) * 1000,
    // A run cut short by the time limit is a pass: the cases it ran held.
    markInterruptAsFailure: false,
    endOnFailure: false,
    includeErrorInReport: true,
  };
}
