/**
 * The published types (dist/lib/*.d.ts, built with stripInternal) export exactly the public API
 * the README documents, one spelling per operation (methods on the model, the inversion and the
 * Imagic result), and none of the members lib/ marks `@internal`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import ts from 'typescript';

const distLib = fileURLToPath(new URL('../../lib/', import.meta.url));
const sourceLib = fileURLToPath(new URL('../../../lib/', import.meta.url));

/** README: Runtime API, Errors, Warnings, Model bundles, Text-to-image, LEDITS, Imagic. */
const PUBLIC_API = [
  'TorchEditError',
  'ErrorCode',
  'TorchEditWarning',
  'WarningCode',
  'Tensor',
  'DType',
  'DTypeArrays',
  'TypedArray',
  'Module',
  'loadModule',
  'LoadModuleOptions',
  'ModuleArgument',
  'ModuleOutput',
  'Device',
  'resolveDevice',
  'JobOptions',
  'JobProgress',
  'configure',
  'runtimeInfo',
  'memory',
  'emptyCache',
  'RuntimeOptions',
  'RuntimeInfo',
  'MemoryReport',
  'readImage',
  'checkImageSize',
  'ImageInput',
  'ResizeMode',
  'ReadImageOptions',
  'ImageData',
  'RgbColor',
  'ImageResult',
  'ImageFormat',
  'EncodeOptions',
  'ImageResultInit',
  'ModelDefaults',
  'RecommendedSettings',
  'StableDiffusionModel',
  'loadModel',
  'defaultModelPath',
  'LoadModelOptions',
  'EncodeImageOptions',
  'BundleConfig',
  'SchedulerConfig',
  'TextEncoderConfig',
  'ClipTokenizer',
  'ClipTokenizerOptions',
  'TokenizedWord',
  'TextToImageOptions',
  'GenerationResult',
  'InvertOptions',
  'Inversion',
  'loadInversion',
  'InversionTensors',
  'InversionSettings',
  'EditOptions',
  'EditConcept',
  'EditResult',
  'ImplicitMaskMode',
  'MaskInput',
  'CrossAttentionMapsConfig',
  'ImagicOptions',
  'ImagicStageOptions',
  'ImagicFinetuneOptions',
  'FinetuneParameters',
  'ImagicChooseEtaOptions',
  'ImagicEtaCandidate',
  'ImagicEtaChoice',
  'ImagicEtaScorer',
  'ImagicModelCriterion',
  'ImagicResult',
  'loadImagic',
  'ImagicGenerateOptions',
  'ImagicSettings',
].sort();

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(dir, f));
}

/** Names declared with an `@internal` doc tag in lib/: class → member names ('' for top-level declarations). */
function internalNames(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (owner: string, name: string) => out.set(owner, (out.get(owner) ?? new Set()).add(name));
  for (const file of filesUnder(sourceLib, '.ts')) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node, owner: string) => {
      const name = (node as ts.NamedDeclaration).name;
      if (name && ts.getJSDocTags(node).some((t) => t.tagName.text === 'internal')) add(owner, name.getText(source));
      if (ts.isConstructorDeclaration(node) && ts.getJSDocTags(node).some((t) => t.tagName.text === 'internal')) add(owner, 'constructor');
      const next = ts.isClassDeclaration(node) && node.name ? node.name.text : owner;
      ts.forEachChild(node, (child) => visit(child, next));
    };
    visit(source, '');
  }
  return out;
}

test('index.d.ts exports exactly the documented public API', () => {
  const index = join(distLib, 'index.d.ts');
  const program = ts.createProgram([index], { types: [], lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'] });
  const checker = program.getTypeChecker();
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(index)!)!;
  const exports = checker.getExportsOfModule(moduleSymbol);
  assert.deepEqual(exports.map((s) => s.name).sort(), PUBLIC_API);

  // One spelling: the pipelines are methods, and the free functions behind them are not exported.
  const members = (name: string) => {
    const symbol = checker.getAliasedSymbol(exports.find((s) => s.name === name)!);
    const instance = checker.getDeclaredTypeOfSymbol(symbol);
    const statics = checker.getTypeOfSymbol(symbol);
    const own = [...checker.getPropertiesOfType(instance), ...checker.getPropertiesOfType(statics)].map((p) => p.name);
    const bases = (instance.isClass() ? checker.getBaseTypes(instance) : []).map((b) => b.symbol.name);
    return { own, bases };
  };
  for (const [owner, methods] of [
    ['StableDiffusionModel', ['generate', 'invert', 'imagic']],
    ['Inversion', ['edit', 'save']],
    ['ImagicResult', ['generate', 'sweep', 'chooseEta', 'save']],
  ] as const) {
    for (const m of methods) assert.ok(members(owner).own.includes(m), `${owner}.${m}`);
  }

  // No @internal member of a class (or of its base class) is in the published types.
  const internal = internalNames();
  for (const name of PUBLIC_API) {
    assert.ok(!internal.get('')?.has(name), `${name} is marked @internal but exported`);
    const symbol = checker.getAliasedSymbol(exports.find((s) => s.name === name)!);
    if (!(symbol.flags & ts.SymbolFlags.Class)) continue;
    const { own, bases } = members(name);
    for (const owner of [name, ...bases]) {
      const hidden = own.filter((m) => internal.get(owner)?.has(m));
      assert.deepEqual(hidden, [], `${name} publishes @internal members of ${owner}`);
    }
  }
  assert.ok(internal.get('Tensor')?.has('native') && internal.get('NativeHandle')?.has('handle'), 'the @internal scan sees class members');
});

test('no published declaration file mentions @internal', () => {
  for (const file of filesUnder(distLib, '.d.ts')) {
    assert.ok(!readFileSync(file, 'utf8').includes('@internal'), `${file} still carries an @internal declaration`);
  }
});
