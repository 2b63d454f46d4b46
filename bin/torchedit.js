#!/usr/bin/env node
// The torchedit command line: main() of lib/cli/cli.ts, compiled to dist/ by `npm run build:ts`.
import('../dist/lib/cli/cli.js').then(
  async ({ main }) => {
    process.exitCode = await main(process.argv);
  },
  (error) => {
    process.stderr.write(`torchedit: cannot start the command line: ${error?.message ?? error} [ERR_INTERNAL]\n`);
    process.exitCode = 1;
  },
);
