// The new-export form: its values, their defaults (the request's own in the OpenAPI document, the lists from
// the export catalog), what must be filled in, and the requests it makes (the export, the size estimate).
import { schemaProperty } from '../spec/schema';
import type { EstimateRequest, ExportCatalog, ExportCreate } from './queries';

/** The request body's schema (POST /api/projects/{id}/exports): defaults, enums and patterns come from it. */
const REQUEST = 'ExportCreate';

function requestDefault<T>(key: string, fallback: T): T {
  const value = schemaProperty(REQUEST, key)?.default;
  return value === undefined || value === null ? fallback : (value as T);
}

function options(key: string) {
  const schema = schemaProperty(REQUEST, key);
  return schema?.anyOf ?? (schema ? [schema] : []);
}

/** Allowed values of a request field (e.g. hub), from the schema. */
export function requestEnum(key: string): string[] {
  return options(key).flatMap((option) => [...(option.enum ?? []), ...(option.items?.enum ?? [])].map(String));
}

/** The pattern a hub repository id must match (owner/name), in the server's own terms. */
function hubPattern(): RegExp {
  const pattern = options('hub_model_id').find((option) => typeof option.pattern === 'string')?.pattern;
  return new RegExp(pattern ?? '^[^/\\s]+/[^/\\s]+$');
}

/** The GPTQ bits an estimate assumes unless told (the form starts from them too). */
function defaultBits(): string {
  return String(schemaProperty('ExportEstimateRequest', 'gptq_bits')?.default ?? 4);
}

/** GPTQ bit widths (export_quantization_bit). */
export const GPTQ_BITS = ['2', '3', '4', '8'];

export interface ExportForm {
  name: string;
  model: string | null;
  /** LoRA fine-tunes merged after ``model``, in this order */
  extra_adapters: string[];
  formats: string[];
  gguf_types: string[];
  dtype: string;
  export_size: number | string;
  legacy_format: boolean;
  ollama: boolean;
  verify: boolean;
  gptq_bits: string | null;
  gptq_dataset: string | null;
  gptq_dataset_version_id: string | null;
  hub_model_id: string;
  hub: string;
  hub_token_secret: string | null;
  hub_private: boolean;
}

/** The form before the user touches it: the request's defaults, the catalog's GGUF types, what it offers. */
export function defaultForm(catalog: ExportCatalog, model: string | null = null): ExportForm {
  const formats = catalog.formats.map((format) => format.name);
  const ggufTypes = catalog.gguf_types.map((type) => type.name);
  const wanted = requestDefault<string[]>('formats', ['hf']).filter((name) => formats.includes(name));
  return {
    name: '',
    model,
    extra_adapters: [],
    formats: wanted.length ? wanted : formats.slice(0, 1),
    gguf_types: catalog.default_gguf_types.filter((name) => ggufTypes.includes(name)),
    dtype: catalog.dtypes[0] ?? 'auto',
    export_size: requestDefault('export_size', 5),
    legacy_format: requestDefault('legacy_format', false),
    ollama: requestDefault('ollama', true),
    verify: requestDefault('verify', true),
    gptq_bits: defaultBits(),
    gptq_dataset: null,
    gptq_dataset_version_id: null,
    hub_model_id: '',
    hub: requestDefault('hub', requestEnum('hub')[0] ?? 'huggingface'),
    hub_token_secret: null,
    hub_private: requestDefault('hub_private', true),
  };
}

export interface FormProblem {
  field: string;
  /** i18n key under exports.problems */
  key: string;
}

export function formProblems(form: ExportForm): FormProblem[] {
  const problems: FormProblem[] = [];
  if (!form.model) problems.push({ field: 'model', key: 'model' });
  if (form.model && form.extra_adapters.includes(form.model)) problems.push({ field: 'extra_adapters', key: 'adapterIsModel' });
  if (!form.formats.length) problems.push({ field: 'formats', key: 'formats' });
  if (form.formats.includes('gguf') && !form.gguf_types.length) problems.push({ field: 'gguf_types', key: 'ggufTypes' });
  if (form.formats.includes('gptq')) {
    if (!form.gptq_bits) problems.push({ field: 'gptq_bits', key: 'gptqBits' });
    if (!form.gptq_dataset_version_id) problems.push({ field: 'gptq_dataset_version_id', key: 'gptqDataset' });
  }
  const size = Number(form.export_size);
  if (form.export_size === '' || !Number.isInteger(size) || size < 1) problems.push({ field: 'export_size', key: 'exportSize' });
  const hubId = form.hub_model_id.trim();
  if (hubId && !hubPattern().test(hubId)) problems.push({ field: 'hub_model_id', key: 'hubRepo' });
  if (hubId && !form.hub_token_secret) problems.push({ field: 'hub_token_secret', key: 'hubSecret' });
  return problems;
}

/** The GGUF types that apply: none (null) unless GGUF is one of the formats. */
function ggufTypes(form: ExportForm): string[] | null {
  return form.formats.includes('gguf') ? form.gguf_types : null;
}

export function toRequest(form: ExportForm): ExportCreate {
  const hubId = form.hub_model_id.trim();
  const gptq = form.formats.includes('gptq');
  return {
    model: form.model ?? '',
    extra_adapters: form.extra_adapters,
    formats: form.formats as ExportCreate['formats'],
    gguf_types: ggufTypes(form) as ExportCreate['gguf_types'],
    dtype: form.dtype as ExportCreate['dtype'],
    export_size: Number(form.export_size),
    legacy_format: form.legacy_format,
    ollama: form.formats.includes('gguf') && form.ollama,
    verify: form.verify,
    gptq_bits: gptq && form.gptq_bits ? Number(form.gptq_bits) : null,
    gptq_dataset_version_id: gptq ? form.gptq_dataset_version_id : null,
    hub_model_id: hubId || null,
    hub: form.hub as ExportCreate['hub'],
    hub_token_secret: hubId ? form.hub_token_secret : null,
    hub_private: form.hub_private,
    name: form.name.trim() || null,
  };
}

/** What the size estimate needs; null until there is a model and a format. */
export function estimateRequest(form: ExportForm): EstimateRequest | null {
  if (!form.model || !form.formats.length) return null;
  return {
    model: form.model,
    formats: form.formats as EstimateRequest['formats'],
    gguf_types: ggufTypes(form) as EstimateRequest['gguf_types'],
    dtype: form.dtype as EstimateRequest['dtype'],
    gptq_bits: Number(form.gptq_bits ?? defaultBits()),
  };
}
