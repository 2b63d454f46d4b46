/** `torchedit generate PROMPT`: text-to-image (model.generate, lib/pipelines/textToImage.ts). */
import type { Command } from 'commander';
import type { TextToImageOptions } from '../../pipelines/textToImage.js';
import { optionsFromFlags, pipelineCommand, validateFlags, type HelpDefaults } from '../flags.js';
import { batchNames, checkOutputImage, report, round } from '../output.js';
import { readBundle, withModel } from '../session.js';

export function generateCommand(help: HelpDefaults): Command {
  // One part of the command a line, like every pipeline command's spec: alike in shape only.
  return pipelineCommand(help, {
    name: 'generate',
    description: 'Generate an image from a text prompt (DDIM with classifier-free guidance).',
    argument: ['<prompt>', 'what the image shows (quote it)'],
    groups: ['textToImage'],
    out: { description: 'output image: .png, .jpg or .webp', default: 'generated.png' },
    examples: ['torchedit generate "a red circle on a white background" --seed 1 --out circle.png'],
  }).action(async (prompt: string, flags: Record<string, unknown> & { out: string }, cmd: Command) => {
    checkOutputImage(flags.out, '--out');
    const options = optionsFromFlags('textToImage', flags) as TextToImageOptions;
    validateFlags('textToImage', options, (await readBundle(cmd)).context());
    await withModel(cmd, async (session) => {
      const result = await session.model.generate(prompt, { ...options, ...session.job });
      try {
        const outputs = batchNames(flags.out, result.images.length);
        for (const [i, image] of result.images.entries()) await image.toFile(outputs[i]);
        const { width, height } = result.image;
        const seconds = session.seconds();
        report(
          cmd,
          {
            command: 'generate',
            output: outputs[0],
            outputs,
            seed: result.seed.toString(),
            width,
            height,
            seconds: round(seconds),
            loadSeconds: round(session.loadSeconds),
          },
          `wrote ${outputs.join(', ')} (${width}×${height}, seed ${result.seed}, ${seconds.toFixed(1)}s)`,
        );
      } finally {
        result.dispose();
      }
    });
  });
}
