// Support for the service's tests: a real server on an ephemeral loopback port, JSON requests,
// waiting for jobs, SSE reading, and odd images (corrupt, a decompression bomb).
import { deflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { createServer, type ServerOptions } from '../../lib/server/index.js';

export interface Started {
  app: FastifyInstance;
  base: string;
}

export async function start(options: ServerOptions): Promise<Started> {
  const app = await createServer({ logger: false, ...options });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { app, base: `http://127.0.0.1:${address.port}` };
}

export interface Answer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON came back
  body: any;
  bytes: Buffer;
}

export async function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body instanceof Uint8Array) {
    init.body = body;
    (init.headers as Record<string, string>)['content-type'] ??= 'application/octet-stream';
  } else if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const response = await fetch(base + path, init);
  const bytes = Buffer.from(await response.arrayBuffer());
  let parsed: unknown = bytes;
  if ((response.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(bytes.toString('utf8'));
  return { status: response.status, headers: response.headers, body: parsed, bytes };
}

/** Polls a job until it ends. */
// biome-ignore lint/suspicious/noExplicitAny: a job record as JSON
export async function waitJob(base: string, id: string, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await api(base, 'GET', `/v1/jobs/${id}`, undefined, headers);
    if (['succeeded', 'failed', 'cancelled'].includes(body.job.state)) return body.job;
    if (Date.now() > until) throw new Error(`job ${id} still ${body.job.state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls until the job is running. */
export async function waitRunning(base: string, id: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const { body } = await api(base, 'GET', `/v1/jobs/${id}`);
    if (body.job.state !== 'queued') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`job ${id} never ran`);
}

export interface SseEvent {
  type: string;
  // biome-ignore lint/suspicious/noExplicitAny: event data as JSON
  data: any;
}

/** Reads a job's event stream to its end. */
export async function readEvents(base: string, id: string): Promise<SseEvent[]> {
  const response = await fetch(`${base}/v1/jobs/${id}/events`);
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) throw new Error(`not an event stream: ${response.status}`);
  const text = await response.text();
  const events: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    const type = /^event: (.+)$/m.exec(block)?.[1];
    const data = /^data: (.+)$/m.exec(block)?.[1];
    if (type && data) events.push({ type, data: JSON.parse(data) });
  }
  return events;
}

function crc32(bytes: Buffer): number {
  let crc = ~0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid-looking PNG of a few hundred bytes that declares `width × height` RGB pixels (a decompression bomb). */
export function bombPng(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = deflateSync(Buffer.alloc(16 * 1024)); // the start of an all-zero image
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', rows),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
