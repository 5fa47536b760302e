import { describe, expect, it } from 'vitest';
import { checkFigures, percent } from './checks';

describe('verification figures', () => {
  it('shows greedy match as a percentage and the perplexity ratio as a factor, in a fixed order', () => {
    expect(checkFigures({ max_logit_diff: 0.000123456, perplexity_ratio: 1.0004, greedy_match: 1, perplexity: 12.3456 })).toEqual([
      { key: 'greedy_match', text: '100 %', tone: 'good' },
      { key: 'perplexity_ratio', text: '×1.000', tone: 'good' },
      { key: 'perplexity', text: '12.35', tone: 'neutral' },
      { key: 'max_logit_diff', text: '0.000123', tone: 'neutral' },
    ]);
    expect(checkFigures({ greedy_match: 0.9375, perplexity_ratio: 1.06 }).map((f) => [f.text, f.tone])).toEqual([['93.8 %', 'warn'], ['×1.060', 'warn']]);
    expect(checkFigures({ greedy_match: 0.5, perplexity_ratio: 1.5 }).map((f) => f.tone)).toEqual(['bad', 'bad']);
  });

  it('leaves out what is not a number', () => {
    expect(checkFigures(null)).toEqual([]);
    expect(checkFigures({ greedy_match: Number.NaN, note: 'x' })).toEqual([]);
  });

  it('reads a share or a percentage', () => {
    expect(percent(0.875)).toBe('87.5 %');
    expect(percent(87.5)).toBe('87.5 %');
  });
});
