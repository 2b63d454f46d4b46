/**
 * `torchedit worker`: a scale-out worker (lib/server/scale/worker.ts) that takes jobs from the
 * Redis queue `torchedit serve --redis` fills. One per device. SIGTERM or Ctrl-C stops taking
 * jobs, lets the running one finish within --grace (then returns it to the queue), and exits 0.
 */
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { invalidOption } from '../../errors.js';
import { globalsOf, modelDir, parseInteger } from '../flags.js';

interface WorkerFlags {
  redis: string;
  queue: string;
  concurrency: number;
  artifactsDir?: string;
  grace: number;
  lockDuration: number;
  stalledInterval: number;
  attempts: number;
  quiet?: boolean;
}

function positive(flag: string, min = 1): (value: string) => number {
  return (value) => {
    const n = parseInteger(value);
    if (!Number.isSafeInteger(n) || n < min) throw invalidOption(flag, `integer ≥ ${min}`, n);
    return n;
  };
}

export function workerCommand(): Command {
  return new Command('worker')
    .description('Run jobs from the Redis queue that `torchedit serve --redis` fills (one worker per device); see README "Scaling out".')
    .addOption(new Option('--redis <url>', 'the Redis URL, redis://host:port').makeOptionMandatory())
    .addOption(new Option('--queue <name>', "the queue name (the same as the servers')").default('torchedit'))
    .addOption(
      new Option('--concurrency <n>', 'jobs at once (a device runs one at a time)').default(1).argParser(positive('--concurrency')),
    )
    .addOption(new Option('--artifacts-dir <dir>', 'a shared directory for artifacts (default: Redis itself, artifacts up to 64 MiB)'))
    .addOption(
      new Option('--grace <seconds>', 'on SIGTERM, how long the running job may finish before it goes back to the queue')
        .default(30)
        .argParser(positive('--grace', 0)),
    )
    .addOption(
      new Option('--lock-duration <ms>', 'a job whose worker is silent this long goes to another worker')
        .default(30_000)
        .argParser(positive('--lock-duration')),
    )
    .addOption(
      new Option('--stalled-interval <ms>', 'how often to look for jobs of lost workers')
        .default(30_000)
        .argParser(positive('--stalled-interval')),
    )
    .addOption(new Option('--attempts <n>', 'runs of one job before it fails for good').default(3).argParser(positive('--attempts')))
    .addHelpText(
      'after',
      `
Examples:
  torchedit worker --redis redis://127.0.0.1:6379 --model models/shapes-64 --device cuda:0
  torchedit worker --redis redis://10.0.0.5:6379 --artifacts-dir /mnt/torchedit --device cuda:1`,
    )
    .action(async (flags: WorkerFlags, cmd: Command) => {
      const globals = globalsOf(cmd);
      const dir = modelDir(globals);
      const say = (line: string) => process.stderr.write(`torchedit worker: ${line}\n`);
      const { createWorker } = await import('../../server/scale/worker.js');
      const worker = await createWorker({
        redis: flags.redis,
        queue: flags.queue,
        model: dir,
        modelName: basename(dir),
        device: globals.device,
        threads: globals.threads,
        concurrency: flags.concurrency,
        artifacts: flags.artifactsDir ? { type: 'dir', dir: flags.artifactsDir } : { type: 'redis' },
        shutdownGraceMs: flags.grace * 1000,
        lockDurationMs: flags.lockDuration,
        stalledIntervalMs: flags.stalledInterval,
        attempts: flags.attempts,
        log: globals.quiet ? undefined : say,
      });
      say(`ready: ${worker.name}, model ${basename(dir)} (${worker.fingerprint.slice(0, 12)}), queue ${flags.queue} on ${flags.redis}`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          say(`${signal}: finishing the running job (up to ${flags.grace} s), then exiting`);
          worker.close().then(resolve, (error) => {
            say(`error while closing: ${(error as Error).message}`);
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      process.exit(0);
    });
}
