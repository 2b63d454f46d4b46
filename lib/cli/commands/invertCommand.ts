/** `torchedit invert IMAGE`: LEDITS step 1, edit-friendly DDPM inversion (model.invert), saved to a file. */
import type { Command } from 'commander';
import type { InvertOptions } from '../../pipelines/ledits/invert.js';
import { optionsFromFlags, pipelineCommand, validateFlags, type HelpDefaults } from '../flags.js';
import { checkInputImage, checkOutputFile, outputNameFor, report, round } from '../output.js';
import { readBundle, withModel } from '../session.js';

export function invertCommand(help: HelpDefaults): Command {
  // One part of the command a line, like every pipeline command's spec: alike in shape only.
  return pipelineCommand(help, {
    name: 'invert',
    description:
      'Invert an image (LEDITS step 1: edit-friendly DDPM or, with --scheduler dpmsolver++, LEDITS++ inversion) and save it; edit it later with "edit --inversion".',
    argument: ['<image>', 'the image to invert (PNG, JPEG, WebP, …)'],
    groups: ['invert'],
    out: { description: 'the inversion file (default: <image name>.inversion.safetensors)' },
    examples: [
      'torchedit invert photo.png --source-prompt "a red circle" --seed 0 --out photo.inversion.safetensors',
      'torchedit invert photo.png --scheduler dpmsolver++ --skip-noisiest 0.15 --out photo.inversion.safetensors',
    ],
  }).action(async (image: string, flags: Record<string, unknown> & { out?: string }, cmd: Command) => {
    const out = flags.out ?? outputNameFor(image, '.inversion.safetensors');
    checkInputImage(image);
    checkOutputFile(out, '--out');
    const options = optionsFromFlags('invert', flags) as InvertOptions;
    validateFlags('invert', options, (await readBundle(cmd)).context());
    await withModel(cmd, async (session) => {
      const inversion = await session.model.invert(image, { ...options, ...session.job });
      try {
        await inversion.save(out);
        const s = inversion.settings;
        const seconds = session.seconds();
        report(
          cmd,
          {
            command: 'invert',
            output: out,
            seed: s.seed,
            width: s.width,
            height: s.height,
            steps: s.steps,
            scheduler: s.scheduler,
            seconds: round(seconds),
            loadSeconds: round(session.loadSeconds),
          },
          `wrote ${out} (${s.width}×${s.height}, ${s.steps} ${s.scheduler} steps, seed ${s.seed}, ${seconds.toFixed(1)}s)`,
        );
      } finally {
        inversion.dispose();
      }
    });
  });
}
