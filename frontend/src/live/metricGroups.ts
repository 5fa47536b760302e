// The run page's charts: whatever metrics a run reports, grouped into one chart each, with no stage named.
// A metric and its eval_ twin share a chart. Metrics named 'prefix/name' (rewards/chosen, logps/rejected ...)
// are grouped by prefix; the others: the loss first, other losses (policy_loss, value_loss ...) together,
// then by the word before the first '_' (reward with reward_std); learning rate, gradient norm and timings last.
// With several eval sets (eval_on_each_dataset) transformers names the metrics eval_<set>_<metric>: they join
// their metric's chart (eval_identity_loss with the loss), one series per set.
export interface MetricGroup {
  /** stable id: chart-<id> in the page */
  id: string;
  /** metric keys in the group, train before eval */
  keys: string[];
}

export interface EvalKey {
  /** the metric without eval_ and the set name (eval_identity_loss -> loss) */
  metric: string;
  /** the eval set of a per-set metric */
  dataset?: string;
}

/** An eval metric's parts: ``eval_<set>_<metric>`` for a set of ``evalSets`` (longest name first); any other
 * ``eval_<set>_loss`` counts as a set's loss too (the sets' names as the engine saw them may differ). */
export function splitEvalKey(key: string, evalSets: readonly string[] = []): EvalKey {
  if (!key.startsWith('eval_')) return { metric: key };
  const rest = key.slice(5);
  for (const set of [...evalSets].sort((a, b) => b.length - a.length)) {
    if (set && rest.startsWith(`${set}_`) && rest.length > set.length + 1) return { metric: rest.slice(set.length + 1), dataset: set };
  }
  const loss = /^(.+)_loss$/.exec(rest);
  if (loss) return { metric: 'loss', dataset: loss[1] };
  return { metric: rest };
}

/** The training twin of an eval metric (eval_loss -> loss, eval_identity_loss -> loss). */
export function trainTwin(key: string, evalSets: readonly string[] = []): string {
  return splitEvalKey(key, evalSets).metric;
}

export function groupOf(key: string, evalSets: readonly string[] = []): string {
  const name = trainTwin(key, evalSets);
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
export function metricGroups(keys: Iterable<string>, evalSets: readonly string[] = []): MetricGroup[] {
  const groups = new Map<string, string[]>();
  for (const key of keys) {
    const id = groupOf(key, evalSets);
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
