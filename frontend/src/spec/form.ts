// The new-run form's values, and the conversions form -> flat spec (LLaMA-Factory keys) -> YAML and back.
import { parse, stringify } from 'yaml';
import { allStageOptionKeys, stageOptionKeys, type StageInfo } from '../stages/catalog';
import { ALIASES, isDefault, SPEC_KEYS } from './schema';
import { type OptionValues, optionSpec, rewardFuncList } from './stageOptions';

export type FinetuningType = 'full' | 'freeze' | 'lora';
export type ComputeType = 'bf16' | 'fp16' | 'fp32';

export interface RunForm {
  name: string;
  model: string;
  template: string;
  stage: string;
  finetuning_type: FinetuningType;
  quantization_bit: string; // '' | '8' | '4'
  datasets: string[];
  val_size: number;
  eval_steps: number;
  learning_rate: number;
  num_train_epochs: number;
  max_steps: number;
  per_device_train_batch_size: number;
  gradient_accumulation_steps: number;
  cutoff_len: number;
  lr_scheduler_type: string;
  warmup_ratio: number;
  logging_steps: number;
  save_steps: number;
  compute_type: ComputeType;
  lora_rank: number;
  lora_alpha: number | null;
  lora_dropout: number;
  lora_target: string;
  use_dora: boolean;
  use_rslora: boolean;
  pissa_init: boolean;
  loraplus_lr_ratio: number | null;
  freeze_trainable_layers: number;
  freeze_trainable_modules: string;
  /** values of the stage-specific spec keys (the catalog's `options`); only the chosen stage's are sent */
  options: OptionValues;
  optim: string;
  packing: boolean;
  neftune_noise_alpha: number | null;
  gpus: number;
  /** spec keys the form has no field for (from an imported YAML); passed through unchanged */
  extra: Record<string, unknown>;
}

export const DEFAULT_FORM: RunForm = {
  name: '',
  model: '',
  template: '',
  stage: String(SPEC_KEYS.stage?.schema.default ?? 'sft'),
  finetuning_type: 'lora',
  quantization_bit: '',
  datasets: [],
  val_size: 0,
  eval_steps: 50,
  learning_rate: 1e-4,
  num_train_epochs: 3,
  max_steps: -1,
  per_device_train_batch_size: 1,
  gradient_accumulation_steps: 8,
  cutoff_len: 2048,
  lr_scheduler_type: 'cosine',
  warmup_ratio: 0.1,
  logging_steps: 10,
  save_steps: 500,
  compute_type: 'bf16',
  lora_rank: 8,
  lora_alpha: null,
  lora_dropout: 0,
  lora_target: 'all',
  use_dora: false,
  use_rslora: false,
  pissa_init: false,
  loraplus_lr_ratio: null,
  freeze_trainable_layers: 2,
  freeze_trainable_modules: 'all',
  options: {},
  optim: 'adamw_torch',
  packing: false,
  neftune_noise_alpha: null,
  gpus: 1,
  extra: {},
};

/** Precision and GPU count a fresh form starts with: bf16 on one GPU when an online worker has a GPU,
 * else fp32 on the CPU (bf16 on a CPU is emulated and slower; fp16 needs CUDA). */
export function hardwareDefaults(workers: readonly { status: string; gpus: readonly unknown[] }[]): Pick<RunForm, 'compute_type' | 'gpus'> {
  const hasGpu = workers.some((worker) => worker.status === 'online' && worker.gpus.length > 0);
  return hasGpu ? { compute_type: 'bf16', gpus: 1 } : { compute_type: 'fp32', gpus: 0 };
}

/** The flat spec (LLaMA-Factory keys) the form stands for, in a readable order; defaults left out where noisy.
 * ``stageKeys``: the chosen stage's own keys (from the stage catalog); other stages' values are not sent. */
export function formToSpec(form: RunForm, stageKeys: readonly string[] = []): Record<string, unknown> {
  const spec: Record<string, unknown> = { model_name_or_path: form.model };
  if (form.template) spec.template = form.template;
  spec.stage = form.stage;
  spec.do_train = true;
  spec.finetuning_type = form.finetuning_type;
  if (form.finetuning_type === 'lora') {
    spec.lora_rank = form.lora_rank;
    if (form.lora_alpha !== null) spec.lora_alpha = form.lora_alpha;
    if (form.lora_dropout) spec.lora_dropout = form.lora_dropout;
    spec.lora_target = form.lora_target;
    if (form.use_dora) spec.use_dora = true;
    if (form.use_rslora) spec.use_rslora = true;
    if (form.pissa_init) spec.pissa_init = true;
    if (form.loraplus_lr_ratio !== null) spec.loraplus_lr_ratio = form.loraplus_lr_ratio;
  } else if (form.finetuning_type === 'freeze') {
    spec.freeze_trainable_layers = form.freeze_trainable_layers;
    spec.freeze_trainable_modules = form.freeze_trainable_modules;
  }
  if (form.quantization_bit) spec.quantization_bit = Number(form.quantization_bit);
  Object.assign(spec, optionSpec(stageKeys, form.options));
  spec.dataset = form.datasets.join(',');
  spec.cutoff_len = form.cutoff_len;
  if (form.packing) spec.packing = true;
  if (form.val_size > 0) {
    spec.val_size = form.val_size;
    spec.eval_strategy = 'steps';
    spec.eval_steps = form.eval_steps;
  }
  spec.learning_rate = form.learning_rate;
  spec.num_train_epochs = form.num_train_epochs;
  if (form.max_steps > 0) spec.max_steps = form.max_steps;
  spec.per_device_train_batch_size = form.per_device_train_batch_size;
  spec.gradient_accumulation_steps = form.gradient_accumulation_steps;
  spec.lr_scheduler_type = form.lr_scheduler_type;
  if (form.warmup_ratio) spec.warmup_ratio = form.warmup_ratio;
  if (form.optim !== 'adamw_torch') spec.optim = form.optim;
  if (form.neftune_noise_alpha !== null) spec.neftune_noise_alpha = form.neftune_noise_alpha;
  if (form.compute_type === 'bf16') spec.bf16 = true;
  if (form.compute_type === 'fp16') spec.fp16 = true;
  spec.logging_steps = form.logging_steps;
  spec.save_steps = form.save_steps;
  if (form.gpus === 0) spec.use_cpu = true; // no GPU: train on the CPU
  for (const [key, value] of Object.entries(form.extra)) if (!(key in spec)) spec[key] = value;
  return spec;
}

export function specToYaml(spec: Record<string, unknown>): string {
  return stringify(spec, { lineWidth: 0 });
}

function csv(value: unknown): string {
  if (Array.isArray(value)) return value.map(String).join(',');
  return value === null || value === undefined ? '' : String(value);
}

function num(value: unknown): number | null {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  return null;
}

function bool(value: unknown): boolean {
  return value === true || value === 'true' || value === 1;
}

type Reader = (form: RunForm, value: unknown) => boolean;

const setNumber =
  (field: keyof RunForm, nullable = false): Reader =>
  (form, value) => {
    const parsed = num(value);
    if (parsed === null && !(nullable && value === null)) return false;
    (form as unknown as Record<string, unknown>)[field] = parsed;
    return true;
  };
const setString =
  (field: keyof RunForm): Reader =>
  (form, value) => {
    (form as unknown as Record<string, unknown>)[field] = csv(value);
    return true;
  };
const setBool =
  (field: keyof RunForm): Reader =>
  (form, value) => {
    (form as unknown as Record<string, unknown>)[field] = bool(value);
    return true;
  };

/** Spec keys the form has a field for, and how a value is read into it (false: keep the key as extra). */
const READERS: Record<string, Reader> = {
  model_name_or_path: setString('model'),
  template: setString('template'),
  stage: setString('stage'),
  finetuning_type: (form, value) => {
    if (value !== 'full' && value !== 'freeze' && value !== 'lora') return false;
    form.finetuning_type = value;
    return true;
  },
  quantization_bit: (form, value) => {
    if (value === null) {
      form.quantization_bit = '';
      return true;
    }
    if (num(value) !== 4 && num(value) !== 8) return false;
    form.quantization_bit = String(num(value));
    return true;
  },
  dataset: (form, value) => {
    form.datasets = csv(value)
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    return true;
  },
  val_size: setNumber('val_size'),
  eval_steps: setNumber('eval_steps'),
  eval_strategy: (_form, value) => value === 'steps' || value === 'no',
  do_train: (_form, value) => bool(value),
  learning_rate: setNumber('learning_rate'),
  num_train_epochs: setNumber('num_train_epochs'),
  max_steps: setNumber('max_steps'),
  per_device_train_batch_size: setNumber('per_device_train_batch_size'),
  gradient_accumulation_steps: setNumber('gradient_accumulation_steps'),
  cutoff_len: setNumber('cutoff_len'),
  lr_scheduler_type: setString('lr_scheduler_type'),
  warmup_ratio: setNumber('warmup_ratio'),
  logging_steps: setNumber('logging_steps'),
  save_steps: setNumber('save_steps'),
  bf16: (form, value) => {
    if (bool(value)) form.compute_type = 'bf16';
    else if (form.compute_type === 'bf16') form.compute_type = 'fp32';
    return true;
  },
  fp16: (form, value) => {
    if (bool(value)) form.compute_type = 'fp16';
    else if (form.compute_type === 'fp16') form.compute_type = 'fp32';
    return true;
  },
  lora_rank: setNumber('lora_rank'),
  lora_alpha: setNumber('lora_alpha', true),
  lora_dropout: setNumber('lora_dropout'),
  lora_target: setString('lora_target'),
  use_dora: setBool('use_dora'),
  use_rslora: setBool('use_rslora'),
  pissa_init: setBool('pissa_init'),
  loraplus_lr_ratio: setNumber('loraplus_lr_ratio', true),
  freeze_trainable_layers: setNumber('freeze_trainable_layers'),
  freeze_trainable_modules: setString('freeze_trainable_modules'),
  optim: setString('optim'),
  packing: setBool('packing'),
  neftune_noise_alpha: setNumber('neftune_noise_alpha', true),
  use_cpu: (form, value) => {
    if (bool(value)) form.gpus = 0;
    else if (form.gpus === 0) form.gpus = 1;
    return true;
  },
};

export interface ImportResult {
  form: RunForm;
  /** keys kept as extra settings because the form has no field for them */
  extra: string[];
  /** keys the spec does not know (they stay, and are reported as errors until removed) */
  unknown: string[];
}

export class ImportError extends Error {}

/** Reads a pasted LLaMA-Factory YAML (flat keys, or Tunery's nested sections) into the form. The keys of the
 * imported stage (``stages``: the stage catalog) go to its options; keys of other stages stay as extra settings
 * (sent as they are, so the server says whether they apply). */
export function importYaml(text: string, base: RunForm = DEFAULT_FORM, stages: readonly StageInfo[] = []): ImportResult {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    throw new ImportError(`not valid YAML: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ImportError('the YAML must be a mapping of keys');
  const flat: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const isSection = ['model', 'data', 'method', 'training', 'generation'].includes(key);
    if (isSection && typeof value === 'object' && value !== null && !Array.isArray(value)) Object.assign(flat, value);
    else flat[key] = value;
  }
  const form: RunForm = { ...base, extra: {}, options: {}, datasets: [...base.datasets] };
  const stageKeys = allStageOptionKeys(stages);
  const options: OptionValues = {};
  // a YAML that sets neither precision flag trains in fp32 (LLaMA-Factory's default)
  if (!('bf16' in flat) && !('fp16' in flat)) form.compute_type = 'fp32';
  if ('val_size' in flat === false) form.val_size = 0;
  const extra: string[] = [];
  const unknown: string[] = [];
  for (const [rawKey, value] of Object.entries(flat)) {
    const key = ALIASES[rawKey] ?? rawKey;
    const reader = READERS[key];
    if (reader && reader(form, value)) continue;
    if (value === null && isDefault(key, null)) continue; // "key: null" is the default
    if (stageKeys.has(key)) {
      options[key] = key === 'reward_funcs' ? rewardFuncList(value) : value;
      continue;
    }
    form.extra[key] = value;
    (SPEC_KEYS[key] ? extra : unknown).push(key);
  }
  const applicable = stageOptionKeys(stages, form.stage);
  for (const [key, value] of Object.entries(options)) {
    if (applicable.includes(key)) form.options[key] = value;
    else {
      form.extra[key] = value;
      extra.push(key);
    }
  }
  return { form, extra, unknown };
}
