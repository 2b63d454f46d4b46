// The torchedit command line, run as a child process (`node bin/torchedit.js …`) against the tiny
// test bundle. Needs the compiled dist/ (tests run after tsc). Every run passes --model: the
// shipped default model may not exist in a checkout.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { defaultModelPath } from '../../lib/model/model.js';
import { editDefaults, inversionDefaults, textToImageDefaults } from '../../lib/options/defaults.js';
import { repoRoot, testBundle } from '../helpers.js';

const bin = join(repoRoot, 'bin', 'torchedit.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `onSpawn` gets the child (to signal it). */
function cli(args: string[], onSpawn?: (child: ReturnType<typeof spawn>) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    onSpawn?.(child);
  });
}

/** stderr's lines (without blank ones). */
function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

/** Asserts a bad-input failure: exit 2 and exactly one line `torchedit: … [code]` on stderr. */
function assertBadInput(run: Run, code: string, mention?: string): void {
  assert.equal(run.code, 2, `exit code: ${run.code}, stderr: ${run.stderr}`);
  const errorLines = lines(run.stderr);
  assert.equal(errorLines.length, 1, `expected one line on stderr, got:\n${run.stderr}`);
  assert.match(errorLines[0], /^torchedit: .+ \[ERR_[A-Z_]+\]$/);
  assert.ok(errorLines[0].includes(`[${code}]`), errorLines[0]);
  if (mention) assert.ok(errorLines[0].includes(mention), `"${errorLines[0]}" should mention ${mention}`);
  assert.equal(run.stdout, '');
}

describe('torchedit CLI', { timeout: 120_000 }, () => {
  let model: string;
  let dir: string;
  let photo: string;

  before(async () => {
    model = testBundle();
    dir = mkdtempSync(join(tmpdir(), 'torchedit-cli-'));
    photo = join(dir, 'photo.png');
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/><circle cx="32" cy="32" r="20" fill="red"/></svg>';
    await sharp(Buffer.from(svg)).png().toFile(photo);
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test("--help of the program lists the commands; of each command, its options and the defaults of a model that recommends none: the library's", async () => {
    const root = await cli(['--help']);
    assert.equal(root.code, 0);
    for (const name of ['generate', 'invert', 'edit', 'info', '--model', '--device', '--threads', '--json', '--quiet'])
      assert.ok(root.stdout.includes(name), name);

    const expected: Record<string, string[]> = {
      generate: [
        '<prompt>',
        '--negative',
        '--steps',
        '--guidance',
        '--eta',
        '--seed',
        '--width',
        '--height',
        '--batch-size',
        '--out',
        `(default: ${textToImageDefaults.steps})`,
        `(default: ${textToImageDefaults.guidanceScale})`,
      ],
      invert: [
        '<image>',
        '--source-prompt',
        '--source-guidance',
        '--steps',
        '--eta',
        '--seed',
        '--width',
        '--height',
        '--resize',
        '--scheduler',
        '--skip-noisiest',
        '--out',
        `(default: ${inversionDefaults.steps}; 50 with dpmsolver++)`,
        `(default: ${inversionDefaults.skipNoisiest}; 0.15 with dpmsolver++)`,
        `(default: ${inversionDefaults.sourceGuidanceScale})`,
      ],
      edit: [
        '[image]',
        '--inversion',
        '--target',
        '--guidance',
        '--skip',
        '--concept',
        '--momentum-scale',
        '--momentum-beta',
        '--mask-mode',
        '--source-prompt',
        '--steps',
        '--seed',
        '--save-inversion',
        '--scheduler',
        '--out',
        `(default: ${editDefaults.guidanceScale})`,
        `(default: ${editDefaults.momentumBeta})`,
      ],
      info: ['--model', '--device', '--json'],
    };
    const runs = await Promise.all(Object.keys(expected).map((command) => cli([command, '--help', '--model', model])));
    Object.entries(expected).forEach(([command, options], i) => {
      const run = runs[i];
      assert.equal(run.code, 0, `${command} --help exit code`);
      const text = run.stdout.replace(/\s+/g, ' '); // help is wrapped to the terminal's width
      for (const option of options) assert.ok(text.includes(option), `${command} --help should list ${option}:\n${run.stdout}`);
      // Every command also takes the global options.
      for (const option of ['--model', '--device', '--dtype', '--threads', '--json', '--quiet'])
        assert.ok(text.includes(option), `${command}: ${option}`);
    });
  });

  test('an unknown command or option fails with one line and a nonzero exit code', async () => {
    const [command, option, argument] = await Promise.all([
      cli(['frobnicate', '--model', model]),
      cli(['generate', 'x', '--stpes', '3', '--model', model]),
      cli(['generate', '--model', model]),
    ]);
    assertBadInput(command, 'ERR_USAGE', 'frobnicate');
    assertBadInput(option, 'ERR_INVALID_OPTION', '--stpes');
    assertBadInput(argument, 'ERR_USAGE', 'prompt');
  });

  test('info --json prints the bundle summary, parameter counts, device, dtype and runtime', async () => {
    const run = await cli(['info', '--model', model, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const info = JSON.parse(run.stdout);
    assert.equal(info.name, 'tiny-random-sd');
    assert.equal(info.imageSize, 64);
    assert.equal(info.sampleSize, 8);
    assert.equal(info.latentChannels, 4);
    assert.equal(info.vaeScaleFactor, 8);
    assert.equal(info.predictionType, 'epsilon');
    assert.equal(info.scheduler.numTrainTimesteps, 1000);
    assert.equal(info.textEncoder.hiddenSize, 32);
    assert.equal(info.device, 'cpu');
    assert.equal(info.dtype, 'float32');
    const { textEncoder, unet, vaeEncoder, vaeDecoder, total } = info.parameters;
    for (const n of [textEncoder, unet, vaeEncoder, vaeDecoder]) assert.ok(Number.isInteger(n) && n > 0);
    assert.equal(total, textEncoder + unet + vaeEncoder + vaeDecoder);
    assert.equal(typeof info.runtime.torchVersion, 'string');
    assert.equal(typeof info.runtime.cudaAvailable, 'boolean');
  });

  test('generate writes a PNG of the requested size; --json reports the seed', async () => {
    const out = join(dir, 'generated.png');
    const run = await cli([
      'generate',
      'a red circle',
      '--model',
      model,
      '--steps',
      '5',
      '--seed',
      '7',
      '--width',
      '128',
      '--height',
      '64',
      '--out',
      out,
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const json = JSON.parse(run.stdout);
    assert.equal(json.output, out);
    assert.equal(json.seed, '7');
    assert.equal(json.width, 128);
    assert.equal(json.height, 64);
    assert.equal(typeof json.seconds, 'number');
    const meta = await sharp(out).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 128);
    assert.equal(meta.height, 64);
    assert.ok(!run.stderr.includes('denoise'), '--json prints no progress');
    assert.ok(!run.stderr.includes('warning'), 'a bundle that declares no known token ids never warns');
  });

  test('a prompt with words the model was not trained on prints one warning line on stderr, also with --json and --quiet', async () => {
    const out = join(dir, 'purple.png');
    const warning =
      'torchedit: warning: The model shapes-64 was not trained on the word "purple" in "a purple circle": it does not know what it means [TORCHEDIT_UNKNOWN_WORDS]';
    for (const flag of ['--json', '--quiet', undefined]) {
      const args = ['generate', 'a purple circle', '--model', defaultModelPath, '--steps', '2', '--seed', '1', '--out', out];
      const run = await cli(flag ? [...args, flag] : args);
      assert.equal(run.code, 0, run.stderr);
      const warnings = lines(run.stderr).filter((l) => l.startsWith('torchedit: warning:'));
      assert.deepEqual(warnings, [warning], `${flag ?? 'no flag'}: ${run.stderr}`);
      if (flag === '--json') assert.equal(JSON.parse(run.stdout).output, out, 'stdout holds the JSON alone');
      else if (flag === '--quiet') assert.equal(run.stderr.trim(), warning, '--quiet: the warning alone');
      else assert.match(run.stdout, /^wrote /);
    }
  });

  test('invert writes an inversion; edit --inversion with concepts writes the edited image', async () => {
    const inversion = join(dir, 'photo.inversion.safetensors');
    const inverted = await cli([
      'invert',
      photo,
      '--model',
      model,
      '--steps',
      '5',
      '--seed',
      '0',
      '--source-prompt',
      'a red circle',
      '--out',
      inversion,
      '--json',
    ]);
    assert.equal(inverted.code, 0, inverted.stderr);
    assert.deepEqual((({ output, seed, width, height, steps }) => ({ output, seed, width, height, steps }))(JSON.parse(inverted.stdout)), {
      output: inversion,
      seed: '0',
      width: 64,
      height: 64,
      steps: 5,
    });
    const { metadata, tensors } = await readSafetensors(inversion);
    assert.equal(metadata.format, 'torchedit-inversion');
    assert.equal(JSON.parse(metadata.settings).sourcePrompt, 'a red circle');
    assert.deepEqual(tensors.get('zs')?.shape, [5, 1, 4, 8, 8]);

    const out = join(dir, 'edited.png');
    const edited = await cli([
      'edit',
      '--inversion',
      inversion,
      '--concept',
      '+blue',
      '--concept',
      '-red:scale=5',
      '--model',
      model,
      '--out',
      out,
      '--json',
    ]);
    assert.equal(edited.code, 0, edited.stderr);
    const json = JSON.parse(edited.stdout);
    assert.equal(json.output, out);
    assert.equal(json.seed, '0');
    assert.equal(json.concepts, 2);
    const meta = await sharp(out).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);
  });

  test("--scheduler dpmsolver++ --skip-noisiest: LEDITS++'s inversion, recorded in the file, and its edit defaults", async () => {
    const inversion = join(dir, 'dpm.inversion.safetensors');
    const args = ['--scheduler', 'dpmsolver++', '--skip-noisiest', '0.2', '--steps', '6', '--seed', '0', '--model', model];
    const inverted = await cli(['invert', photo, ...args, '--out', inversion, '--json']);
    assert.equal(inverted.code, 0, inverted.stderr);
    assert.equal(JSON.parse(inverted.stdout).scheduler, 'dpmsolver++');
    const settings = JSON.parse((await readSafetensors(inversion)).metadata.settings);
    assert.deepEqual([settings.scheduler, settings.steps, settings.skipNoisiest], ['dpmsolver++', 6, 0.2]);
    // An edit of it defaults to skip 0, which --skip 5 of its 6 steps may replace; the image route takes the same flags.
    const out = join(dir, 'dpm.png');
    for (const run of await Promise.all([
      cli(['edit', '--inversion', inversion, '--concept', '+blue', '--skip', '5', '--model', model, '--out', out]),
      cli(['edit', photo, ...args, '--concept', '+blue', '--out', join(dir, 'dpm-one-go.png')]),
    ]))
      assert.equal(run.code, 0, run.stderr);
    const bad = await cli(['invert', photo, '--scheduler', 'dpmsolver++', '--eta', '0.5', '--model', model, '--out', inversion]);
    assertBadInput(bad, 'ERR_INVALID_OPTION', '--eta');
  });

  test('edit IMAGE inverts and edits in one go, with progress lines when stderr is not a terminal', async () => {
    const out = join(dir, 'one-go.webp');
    const saved = join(dir, 'one-go.inversion.safetensors');
    const run = await cli([
      'edit',
      photo,
      '--model',
      model,
      '--steps',
      '5',
      '--seed',
      '1',
      '--skip',
      '0.4',
      '--target',
      'a blue circle',
      '--concept',
      '-red:scale=5,warmup=1,threshold=0.9,weight=1,cooldown=4',
      '--momentum-scale',
      '0.2',
      '--mask-mode',
      'sum',
      '--save-inversion',
      saved,
      '--out',
      out,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^wrote .*one-go\.webp \(64×64, seed 1, /);
    assert.ok(run.stderr.includes('torchedit: invert: 5 steps'), run.stderr);
    assert.ok(run.stderr.includes('torchedit: edit: 3 steps'), run.stderr);
    assert.ok(existsSync(saved));
    const meta = await sharp(out).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 64, 64]);
  });

  test('bad input exits 2 with one line naming the problem', async () => {
    const out = join(dir, 'never.png');
    const cases: [string[], string, string?][] = [
      [['edit', join(dir, 'missing.png'), '--model', model, '--concept', '+blue', '--out', out], 'ERR_IMAGE_READ', 'missing.png'],
      [['invert', join(dir, 'missing.png'), '--model', model], 'ERR_IMAGE_READ'],
      [['generate', 'x', '--model', model, '--steps', '0', '--out', out], 'ERR_INVALID_OPTION', '--steps'],
      [['generate', 'x', '--model', model, '--steps', 'many', '--out', out], 'ERR_INVALID_OPTION', '--steps'],
      [['generate', 'x', '--model', model, '--out', join(dir, 'out.gif')], 'ERR_INVALID_OPTION', '--out'],
      [['edit', photo, '--model', model, '--concept', '+blue:scale', '--out', out], 'ERR_INVALID_OPTION', '--concept'],
      [['edit', photo, '--model', model, '--concept', '+blue:size=3', '--out', out], 'ERR_INVALID_OPTION', 'size'],
      [['edit', '--model', model, '--out', out], 'ERR_INVALID_OPTION', '--inversion'],
      [
        ['edit', '--inversion', join(dir, 'photo.inversion.safetensors'), '--steps', '5', '--model', model, '--out', out],
        'ERR_INVALID_OPTION',
        '--steps',
      ],
      [['info', '--model', join(dir, 'no-such-bundle')], 'ERR_MODEL_NOT_FOUND'],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args)));
    cases.forEach(([, code, mention], i) => assertBadInput(runs[i], code, mention));
    assert.ok(!existsSync(out));
  });

  test("options are checked against model.json before the model loads; --help shows the chosen model's defaults", async () => {
    // A bundle folder with model.json alone: a bad option must be reported before its missing module files are.
    const partial = join(dir, 'model-json-only');
    mkdirSync(partial, { recursive: true });
    const json = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8'));
    writeFileSync(
      join(partial, 'model.json'),
      JSON.stringify({ ...json, recommended: { edit: { guidanceScale: 5 }, imagicGenerate: { eta: 1.2 } } }),
    );
    const out = join(dir, 'never.png');
    const cases: [string[], string][] = [
      [['generate', 'x', '--steps', '0', '--out', out], 'for --steps'],
      [['generate', 'x', '--width', '100', '--out', out], '--width to be a multiple of 64'],
      [['invert', photo, '--eta', '0', '--out', join(dir, 'never.safetensors')], 'for --eta'],
      [['edit', photo, '--steps', '10', '--skip', '12', '--out', out], 'between 0 and 9 for --skip'],
      // the saved inversion of the test above has 5 steps, read from its header
      [['edit', '--inversion', join(dir, 'photo.inversion.safetensors'), '--skip', '5', '--out', out], 'between 0 and 4 for --skip'],
      [['edit', photo, '--concept', '+blue', '--concept', '-red:threshold=1', '--out', out], 'for threshold of --concept #2'],
      [['imagic', photo, '--target', 'x', '--eta', '0.5', '--eta', '11', '--out', out], 'for --eta #2'],
      [['imagic', photo, '--target', 'x', '--sample-seed', '1', '--embedding-lr', '2', '--out', out], 'for --embedding-lr'],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli([...args, '--model', partial])));
    cases.forEach(([, mention], i) => assertBadInput(runs[i], 'ERR_INVALID_OPTION', mention));
    // Valid options get as far as loading the model, which lacks its files.
    assertBadInput(await cli(['generate', 'x', '--steps', '2', '--model', partial, '--out', out]), 'ERR_MODEL_NOT_FOUND', 'lacks');
    assert.ok(!existsSync(out));

    const [edit, imagic] = await Promise.all([cli(['edit', '--help', '--model', partial]), cli(['--model', partial, 'imagic', '--help'])]);
    const text = (run: Run) => run.stdout.replace(/\s+/g, ' ');
    assert.ok(text(edit).includes("(default: 5, from the model's model.json; library default 15)"), edit.stdout);
    assert.ok(text(edit).includes('(default: 0.6)'), 'momentumBeta is not recommended: the library default');
    assert.ok(text(imagic).includes("(default: 1.2, from the model's model.json; library default 0.7)"), imagic.stdout);
  });

  test('Ctrl-C aborts the running job and exits 130', async () => {
    const out = join(dir, 'interrupted.png');
    // SIGINT once the inversion has started (its progress line), long before its 1000 steps end.
    const run = await cli(
      ['edit', photo, '--model', model, '--steps', '1000', '--width', '128', '--height', '128', '--concept', '+blue', '--out', out],
      (child) =>
        child.stderr?.on('data', (text: string) => {
          if (text.includes('torchedit: invert:')) child.kill('SIGINT');
        }),
    );
    assert.equal(run.code, 130, `exit ${run.code} ${run.signal}: ${run.stderr}`);
    assert.ok(lines(run.stderr).at(-1)?.includes('[ERR_ABORTED]'), run.stderr);
    assert.ok(!existsSync(out));
  });
});

describe('torchedit imagic', { timeout: 120_000 }, () => {
  test('trains, saves, generates at several η, and generates again from the saved result', async () => {
    const model = testBundle();
    const dir = mkdtempSync(join(tmpdir(), 'torchedit-cli-imagic-'));
    const photo = join(dir, 'photo.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 220, g: 40, b: 40 } } })
      .png()
      .toFile(photo);
    const out = join(dir, 'edited.png');
    const saved = join(dir, 'saved');
    const run = await cli([
      'imagic',
      photo,
      '--target',
      'a blue circle',
      '--embedding-steps',
      '5',
      '--embedding-lr',
      '0.01',
      '--finetune-steps',
      '5',
      '--finetune-lr',
      '0.0001',
      '--eta',
      '0.6',
      '--eta',
      '1',
      '--steps',
      '3',
      '--save',
      saved,
      '--model',
      model,
      '--out',
      out,
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.deepEqual(report.etas, [0.6, 1]);
    assert.equal(report.outputs.length, 2);
    for (const file of report.outputs) assert.equal((await sharp(file).metadata()).width, 64);
    // format version 2: one file with the trained parameters only, no whole unet.pt beside it
    assert.ok(existsSync(join(saved, 'imagic.safetensors')) && !existsSync(join(saved, 'unet.pt')));
    const again = await cli([
      'imagic',
      '--load',
      saved,
      '--eta',
      '0.7',
      '--steps',
      '3',
      '--model',
      model,
      '--out',
      join(dir, 'again.png'),
      '--json',
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(existsSync(join(dir, 'again.png')));
    assertBadInput(await cli(['imagic', photo, '--model', model]), 'ERR_INVALID_OPTION', '--target');
    assertBadInput(
      await cli(['imagic', photo, '--target', 'x', '--finetune-lr', '0', '--model', model]),
      'ERR_INVALID_OPTION',
      '--finetune-lr',
    );
    rmSync(dir, { recursive: true, force: true });
  });
});
