/** `torchedit imagic IMAGE --target PROMPT`: Imagic training then generation (model.imagic, lib/pipelines/imagic/). */
import { existsSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { loadImagic, type ImagicResult } from '../../pipelines/imagic/result.js';
import type { ImagicOptions } from '../../pipelines/imagic/train.js';
import { optionsFromFlags, pipelineCommand, validateFlags, type HelpDefaults } from '../flags.js';
import { batchNames, checkInputImage, checkOutputImage, fail, report, round } from '../output.js';
import { readBundle, withModel } from '../session.js';

interface ImagicFlags extends Record<string, unknown> {
  target?: string;
  load?: string;
  save?: string;
  out: string;
}

export function imagicCommand(help: HelpDefaults): Command {
  return pipelineCommand(help, {
    name: 'imagic',
    description:
      'Edit an image with Imagic: optimise the target text embedding to the image, fine-tune the UNet, then generate at one or more η.',
    argument: ['[image]', 'the image to edit (not with --load)'],
    options: [
      new Option('-t, --target <prompt>', 'targetPrompt: the edit, as a description of the wanted image (required with an image)'),
      new Option('--load <dir>', 'generate from a result saved with --save instead of training'),
      new Option(
        '--save <dir>',
        'save the trained result (imagic.safetensors: embeddings and the trained parameters) to generate again later',
      ),
    ],
    groups: ['imagic', 'imagicGenerate'],
    out: { description: 'output image (.png, .jpg or .webp); several η write <out>-1.png …', default: 'imagic.png' },
    examples: [
      'torchedit imagic circle.png --target "a blue circle" --embedding-steps 200 --finetune-steps 200 --eta 0.6 --eta 0.8',
      'torchedit imagic circle.png --target "a blue circle" --finetune-parameters cross-attention --eta auto --save circle.imagic',
    ],
  }).action(async (image: string | undefined, flags: ImagicFlags, cmd: Command) => {
    if ((image === undefined) === (flags.load === undefined)) fail('give either an IMAGE to train on or --load DIR');
    if (image !== undefined) {
      checkInputImage(image);
      if (flags.target === undefined) fail('--target is required with an image');
    }
    if (flags.load !== undefined && !existsSync(flags.load)) fail(`no Imagic result at --load ${flags.load}`);
    checkOutputImage(flags.out, '--out');

    // Every option is checked before the model loads; --eta (several allowed) is the sweep's etas,
    // `--eta auto` the grid result.chooseEta scores.
    const bundle = await readBundle(cmd);
    const training = optionsFromFlags('imagic', flags) as ImagicOptions;
    if (image !== undefined) validateFlags('imagic', training, bundle.context());
    const { eta, ...generation } = optionsFromFlags('imagicGenerate', flags) as { eta?: (number | 'auto')[] };
    const auto = eta?.includes('auto') ?? false;
    if (auto && eta!.length > 1) fail('--eta auto chooses η itself: give it alone');
    const requested = auto
      ? [...bundle.defaults.imagicChooseEta.etas]
      : ((eta as number[] | undefined) ?? [bundle.defaults.imagicGenerate.eta]);
    const sweep = validateFlags('imagicGenerate', { ...generation, etas: requested }, bundle.context());
    const { etas, seed } = sweep;

    await withModel(cmd, async (session) => {
      const result: ImagicResult =
        flags.load !== undefined
          ? await loadImagic(flags.load, session.model)
          : await session.model.imagic(image!, flags.target!, { ...training, ...session.job });
      try {
        if (flags.save !== undefined) await result.save(flags.save);
        const choice = auto ? await result.chooseEta({ ...generation, etas, seed, ...session.job }) : undefined;
        const images = choice ? [choice.image] : await result.sweep({ ...generation, etas, ...session.job });
        const outputs = batchNames(flags.out, images.length);
        for (const [i, generated] of images.entries()) await generated.toFile(outputs[i]);
        const chosen = choice ? [choice.eta] : etas;
        const seconds = session.seconds();
        report(
          cmd,
          {
            command: 'imagic',
            output: outputs[0],
            outputs,
            etas: chosen,
            ...(choice ? { auto: { eta: choice.eta, candidates: choice.candidates } } : {}),
            seed: images[0].seed.toString(),
            trainingSeed: result.settings.seed,
            saved: flags.save ?? null,
            losses: { embedding: result.losses.embedding.at(-1) ?? null, finetune: result.losses.finetune.at(-1) ?? null },
            seconds: round(seconds),
          },
          `wrote ${outputs.join(', ')} (η ${chosen.join(', ')}${choice ? ', chosen automatically' : ''}, ${seconds.toFixed(1)}s)`,
        );
        for (const r of images) r.dispose();
      } finally {
        result.dispose();
      }
    });
  });
}
