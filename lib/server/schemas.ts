/**
 * JSON Schemas of the request bodies, derived from the option schema (lib/options/schema.ts), so
 * that the OpenAPI document describes every option with its doc text and library default. They
 * document types; ranges and defaults are checked by the library's own validation (one wording,
 * one place), which the routes call. What the body validator does check: the body is an object
 * and has no unknown keys (a typo is 400, not a silent default).
 */
import { invalidOption, TorchEditError } from '../errors.js';
import { type GroupName, type Kind, optionSchema } from '../options/schema.js';
import { isPlainObject } from '../options/validate.js';

export type JsonSchema = Record<string, unknown>;

function kindSchema(kind: Kind): JsonSchema {
  switch (kind.type) {
    case 'integer':
      return { type: 'integer', minimum: kind.min, ...(typeof kind.max === 'number' ? { maximum: kind.max } : {}) };
    case 'number':
      return { type: 'number', minimum: kind.min, maximum: kind.max };
    case 'string':
      return { type: 'string', ...(kind.nonEmpty ? { minLength: 1 } : {}) };
    case 'boolean':
      return { type: 'boolean' };
    case 'enum':
      return { type: 'string', enum: [...kind.values] };
    case 'seed':
      return {
        anyOf: [
          { type: 'integer', minimum: 0 },
          { type: 'string', pattern: '^[0-9]{1,20}$' },
        ],
        description: 'a decimal string for seeds beyond 2^53',
      };
    case 'imageSide':
      return { type: 'integer', minimum: 1 };
    case 'skip':
      return { type: 'number', minimum: 0 };
    case 'mask':
      return { type: 'string', description: 'the id of an uploaded image (white = editable)' };
    case 'list':
      return { type: 'array', items: groupSchema(kind.of) };
    case 'patterns':
      return {
        anyOf: [
          { type: 'string', enum: [...kind.presets] },
          { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
        ],
      };
    case 'numbers':
      return { type: 'array', items: { type: 'number', minimum: kind.min, maximum: kind.max }, minItems: 1 };
  }
}

/** The schema of an options group, nested names (`embedding.lr`) as nested objects. */
export function groupSchema(group: GroupName, except: string[] = []): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const spec of optionSchema[group].options) {
    if (except.includes(spec.name)) continue;
    const parts = spec.name.split('.');
    let holder = properties;
    for (const part of parts.slice(0, -1)) {
      holder[part] ??= { type: 'object', properties: {}, additionalProperties: false };
      holder = holder[part].properties as Record<string, JsonSchema>;
    }
    const doc = spec.doc.replace(/`/g, '');
    const fallback = spec.default === null || spec.default === undefined ? spec.defaultText : spec.default;
    holder[parts[parts.length - 1]] = {
      ...kindSchema(spec.kind),
      description:
        doc +
        (fallback === undefined
          ? ''
          : ` (default: ${JSON.stringify(fallback)}${spec.recommended ? ", or the model's recommendation" : ''})`),
    };
    if (spec.required) required.push(spec.name);
  }
  return { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false };
}

/** A body schema: an options group plus the route's own fields. */
export function bodySchema(
  group: GroupName | undefined,
  own: Record<string, JsonSchema>,
  required: string[] = [],
  except: string[] = [],
): JsonSchema {
  const base = group ? groupSchema(group, except) : { type: 'object', properties: {} };
  return {
    type: 'object',
    properties: { ...(base.properties as Record<string, JsonSchema>), ...own },
    ...(required.length ? { required } : {}),
    additionalProperties: false,
  };
}

/** Checks a body against a schema's object structure: an object, known keys (nested too), required ones present. */
export function checkStructure(schema: JsonSchema, value: unknown, path = ''): void {
  if (schema.type !== 'object') return;
  const name = path === '' ? 'the request body' : path;
  if (!isPlainObject(value)) throw invalidOption(name, 'a JSON object', value);
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  for (const key of Object.keys(value)) {
    const child = properties[key];
    const at = path === '' ? key : `${path}.${key}`;
    if (!child) {
      throw new TorchEditError('ERR_INVALID_OPTION', `Unknown option ${at}; expected one of ${Object.keys(properties).join(', ')}`, {
        option: at,
      });
    }
    if (child.type === 'object' && value[key] !== undefined && value[key] !== null && isPlainObject(value[key]))
      checkStructure(child, value[key], at);
  }
  for (const key of (schema.required ?? []) as string[]) {
    if (value[key] === undefined) {
      const at = path === '' ? key : `${path}.${key}`;
      throw new TorchEditError('ERR_INVALID_OPTION', `Expected ${at} in ${name}`, { option: at });
    }
  }
}

/** Seeds travel in JSON as numbers or (beyond 2^53) decimal strings; the library takes bigints. */
export function seedFromJson(value: unknown): unknown {
  return typeof value === 'string' && /^[0-9]{1,20}$/.test(value) ? BigInt(value) : value;
}

export const idSchema: JsonSchema = { type: 'string', pattern: '^[0-9a-f]{32}$', description: 'an id: 32 hex digits' };
export const idParams: JsonSchema = { type: 'object', properties: { id: idSchema }, required: ['id'] };
