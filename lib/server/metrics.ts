/**
 * Prometheus metrics (`GET /metrics`, text format 0.0.4), written by hand: the queue, jobs by
 * state, a histogram of job durations, memory (process, native tensors, the CPU cache, the
 * storage cache) and the event loop's delay.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { memory } from '../runtime.js';
import type { JobRecord } from './jobLog.js';
import type { JobQueue } from './queue.js';
import type { Storage } from './storage.js';

const BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export class Metrics {
  private readonly durations = new Map<string, { counts: number[]; sum: number; count: number }>();
  private readonly requests = new Map<string, number>();
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.loop.enable();
  }

  close(): void {
    this.loop.disable();
  }

  jobFinished(record: JobRecord, seconds: number): void {
    const key = `${record.kind}\u0000${record.state}`;
    let h = this.durations.get(key);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.durations.set(key, h);
    }
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.counts[i]++;
    });
    h.sum += seconds;
    h.count++;
  }

  request(status: number): void {
    const key = String(status);
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  render(queue: JobQueue, storage: Storage): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${Number.isFinite(value) ? value : 0}`);
    };
    const stats = queue.stats();
    metric('torchedit_queue_depth', 'gauge', 'Jobs waiting in the queue.', [['', stats.waiting]]);
    metric('torchedit_jobs_running', 'gauge', 'Jobs running.', [['', stats.running]]);
    metric(
      'torchedit_jobs',
      'gauge',
      'Job records by state.',
      Object.entries(stats.byState).map(([state, n]) => [`{state="${state}"}`, n]),
    );
    lines.push(
      '# HELP torchedit_job_duration_seconds Time jobs ran, by kind and outcome.',
      '# TYPE torchedit_job_duration_seconds histogram',
    );
    for (const [key, h] of this.durations) {
      const [kind, state] = key.split('\u0000');
      const labels = `kind="${kind}",state="${state}"`;
      BUCKETS.forEach((b, i) => lines.push(`torchedit_job_duration_seconds_bucket{${labels},le="${b}"} ${h.counts[i]}`));
      lines.push(`torchedit_job_duration_seconds_bucket{${labels},le="+Inf"} ${h.count}`);
      lines.push(`torchedit_job_duration_seconds_sum{${labels}} ${h.sum}`, `torchedit_job_duration_seconds_count{${labels}} ${h.count}`);
    }
    metric(
      'torchedit_http_responses_total',
      'counter',
      'HTTP responses by status.',
      [...this.requests].map(([status, n]) => [`{status="${status}"}`, n]),
    );
    const mem = process.memoryUsage();
    metric('process_resident_memory_bytes', 'gauge', 'Resident set size.', [['', mem.rss]]);
    metric('nodejs_heap_used_bytes', 'gauge', 'V8 heap used.', [['', mem.heapUsed]]);
    try {
      const m = memory();
      metric('torchedit_tensor_bytes', 'gauge', 'Bytes held by live tensor handles.', [['', m.tensorBytes]]);
      metric('torchedit_cpu_cache_bytes', 'gauge', "Bytes cached by torchedit's CPU allocator.", [['', m.cpuCache.cachedBytes]]);
    } catch {
      // the addon is not loaded yet
    }
    const usage = storage.usage();
    metric('torchedit_storage_cache_bytes', 'gauge', 'Bytes of stored objects held in memory.', [
      ['{kind="bytes"}', usage.cachedBytes],
      ['{kind="live"}', usage.liveBytes],
    ]);
    metric(
      'torchedit_storage_disk_bytes',
      'gauge',
      'Bytes of stored objects on disk, by kind.',
      Object.entries(usage.disk).map(([kind, n]) => [`{kind="${kind}"}`, n]),
    );
    const ms = (ns: number) => ns / 1e6 / 1000;
    metric('nodejs_eventloop_delay_seconds', 'gauge', 'Event loop delay since the last scrape.', [
      ['{quantile="0.5"}', ms(this.loop.percentile(50))],
      ['{quantile="0.99"}', ms(this.loop.percentile(99))],
      ['{quantile="1"}', ms(this.loop.max)],
    ]);
    this.loop.reset();
    return `${lines.join('\n')}\n`;
  }
}
