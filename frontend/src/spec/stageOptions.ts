// The spec keys of the chosen stage (the catalog's `options`): which are shown, their values and defaults.
// No stage is named here: a stage's keys come from the catalog, their types and defaults from the spec schema.
import { SPEC_KEYS } from './schema';

export type OptionValues = Record<string, unknown>;

/** pref_loss values that need no reference model (LLaMA-Factory: use_ref_model is false for them). */
const REFERENCE_FREE = ['orpo', 'simpo'];

type Lookup = (key: string) => unknown;
const usesReference = (value: Lookup) => !REFERENCE_FREE.includes(String(value('pref_loss')));
/** With reward functions (grpo), the reward model is read only by the reward_model function. */
const usesRewardModel = (value: Lookup, has: (key: string) => boolean) =>
  !has('reward_funcs') || rewardFuncList(value('reward_funcs')).some((func) => func.name === 'reward_model');

/** Keys that only apply when other keys have given values (the spec's rules): hidden, and not sent, otherwise.
 * ``value``: a key's value for the stage; ``has``: whether the stage has the key. */
const ONLY_WHEN: Record<string, (value: Lookup, has: (key: string) => boolean) => boolean> = {
  simpo_gamma: (value) => value('pref_loss') === 'simpo',
  ref_model: usesReference,
  ref_model_adapters: usesReference,
  ref_model_quantization_bit: usesReference,
  reward_model: usesRewardModel,
  reward_model_type: usesRewardModel,
  reward_model_adapters: (value, has) => usesRewardModel(value, has) && value('reward_model_type') === 'full',
};

export function schemaDefault(key: string): unknown {
  const schema = SPEC_KEYS[key]?.schema;
  return schema && 'default' in schema ? schema.default : null;
}

/** The value of ``key`` for a stage with keys ``stageKeys``: what the form holds, else the spec's default
 * (a key of another stage counts as its default, whatever the form still holds for it). */
export function optionValue(key: string, stageKeys: readonly string[], values: OptionValues): unknown {
  if (stageKeys.includes(key) && values[key] !== undefined) return values[key];
  return schemaDefault(key);
}

/** The keys of the stage to show, in the catalog's order. */
export function shownOptionKeys(stageKeys: readonly string[], values: OptionValues): string[] {
  const value = (key: string) => optionValue(key, stageKeys, values);
  const has = (key: string) => stageKeys.includes(key);
  return stageKeys.filter((key) => ONLY_WHEN[key]?.(value, has) ?? true);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** The stage's keys to write into the spec: shown, set, and not the default (the server fills defaults). */
export function optionSpec(stageKeys: readonly string[], values: OptionValues): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  for (const key of shownOptionKeys(stageKeys, values)) {
    const value = values[key];
    if (value === undefined || value === '' || same(value, schemaDefault(key))) continue;
    spec[key] = value;
  }
  return spec;
}

/** One GRPO reward function as the spec takes it (RewardFuncSpec: name, weight, args). */
export interface RewardFunc {
  name: string;
  weight?: number;
  /** keyword arguments; a string while the typed JSON is not an object yet (reported by the checks) */
  args?: Record<string, unknown> | string;
  [key: string]: unknown;
}

/** reward_funcs in any form the spec accepts ('a,b', a list of names or of {name, weight, args}) as a list
 * of objects, the form the editor works on (other keys of an object are kept: the server judges them). */
export function rewardFuncList(value: unknown): RewardFunc[] {
  const items = typeof value === 'string' ? value.split(',').map((name) => name.trim()).filter(Boolean) : Array.isArray(value) ? value : [];
  return items.map((item) => (typeof item === 'object' && item !== null ? { ...(item as RewardFunc) } : { name: String(item) }));
}
