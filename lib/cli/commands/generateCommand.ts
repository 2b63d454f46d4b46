/** `torchedit generate PROMPT`: text-to-image (model.generate, lib/pipelines/textToImage.ts). */
import { Command, Option } from 'commander';
import type { TextToImageOptions } from '../../pipelines/textToImage.js';
import { addOptionFlags, optionsFromFlags, validateFlags, type HelpDefaults } from '../flags.js';
import { batchNames, checkOutputImage, report, round } from '../output.js';
import { readBundle, withModel } from '../session.js';

export function generateCommand(help: HelpDefaults): Command {
  const command = new Command('generate')
    .description('Generate an image from a text prompt (DDIM with classifier-free guidance).')
    .argument('<prompt>', 'what the image shows (quote it)');
  addOptionFlags(command, 'textToImage', help);
  return command
    .addOption(new Option('-o, --out <file>', 'output image: .png, .jpg or .webp').default('generated.png'))
    .addHelpText(
      'after',
      `
Example:
  torchedit generate "a red circle on a white background" --seed 1 --out circle.png`,
    )
    .action(async (prompt: string, flags: Record<string, unknown> & { out: string }, cmd: Command) => {
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
