#!/usr/bin/env node
// The long fuzz run (issue 20): the properties of test/fuzz/ with a fresh seed, each for --seconds
// instead of npm test's few seconds. A failure prints its seed and path; replay it with --seed.
//
//   npm run fuzz -- --seconds 120                  every property for 120 s each
//   npm run fuzz -- --seconds 60 --seed 42 images  one file (dist/test/fuzz/images.test.js), seeded
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string' } },
  allowPositionals: true,
});
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new Error(`--seconds must be a positive number, got ${values.seconds}`);
const seed = values.seed ?? String(Math.floor(Math.random() * 2 ** 31));
const dir = join('dist', 'test', 'fuzz');
const files = positionals.length === 0 ? [dir] : positionals.map((name) => join(dir, `${name}.test.js`));
for (const file of files) if (!existsSync(file)) throw new Error(`no ${file}: run npm run build:ts, or name a file of test/fuzz/`);
console.log(`fuzz: ${seconds} s per property, seed ${seed} (replay: npm run fuzz -- --seconds ${seconds} --seed ${seed})`);
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=0', ...files], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SECONDS: String(seconds), FUZZ_SEED: seed },
});
process.exit(result.status ?? 1);
