/**
 * Server-sent events of one job (`GET /v1/jobs/:id/events`): first the job's state now (queued
 * with its position, running with its last progress, or how it ended), then every event as it
 * happens, until it ends; a comment line every 15 s keeps proxies from closing the stream.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type JobRecord, publicJob } from './jobLog.js';
import type { JobBackend } from './jobBackend.js';
import { type JobEvent, isTerminal } from './queue.js';

function frame(event: JobEvent): string {
  const { type, ...data } = event;
  if ('job' in data) data.job = publicJob(data.job);
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The events that tell a new listener where the job stands. */
function snapshot(record: JobRecord, position: number): JobEvent[] {
  switch (record.state) {
    case 'queued':
      return [{ type: 'queued', job: record, position }];
    case 'running':
      return record.progress
        ? [
            { type: 'running', job: record },
            { type: 'progress', progress: record.progress },
          ]
        : [{ type: 'running', job: record }];
    case 'succeeded':
      return [{ type: 'done', job: record }];
    case 'failed':
      return [{ type: 'failed', job: record }];
    case 'cancelled':
      return [{ type: 'cancelled', job: record }];
  }
}

/** Open streams, so that shutdown can end them. */
const open = new Set<() => void>();

export function closeAllStreams(): void {
  for (const end of [...open]) end();
}

/** Streams a job's events; `position` is its place in the queue now (when queued). */
export function streamJobEvents(request: FastifyRequest, reply: FastifyReply, record: JobRecord, jobs: JobBackend, position: number): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    ...(reply.getHeader('access-control-allow-origin')
      ? { 'access-control-allow-origin': String(reply.getHeader('access-control-allow-origin')) }
      : {}),
  });
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    unsubscribe();
    clearInterval(keepAlive);
    open.delete(end);
    res.end();
  };
  const send = (event: JobEvent) => {
    if (ended) return;
    res.write(frame(event));
    if (event.type === 'done' || event.type === 'failed' || event.type === 'cancelled') end();
  };
  const unsubscribe = jobs.subscribe(record.id, send);
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  keepAlive.unref();
  open.add(end);
  request.raw.on('close', end);
  for (const event of snapshot(record, position)) send(event);
  if (isTerminal(record.state)) end();
}
