/** `torchedit invert IMAGE`: LEDITS step 1, edit-friendly DDPM inversion (model.invert), saved to a file. */
import { basename, extname } from 'node:path';
import { Command, Option } from 'commander';
import { inversionDefaults } from '../../options/defaults.js';
import type { InvertOptions } from '../../pipelines/ledits/invert.js';
import type { CliContext } from '../cli.js';

/** The flags of the inversion options (shared with `edit IMAGE`). */
export interface InversionFlags {
  sourcePrompt?: string;
  sourceGuidance?: number;
  steps?: number;
  eta?: number;
  seed?: bigint;
  width?: number;
  height?: number;
  resize?: string;
}

/** Library option → flag, for error messages. */
export const inversionNames: Record<string, string> = {
  sourcePrompt: '--source-prompt', sourceGuidanceScale: '--source-guidance', steps: '--steps', eta: '--eta',
  seed: '--seed', width: '--width', height: '--height', resize: '--resize',
};

/** Flag attribute (commander's camelCase) → flag, to say which one was misused. */
export const inversionFlagNames: Record<keyof InversionFlags, string> = {
  sourcePrompt: '--source-prompt', sourceGuidance: '--source-guidance', steps: '--steps', eta: '--eta',
  seed: '--seed', width: '--width', height: '--height', resize: '--resize',
};

/** Adds the options of model.invert to a command. */
export function addInversionOptions(command: Command, ctx: CliContext, group?: string): Command {
  const d = inversionDefaults;
  const dt = ctx.defaultText;
  const options = [
    new Option('--source-prompt <prompt>', `sourcePrompt: describes the input image, guides the inversion${dt(d.sourcePrompt)}`),
    new Option('--source-guidance <scale>', `sourceGuidanceScale: CFG scale of the source prompt${dt(d.sourceGuidanceScale)}`).argParser(ctx.parse.number),
    new Option('--steps <n>', `steps: inversion steps T${dt(d.steps)}`).argParser(ctx.parse.integer),
    new Option('--eta <eta>', `eta: η of the DDPM posterior, in (0, 1]${dt(d.eta)}`).argParser(ctx.parse.number),
    new Option('--seed <n>', 'seed: noise seed; the same seed gives the same inversion (default: random, recorded)').argParser(ctx.parse.seed),
    new Option('--width <px>', "width: image width, a multiple of 8 × the VAE factor (default: the model's size)").argParser(ctx.parse.integer),
    new Option('--height <px>', "height: image height, a multiple of 8 × the VAE factor (default: the model's size)").argParser(ctx.parse.integer),
    new Option('--resize <mode>', 'resize: cover (center crop), contain (pad) or fill (stretch) (default: "cover")'),
  ];
  for (const option of options) command.addOption(group ? option.helpGroup(group) : option);
  return command;
}

/** The InvertOptions the flags give (undefined where not given: the library's defaults apply). */
export function inversionOptions(flags: InversionFlags): InvertOptions {
  return {
    sourcePrompt: flags.sourcePrompt, sourceGuidanceScale: flags.sourceGuidance, steps: flags.steps, eta: flags.eta,
    seed: flags.seed, width: flags.width, height: flags.height, resize: flags.resize as InvertOptions['resize'],
  };
}

/** `photo.jpg` → `photo` + suffix, in the current folder. */
export function outputNameFor(input: string, suffix: string): string {
  const base = basename(input, extname(input));
  return `${base.replace(/\.inversion$/, '')}${suffix}`;
}

export function registerInvert(ctx: CliContext): Command {
  const command = new Command('invert')
    .description('Invert an image (LEDITS step 1: edit-friendly DDPM inversion) and save it; edit it later with "edit --inversion".')
    .argument('<image>', 'the image to invert (PNG, JPEG, WebP, …)');
  addInversionOptions(command, ctx);
  return command
    .addOption(new Option('-o, --out <file>', 'the inversion file (default: <image name>.inversion.safetensors)'))
    .addHelpText('after', `
Example:
  torchedit invert photo.png --source-prompt "a red circle" --seed 0 --out photo.inversion.safetensors`)
    .action(async (image: string, flags: InversionFlags & { out?: string }, command: Command) => {
      const out = flags.out ?? outputNameFor(image, '.inversion.safetensors');
      ctx.check.inputImage(image);
      ctx.check.outputFile(out, '--out');
      await ctx.run(command, inversionNames, async (session) => {
        const inversion = await session.model.invert(image, { ...inversionOptions(flags), ...session.job });
        try {
          await inversion.save(out);
          const s = inversion.settings;
          const seconds = session.seconds();
          session.report(
            { command: 'invert', output: out, seed: s.seed, width: s.width, height: s.height, steps: s.steps, seconds: round(seconds), loadSeconds: round(session.loadSeconds) },
            `wrote ${out} (${s.width}×${s.height}, ${s.steps} steps, seed ${s.seed}, ${seconds.toFixed(1)}s)`,
          );
        } finally {
          inversion.dispose();
        }
      });
    });
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
