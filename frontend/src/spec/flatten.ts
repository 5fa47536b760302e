// A stored (nested) JobSpec as flat LLaMA-Factory keys; optionally without the values that equal the defaults.
import { isDefault, SECTIONS } from './schema';

export function flattenSpec(spec: unknown, dropDefaults = true): Record<string, unknown> {
  const flat: Record<string, unknown> = {};
  if (typeof spec !== 'object' || spec === null) return flat;
  const nested = spec as Record<string, unknown>;
  const isNested = SECTIONS.some((name) => typeof nested[name] === 'object' && nested[name] !== null);
  const entries = isNested
    ? SECTIONS.flatMap((name) => Object.entries((nested[name] as Record<string, unknown> | undefined) ?? {}))
    : Object.entries(nested);
  for (const [key, value] of entries) {
    if (dropDefaults && isDefault(key, value)) continue;
    flat[key] = value;
  }
  return flat;
}

/** The keys whose values differ between specs, with each spec's value (undefined: not set / default). */
export function specDiff(specs: Record<string, unknown>[]): { key: string; values: unknown[] }[] {
  const keys = new Set(specs.flatMap((spec) => Object.keys(spec)));
  const rows: { key: string; values: unknown[] }[] = [];
  for (const key of [...keys].sort()) {
    const values = specs.map((spec) => spec[key]);
    const distinct = new Set(values.map((value) => JSON.stringify(value ?? null)));
    if (distinct.size > 1) rows.push({ key, values });
  }
  return rows;
}
