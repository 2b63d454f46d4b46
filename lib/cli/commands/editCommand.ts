/**
 * `torchedit edit IMAGE` (invert, then edit) or `torchedit edit --inversion FILE` (edit a saved
 * inversion): LEDITS step 2, SEGA concepts and/or a target prompt (lib/pipelines/ledits/edit.ts).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { readSafetensorsMetadata } from '../../io/safetensors.js';
import type { EditOptions } from '../../pipelines/ledits/edit.js';
import type { EditResult } from '../../pipelines/ledits/editResult.js';
import { loadInversion, type Inversion } from '../../pipelines/ledits/inversion.js';
import type { InvertOptions } from '../../pipelines/ledits/invert.js';
import type { Scheduler } from '../../options/schema.js';
import { addOptionFlags, givenFlags, optionsFromFlags, pipelineCommand, validateFlags, type HelpDefaults } from '../flags.js';
import { checkInputFile, checkInputImage, checkOutputFile, checkOutputImage, fail, outputNameFor, report, round } from '../output.js';
import { readBundle, withModel } from '../session.js';

interface EditFlags extends Record<string, unknown> {
  inversion?: string;
  saveInversion?: string;
  saveMasks?: string;
  concept: unknown[];
  out?: string;
}

/**
 * The steps and scheduler of a saved inversion, from its header (steps undefined when unreadable:
 * loading it will say why; the scheduler of a file without one is 'ddpm').
 */
async function savedInversion(path: string): Promise<{ steps?: number; scheduler: Scheduler }> {
  try {
    const settings = JSON.parse((await readSafetensorsMetadata(path)).settings ?? '{}');
    const steps: unknown = settings.steps;
    return {
      steps: typeof steps === 'number' && Number.isInteger(steps) && steps > 0 ? steps : undefined,
      scheduler: settings.scheduler === 'dpmsolver++' ? 'dpmsolver++' : 'ddpm',
    };
  } catch {
    return { scheduler: 'ddpm' };
  }
}

/** Writes each concept's mask over the result as <dir>/mask-<n>.png (n from 1, in --concept order). */
async function saveMasks(result: EditResult, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const images = await result.maskImages();
  const files = images.map((_, i) => join(dir, `mask-${i + 1}.png`));
  await Promise.all(images.map((image, i) => image.toFile(files[i])));
  return files;
}

export function editCommand(help: HelpDefaults): Command {
  const command = pipelineCommand(help, {
    name: 'edit',
    description:
      'Edit an image with LEDITS: SEGA concepts (added or removed) and/or a target prompt. ' +
      'Give an IMAGE to invert it first, or --inversion FILE made by "torchedit invert".',
    argument: ['[image]', 'the image to invert and edit (omit with --inversion)'],
    options: [
      new Option('--inversion <file>', 'edit a saved inversion instead of inverting an image'),
      new Option('--save-masks <dir>', "write each concept's mask (averaged over the steps) over the result, as <dir>/mask-<n>.png"),
    ],
    groups: ['edit'],
    out: { description: 'output image: .png, .jpg or .webp (default: <input name>.edited.png)' },
    examples: [
      'torchedit edit photo.png --source-prompt "a red circle" --concept "+blue" --concept "-red" --out blue.png',
      'torchedit invert photo.png --out photo.inversion.safetensors',
      'torchedit edit --inversion photo.inversion.safetensors --concept "+blue:scale=10,warmup=2" --out blue.png',
      'torchedit edit --inversion photo.inversion.safetensors --target "a red square" --guidance 10 --skip 0.3',
      'torchedit edit photo.png --concept "+blue" --implicit-mask attention --save-masks masks/',
      'torchedit edit photo.png --scheduler dpmsolver++ --skip-noisiest 0.15 --concept "+blue" --out blue.png',
    ],
  });
  // The inversion's flags come after --out, in their own help group: they apply only with an IMAGE.
  const group = 'Inversion options (with IMAGE only):';
  addOptionFlags(command, 'invert', help, { helpGroup: group });
  command.addOption(new Option('--save-inversion <file>', 'also save the inversion, to edit it again later').helpGroup(group));
  return command.action(async (image: string | undefined, flags: EditFlags, cmd: Command) => {
    if (image === undefined && flags.inversion === undefined) fail('Expected an IMAGE to invert and edit, or --inversion FILE');
    if (image !== undefined && flags.inversion !== undefined) fail('Expected an IMAGE or --inversion FILE, not both');
    if (flags.inversion !== undefined) {
      for (const flag of givenFlags('invert', flags))
        fail(`${flag} is an inversion option and cannot be used with --inversion (the file keeps its own settings)`);
      if (flags.saveInversion !== undefined) fail('--save-inversion cannot be used with --inversion');
    }
    const input = image ?? flags.inversion!;
    const out = flags.out ?? outputNameFor(input, '.edited.png');
    if (image !== undefined) checkInputImage(image);
    else checkInputFile(input, '--inversion');
    checkOutputImage(out, '--out');
    if (flags.saveInversion !== undefined) checkOutputFile(flags.saveInversion, '--save-inversion');
    if (flags.saveMasks !== undefined && flags.concept.length === 0)
      fail('--save-masks needs at least one --concept (masks are per concept)');

    // Every option is checked before the model loads; skip against the steps of the inversion
    // that will be made, or of the saved one.
    const invertOptions = optionsFromFlags('invert', flags) as InvertOptions;
    const editOptions = optionsFromFlags('edit', flags) as EditOptions;
    const bundle = await readBundle(cmd);
    const { steps, scheduler } =
      image !== undefined ? validateFlags('invert', invertOptions, bundle.context()) : await savedInversion(input);
    validateFlags('edit', editOptions, { ...bundle.context({ inversionSteps: steps }), scheduler });

    await withModel(cmd, async (session) => {
      const inversion: Inversion =
        image !== undefined
          ? await session.model.invert(image, { ...invertOptions, ...session.job })
          : await loadInversion(input, session.model);
      try {
        if (flags.saveInversion !== undefined) await inversion.save(flags.saveInversion);
        const result = await inversion.edit({ ...editOptions, returnMasks: flags.saveMasks !== undefined, ...session.job });
        try {
          await result.toFile(out);
          const maskFiles = flags.saveMasks === undefined ? [] : await saveMasks(result, flags.saveMasks);
          const { width, height } = result.image;
          const seconds = session.seconds();
          report(
            cmd,
            {
              command: 'edit',
              output: out,
              seed: result.seed.toString(),
              width,
              height,
              inversion: flags.inversion ?? flags.saveInversion ?? null,
              concepts: flags.concept.length,
              masks: maskFiles,
              seconds: round(seconds),
              loadSeconds: round(session.loadSeconds),
            },
            `wrote ${out} (${width}×${height}, seed ${result.seed}, ${seconds.toFixed(1)}s)` +
              (maskFiles.length ? ` and ${maskFiles.length} mask picture${maskFiles.length > 1 ? 's' : ''} in ${flags.saveMasks}` : ''),
          );
        } finally {
          result.dispose();
        }
      } finally {
        inversion.dispose();
      }
    });
  });
}
