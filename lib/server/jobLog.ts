/**
 * Job records that survive a restart: one JSON line per state change appended to
 * `<dataDir>/jobs.jsonl` (the last line of an id wins). JSON lines rather than SQLite: records are
 * written a few times per job and read once at start, an append is atomic enough for that (a torn
 * last line is skipped), and it needs no native module, so `npm ci` stays free of build steps and
 * downloads. At start the log is read, jobs that were queued or running when the process died are
 * recorded as failed with `ERR_SERVER_RESTARTED`, and the file is rewritten compacted (atomically).
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobProgress } from '../jobs.js';
import { isId } from './ids.js';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobProgressRecord {
  phase: string;
  step: number;
  total: number;
  value?: number;
  elapsedMs: number;
  etaMs: number;
}

/** A library progress report as a job record shows it (times in whole milliseconds). */
export function progressRecord(p: JobProgress): JobProgressRecord {
  return {
    phase: p.phase,
    step: p.step,
    total: p.total,
    elapsedMs: Math.round(p.elapsedMs),
    etaMs: Math.round(p.etaMs),
    ...(p.value === undefined ? {} : { value: p.value }),
  };
}

/** A job as `GET /v1/jobs/:id` shows it. */
export interface JobRecord {
  id: string;
  /** What it does: `invert`, `edit`, `generate`, `imagic`, `imagicGenerate`. */
  kind: string;
  state: JobState;
  /** The model it runs on. */
  model: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** The last progress report (not persisted: a finished job has none to show). */
  progress?: JobProgressRecord;
  /** What it made (ids and their URLs), once succeeded. */
  result?: Record<string, unknown>;
  /** Why it failed or was cancelled: the library's (or the service's) code and message. */
  error?: { code: string; message: string };
  /** A hash of the bearer token that submitted it (never the token). */
  client?: string;
  /** With workers (`serve --redis`): the seed drawn at submission, so that every attempt makes the same result. */
  seed?: string;
  /** With workers: runs started (more than 1 after a lost worker or a retried failure). */
  attempts?: number;
  /** With workers: the worker (`host:pid`) that ran it last. */
  worker?: string;
}

/** A record as clients see it: without the client's hash. */
export function publicJob(record: JobRecord): Omit<JobRecord, 'client'> {
  const { client: _, ...rest } = record;
  return rest;
}

export class JobLog {
  readonly path: string;

  constructor(dir: string) {
    this.path = join(dir, 'jobs.jsonl');
  }

  /** Reads the log, fails the jobs a dead process left unfinished, compacts to the newest `keep`. */
  open(keep: number): JobRecord[] {
    const records = new Map<string, JobRecord>();
    if (existsSync(this.path)) {
      for (const line of readFileSync(this.path, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        try {
          const record = JSON.parse(line) as JobRecord;
          if (isId(record.id)) records.set(record.id, record);
        } catch {
          // a line torn by a crash mid-write
        }
      }
    }
    const now = new Date().toISOString();
    for (const record of records.values()) {
      if (record.state === 'queued' || record.state === 'running') {
        const was = record.state;
        record.state = 'failed';
        record.finishedAt = now;
        record.error = {
          code: 'ERR_SERVER_RESTARTED',
          message: `The server stopped while this job was ${was} (a crash or a kill); nothing was kept of it: submit it again`,
        };
      }
      delete record.progress;
    }
    const kept = [...records.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt)).slice(-keep);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    renameSync(tmp, this.path);
    return kept;
  }

  /** Appends the record's current state (synchronously: the order of lines is the order of changes). */
  write(record: JobRecord): void {
    const { progress: _, ...rest } = record;
    appendFileSync(this.path, `${JSON.stringify(rest)}\n`);
  }
}
