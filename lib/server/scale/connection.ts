/**
 * Redis connections (ioredis, which BullMQ runs on). Every connection reconnects forever with a
 * capped backoff, so a Redis restart is a pause, never a crash, and has an error listener (an
 * ioredis error without one is only logged, but a listener lets us count and report it).
 * Connections that feed HTTP answers fail fast instead of queueing commands while Redis is away,
 * so the server can answer 503 at once rather than hang.
 */
import { Redis } from 'ioredis';

export type ConnectionRole =
  /** BullMQ workers, queue events, subscribers: block and wait for Redis to come back. */
  | 'blocking'
  /** Commands behind an HTTP request: fail at once while Redis is unreachable. */
  | 'failFast';

const retryStrategy = (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000);

/** ioredis options of a connection that fails at once while Redis is unreachable. */
export const failFastOptions = { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy, connectTimeout: 5000 };

export function redisConnection(url: string, role: ConnectionRole, onError: (error: Error) => void): Redis {
  const connection = new Redis(url, {
    // BullMQ requires `null` for blocking connections (a worker waits for jobs indefinitely).
    maxRetriesPerRequest: role === 'blocking' ? null : 1,
    enableOfflineQueue: role === 'blocking',
    retryStrategy,
    connectTimeout: 5000,
  });
  connection.on('error', onError);
  return connection;
}

/** True when the error means Redis cannot be reached (as opposed to a bad command or a script error). */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: string; message?: string; name?: string };
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'].includes(e?.code ?? '') ||
    e?.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|enableOfflineQueue|Reached the max retries|connect ECONNREFUSED/i.test(e?.message ?? '')
  );
}
