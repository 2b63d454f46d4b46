/** `torchedit imagic IMAGE --target PROMPT`: Imagic training then generation (model.imagic, lib/pipelines/imagic/). */
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { imagicDefaults, imagicGenerateDefaults } from '../../options/defaults.js';
import { loadImagic, type ImagicResult } from '../../pipelines/imagic/result.js';
import type { CliContext } from '../cli.js';
import { batchNames } from './generateCommand.js';

interface ImagicFlags {
  target?: string;
  load?: string;
  save?: string;
  embeddingSteps?: number;
  embeddingLr?: number;
  finetuneSteps?: number;
  finetuneLr?: number;
  seed?: bigint;
  eta: number[];
  steps?: number;
  guidance?: number;
  sampleSeed?: bigint;
  out: string;
}

const names: Record<string, string> = {
  targetPrompt: '--target', 'embedding.steps': '--embedding-steps', 'embedding.lr': '--embedding-lr',
  'finetune.steps': '--finetune-steps', 'finetune.lr': '--finetune-lr', seed: '--seed', steps: '--steps',
  guidanceScale: '--guidance',
};

export function registerImagic(ctx: CliContext): Command {
  const dt = ctx.defaultText;
  const a = imagicDefaults.embedding;
  const b = imagicDefaults.finetune;
  const g = imagicGenerateDefaults;
  return new Command('imagic')
    .description('Edit an image with Imagic: optimise the target text embedding to the image, fine-tune the UNet, then generate at one or more η.')
    .argument('[image]', 'the image to edit (not with --load)')
    .addOption(new Option('-t, --target <prompt>', 'targetPrompt: the edit, as a description of the wanted image (required with an image)'))
    .addOption(new Option('--load <dir>', 'generate from a result saved with --save instead of training'))
    .addOption(new Option('--save <dir>', 'save the trained result (imagic.safetensors + unet.pt) to generate again later'))
    .addOption(new Option('--embedding-steps <n>', `embedding.steps: stage A Adam steps${dt(a.steps)}`).argParser(ctx.parse.integer))
    .addOption(new Option('--embedding-lr <lr>', `embedding.lr: stage A learning rate${dt(a.lr)}`).argParser(ctx.parse.number))
    .addOption(new Option('--finetune-steps <n>', `finetune.steps: stage B Adam steps${dt(b.steps)}`).argParser(ctx.parse.integer))
    .addOption(new Option('--finetune-lr <lr>', `finetune.lr: stage B learning rate${dt(b.lr)}`).argParser(ctx.parse.number))
    .addOption(new Option('--seed <n>', 'seed: training draws (default: random, recorded)').argParser(ctx.parse.seed))
    .addOption(new Option('--eta <η...>', `η of ē = η·e_tgt + (1−η)·e_opt; several give one image each${dt(g.eta)}`).argParser((v: string, prev: number[] | undefined) => [...(prev ?? []), ctx.parse.number(v)]))
    .addOption(new Option('--steps <n>', `steps: DDIM steps of generation${dt(g.steps)}`).argParser(ctx.parse.integer))
    .addOption(new Option('--guidance <scale>', `guidanceScale: CFG scale of generation${dt(g.guidanceScale)}`).argParser(ctx.parse.number))
    .addOption(new Option('--sample-seed <n>', 'seed of the generation noise (default: random, reported)').argParser(ctx.parse.seed))
    .addOption(new Option('-o, --out <file>', 'output image (.png, .jpg or .webp); several η write <out>-1.png …').default('imagic.png'))
    .addHelpText('after', `
Example:
  torchedit imagic circle.png --target "a blue circle" --embedding-steps 200 --finetune-steps 200 --eta 0.6 --eta 0.8`)
    .action(async (image: string | undefined, flags: ImagicFlags, command: Command) => {
      if ((image === undefined) === (flags.load === undefined)) ctx.fail('give either an IMAGE to train on or --load DIR');
      if (image !== undefined) {
        ctx.check.inputImage(image);
        if (flags.target === undefined) ctx.fail('--target is required with an image');
      }
      if (flags.load !== undefined && !existsSync(flags.load)) ctx.fail(`no Imagic result at --load ${flags.load}`);
      ctx.check.outputImage(flags.out, '--out');
      const etas = flags.eta ?? [g.eta];
      await ctx.run(command, names, async (session) => {
        let result: ImagicResult;
        if (flags.load !== undefined) {
          result = await loadImagic(flags.load, session.model);
        } else {
          result = await session.model.imagic(image!, flags.target!, {
            embedding: { steps: flags.embeddingSteps, lr: flags.embeddingLr },
            finetune: { steps: flags.finetuneSteps, lr: flags.finetuneLr },
            seed: flags.seed, ...session.job,
          });
        }
        try {
          if (flags.save !== undefined) await result.save(flags.save);
          const images = await result.sweep({ etas, seed: flags.sampleSeed, steps: flags.steps, guidanceScale: flags.guidance, ...session.job });
          const outputs = batchNames(flags.out, images.length);
          for (const [i, generated] of images.entries()) await generated.toFile(outputs[i]);
          const seconds = session.seconds();
          session.report(
            { command: 'imagic', output: outputs[0], outputs, etas, seed: images[0].seed.toString(), trainingSeed: result.settings.seed,
              saved: flags.save ?? null, losses: { embedding: result.losses.embedding.at(-1) ?? null, finetune: result.losses.finetune.at(-1) ?? null },
              seconds: Math.round(seconds * 1000) / 1000 },
            `wrote ${outputs.join(', ')} (η ${etas.join(', ')}, ${seconds.toFixed(1)}s)`,
          );
          for (const r of images) r.dispose();
        } finally {
          result.dispose();
        }
      });
    });
}
