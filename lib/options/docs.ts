/**
 * The option tables of the docs, generated from the schema (lib/options/schema.ts):
 * docs/options.md whole, and the README's sections between `<!-- options:NAME -->` and
 * `<!-- /options:NAME -->` (NAME a group: textToImage, invert, edit, concept, imagic,
 * imagicGenerate, imagicChooseEta). `npm run docs:options` writes both; a test fails when the committed ones differ.
 */
import { rangeText } from './resolve.js';
import { defaultsPath, groupNames, hasValueDefault, optionSchema, type GroupName, type OptionSpec } from './schema.js';

/** A value as code: `50`, `''`, `'cover'`, `false`. */
export function codeValue(value: unknown): string {
  if (Array.isArray(value)) return `\`[${value.join(', ')}]\``;
  return typeof value === 'string' ? `\`'${value}'\`` : `\`${String(value)}\``;
}

/** The default column: the value (with its note), or what happens without one. */
export function defaultCell(spec: OptionSpec): string {
  if (spec.required) return 'required';
  if (!hasValueDefault(spec)) return spec.defaultText ?? 'none';
  const value = spec.defaultText ? `${codeValue(spec.default)} ${spec.defaultText}` : codeValue(spec.default);
  return spec.dpmDefault === undefined ? value : `${value}; ${codeValue(spec.dpmDefault)} with \`dpmsolver++\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** The README's table of a group: option, default, range, meaning. */
export function readmeTable(group: GroupName): string {
  const rows = optionSchema[group].options.map(
    (o) => `| \`${o.name}\` | ${cell(defaultCell(o))} | ${cell(rangeText(o.kind))} | ${cell(o.doc)} |`,
  );
  return ['| option | default | range | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** docs/options.md's table of a group: also the model.json key, the CLI flag and diffusers' name. */
export function fullTable(group: GroupName): string {
  const spec = optionSchema[group];
  const rows = spec.options.map((o) => {
    const recommended = o.recommended ? `\`${[spec.defaultsKey, ...defaultsPath(o)].join('.')}\`` : '';
    const flag = o.flag === undefined ? '' : group === 'concept' ? `\`${o.flag}=\`` : `\`${o.flag} ${o.value}\``;
    return `| \`${o.name}\` | ${cell(defaultCell(o))} | ${cell(rangeText(o.kind))} | ${recommended} | ${cell(flag)} | ${o.diffusers ? `\`${o.diffusers}\`` : ''} | ${cell(o.doc)} |`;
  });
  return [
    '| option | default | range | model.json `recommended` | CLI | diffusers | meaning |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

const TITLES: Record<GroupName, string> = {
  textToImage: 'Text-to-image',
  invert: 'LEDITS inversion',
  edit: 'LEDITS edit',
  concept: 'LEDITS concept',
  imagic: 'Imagic training',
  imagicGenerate: 'Imagic generation',
  imagicChooseEta: 'Imagic automatic η',
};

/** The whole of docs/options.md. */
export function optionsMarkdown(): string {
  const parts = [
    '# Options',
    '',
    '<!-- Generated from lib/options/schema.ts by `npm run docs:options`; edit the schema, not this file. -->',
    '',
    'Every option of every pipeline, as declared once in `lib/options/schema.ts`: its library default,',
    'its range, the model.json `recommended` key that may replace the default for a model, its',
    'command-line flag and the equivalent diffusers parameter. A model uses the library default',
    'unless its model.json recommends another value (`model.defaults` holds the merged values;',
    '`torchedit <command> --help` shows those of the model chosen with `--model`); an option passed',
    "to the call always wins. Ranges name the model's limits where they depend on it:",
    "`numTrainTimesteps` is model.json's `scheduler.numTrainTimesteps`, `inversionSteps` the steps",
    'of the inversion being edited. A bad value fails with `ERR_INVALID_OPTION` before any model',
    'work, "Expected … for … but received …"; the error\'s `option` is the path.',
    '',
    "With the inversion's `scheduler: 'dpmsolver++'` (LEDITS++'s sampler), an option whose default",
    'says "with `dpmsolver++`" takes that value (LEDITS++\'s) instead, in the inversion and in every',
    "edit of it; model.json's recommendations, tuned for the DDPM inversion, do not replace those.",
    '',
  ];
  for (const group of groupNames) {
    parts.push(`## ${TITLES[group]}`, '', `\`${optionSchema[group].call}\``, '', fullTable(group), '');
  }
  if (optionSchema.concept.options.some((o) => o.flag)) {
    parts.push(
      'On the command line a concept is `--concept "+prompt:key=value,…"` (`-prompt` removes it), the keys being the CLI column of the concept table.',
      '',
    );
  }
  return parts.join('\n');
}

/** The README with each `<!-- options:NAME -->` section replaced by the generated table. */
export function updateReadme(readme: string): string {
  return readme.replace(
    /(<!-- options:(\w+) -->\n)[\s\S]*?(<!-- \/options:\2 -->)/g,
    (_match, open: string, name: string, close: string) => {
      if (!(groupNames as string[]).includes(name)) throw new Error(`README.md: unknown options section ${name}`);
      return `${open}${readmeTable(name as GroupName)}\n${close}`;
    },
  );
}

/** The NAMEs of the README's option sections, in order. */
export function readmeSections(readme: string): string[] {
  return [...readme.matchAll(/<!-- options:(\w+) -->/g)].map((m) => m[1]);
}
