// Evaluation figures as tables: rows of (result, metric) across eval runs, the best value of each row by the
// catalog's direction (higher_is_better; none for lengths), and benchmark breakdowns (per subject, per category).
import type { EvalResultPublic, MetricInfo } from './queries';

export interface ResultColumn {
  /** the eval job's id */
  id: string;
  results: readonly EvalResultPublic[];
}

export interface FigureRow {
  /** the result's name (dataset, benchmark task, 'judge') */
  result: string;
  /** a metric name, or a subject / category name in a breakdown */
  name: string;
  /** one value per column; undefined where the column has no such figure */
  values: (number | undefined)[];
}

export function metricIndex(metrics: readonly MetricInfo[] | undefined): Map<string, MetricInfo> {
  return new Map((metrics ?? []).map((metric) => [metric.name, metric]));
}

/** Columns whose value is the best of the row; none when the metric has no direction or fewer than two values. */
export function bestIndexes(values: readonly (number | undefined)[], higherIsBetter: boolean | null | undefined): Set<number> {
  const present = values.filter((value): value is number => typeof value === 'number' && Number.isFinite(value));
  if (higherIsBetter === null || higherIsBetter === undefined || present.length < 2) return new Set();
  const best = higherIsBetter ? Math.max(...present) : Math.min(...present);
  if (present.every((value) => value === best)) return new Set();
  return new Set(values.flatMap((value, index) => (value === best ? [index] : [])));
}

function resultNames(columns: readonly ResultColumn[]): string[] {
  const names: string[] = [];
  for (const column of columns) for (const result of column.results) if (!names.includes(result.name)) names.push(result.name);
  return names;
}

function find(column: ResultColumn, name: string): EvalResultPublic | undefined {
  return column.results.find((result) => result.name === name);
}

/** One row per (result, metric) any column reports: results in order of appearance, metrics in catalog order. */
export function metricRows(columns: readonly ResultColumn[], catalog: readonly MetricInfo[] | undefined): FigureRow[] {
  const order = (catalog ?? []).map((metric) => metric.name);
  const rank = (name: string) => (order.includes(name) ? order.indexOf(name) : order.length);
  const rows: FigureRow[] = [];
  for (const result of resultNames(columns)) {
    const names = new Set<string>();
    for (const column of columns) for (const name of Object.keys(find(column, result)?.metrics ?? {})) names.add(name);
    const sorted = [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    for (const name of sorted) rows.push({ result, name, values: columns.map((column) => find(column, result)?.metrics[name]) });
  }
  return rows;
}

/** The breakdown groups (subject, category ...) any column's results carry. */
export function breakdownGroups(columns: readonly ResultColumn[]): string[] {
  const groups: string[] = [];
  for (const column of columns) {
    for (const result of column.results) for (const group of Object.keys(result.breakdown ?? {})) if (!groups.includes(group)) groups.push(group);
  }
  return groups;
}

/** One row per (result, name) of a breakdown group, names sorted. */
export function breakdownRows(columns: readonly ResultColumn[], group: string): FigureRow[] {
  const rows: FigureRow[] = [];
  for (const result of resultNames(columns)) {
    const names = new Set<string>();
    for (const column of columns) for (const name of Object.keys(find(column, result)?.breakdown?.[group] ?? {})) names.add(name);
    for (const name of [...names].sort()) {
      rows.push({ result, name, values: columns.map((column) => find(column, result)?.breakdown?.[group]?.[name]) });
    }
  }
  return rows;
}

export function formatFigure(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (Number.isInteger(value)) return String(value);
  const size = Math.abs(value);
  return size < 1e-3 || size >= 1e6 ? value.toExponential(2) : Number(value.toPrecision(4)).toString();
}

/** Metrics a sample list can be sorted by: the per-sample score names that have a direction, in catalog order. */
export function sortableMetrics(names: Iterable<string>, catalog: readonly MetricInfo[] | undefined): string[] {
  const order = (catalog ?? []).map((metric) => metric.name);
  const index = metricIndex(catalog);
  return [...new Set(names)]
    .filter((name) => {
      const direction = index.get(name)?.higher_is_better;
      return direction !== null && direction !== undefined;
    })
    .sort((a, b) => order.indexOf(a) - order.indexOf(b));
}
