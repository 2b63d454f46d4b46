/**
 * Cancel from anywhere: BullMQ's own `worker.cancelJob` reaches only the process that holds the
 * job, so a server publishes the id on the Redis channel `<queue>:cancel`, every worker listens,
 * and the one running it aborts the job's AbortSignal (the library stops at its next step). A key
 * `<queue>:cancelled:<id>` (a day's TTL) covers the race where the job starts after the message
 * went out: a worker checks it before it starts a job.
 */
import type { Redis } from 'ioredis';

const channel = (queue: string) => `${queue}:cancel`;
const key = (queue: string, id: string) => `${queue}:cancelled:${id}`;

/** Asks whichever worker runs job `id` to stop it. */
export async function requestCancel(redis: Redis, queue: string, id: string): Promise<void> {
  await redis.set(key(queue, id), '1', 'EX', 24 * 3600);
  await redis.publish(channel(queue), id);
}

/** True when a cancel was requested for job `id`. */
export async function isCancelRequested(redis: Redis, queue: string, id: string): Promise<boolean> {
  return (await redis.exists(key(queue, id))) === 1;
}

/**
 * Listens on the cancel channel with `subscriber` (a connection of its own: a subscribed one can
 * send nothing else); ioredis subscribes again after a reconnect.
 */
export async function listenForCancels(subscriber: Redis, queue: string, onCancel: (id: string) => void): Promise<void> {
  subscriber.on('message', (from: string, id: string) => {
    if (from === channel(queue)) onCancel(id);
  });
  await subscriber.subscribe(channel(queue));
}
