/**
 * What the CLI writes: a command's report (one JSON object with --json, a summary line
 * otherwise), output file names and the checks done on them before any work, and the one-line
 * error `torchedit: <message> [<code>]` with its exit code (2 bad input, 1 failure, 130 Ctrl-C).
 */
import { statSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { type Command, CommanderError } from 'commander';
import { TorchEditError } from '../errors.js';
import { globalsOf } from './flags.js';
import { stopProgress, wasInterrupted } from './session.js';

/**
 * Prints a command's result: `json` as one JSON object on stdout with --json; otherwise `human`
 * (unless --quiet, which keeps only `essential` output such as `info`'s).
 */
export function report(command: Command, json: Record<string, unknown>, human: string, options?: { essential?: boolean }): void {
  const globals = globalsOf(command);
  stopProgress();
  if (globals.json) process.stdout.write(`${JSON.stringify(json, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
  else if (!globals.quiet || options?.essential) process.stdout.write(`${human}\n`);
}

/** Seconds to milliseconds precision, for reports. */
export function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}

/** Throws ERR_INVALID_OPTION with `message` (a misuse of the command line). */
export function fail(message: string): never {
  throw new TorchEditError('ERR_INVALID_OPTION', message);
}

// ---------------------------------------------------------------------------------------------
// Files, checked before a (possibly large) model is loaded.

const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'];

function statOf(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** An input image must be an existing file (ERR_IMAGE_READ otherwise, as the library says). */
export function checkInputImage(path: string): void {
  const stat = statOf(path);
  if (!stat) throw new TorchEditError('ERR_IMAGE_READ', `Cannot read image from file "${path}": no such file`);
  if (!stat.isFile()) throw new TorchEditError('ERR_IMAGE_READ', `Cannot read image from file "${path}": not a file`);
}

/** An input file given with `flag` must exist (ERR_FILE_NOT_FOUND). */
export function checkInputFile(path: string, flag: string): void {
  const stat = statOf(path);
  if (!stat) throw new TorchEditError('ERR_FILE_NOT_FOUND', `No such file for ${flag}: ${path}`);
  if (!stat.isFile()) throw new TorchEditError('ERR_FILE_NOT_FOUND', `Not a file for ${flag}: ${path}`);
}

/** An output image needs a .png/.jpg/.jpeg/.webp name and an existing folder. */
export function checkOutputImage(path: string, flag: string): void {
  if (!IMAGE_EXTENSIONS.includes(extname(path).toLowerCase())) {
    fail(`Expected a file name ending in ${IMAGE_EXTENSIONS.join(', ')} for ${flag} but received "${path}"`);
  }
  checkOutputFile(path, flag);
}

/** An output file needs an existing folder. */
export function checkOutputFile(path: string, flag: string): void {
  const folder = dirname(resolve(path));
  if (!statOf(folder)?.isDirectory()) throw new TorchEditError('ERR_FILE_NOT_FOUND', `The folder of ${flag} ${path} does not exist`);
  if (statOf(path)?.isDirectory()) fail(`Expected a file name for ${flag} but received the folder "${path}"`);
}

/** `photo.jpg` → `photo` + suffix, in the current folder. */
export function outputNameFor(input: string, suffix: string): string {
  const base = basename(input, extname(input));
  return `${base.replace(/\.inversion$/, '')}${suffix}`;
}

/** `out.png` for one image; `out-1.png` … `out-N.png` for several. */
export function batchNames(out: string, count: number): string[] {
  if (count === 1) return [out];
  const ext = extname(out);
  const stem = out.slice(0, out.length - ext.length);
  return Array.from({ length: count }, (_, i) => `${stem}-${i + 1}${ext}`);
}

// ---------------------------------------------------------------------------------------------
// Errors.

/** Codes that mean the input was bad (exit 2); ERR_MODEL_* and ERR_FILE_* are matched by prefix. */
const BAD_INPUT = new Set(['ERR_INVALID_OPTION', 'ERR_IMAGE_READ', 'ERR_DEVICE', 'ERR_DEVICE_UNAVAILABLE', 'ERR_USAGE']);

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
  if (wasInterrupted() || code === 'ERR_ABORTED') return 130;
  if (BAD_INPUT.has(code) || code.startsWith('ERR_MODEL_') || code.startsWith('ERR_FILE_')) return 2;
  return 1;
}

/** `torchedit: <message> [<code>]`, on one line. */
export function errorLine(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof CommanderError) message = message.replace(/^error:\s*/i, '');
  if (wasInterrupted() && codeOf(error) === 'ERR_ABORTED') message = 'interrupted';
  message = message.replace(/\s*\n+\s*/g, ' ').trim();
  return `torchedit: ${message} [${codeOf(error)}]`;
}

/** Whether commander already printed what the error is about (help, --version). */
export function alreadyPrinted(error: unknown): boolean {
  return (
    error instanceof CommanderError &&
    (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help')
  );
}
