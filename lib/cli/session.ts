/**
 * The model a command works with. `readBundle` reads the chosen model.json alone (no module file
 * is touched), so a command checks its options against the model's defaults and limits before
 * anything loads; `withModel` then loads the model (global --model, --device, --dtype, --threads)
 * with progress on stderr and Ctrl-C wired to the job's AbortSignal, and disposes of it after.
 * The model's warnings (a prompt with words it was not trained on) print on stderr as one line
 * each, `torchedit: warning: <message> [<code>]`, also with --json and --quiet: they are about
 * whether the result is what was asked for.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { TorchEditError, invalidOption } from '../errors.js';
import type { JobOptions } from '../jobs.js';
import { readModelJson, type BundleConfig } from '../model/config.js';
import { loadModel, type StableDiffusionModel } from '../model/model.js';
import { defaultsFor, type ModelDefaults } from '../options/defaults.js';
import { limitsOf, type ValidationContext } from '../options/resolve.js';
import type { Limits } from '../options/schema.js';
import { configure } from '../runtime.js';
import type { TorchEditWarning } from '../warnings.js';
import { globalsOf, modelDir } from './flags.js';
import { ProgressReporter, progressMode } from './progress.js';

const controller = new AbortController();
let interrupted = false;
let activeProgress: ProgressReporter | undefined;

/** Ctrl-C: aborts the running job. Returns true if this is the second time (do not wait then). */
export function interrupt(): boolean {
  if (interrupted) return true;
  interrupted = true;
  controller.abort(new TorchEditError('ERR_ABORTED', 'interrupted'));
  return false;
}

export function wasInterrupted(): boolean {
  return interrupted;
}

/** Ends the progress bar on screen, so that other output starts on a fresh line. */
export function stopProgress(): void {
  activeProgress?.stop();
}

/** A model's model.json, read before loading: what its options are checked against. */
export interface Bundle {
  readonly dir: string;
  readonly config: BundleConfig;
  /** The defaults in force for it: the library's, replaced by its `recommended`. */
  readonly defaults: ModelDefaults;
  /** The validation context of this model, with limits known only later (an inversion's steps). */
  context(extra?: Limits): ValidationContext;
}

/** Reads and checks the chosen model's model.json (not its module files). */
export async function readBundle(command: Command): Promise<Bundle> {
  const globals = globalsOf(command);
  if (globals.model === '') throw invalidOption('--model', 'non-empty string', globals.model);
  const dir = modelDir(globals);
  // Without --model and without a shipped model, loadModel() says so (before any native work).
  if (globals.model === undefined && !existsSync(join(dir, 'model.json'))) await loadModel();
  const config = await readModelJson(dir);
  const defaults = defaultsFor(config.recommended);
  return { dir, config, defaults, context: (extra = {}) => ({ defaults, limits: { ...limitsOf(config), ...extra } }) };
}

/** `torchedit: warning: <message> [<code>]`, on one line. */
export function warningLine(warning: TorchEditWarning): string {
  return `torchedit: warning: ${warning.message.replace(/\s*\n+\s*/g, ' ').trim()} [${warning.code}]`;
}

/** What a command's work gets once the model is loaded. */
export interface Session {
  readonly model: StableDiffusionModel;
  /** Pass to every library call: Ctrl-C aborts through `signal`; `onProgress` drives the bar. */
  readonly job: JobOptions;
  /** Seconds the model took to load. */
  readonly loadSeconds: number;
  /** Seconds since the model finished loading. */
  seconds(): number;
}

/** Loads the chosen model, runs `work` with it, and disposes of it. */
export async function withModel(command: Command, work: (session: Session) => Promise<void>): Promise<void> {
  const globals = globalsOf(command);
  const progress = new ProgressReporter(progressMode(globals));
  activeProgress = progress;
  const job: JobOptions = { signal: controller.signal, onProgress: progress.onProgress };
  let model: StableDiffusionModel | undefined;
  try {
    if (globals.threads !== undefined) configure({ threads: globals.threads });
    const loadStart = performance.now();
    const onWarning = (warning: TorchEditWarning) => {
      progress.stop(); // the line starts on a fresh line, below the bar
      process.stderr.write(`${warningLine(warning)}\n`);
    };
    model = await loadModel(globals.model, { device: globals.device as never, dtype: globals.dtype, onWarning, ...job });
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const start = performance.now();
    await work({ model, job, loadSeconds, seconds: () => (performance.now() - start) / 1000 });
  } finally {
    progress.stop();
    activeProgress = undefined;
    model?.dispose();
  }
}
