// The job spec's keys and constraints, read from the backend's OpenAPI document (openapi.json), and a
// check of a flat LLaMA-Factory-style mapping against them, so most mistakes are caught before submitting.
// Messages follow the server's wording; the server stays the authority (its 422 errors are shown too).
import openapi from '../../openapi.json';
import catalog from '../api/catalog.gen.json';
import type { Problem } from '../api/errors';
import type { StageInfo } from '../stages/catalog';

export interface PropertySchema {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: PropertySchema[];
  items?: PropertySchema;
  $ref?: string;
  properties?: Record<string, PropertySchema>;
  required?: string[];
  additionalProperties?: boolean | PropertySchema;
  minLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
  description?: string;
  title?: string;
}

interface ObjectSchema {
  properties: Record<string, PropertySchema>;
  required?: string[];
}

export const SECTIONS = ['model', 'data', 'method', 'training', 'generation'] as const;
export type SectionName = (typeof SECTIONS)[number];

const schemas = (openapi as unknown as { components: { schemas: Record<string, ObjectSchema> } }).components.schemas;
const SECTION_SCHEMAS: Record<SectionName, string> = {
  model: 'ModelSection',
  data: 'DataSection',
  method: 'MethodSection',
  training: 'TrainingSection',
  generation: 'GenerationSection',
};

export interface KeyInfo {
  section: SectionName;
  schema: PropertySchema;
  required: boolean;
}

/** flat key -> its section and schema */
export const SPEC_KEYS: Record<string, KeyInfo> = (() => {
  const index: Record<string, KeyInfo> = {};
  for (const section of SECTIONS) {
    const schema = schemas[SECTION_SCHEMAS[section]];
    const required = new Set(schema?.required ?? []);
    for (const [key, property] of Object.entries(schema?.properties ?? {})) {
      index[key] = { section, schema: property, required: required.has(key) };
    }
  }
  return index;
})();

export const ALIASES: Record<string, string> = catalog.aliases;
export const UNSUPPORTED: Record<string, unknown> = catalog.unsupported_options;
export const TEMPLATES: string[] = catalog.templates;

/** Whether ``value`` is the key's default (the schema leaves out defaults of None, so a nullable key without
 * a default defaults to null). */
export function isDefault(key: string, value: unknown): boolean {
  const schema = SPEC_KEYS[key]?.schema;
  if (!schema) return false;
  if ('default' in schema) return JSON.stringify(schema.default) === JSON.stringify(value);
  return value === null && Boolean(schema.anyOf?.some((option) => option.type === 'null'));
}

/** A property of another of the API's schemas (e.g. ExportSection's export_size); undefined when it has none. */
export function schemaProperty(schemaName: string, key: string): PropertySchema | undefined {
  return schemas[schemaName]?.properties?.[key];
}

interface Operation {
  parameters?: { name: string; schema?: PropertySchema }[];
}

/** The pattern a path parameter must match (e.g. a secret's name), from the OpenAPI document. */
export function pathParameterPattern(path: string, method: string, name: string): RegExp | null {
  const paths = (openapi as unknown as { paths: Record<string, Record<string, Operation>> }).paths;
  const pattern = paths[path]?.[method]?.parameters?.find((parameter) => parameter.name === name)?.schema?.pattern;
  return pattern ? new RegExp(pattern) : null;
}

/** The allowed values of an enum key (e.g. lr_scheduler_type), from the schema. */
export function enumValues(key: string): string[] {
  const schema = SPEC_KEYS[key]?.schema;
  const options = schema?.anyOf ?? (schema ? [schema] : []);
  return options.flatMap((option) => (option.enum ?? []).map(String));
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = saved;
    }
  }
  return row[b.length];
}

export function closestKey(key: string): string | null {
  let best: string | null = null;
  let bestScore = Infinity;
  for (const candidate of Object.keys(SPEC_KEYS)) {
    const score = editDistance(key, candidate) / Math.max(key.length, candidate.length);
    if (score < bestScore) [best, bestScore] = [candidate, score];
  }
  return bestScore <= 0.4 ? best : null;
}

function typeOk(type: string | undefined, value: unknown, items?: PropertySchema): boolean {
  switch (type) {
    case undefined:
      return true;
    case 'null':
      return value === null;
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'string':
      return typeof value === 'string';
    case 'array':
      // list keys also take a comma-separated string (the server splits it)
      return (Array.isArray(value) && value.every((item) => typeOk(items?.type, item))) || typeof value === 'string';
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      return true;
  }
}

const TYPE_WORDS: Record<string, string> = {
  boolean: 'a valid boolean',
  integer: 'a valid integer',
  number: 'a valid number',
  string: 'a valid string',
  array: 'a valid list',
  object: 'a valid dictionary',
};

function quoteList(values: unknown[]): string {
  const quoted = values.map((v) => `'${String(v)}'`);
  return quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}` : quoted[0];
}

/** Why the object ``value`` does not fit an object schema with properties (pydantic's wording, with the key). */
function checkObject(schema: PropertySchema, value: Record<string, unknown>): string | null {
  for (const key of schema.required ?? []) if (!(key in value)) return `${key}: Field required`;
  for (const [key, inner] of Object.entries(value)) {
    const property = schema.properties?.[key];
    if (!property) {
      if (schema.additionalProperties === false) return `${key}: Extra inputs are not permitted`;
      continue;
    }
    const message = checkValue(property, inner);
    if (message) return `${key}: ${message}`;
  }
  return null;
}

/** Why ``value`` does not fit ``schema`` (pydantic's wording), or null when it fits. */
export function checkValue(schema: PropertySchema, value: unknown): string | null {
  if (schema.$ref) {
    const target = schemas[schema.$ref.split('/').pop() ?? ''] as PropertySchema | undefined;
    return target ? checkValue(target, value) : null;
  }
  if (schema.anyOf) {
    const messages = schema.anyOf.map((option) => checkValue(option, value));
    if (messages.some((message) => message === null)) return null;
    return messages.find((message) => message && !message.endsWith('None')) ?? messages[0];
  }
  if (schema.type === 'null') return value === null ? null : 'Input should be None';
  if (value === null || value === undefined) return schema.type ? `Input should be ${TYPE_WORDS[schema.type] ?? schema.type}` : null;
  if (schema.enum && !schema.enum.includes(value)) return `Input should be ${quoteList(schema.enum)}`;
  if (schema.const !== undefined && schema.const !== value) return `Input should be ${quoteList([schema.const])}`;
  if (!typeOk(schema.type, value, schema.items)) return `Input should be ${TYPE_WORDS[schema.type ?? ''] ?? schema.type}`;
  if (typeof value === 'string' && schema.minLength !== undefined && value.length < schema.minLength)
    return `String should have at least ${schema.minLength} character${schema.minLength === 1 ? '' : 's'}`;
  if (Array.isArray(value) && schema.items) {
    for (const [index, item] of value.entries()) {
      const message = checkValue(schema.items, item);
      if (message) return `item ${index + 1}: ${message}`;
    }
  }
  if (schema.properties && typeof value === 'object' && !Array.isArray(value)) return checkObject(schema, value as Record<string, unknown>);
  if (typeof value === 'number') {
    if (schema.exclusiveMinimum !== undefined && !(value > schema.exclusiveMinimum))
      return `Input should be greater than ${schema.exclusiveMinimum}`;
    if (schema.minimum !== undefined && !(value >= schema.minimum))
      return `Input should be greater than or equal to ${schema.minimum}`;
    if (schema.exclusiveMaximum !== undefined && !(value < schema.exclusiveMaximum))
      return `Input should be less than ${schema.exclusiveMaximum}`;
    if (schema.maximum !== undefined && !(value <= schema.maximum))
      return `Input should be less than or equal to ${schema.maximum}`;
  }
  return null;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Problems of a flat spec, as the server would name them (field = the flat key). ``stages``: the stage
 * catalog (GET /api/stages); the stage is checked against it when given, else against the schema. */
export function validateSpec(flat: Record<string, unknown>, stages?: readonly StageInfo[]): Problem[] {
  const problems: Problem[] = [];
  for (const [rawKey, value] of Object.entries(flat)) {
    const key = ALIASES[rawKey] ?? rawKey;
    if (key === 'stage' && stages?.length) continue; // checked below, against the catalog
    const info = SPEC_KEYS[key];
    if (!info) {
      const close = closestKey(key);
      problems.push({ field: rawKey, message: `unknown key${close ? `; did you mean '${close}'?` : ''}` });
      continue;
    }
    const message = checkValue(info.schema, value);
    if (message) {
      const shown = typeof value === 'number' ? ` (got ${value})` : typeof value === 'string' || typeof value === 'boolean' ? ` (got ${JSON.stringify(value)})` : '';
      problems.push({ field: key, message: message + shown });
    }
  }
  for (const [key, info] of Object.entries(SPEC_KEYS)) {
    if (info.required && (flat[key] === undefined || flat[key] === '')) problems.push({ field: key, message: 'is required' });
  }
  const stage = flat.stage ?? SPEC_KEYS.stage?.schema.default;
  if (stages?.length && !stages.some((info) => info.name === stage)) {
    problems.push({ field: 'stage', message: `Input should be ${quoteList(stages.map((info) => info.name))} (got ${JSON.stringify(stage)})` });
  }
  for (const [key, off] of Object.entries(UNSUPPORTED)) {
    if (key in flat && !same(flat[key], off)) {
      problems.push({
        field: key,
        message: `is a LLaMA-Factory option Tunery does not support; leave it at ${off === null ? 'None' : String(off).replace(/^./, (c) => c.toUpperCase())}`,
      });
    }
  }
  const datasets = flat.dataset;
  if (datasets === undefined || datasets === null || datasets === '' || (Array.isArray(datasets) && datasets.length === 0)) {
    problems.push({ field: 'dataset', message: 'is required to train (names from dataset_info.json)' });
  }
  return problems;
}
