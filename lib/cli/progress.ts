/**
 * Progress of the CLI's long jobs on stderr. On a terminal: a cli-progress bar per phase
 * (phase, step/total, the phase's value, elapsed time and ETA from the library's own estimate).
 * Not on a terminal (logs, CI, pipes): one plain line as each phase starts. With --json or
 * --quiet: nothing.
 */
import cliProgress from 'cli-progress';
import type { JobProgress } from '../jobs.js';

export type ProgressMode = 'bar' | 'lines' | 'off';

/** The mode for the given flags and stream: a bar only on a TTY, nothing for --json/--quiet. */
export function progressMode(flags: { json?: boolean; quiet?: boolean }, stream: NodeJS.WriteStream = process.stderr): ProgressMode {
  if (flags.json || flags.quiet) return 'off';
  return stream.isTTY ? 'bar' : 'lines';
}

/** "850ms", "12s", "3m05s", "1h02m". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** What a phase's `value` is: the loss while training, the timestep while sampling. */
function describeValue(phase: string, value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '';
  if (phase === 'embedding' || phase === 'finetune') return `loss ${value.toPrecision(4)}`;
  return `t=${Math.round(value)}`;
}

export class ProgressReporter {
  readonly mode: ProgressMode;
  readonly #stream: NodeJS.WriteStream;
  #bar: cliProgress.SingleBar | undefined;
  #phase = '';

  constructor(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr) {
    this.mode = mode;
    this.#stream = stream;
  }

  /** The callback to pass as a job's `onProgress`, or undefined when progress is off. */
  get onProgress(): ((progress: JobProgress) => void) | undefined {
    return this.mode === 'off' ? undefined : (p) => this.update(p);
  }

  update(p: JobProgress): void {
    if (this.mode === 'off') return;
    const payload = {
      phase: p.phase,
      info: describeValue(p.phase, p.value),
      spent: formatDuration(p.elapsedMs),
      left: p.step >= p.total ? '0s' : p.step > 0 ? formatDuration(p.etaMs) : '?',
    };
    if (this.mode === 'lines') {
      // One line per phase, when it starts, so a log shows what is running.
      if (p.phase !== this.#phase) {
        this.#phase = p.phase;
        this.#stream.write(`torchedit: ${p.phase}: ${p.total} steps\n`);
      }
      return;
    }
    if (this.#bar === undefined || p.phase !== this.#phase) {
      this.stop();
      this.#phase = p.phase;
      this.#bar = new cliProgress.SingleBar(
        {
          stream: this.#stream,
          format: '{phase} |{bar}| {value}/{total} {info} | {spent} | ETA {left}',
          barsize: 30,
          hideCursor: true,
          clearOnComplete: false,
          fps: 10,
        },
        cliProgress.Presets.shades_classic,
      );
      this.#bar.start(p.total, p.step, payload);
    } else {
      this.#bar.setTotal(p.total);
      this.#bar.update(p.step, payload);
    }
  }

  /** Ends the current bar (its last state stays on screen), so that other output starts on a fresh line. */
  stop(): void {
    if (this.#bar === undefined) return;
    this.#bar.stop();
    this.#bar = undefined;
    this.#phase = '';
  }
}
