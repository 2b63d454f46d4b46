/**
 * The CLI's flags, derived from the option schema (lib/options/schema.ts): each pipeline option
 * with a `flag` becomes a commander option whose help shows the range and the default the chosen
 * model uses; flags map back to library options; validation names the flags. Also the global
 * flags every command takes, and the --concept syntax.
 */
import { relative, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { packageRoot } from '../binding.js';
import { BUNDLE_DTYPES, readModelJson, type BundleConfig } from '../model/config.js';
import { defaultModelPath } from '../model/model.js';
import { defaultsFor, getPath, libraryDefaults, setPath, type ModelDefaults } from '../options/defaults.js';
import {
  limitsOf,
  rangeText,
  validateEditOptions,
  validateImagicOptions,
  validateImagicSweepOptions,
  validateInvertOptions,
  validateTextToImageOptions,
  type ValidationContext,
} from '../options/resolve.js';
import { defaultsPath, hasValueDefault, optionSchema, type GroupName, type Limits, type OptionSpec } from '../options/schema.js';
import { integerIn } from '../options/validate.js';
import type { EditConcept } from '../pipelines/ledits/edit.js';
import { MAX_THREADS } from '../runtime.js';

// ---------------------------------------------------------------------------------------------
// Value parsers: they only convert text; ranges are the schema's.

export function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number but received '${value}'.`);
  return n;
}

export function parseInteger(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`Expected an integer but received '${value}'.`);
  return n; // 1.5 goes on to validation, which names the range it wants.
}

/** A non-negative integer seed, kept exact as a bigint. */
export function parseSeed(value: string): bigint {
  if (!/^\s*\d+\s*$/.test(value)) throw new InvalidArgumentError(`Expected a non-negative integer seed but received '${value}'.`);
  return BigInt(value.trim());
}

// ---------------------------------------------------------------------------------------------
// Global flags.

/** Flags every command takes (before or after the command name). */
export interface GlobalOptions {
  model?: string;
  device?: string;
  dtype?: 'float32' | 'float16' | 'bfloat16';
  threads?: number;
  json?: boolean;
  quiet?: boolean;
}

/** Adds the global flags to the program or a command. */
export function addGlobalOptions(command: Command): Command {
  const group = 'Global options:';
  return command
    .addOption(
      new Option(
        '-m, --model <dir>',
        `model bundle folder (default: the shipped model, ${relative(packageRoot, defaultModelPath)})`,
      ).helpGroup(group),
    )
    .addOption(new Option('--device <device>', 'where the model runs: cpu, cuda, cuda:N or auto (default: cpu)').helpGroup(group))
    .addOption(new Option('--dtype <dtype>', "cast the weights (default: the bundle's)").choices(BUNDLE_DTYPES).helpGroup(group))
    .addOption(
      new Option('--threads <n>', "intra-op threads of the worker (default: libtorch's choice)")
        .argParser((v) => integerIn('--threads', parseInteger(v), 1, MAX_THREADS))
        .helpGroup(group),
    )
    .addOption(new Option('--json', 'print one JSON object on stdout, no progress').helpGroup(group))
    .addOption(new Option('-q, --quiet', 'no progress and no summary (warnings still print)').helpGroup(group));
}

/** The merged global flags of a command: values given after the command name win over values before it. */
export function globalsOf(command: Command): GlobalOptions {
  const merged: Record<string, unknown> = {};
  const chain: Command[] = [];
  for (let c: Command | null = command; c; c = c.parent) chain.unshift(c);
  for (const c of chain) {
    for (const [key, value] of Object.entries(c.opts())) if (value !== undefined) merged[key] = value;
  }
  return merged as GlobalOptions;
}

/** The model folder the flags choose. */
export function modelDir(globals: GlobalOptions): string {
  return resolve(globals.model ?? defaultModelPath);
}

/**
 * The --model value in raw arguments (its last occurrence), read before commander parses them,
 * so that --help can show the chosen model's defaults whatever the order of the flags.
 */
export function modelArgument(argv: readonly string[]): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') break;
    if ((arg === '--model' || arg === '-m') && i + 1 < argv.length) found = argv[++i];
    else if (arg.startsWith('--model=')) found = arg.slice('--model='.length);
    else if (/^-m[^-]/.test(arg)) found = arg.slice(2);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Defaults shown in --help.

/** The defaults --help shows: the chosen model's, and where they come from. */
export interface HelpDefaults {
  defaults: ModelDefaults;
  /** Limits from the chosen model.json, to print ranges such as steps' upper bound. */
  limits: Limits;
  /** Names the model whose model.json `recommended` replaced some defaults, or says why none did. */
  source: string;
}

/** Reads the chosen model's model.json for --help; falls back to the library's defaults when it cannot. */
export async function helpDefaults(argv: readonly string[]): Promise<HelpDefaults> {
  const dir = resolve(modelArgument(argv) ?? defaultModelPath);
  let config: BundleConfig;
  try {
    config = await readModelJson(dir);
  } catch (error) {
    return { defaults: libraryDefaults, limits: {}, source: `the library's (${(error as Error).message.split('\n')[0]})` };
  }
  const recommends = config.recommended !== undefined && Object.keys(config.recommended).length > 0;
  return {
    defaults: defaultsFor(config.recommended),
    limits: limitsOf(config),
    source: recommends
      ? `${config.name}'s (${relative(process.cwd(), dir) || '.'}): the library's, replaced where its model.json recommends others`
      : `the library's (${config.name} recommends none)`,
  };
}

/** A default as --help prints it: strings quoted, `''` as none. */
export function formatDefault(value: unknown): string {
  if (value === '' || value === undefined || value === null) return 'none';
  return typeof value === 'string' ? `"${value}"` : String(value);
}

function defaultNote(group: GroupName, spec: OptionSpec, help: HelpDefaults): string {
  if (!hasValueDefault(spec)) {
    const size = spec.kind.type === 'imageSide' && help.limits.imageSize !== undefined ? `, ${help.limits.imageSize}` : '';
    return `(default: ${spec.defaultText ?? 'none'}${size})`;
  }
  const key = optionSchema[group].defaultsKey;
  const chosen = getPath(help.defaults[key], defaultsPath(spec));
  const library = getPath(libraryDefaults[key], defaultsPath(spec));
  const dpm = spec.dpmDefault === undefined ? '' : `; ${formatDefault(spec.dpmDefault)} with dpmsolver++`;
  const text = `${formatDefault(chosen)}${spec.defaultText ? ` ${spec.defaultText}` : ''}${dpm}`;
  return chosen === library
    ? `(default: ${text})`
    : `(default: ${text}, from the model's model.json; library default ${formatDefault(library)})`;
}

function plain(doc: string): string {
  return doc.replace(/`/g, '');
}

/** The help line of a flag: `name: doc, range (default: …)`. */
export function flagDescription(group: GroupName, spec: OptionSpec, help: HelpDefaults): string {
  const range = ['integer', 'number', 'skip', 'imageSide'].includes(spec.kind.type) ? ` [${rangeText(spec.kind, help.limits)}]` : '';
  return `${spec.name}: ${plain(spec.doc)}${range} ${defaultNote(group, spec, help)}`;
}

// ---------------------------------------------------------------------------------------------
// Pipeline flags.

/** The options of `group` that have a flag of their own. */
export function flaggedOptions(group: GroupName): OptionSpec[] {
  return optionSchema[group].options.filter((o) => o.flag?.startsWith('--'));
}

/** commander's attribute for a flag: `--batch-size` → `batchSize`. */
export function attributeOf(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parserFor(spec: OptionSpec): ((value: string, previous: unknown) => unknown) | undefined {
  const one =
    spec.kind.type === 'seed'
      ? parseSeed
      : spec.kind.type === 'integer' || spec.kind.type === 'imageSide'
        ? parseInteger
        : spec.kind.type === 'number' || spec.kind.type === 'skip'
          ? parseNumber
          : spec.kind.type === 'list'
            ? parseConcept
            : spec.kind.type === 'patterns'
              ? parsePatterns(spec.kind.presets)
              : undefined;
  const word = (value: string) => (spec.flagWords?.includes(value) || !one ? value : one(value));
  if (!spec.repeatable) return one && spec.flagWords ? word : one;
  return (value, previous) => [...((previous as unknown[] | undefined) ?? []), word(value)];
}

/** A preset name, or comma-separated patterns (`attn2.to_k,attn2.to_v`) as an array. */
function parsePatterns(presets: readonly string[]): (value: string) => string | string[] {
  return (value) => (presets.includes(value) ? value : value.split(',').map((p) => p.trim()));
}

/** Adds a flag for each option of `group` (except `except`), with help from the chosen model's defaults. */
export function addOptionFlags(
  command: Command,
  group: GroupName,
  help: HelpDefaults,
  opts: { helpGroup?: string; except?: string[] } = {},
): Command {
  for (const spec of flaggedOptions(group)) {
    if (opts.except?.includes(spec.name)) continue;
    const option = new Option(
      `${spec.flag} ${spec.value}`,
      spec.kind.type === 'list' ? conceptDescription(help) : flagDescription(group, spec, help),
    );
    const parser = parserFor(spec);
    if (parser) option.argParser(parser);
    if (spec.kind.type === 'list') option.default([], 'none');
    command.addOption(opts.helpGroup ? option.helpGroup(opts.helpGroup) : option);
  }
  return command;
}

/** What sets a pipeline command apart; {@link pipelineCommand} assembles them the same way for each. */
export interface PipelineCommandSpec {
  name: string;
  description: string;
  /** The positional argument and its help, e.g. `['<prompt>', 'what the image shows']`. */
  argument: [string, string];
  /** The command's own options, listed before the flags of its option groups. */
  options?: Option[];
  /** The option groups whose flags it takes, in this order. */
  groups: GroupName[];
  /** Help of `-o, --out <file>`, and its default when it is a fixed name. */
  out: { description: string; default?: string };
  /** Command lines shown after the options in --help. */
  examples: string[];
}

/**
 * A pipeline command: its argument, its own options, the flags of its option groups, then
 * `-o, --out <file>`, with its examples after the options in --help. The caller adds the action.
 */
export function pipelineCommand(help: HelpDefaults, spec: PipelineCommandSpec): Command {
  const command = new Command(spec.name).description(spec.description).argument(...spec.argument);
  for (const option of spec.options ?? []) command.addOption(option);
  for (const group of spec.groups) addOptionFlags(command, group, help);
  const out = new Option('-o, --out <file>', spec.out.description);
  command.addOption(spec.out.default === undefined ? out : out.default(spec.out.default));
  const heading = spec.examples.length === 1 ? 'Example' : 'Examples';
  return command.addHelpText('after', `\n${heading}:\n${spec.examples.map((line) => `  ${line}`).join('\n')}`);
}

/** The library options the flags of `group` give (unset where a flag was not given: the defaults apply). */
export function optionsFromFlags(group: GroupName, flags: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const spec of flaggedOptions(group)) {
    const value = flags[attributeOf(spec.flag!)];
    if (value !== undefined) setPath(options, spec.name.split('.'), value);
  }
  return options;
}

/** The flags of `group` that were given. */
export function givenFlags(group: GroupName, flags: Record<string, unknown>): string[] {
  return flaggedOptions(group)
    .filter((spec) => flags[attributeOf(spec.flag!)] !== undefined)
    .map((spec) => spec.flag!);
}

/**
 * How validation names an option path of `group` on the command line: `steps` → `--steps`,
 * `concepts[0].scale` → `scale of --concept #1`, `etas[1]` → `--eta #2`.
 */
export function flagNamer(group: GroupName): (path: string) => string {
  return (path) => {
    const match = /^([\w.]+)(?:\[(\d+)\](?:\.(\w+))?)?$/.exec(path);
    if (!match) return path;
    const [, name, index, key] = match;
    const spec = optionSchema[group].options.find((o) => o.name === (name === 'etas' ? 'eta' : name));
    if (!spec?.flag) return path;
    if (index === undefined) return spec.flag;
    const item = `${spec.flag} #${Number(index) + 1}`;
    return key === undefined ? item : `${key} of ${item}`;
  };
}

/** Validation of `group`'s options against a model's defaults and limits, naming the flags. */
export function validateFlags(
  group: 'textToImage',
  options: object,
  context: ValidationContext,
): ReturnType<typeof validateTextToImageOptions>;
export function validateFlags(group: 'invert', options: object, context: ValidationContext): ReturnType<typeof validateInvertOptions>;
export function validateFlags(group: 'edit', options: object, context: ValidationContext): ReturnType<typeof validateEditOptions>;
export function validateFlags(group: 'imagic', options: object, context: ValidationContext): ReturnType<typeof validateImagicOptions>;
export function validateFlags(
  group: 'imagicGenerate',
  options: object & { etas: number[] },
  context: ValidationContext,
): ReturnType<typeof validateImagicSweepOptions>;
export function validateFlags(group: GroupName, options: object, context: ValidationContext): unknown {
  const named = { ...context, name: flagNamer(group) };
  switch (group) {
    case 'textToImage':
      return validateTextToImageOptions(options, named);
    case 'invert':
      return validateInvertOptions(options, named);
    case 'edit':
      return validateEditOptions(options, named);
    case 'imagic':
      return validateImagicOptions(options, named);
    case 'imagicGenerate':
      return validateImagicSweepOptions(options as { etas: number[] }, named);
    case 'concept':
      throw new Error('concepts are validated with edit');
  }
}

// ---------------------------------------------------------------------------------------------
// --concept "+blue:scale=10,warmup=2".

/** The settings a --concept may carry after ":": the concept options with a key there. */
export const conceptSettings = optionSchema.concept.options.filter((o) => o.flag !== undefined).map((o) => o.flag!);

/**
 * `+blue`, `-red`, `blue` (= `+blue`), `+blue:scale=10,warmup=2,threshold=0.9,weight=1,cooldown=40,mask=attention`.
 * Settings follow the last `:`; a prompt that contains `:` ends with one (`+style: ink:`).
 * Only the syntax is checked here; the values' ranges are the schema's.
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
  const concept: Record<string, unknown> = remove ? { prompt, remove: true } : { prompt };
  if (settings !== '') {
    for (const pair of settings.split(',')) {
      const match = /^\s*([A-Za-z]+)\s*=\s*([^\s=]+)\s*$/.exec(pair);
      if (!match)
        throw new InvalidArgumentError(
          `Expected key=value settings after ":" but found "${pair.trim()}" (to keep a ":" in the prompt, end the concept with ":").`,
        );
      const key = match[1];
      const spec = optionSchema.concept.options.find((o) => o.flag === key);
      if (!spec) throw new InvalidArgumentError(`Unknown concept setting "${key}"; expected one of ${conceptSettings.join(', ')}.`);
      if (concept[spec.name] !== undefined) throw new InvalidArgumentError(`The concept setting "${key}" is given twice.`);
      if (spec.kind.type === 'enum') {
        concept[spec.name] = match[2]; // its values are checked with the others, by the schema
        continue;
      }
      const value = Number(match[2]);
      if (!Number.isFinite(value))
        throw new InvalidArgumentError(`Expected a number for the concept setting ${key} but received "${match[2]}".`);
      concept[spec.name] = value;
    }
  }
  return concept as unknown as EditConcept;
}

function conceptDescription(help: HelpDefaults): string {
  const defaults = optionSchema.concept.options
    .filter((o) => o.flag !== undefined)
    .map((o) => {
      const value = hasValueDefault(o) ? formatDefault(getPath(help.defaults.concept, defaultsPath(o))) : o.defaultText;
      return `${o.flag} ${value}`;
    });
  return (
    'concepts: a SEGA concept, repeatable: "+blue" adds, "-red" removes; settings after ":", ' +
    `e.g. "+blue:scale=10,warmup=2,cooldown=40,threshold=0.9,weight=1,mask=attention" (defaults: ${defaults.join(', ')})`
  );
}
