// The run page's charts: whatever metrics a run reports, grouped into one chart each, with no stage named.
// A metric and its eval_ twin share a chart. Metrics named 'prefix/name' (rewards/chosen, logps/rejected ...)
// are grouped by prefix; the others: the loss first, other losses (policy_loss, value_loss ...) together,
// then by the word before the first '_' (reward with reward_std); learning rate, gradient norm and timings last.
export interface MetricGroup {
  /** stable id: chart-<id> in the page */
  id: string;
  /** metric keys in the group, train before eval */
  keys: string[];
}

/** The training twin of an eval metric (eval_loss -> loss). */
export function trainTwin(key: string): string {
  return key.startsWith('eval_') ? key.slice(5) : key;
}

export function groupOf(key: string): string {
  const name = trainTwin(key);
  const slash = name.indexOf('/');
  if (slash > 0) return name.slice(0, slash);
  if (/(runtime|_per_second)$/.test(name)) return 'speed';
  if (name === 'loss') return 'loss';
  if (name.endsWith('loss')) return 'losses';
  return name.split('_')[0];
}

/** charts drawn after the stage's own metrics (training dynamics rather than results) */
const LAST = ['lr', 'grad', 'speed'];

function rank(id: string): number {
  if (id === 'loss') return 0;
  if (id === 'losses') return 1;
  const last = LAST.indexOf(id);
  return last >= 0 ? 3 + last : 2;
}

/** The groups of ``keys`` in drawing order; within a rank, groups keep the order their keys came in. */
export function metricGroups(keys: Iterable<string>): MetricGroup[] {
  const groups = new Map<string, string[]>();
  for (const key of keys) {
    const id = groupOf(key);
    const list = groups.get(id) ?? [];
    if (!list.includes(key)) list.push(key);
    groups.set(id, list);
  }
  const ordered = [...groups.entries()].map(([id, list], index) => ({ id, index, keys: sortKeys(list) }));
  ordered.sort((a, b) => rank(a.id) - rank(b.id) || a.index - b.index);
  return ordered.map(({ id, keys: list }) => ({ id, keys: list }));
}

/** train metrics before eval ones, each in the order they came */
function sortKeys(keys: string[]): string[] {
  return [...keys.filter((key) => !key.startsWith('eval_')), ...keys.filter((key) => key.startsWith('eval_'))];
}

/** Every metric key of some points (besides ``step``), in the order first seen. */
export function metricKeys(points: readonly Record<string, number | undefined>[]): string[] {
  const keys = new Set<string>();
  for (const point of points) for (const key of Object.keys(point)) if (key !== 'step') keys.add(key);
  return [...keys];
}
