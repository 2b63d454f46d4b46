/**
 * `torchedit serve`: the HTTP service and its web page (lib/server), a thin command over
 * `createServer`. Logs are pino JSON lines on stdout; one line on stderr says where it listens.
 * SIGTERM or Ctrl-C stops taking requests, lets running jobs finish within --grace, and exits 0.
 */
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { invalidOption } from '../../errors.js';
import { defaultLimits, resolveServerOptions, type ServerOptions } from '../../server/options.js';
import { globalsOf, modelDir, parseInteger } from '../flags.js';
import { fail } from '../output.js';

interface ServeFlags {
  port: number;
  host: string;
  dataDir?: string;
  token: string[];
  cors: string[];
  maxQueue?: number;
  maxBody?: number;
  maxPixels?: number;
  maxSteps?: number;
  maxConcepts?: number;
  jobTimeout?: number;
  grace: number;
  ttl?: number;
  web: boolean;
  logLevel: string;
  redis?: string;
  queue: string;
  artifactsDir?: string;
}

function positive(flag: string, min = 1): (value: string) => number {
  return (value) => {
    const n = parseInteger(value);
    if (!Number.isSafeInteger(n) || n < min) throw invalidOption(flag, `integer ≥ ${min}`, n);
    return n;
  };
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function serveCommand(): Command {
  const d = defaultLimits;
  return new Command('serve')
    .description('Serve the HTTP API (/v1, OpenAPI at /v1/openapi.json) and the web page (/); see README "Service".')
    .addOption(new Option('-p, --port <port>', 'TCP port (0: any free one)').default(8080).argParser(positive('--port', 0)))
    .addOption(
      new Option('--host <host>', 'address to listen on; 0.0.0.0 exposes the server to the network: set --token then').default('127.0.0.1'),
    )
    .addOption(
      new Option('--data-dir <dir>', 'where images, inversions, results and the job log are kept (default: <tmp>/torchedit-serve)'),
    )
    .addOption(
      new Option(
        '--token <token>',
        'a bearer token clients must send (repeatable; also TORCHEDIT_TOKENS, comma-separated); none: no authentication',
      )
        .default([], 'none')
        .argParser(collect),
    )
    .addOption(new Option('--cors <origin>', 'an origin allowed by CORS, or * (repeatable)').default([], 'CORS off').argParser(collect))
    .addOption(new Option('--max-queue <n>', `jobs that may wait; more is 429 (default: ${d.queue})`).argParser(positive('--max-queue')))
    .addOption(new Option('--max-body <bytes>', `largest request body (default: ${d.bodyBytes})`).argParser(positive('--max-body')))
    .addOption(
      new Option('--max-pixels <n>', `most pixels an uploaded image may declare (default: ${d.imagePixels})`).argParser(
        positive('--max-pixels'),
      ),
    )
    .addOption(new Option('--max-steps <n>', `most steps a request may ask for (default: ${d.steps})`).argParser(positive('--max-steps')))
    .addOption(new Option('--max-concepts <n>', `most concepts in one edit (default: ${d.concepts})`).argParser(positive('--max-concepts')))
    .addOption(
      new Option('--job-timeout <seconds>', `a job running longer is aborted (default: ${d.jobTimeoutMs / 1000})`).argParser(
        positive('--job-timeout'),
      ),
    )
    .addOption(
      new Option('--grace <seconds>', 'on SIGTERM, how long running jobs may finish before they are aborted')
        .default(30)
        .argParser(positive('--grace', 0)),
    )
    .addOption(
      new Option('--ttl <hours>', `delete stored objects unused this long; 0 keeps them (default: ${d.ttlMs / 3600_000})`).argParser(
        positive('--ttl', 0),
      ),
    )
    .addOption(new Option('--no-web', 'do not serve the web page'))
    .addOption(
      new Option('--redis <url>', 'queue jobs on Redis for `torchedit worker`s instead of running them here (see README "Scaling out")'),
    )
    .addOption(new Option('--queue <name>', "with --redis: the queue name (the workers' --queue)").default('torchedit'))
    .addOption(new Option('--artifacts-dir <dir>', 'with --redis: a directory shared with the workers (default: Redis itself)'))
    .addOption(
      new Option('--log-level <level>', 'pino log level')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('info'),
    )
    .addHelpText(
      'after',
      `
Examples:
  torchedit serve
  torchedit serve --port 8080 --data-dir /var/lib/torchedit --token "$(openssl rand -hex 16)"
  curl -s --data-binary @photo.png -H 'content-type: image/png' http://127.0.0.1:8080/v1/images`,
    )
    .action(async (flags: ServeFlags, cmd: Command) => {
      const globals = globalsOf(cmd);
      const dir = modelDir(globals);
      const envTokens = (process.env.TORCHEDIT_TOKENS ?? '')
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean);
      const options: ServerOptions = {
        models: { [basename(dir)]: dir },
        dataDir: flags.dataDir,
        tokens: [...flags.token, ...envTokens],
        corsOrigins: flags.cors,
        webPage: flags.web,
        shutdownGraceMs: flags.grace * 1000,
        logger: flags.logLevel === 'silent' ? false : { level: globals.quiet ? 'warn' : flags.logLevel },
        device: globals.device,
        dtype: globals.dtype,
        threads: globals.threads,
        ...(flags.redis
          ? {
              scale: {
                redis: flags.redis,
                queue: flags.queue,
                artifacts: flags.artifactsDir ? { type: 'dir' as const, dir: flags.artifactsDir } : { type: 'redis' as const },
              },
            }
          : {}),
        limits: {
          queue: flags.maxQueue,
          bodyBytes: flags.maxBody,
          imagePixels: flags.maxPixels,
          steps: flags.maxSteps,
          concepts: flags.maxConcepts,
          jobTimeoutMs: flags.jobTimeout === undefined ? undefined : flags.jobTimeout * 1000,
          ttlMs: flags.ttl === undefined ? undefined : flags.ttl * 3600_000,
        },
      };
      const { createServer } = await import('../../server/app.js');
      let app: Awaited<ReturnType<typeof createServer>>;
      try {
        app = await createServer(options);
      } catch (error) {
        if (error instanceof TypeError) fail(error.message); // a bad option value
        if ((error as { code?: string }).code === 'ERR_INVALID_OPTION') fail((error as Error).message);
        throw error;
      }
      const address = await app.listen({ port: flags.port, host: flags.host });
      const queued = flags.redis ? `, jobs queued on ${flags.redis}` : '';
      const auth = options.tokens?.length ? `, ${options.tokens.length} token${options.tokens.length > 1 ? 's' : ''}` : ', no token';
      process.stderr.write(
        `torchedit: serving on ${address} (model ${basename(dir)}, data ${resolveServerOptions(options).dataDir}${auth}${queued})\n`,
      );
      await new Promise<void>((resolve) => {
        let closing = false;
        const stop = (signal: string) => {
          if (closing) return;
          closing = true;
          process.stderr.write(`torchedit: ${signal}: finishing running jobs (up to ${flags.grace} s), then exiting\n`);
          app.close().then(resolve, (error) => {
            process.stderr.write(`torchedit: error while closing: ${(error as Error).message}\n`);
            resolve();
          });
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      });
      process.exit(0);
    });
}
