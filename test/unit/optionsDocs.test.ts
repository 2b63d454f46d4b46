// What is written about the options by hand or committed from the generator agrees with the
// schema (lib/options/schema.ts): docs/options.md and the README's option sections are what
// `npm run docs:options` writes now, the doc comments of the option interfaces state the schema's
// defaults, and ModelDefaults / RecommendedSettings have exactly the schema's fields.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { optionsMarkdown, readmeSections, updateReadme } from '../../lib/options/docs.js';
import { defaultsPath, groupNames, hasValueDefault, optionSchema, type GroupName } from '../../lib/options/schema.js';
import { repoRoot } from '../helpers.js';

const stale = 'stale: run `npm run docs:options` and commit the result';

test('docs/options.md is what the schema generates', () => {
  assert.equal(readFileSync(join(repoRoot, 'docs', 'options.md'), 'utf8'), optionsMarkdown(), `docs/options.md is ${stale}`);
});

test("the README's option tables are what the schema generates, one section per group", () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  assert.deepEqual([...readmeSections(readme)].sort(), [...groupNames].sort());
  assert.equal(updateReadme(readme), readme, `README.md's <!-- options:… --> sections are ${stale}`);
});

/** The interfaces of a file: name → property → doc comment text (`type literal` members nested as `a.b`). */
function interfaces(file: string): Map<string, Map<string, string>> {
  const source = ts.createSourceFile(file, readFileSync(join(repoRoot, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const out = new Map<string, Map<string, string>>();
  const members = (nodes: ts.NodeArray<ts.TypeElement>, prefix: string, into: Map<string, string>) => {
    for (const member of nodes) {
      if (!ts.isPropertySignature(member)) continue;
      const name = prefix + member.name.getText(source);
      const doc = ts
        .getJSDocCommentsAndTags(member)
        .map((d) => ts.getTextOfJSDocComment((d as ts.JSDoc).comment) ?? '')
        .join(' ');
      into.set(name, doc.replace(/\s+/g, ' '));
      if (member.type && ts.isTypeLiteralNode(member.type)) members(member.type.members, `${name}.`, into);
    }
  };
  source.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node)) {
      const props = new Map<string, string>();
      members(node.members, '', props);
      out.set(node.name.text, props);
    }
  });
  return out;
}

const documented: Record<GroupName, [string, string]> = {
  textToImage: ['lib/pipelines/textToImage.ts', 'TextToImageOptions'],
  invert: ['lib/pipelines/ledits/invert.ts', 'InvertOptions'],
  edit: ['lib/pipelines/ledits/edit.ts', 'EditOptions'],
  concept: ['lib/pipelines/ledits/edit.ts', 'EditConcept'],
  imagic: ['lib/pipelines/imagic/train.ts', 'ImagicOptions'],
  imagicGenerate: ['lib/pipelines/imagic/result.ts', 'ImagicGenerateOptions'],
  imagicChooseEta: ['lib/pipelines/imagic/chooseEta.ts', 'ImagicChooseEtaOptions'],
};

/** A literal as written in a doc comment, as a value: `'cover'`, `7.5`, `2e-3`, `false`, `[0.5, 1]`. */
function literal(text: string): unknown {
  const t = text.trim();
  if (/^\[.*\]$/.test(t)) return JSON.parse(t);
  if (/^'.*'$/.test(t)) return t.slice(1, -1);
  if (t === 'true' || t === 'false') return t === 'true';
  return Number(t);
}

test("the doc comments of the option interfaces state the schema's defaults, for exactly the schema's options", () => {
  for (const group of groupNames) {
    const [file, name] = documented[group];
    const docs: Map<string, string> | undefined = interfaces(file).get(name);
    assert.ok(docs, `${file}: no interface ${name}`);
    const properties = [...docs.keys()].filter((p) => !p.includes('.'));
    const options = [...new Set(optionSchema[group].options.map((o) => o.name.split('.')[0]))];
    assert.deepEqual(properties.sort(), options.sort(), `${name}: its properties are the schema's ${group} options`);
    for (const spec of optionSchema[group].options) {
      const [top, leaf] = spec.name.split('.');
      const doc: string = docs.get(top) ?? '';
      const where: string = `${name}.${top}: "${doc}"`;
      if (spec.required) {
        assert.match(doc, /Required/, where);
      } else if (!hasValueDefault(spec)) {
        assert.match(doc, /Defaults to /, where);
      } else if (leaf === undefined) {
        const stated = /Defaults to `([^`]+)`/.exec(doc);
        assert.ok(stated, `${where} should say "Defaults to \`${String(spec.default)}\`"`);
        assert.deepEqual(literal(stated[1]), spec.default, where);
      } else {
        // a nested option: the parent says `Defaults to { steps: 1000, lr: 2e-3 }`
        const stated = new RegExp(`Defaults to \`\\{[^}]*\\b${leaf}: ([^,} ]+)`).exec(doc);
        assert.ok(stated, `${where} should state ${leaf}`);
        assert.equal(literal(stated[1]), spec.default, `${where}: ${leaf}`);
      }
    }
  }
});

test('ModelDefaults and RecommendedSettings have exactly the fields the schema gives them', () => {
  const types = interfaces('lib/options/defaults.ts');
  const leaves = (props: Map<string, string>) =>
    [...props.keys()].filter((p) => ![...props.keys()].some((q) => q.startsWith(`${p}.`))).sort();
  const expected = (filter: (recommended: boolean) => boolean) =>
    groupNames
      .flatMap((g) =>
        optionSchema[g].options
          .filter((o) => hasValueDefault(o) && filter(o.recommended !== undefined))
          .map((o) => [optionSchema[g].defaultsKey, ...defaultsPath(o)].join('.')),
      )
      .sort();
  assert.deepEqual(leaves(types.get('ModelDefaults')!), [...new Set(expected(() => true))].sort());
  assert.deepEqual(
    leaves(types.get('RecommendedSettings')!),
    expected((r) => r),
  );
});
