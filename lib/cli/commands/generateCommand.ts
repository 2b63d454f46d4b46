/** `torchedit generate PROMPT`: text-to-image (model.generate, lib/pipelines/textToImage.ts). */
import { extname } from 'node:path';
import { Command, Option } from 'commander';
import { textToImageDefaults } from '../../options/defaults.js';
import type { TextToImageOptions } from '../../pipelines/textToImage.js';
import type { CliContext } from '../cli.js';

interface GenerateFlags {
  negative?: string;
  steps?: number;
  guidance?: number;
  eta?: number;
  seed?: bigint;
  width?: number;
  height?: number;
  batchSize?: number;
  out: string;
}

/** Library option → flag, for error messages. */
const names: Record<string, string> = {
  negativePrompt: '--negative', steps: '--steps', guidanceScale: '--guidance', eta: '--eta',
  seed: '--seed', width: '--width', height: '--height', batchSize: '--batch-size',
};

/** `out.png` for one image; `out-1.png` … `out-N.png` for a batch. */
export function batchNames(out: string, count: number): string[] {
  if (count === 1) return [out];
  const ext = extname(out);
  const stem = out.slice(0, out.length - ext.length);
  return Array.from({ length: count }, (_, i) => `${stem}-${i + 1}${ext}`);
}

export function registerGenerate(ctx: CliContext): Command {
  const d = textToImageDefaults;
  const dt = ctx.defaultText;
  return new Command('generate')
    .description('Generate an image from a text prompt (DDIM with classifier-free guidance).')
    .argument('<prompt>', 'what the image shows (quote it)')
    .addOption(new Option('--negative <prompt>', `negativePrompt: what to steer away from${dt(d.negativePrompt)}`))
    .addOption(new Option('--steps <n>', `steps: denoising steps${dt(d.steps)}`).argParser(ctx.parse.integer))
    .addOption(new Option('--guidance <scale>', `guidanceScale: classifier-free guidance scale, ≤ 1 disables it${dt(d.guidanceScale)}`).argParser(ctx.parse.number))
    .addOption(new Option('--eta <eta>', `eta: DDIM η in [0, 1], 0 deterministic${dt(d.eta)}`).argParser(ctx.parse.number))
    .addOption(new Option('--seed <n>', 'seed: initial noise seed (default: random, reported)').argParser(ctx.parse.seed))
    .addOption(new Option('--width <px>', "width: a multiple of 8 × the VAE factor (default: the model's size)").argParser(ctx.parse.integer))
    .addOption(new Option('--height <px>', "height: a multiple of 8 × the VAE factor (default: the model's size)").argParser(ctx.parse.integer))
    .addOption(new Option('--batch-size <n>', 'batchSize: images from the prompt, written as <out>-1.png … (default: 1)').argParser(ctx.parse.integer))
    .addOption(new Option('-o, --out <file>', 'output image: .png, .jpg or .webp').default('generated.png'))
    .addHelpText('after', `
Example:
  torchedit generate "a red circle on a white background" --seed 1 --out circle.png`)
    .action(async (prompt: string, flags: GenerateFlags, command: Command) => {
      ctx.check.outputImage(flags.out, '--out');
      await ctx.run(command, names, async (session) => {
        const options: TextToImageOptions = {
          negativePrompt: flags.negative, steps: flags.steps, guidanceScale: flags.guidance, eta: flags.eta,
          seed: flags.seed, width: flags.width, height: flags.height, batchSize: flags.batchSize, ...session.job,
        };
        const result = await session.model.generate(prompt, options);
        try {
          const outputs = batchNames(flags.out, result.images.length);
          for (const [i, image] of result.images.entries()) await image.toFile(outputs[i]);
          const { width, height } = result.image;
          const seconds = session.seconds();
          session.report(
            { command: 'generate', output: outputs[0], outputs, seed: result.seed.toString(), width, height, seconds: round(seconds), loadSeconds: round(session.loadSeconds) },
            `wrote ${outputs.join(', ')} (${width}×${height}, seed ${result.seed}, ${seconds.toFixed(1)}s)`,
          );
        } finally {
          result.dispose();
        }
      });
    });
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
