/**
 * `torchedit edit IMAGE` (invert, then edit) or `torchedit edit --inversion FILE` (edit a saved
 * inversion): LEDITS step 2, SEGA concepts and/or a target prompt (lib/pipelines/ledits/edit.ts).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { conceptDefaults, editDefaults } from '../../options/defaults.js';
import { contextOf, validateEditOptions } from '../../options/resolve.js';
import type { EditConcept, EditOptions } from '../../pipelines/ledits/edit.js';
import { loadInversion, type Inversion } from '../../pipelines/ledits/inversion.js';
import type { CliContext } from '../cli.js';
import { addInversionOptions, inversionFlagNames, inversionNames, inversionOptions, outputNameFor, type InversionFlags } from './invertCommand.js';

interface EditFlags extends InversionFlags {
  inversion?: string;
  saveInversion?: string;
  target?: string;
  guidance?: number;
  skip?: number;
  concept: EditConcept[];
  momentumScale?: number;
  momentumBeta?: number;
  maskMode?: string;
  out?: string;
}

/** Library option → flag, for error messages. */
const editNames: Record<string, string> = {
  targetPrompt: '--target', guidanceScale: '--guidance', skip: '--skip', concepts: '--concept',
  momentumScale: '--momentum-scale', momentumBeta: '--momentum-beta', maskMode: '--mask-mode',
};

const CONCEPT_SETTINGS = ['scale', 'warmup', 'cooldown', 'threshold', 'weight'] as const;
type ConceptSetting = (typeof CONCEPT_SETTINGS)[number];

/**
 * `+blue`, `-red`, `blue` (= `+blue`), `+blue:scale=10,warmup=2,threshold=0.9,weight=1,cooldown=40`.
 * Settings follow the last `:`; a prompt that contains `:` ends with one (`+style: ink:`).
 * Only the syntax is checked here; the values' ranges are the library's.
 */
export function parseConcept(spec: string): EditConcept {
  let body = spec.trim();
  let remove = false;
  if (body.startsWith('+') || body.startsWith('-')) {
    remove = body.startsWith('-');
    body = body.slice(1);
  }
  const colon = body.lastIndexOf(':');
  const prompt = (colon >= 0 ? body.slice(0, colon) : body).trim();
  const settings = colon >= 0 ? body.slice(colon + 1).trim() : '';
  if (prompt === '') throw new InvalidArgumentError('Expected a concept like "+blue", "-red" or "+blue:scale=10,warmup=2".');
  const concept: EditConcept = remove ? { prompt, remove: true } : { prompt };
  if (settings !== '') {
    for (const pair of settings.split(',')) {
      const match = /^\s*([A-Za-z]+)\s*=\s*([^\s=]+)\s*$/.exec(pair);
      if (!match) throw new InvalidArgumentError(`Expected key=value settings after ":" but found "${pair.trim()}" (to keep a ":" in the prompt, end the concept with ":").`);
      const key = match[1] as ConceptSetting;
      if (!CONCEPT_SETTINGS.includes(key)) throw new InvalidArgumentError(`Unknown concept setting "${match[1]}"; expected one of ${CONCEPT_SETTINGS.join(', ')}.`);
      if (concept[key] !== undefined) throw new InvalidArgumentError(`The concept setting "${key}" is given twice.`);
      const value = Number(match[2]);
      if (!Number.isFinite(value)) throw new InvalidArgumentError(`Expected a number for the concept setting ${key} but received "${match[2]}".`);
      concept[key] = value;
    }
  }
  return concept;
}

function collectConcept(spec: string, previous: EditConcept[]): EditConcept[] {
  return [...previous, parseConcept(spec)];
}

export function registerEdit(ctx: CliContext): Command {
  const d = editDefaults;
  const c = conceptDefaults;
  const dt = ctx.defaultText;
  const command = new Command('edit')
    .description('Edit an image with LEDITS: SEGA concepts (added or removed) and/or a target prompt. ' +
      'Give an IMAGE to invert it first, or --inversion FILE made by "torchedit invert".')
    .argument('[image]', 'the image to invert and edit (omit with --inversion)')
    .addOption(new Option('--inversion <file>', 'edit a saved inversion instead of inverting an image'))
    .addOption(new Option('--target <prompt>', 'targetPrompt: describes the wanted image (default: none, concepts only)'))
    .addOption(new Option('--guidance <scale>', `guidanceScale: CFG scale of the target prompt${dt(d.guidanceScale)}`).argParser(ctx.parse.number))
    .addOption(new Option('--skip <n>', `skip: inversion steps not replayed, an integer count or a fraction in (0, 1) (default: ${d.skipFraction} of the steps)`).argParser(ctx.parse.number))
    .addOption(new Option('--concept <spec>',
      `concepts: a SEGA concept, repeatable: "+blue" adds, "-red" removes; settings after ":", ` +
      `e.g. "+blue:scale=10,warmup=2,cooldown=40,threshold=0.9,weight=1" ` +
      `(defaults: scale ${c.scale}, warmup ${c.warmup}, cooldown never, threshold ${c.threshold}, weight ${c.weight})`)
      .argParser(collectConcept).default([], 'none'))
    .addOption(new Option('--momentum-scale <s>', `momentumScale: SEGA momentum scale${dt(d.momentumScale)}`).argParser(ctx.parse.number))
    .addOption(new Option('--momentum-beta <b>', `momentumBeta: SEGA momentum β in [0, 1)${dt(d.momentumBeta)}`).argParser(ctx.parse.number))
    .addOption(new Option('--mask-mode <mode>', `maskMode: channel (SEGA, quantile per channel) or sum (LEDITS++)${dt(d.maskMode)}`))
    .addOption(new Option('-o, --out <file>', 'output image: .png, .jpg or .webp (default: <input name>.edited.png)'));
  const group = 'Inversion options (with IMAGE only):';
  addInversionOptions(command, ctx, group);
  command.addOption(new Option('--save-inversion <file>', 'also save the inversion, to edit it again later').helpGroup(group));
  return command
    .addHelpText('after', `
Examples:
  torchedit edit photo.png --source-prompt "a red circle" --concept "+blue" --concept "-red" --out blue.png
  torchedit invert photo.png --out photo.inversion.safetensors
  torchedit edit --inversion photo.inversion.safetensors --concept "+blue:scale=10,warmup=2" --out blue.png
  torchedit edit --inversion photo.inversion.safetensors --target "a red square" --guidance 10 --skip 0.3`)
    .action(async (image: string | undefined, flags: EditFlags, cmd: Command) => {
      if (image === undefined && flags.inversion === undefined) ctx.fail('Expected an IMAGE to invert and edit, or --inversion FILE');
      if (image !== undefined && flags.inversion !== undefined) ctx.fail('Expected an IMAGE or --inversion FILE, not both');
      if (flags.inversion !== undefined) {
        for (const [key, flag] of Object.entries(inversionFlagNames)) {
          if (flags[key as keyof InversionFlags] !== undefined) ctx.fail(`${flag} is an inversion option and cannot be used with --inversion (the file keeps its own settings)`);
        }
        if (flags.saveInversion !== undefined) ctx.fail('--save-inversion cannot be used with --inversion');
      }
      const input = image ?? flags.inversion!;
      const out = flags.out ?? outputNameFor(input, '.edited.png');
      if (image !== undefined) ctx.check.inputImage(image);
      else ctx.check.inputFile(input, '--inversion');
      ctx.check.outputImage(out, '--out');
      if (flags.saveInversion !== undefined) ctx.check.outputFile(flags.saveInversion, '--save-inversion');

      const editOptions: EditOptions = {
        targetPrompt: flags.target, guidanceScale: flags.guidance, skip: flags.skip, concepts: flags.concept,
        momentumScale: flags.momentumScale, momentumBeta: flags.momentumBeta, maskMode: flags.maskMode as EditOptions['maskMode'],
      };
      await ctx.run(cmd, { ...inversionNames, ...editNames }, async (session) => {
        let inversion: Inversion;
        if (image !== undefined) {
          const defaults = session.model.defaults;
          const steps = flags.steps !== undefined && Number.isInteger(flags.steps) && flags.steps > 0 ? flags.steps : defaults.inversion.steps;
          validateEditOptions(editOptions, contextOf(session.model, { inversionSteps: steps }));
          inversion = await session.model.invert(image, { ...inversionOptions(flags), ...session.job });
        } else {
          inversion = await loadInversion(input, session.model);
        }
        try {
          if (flags.saveInversion !== undefined) await inversion.save(flags.saveInversion);
          const result = await inversion.edit({ ...editOptions, ...session.job });
          try {
            await result.toFile(out);
            const { width, height } = result.image;
            const seconds = session.seconds();
            session.report({
              command: 'edit', output: out, seed: result.seed.toString(), width, height,
              inversion: flags.inversion ?? flags.saveInversion ?? null, concepts: flags.concept.length,
              seconds: round(seconds), loadSeconds: round(session.loadSeconds),
            }, `wrote ${out} (${width}×${height}, seed ${result.seed}, ${seconds.toFixed(1)}s)`);
          } finally {
            result.dispose();
          }
        } finally {
          inversion.dispose();
        }
      });
    });
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
