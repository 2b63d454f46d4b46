/**
 * The `torchedit` command line: `main()` (bin/torchedit.js calls it) builds the program from the
 * commands in ./commands/, one file each. Commands import only the shared helpers: ./flags.ts
 * (flags and their help, derived from the option schema; validation naming the flags),
 * ./session.ts (model.json, model loading, progress, Ctrl-C) and ./output.ts (report, files,
 * errors); no command imports another.
 *
 * Failures print one line, `torchedit: <message> [<code>]`, on stderr, and exit with
 * 2 for bad input, 1 for other failures, 130 after Ctrl-C.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { packageRoot } from '../binding.js';
import { doctorCommand } from './commands/doctorCommand.js';
import { editCommand } from './commands/editCommand.js';
import { generateCommand } from './commands/generateCommand.js';
import { imagicCommand } from './commands/imagicCommand.js';
import { infoCommand } from './commands/infoCommand.js';
import { invertCommand } from './commands/invertCommand.js';
import { serveCommand } from './commands/serveCommand.js';
import { workerCommand } from './commands/workerCommand.js';
import { addGlobalOptions, helpDefaults, type HelpDefaults } from './flags.js';
import { alreadyPrinted, errorLine, exitCodeFor } from './output.js';
import { interrupt, stopProgress, wasInterrupted } from './session.js';

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The program; `help` holds the defaults the chosen model uses, for --help. */
export function createProgram(help: HelpDefaults): Command {
  const program = new Command('torchedit')
    .description('Edit images with Stable Diffusion (LEDITS) and generate them, with libtorch natively.')
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  addGlobalOptions(program);
  const pipelines = [generateCommand(help), invertCommand(help), editCommand(help), imagicCommand(help)];
  for (const command of pipelines) {
    command.addHelpText('after', `\nDefaults shown are ${help.source}; "torchedit info" lists a model's recommendations.`);
  }
  for (const command of [...pipelines, serveCommand(), workerCommand(), infoCommand(), doctorCommand()]) {
    addGlobalOptions(command);
    command.exitOverride().configureOutput({ outputError: () => {} });
    program.addCommand(command);
  }
  program.addHelpText(
    'after',
    `
Exit codes: 0 success, 1 failure, 2 bad input, 130 interrupted (Ctrl-C).
Run "torchedit <command> --help" for a command's options.`,
  );
  return program;
}

/** Runs the command line on `argv` (node, script, arguments…) and resolves to the exit code. */
export async function main(argv: string[] = process.argv): Promise<number> {
  const onSigint = () => {
    if (interrupt()) process.exit(130); // a second Ctrl-C does not wait for the job
  };
  process.on('SIGINT', onSigint);
  // A closed pipe (`torchedit --help | head`) ends output quietly instead of crashing.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  try {
    await createProgram(await helpDefaults(argv.slice(2))).parseAsync(argv);
    return wasInterrupted() ? 130 : 0;
  } catch (error) {
    stopProgress();
    // Help, --version and commander's own usage help are already printed; other errors get one line.
    if (!alreadyPrinted(error)) {
      process.stderr.write(`${errorLine(error)}\n`);
      if (process.env.TORCHEDIT_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    }
    return exitCodeFor(error);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
