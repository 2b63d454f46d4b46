/**
 * The `torchedit` command line (bin/torchedit.js imports this module, which runs at once).
 *
 * Commands live in ./commands/, one file each; they get a {@link CliContext} with the shared
 * plumbing: global options, model loading with progress, Ctrl-C, output and argument parsers.
 * Every option value goes to the library unchanged, so validation and defaults are the
 * library's (defaults shown in --help come from lib/options/defaults.ts).
 *
 * Failures print one line, `torchedit: <message> [<code>]`, on stderr, and exit with
 * 2 for bad input, 1 for other failures, 130 after Ctrl-C.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { packageRoot } from '../binding.js';
import { TorchEditError } from '../errors.js';
import { defaultModelPath, loadModel, type StableDiffusionModel } from '../model/model.js';
import { configure } from '../runtime.js';
import type { JobOptions } from '../jobs.js';
import { ProgressReporter, progressMode } from './progress.js';
import { registerGenerate } from './commands/generateCommand.js';
import { registerInvert } from './commands/invertCommand.js';
import { registerEdit } from './commands/editCommand.js';
import { registerInfo } from './commands/infoCommand.js';
import { registerDoctor } from './commands/doctorCommand.js';
import { registerImagic } from './commands/imagicCommand.js';

/** Options every command takes (before or after the command name). */
export interface GlobalOptions {
  model?: string;
  device?: string;
  dtype?: string;
  threads?: number;
  json?: boolean;
  quiet?: boolean;
}

/** What a command's work gets once the model is loaded. */
export interface Session {
  readonly globals: GlobalOptions;
  readonly model: StableDiffusionModel;
  /** Pass to every library call: Ctrl-C aborts through `signal`; `onProgress` drives the bar. */
  readonly job: JobOptions;
  /** Seconds since the model finished loading. */
  seconds(): number;
  /** Seconds the model took to load. */
  readonly loadSeconds: number;
  /**
   * Prints the command's result: `json` as one JSON object on stdout with --json; otherwise
   * `human` (unless --quiet, which keeps only `essential` output such as `info`'s).
   */
  report(json: Record<string, unknown>, human: string, options?: { essential?: boolean }): void;
}

/** Plumbing shared by the commands (passed in, so command files do not import this module). */
export interface CliContext {
  /**
   * Loads the model (global --model, --device, --dtype, --threads) and runs `work`. `names`
   * maps library option names to the command's flags, so library errors name the flags.
   */
  run(command: Command, names: Record<string, string>, work: (session: Session) => Promise<void>): Promise<void>;
  /** The merged global options of a command. */
  globals(command: Command): GlobalOptions;
  /** Argument parsers for commander options: they only convert text; ranges are the library's. */
  parse: {
    number(value: string): number;
    integer(value: string): number;
    /** A non-negative integer seed, kept exact as a bigint. */
    seed(value: string): bigint;
  };
  /** Checks done before a (possibly large) model is loaded. */
  check: {
    /** An input image must be an existing file (ERR_IMAGE_READ otherwise, as the library says). */
    inputImage(path: string): void;
    /** An input file given with `flag` must exist (ERR_FILE_NOT_FOUND). */
    inputFile(path: string, flag: string): void;
    /** An output image needs a .png/.jpg/.jpeg/.webp name and an existing folder. */
    outputImage(path: string, flag: string): void;
    /** An output file needs an existing folder. */
    outputFile(path: string, flag: string): void;
  };
  /** ` (default: X)` for help texts; `value` comes from lib/options/defaults.ts. */
  defaultText(value: unknown): string;
  /** Throws ERR_INVALID_OPTION with `message`. */
  fail(message: string): never;
}

/** Codes that mean the input was bad (exit 2); ERR_MODEL_* and ERR_FILE_* are matched by prefix. */
const BAD_INPUT = new Set(['ERR_INVALID_OPTION', 'ERR_IMAGE_READ', 'ERR_DEVICE', 'ERR_DEVICE_UNAVAILABLE', 'ERR_USAGE']);
const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'];
/** Library names of the global options, for error messages. */
const GLOBAL_NAMES: Record<string, string> = { path: '--model', device: '--device', dtype: '--dtype', threads: '--threads' };

const controller = new AbortController();
let interrupted = false;
let activeProgress: ProgressReporter | undefined;

function invalid(message: string): TorchEditError {
  return new TorchEditError('ERR_INVALID_OPTION', message);
}

const parse: CliContext['parse'] = {
  number(value) {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number but received '${value}'.`);
    return n;
  },
  integer(value) {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`Expected an integer but received '${value}'.`);
    return n; // 1.5 goes on to the library, which names the range it wants.
  },
  seed(value) {
    if (!/^\s*\d+\s*$/.test(value)) throw new InvalidArgumentError(`Expected a non-negative integer seed but received '${value}'.`);
    return BigInt(value.trim());
  },
};

function statOf(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

const check: CliContext['check'] = {
  inputImage(path) {
    const stat = statOf(path);
    if (!stat) throw new TorchEditError('ERR_IMAGE_READ', `Cannot read image from file "${path}": no such file`);
    if (!stat.isFile()) throw new TorchEditError('ERR_IMAGE_READ', `Cannot read image from file "${path}": not a file`);
  },
  inputFile(path, flag) {
    const stat = statOf(path);
    if (!stat) throw new TorchEditError('ERR_FILE_NOT_FOUND', `No such file for ${flag}: ${path}`);
    if (!stat.isFile()) throw new TorchEditError('ERR_FILE_NOT_FOUND', `Not a file for ${flag}: ${path}`);
  },
  outputImage(path, flag) {
    if (!IMAGE_EXTENSIONS.includes(extname(path).toLowerCase())) {
      throw invalid(`Expected a file name ending in ${IMAGE_EXTENSIONS.join(', ')} for ${flag} but received "${path}"`);
    }
    check.outputFile(path, flag);
  },
  outputFile(path, flag) {
    const folder = dirname(resolve(path));
    if (!statOf(folder)?.isDirectory()) throw new TorchEditError('ERR_FILE_NOT_FOUND', `The folder of ${flag} ${path} does not exist`);
    if (statOf(path)?.isDirectory()) throw invalid(`Expected a file name for ${flag} but received the folder "${path}"`);
  },
};

function defaultText(value: unknown): string {
  if (value === '' || value === undefined || value === null) return ' (default: none)';
  return ` (default: ${typeof value === 'string' ? `"${value}"` : String(value)})`;
}

/** Library messages name options as the API does ("for guidanceScale"); say the flag instead. */
export function rewriteMessage(message: string, names: Record<string, string>): string {
  let out = message.replace(/\bfor concepts\[(\d+)\]\.(\w+) but/g, (_, i: string, key: string) => `for ${key} of --concept #${Number(i) + 1} but`);
  out = out.replace(/\bfor concepts\[(\d+)\] but/g, (_, i: string) => `for --concept #${Number(i) + 1} but`);
  for (const [name, flag] of Object.entries(names)) {
    out = out.replace(new RegExp(`\\b(for|Expected) ${name}\\b(?= but| to be)`, 'g'), `$1 ${flag}`);
  }
  return out;
}

function globalsOf(command: Command): GlobalOptions {
  // Each command declares the global options too (so they work after the command name);
  // values given after it win over values given before it.
  const merged: Record<string, unknown> = {};
  const chain: Command[] = [];
  for (let c: Command | null = command; c; c = c.parent) chain.unshift(c);
  for (const c of chain) {
    for (const [key, value] of Object.entries(c.opts())) if (value !== undefined) merged[key] = value;
  }
  return merged as GlobalOptions;
}

async function run(command: Command, names: Record<string, string>, work: (session: Session) => Promise<void>): Promise<void> {
  const globals = globalsOf(command);
  const progress = new ProgressReporter(progressMode(globals));
  activeProgress = progress;
  const job: JobOptions = { signal: controller.signal, onProgress: progress.onProgress };
  let model: StableDiffusionModel | undefined;
  try {
    if (globals.threads !== undefined) configure({ threads: globals.threads });
    const loadStart = performance.now();
    model = await loadModel(globals.model, {
      device: globals.device as never,
      dtype: globals.dtype as never,
      ...job,
    });
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const start = performance.now();
    const loaded = model;
    await work({
      globals,
      model: loaded,
      job,
      loadSeconds,
      seconds: () => (performance.now() - start) / 1000,
      report(json, human, options) {
        progress.stop();
        if (globals.json) process.stdout.write(JSON.stringify(json, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
        else if (!globals.quiet || options?.essential) process.stdout.write(human + '\n');
      },
    });
  } catch (error) {
    if (error instanceof TorchEditError && !interrupted) {
      const rewritten = rewriteMessage(error.message, { ...GLOBAL_NAMES, ...names });
      if (rewritten !== error.message) {
        const wrapped = new TorchEditError(error.code, rewritten, { cause: error });
        wrapped.stack = error.stack;
        throw wrapped;
      }
    }
    throw error;
  } finally {
    progress.stop();
    activeProgress = undefined;
    model?.dispose();
  }
}

const context: CliContext = {
  run,
  globals: globalsOf,
  parse,
  check,
  defaultText,
  fail(message) {
    throw invalid(message);
  },
};

/** Adds the global options to the program and to each command. */
function addGlobalOptions(command: Command): Command {
  const group = 'Global options:';
  return command
    .addOption(new Option('-m, --model <dir>', `model bundle folder (default: the shipped model, ${relative(packageRoot, defaultModelPath)})`).helpGroup(group))
    .addOption(new Option('--device <device>', "where the model runs: cpu, cuda, cuda:N or auto (default: cpu)").helpGroup(group))
    .addOption(new Option('--dtype <dtype>', "cast the weights: float32, float16 or bfloat16 (default: the bundle's)").helpGroup(group))
    .addOption(new Option('--threads <n>', 'intra-op threads of the worker (default: libtorch\'s choice)').argParser(parse.integer).helpGroup(group))
    .addOption(new Option('--json', 'print one JSON object on stdout, no progress').helpGroup(group))
    .addOption(new Option('-q, --quiet', 'no progress and no summary').helpGroup(group));
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function createProgram(): Command {
  const program = new Command('torchedit')
    .description('Edit images with Stable Diffusion (LEDITS) and generate them, with libtorch natively.')
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  addGlobalOptions(program);
  const commands = [registerGenerate(context), registerInvert(context), registerEdit(context), registerImagic(context), registerInfo(context), registerDoctor(context)];
  for (const command of commands) {
    addGlobalOptions(command);
    if (['generate', 'invert', 'edit', 'imagic'].includes(command.name())) {
      command.addHelpText('after', '\nDefaults shown are the library\'s (Stable Diffusion\'s); a model may recommend others in its\n' +
        'model.json, and then uses them (the shipped shapes-64 does): "torchedit info" lists them.');
    }
    command.exitOverride().configureOutput({ outputError: () => {} });
    program.addCommand(command);
  }
  program.addHelpText('after', `
Exit codes: 0 success, 1 failure, 2 bad input, 130 interrupted (Ctrl-C).
Run "torchedit <command> --help" for a command's options.`);
  return program;
}

function codeOf(error: unknown): string {
  if (error instanceof CommanderError) {
    return error.code === 'commander.invalidArgument' || /option/i.test(error.code) ? 'ERR_INVALID_OPTION' : 'ERR_USAGE';
  }
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_') ? code : 'ERR_INTERNAL';
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  const code = codeOf(error);
  if (interrupted || code === 'ERR_ABORTED') return 130;
  if (BAD_INPUT.has(code) || code.startsWith('ERR_MODEL_') || code.startsWith('ERR_FILE_')) return 2;
  return 1;
}

/** `torchedit: <message> [<code>]`, on one line. */
export function errorLine(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof CommanderError) message = message.replace(/^error:\s*/i, '');
  if (interrupted && codeOf(error) === 'ERR_ABORTED') message = 'interrupted';
  message = message.replace(/\s*\n+\s*/g, ' ').trim();
  return `torchedit: ${message} [${codeOf(error)}]`;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  const onSigint = () => {
    if (interrupted) process.exit(130); // a second Ctrl-C does not wait for the job
    interrupted = true;
    controller.abort(new TorchEditError('ERR_ABORTED', 'interrupted'));
  };
  process.on('SIGINT', onSigint);
  // A closed pipe (`torchedit --help | head`) ends output quietly instead of crashing.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  try {
    await createProgram().parseAsync(argv);
    return interrupted ? 130 : 0;
  } catch (error) {
    activeProgress?.stop();
    const code = exitCodeFor(error);
    // Help, --version and commander's own usage help are already printed; other errors get one line.
    const printed = error instanceof CommanderError && (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help');
    if (!printed) {
      process.stderr.write(errorLine(error) + '\n');
      if (process.env.TORCHEDIT_DEBUG && error instanceof Error && error.stack) process.stderr.write(error.stack + '\n');
    }
    return code;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

process.exitCode = await main();
