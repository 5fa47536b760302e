import { describe, expect, it } from 'vitest';
import { EVAL_CATALOG, RUN_BASE, RUN_BENCH, RUN_FT } from '../test/evaluation';
import { bestIndexes, breakdownGroups, breakdownRows, formatFigure, metricRows, sortableMetrics } from './metrics';

const columns = [RUN_FT, RUN_BASE, RUN_BENCH].map((run) => ({ id: run.job.id, results: run.results }));

describe('evaluation figures', () => {
  it('marks the best value of a row by the direction, none without one or without a contest', () => {
    expect([...bestIndexes([31.5, 12.25, undefined], true)]).toEqual([0]);
    expect([...bestIndexes([1, 3], false)]).toEqual([0]);
    expect([...bestIndexes([30, 12.5], null)]).toEqual([]);
    // ties share the mark; all equal or a single value is no contest
    expect([...bestIndexes([5, 2, 5], true)]).toEqual([0, 2]);
    expect([...bestIndexes([5, 5], true)]).toEqual([]);
    expect([...bestIndexes([5, undefined], true)]).toEqual([]);
  });

  it("lays out a row per result and metric, metrics in the catalog's order", () => {
    const rows = metricRows(columns, EVAL_CATALOG.metrics);
    expect(rows.map((row) => `${row.result}/${row.name}`)).toEqual([
      'identity/bleu-4', 'identity/rouge-1', 'identity/exact_match', 'identity/length_mean', 'identity/judge_failures',
      'identity/samples_per_second', 'mmlu_test/accuracy',
    ]);
    expect(rows[0].values).toEqual([31.5, 12.25, undefined]);
    expect(rows[6].values).toEqual([undefined, undefined, 27.5]);
  });

  it('breaks benchmarks down per subject and category', () => {
    expect(breakdownGroups(columns)).toEqual(['subject', 'category']);
    expect(breakdownRows(columns, 'subject').map((row) => [row.name, row.values[2]])).toEqual([
      ['abstract_algebra', 20],
      ['anatomy', 35],
    ]);
  });

  it('formats figures and picks the metrics samples can be sorted by', () => {
    expect(formatFigure(31.123456)).toBe('31.12');
    expect(formatFigure(8)).toBe('8');
    expect(formatFigure(undefined)).toBe('–');
    expect(sortableMetrics(['rouge-1', 'length_mean', 'bleu-4', 'unknown'], EVAL_CATALOG.metrics)).toEqual(['bleu-4', 'rouge-1']);
  });
});
