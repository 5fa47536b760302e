// An export's verification figures (the artifact's `checks`) as people read them: the share of greedy tokens
// that equal the merged model's as a percentage, the perplexity ratio against the merged model as a factor.

export type Tone = 'good' | 'warn' | 'bad' | 'neutral';

export interface CheckFigure {
  /** the check's name (greedy_match, perplexity_ratio, perplexity, max_logit_diff, or another) */
  key: string;
  text: string;
  tone: Tone;
}

/** Checks shown first, in this order; any other figure follows by name. */
const ORDER = ['greedy_match', 'perplexity_ratio', 'perplexity', 'max_logit_diff'];

export function percent(share: number): string {
  // a share (0-1); a figure above 1 is taken as a percentage already
  const value = share > 1 ? share : share * 100;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} %`;
}

function figure(key: string, value: number): CheckFigure {
  if (key === 'greedy_match') {
    const share = value > 1 ? value / 100 : value;
    return { key, text: percent(value), tone: share >= 0.999 ? 'good' : share >= 0.9 ? 'warn' : 'bad' };
  }
  if (key === 'perplexity_ratio') return { key, text: `×${value.toFixed(3)}`, tone: value <= 1.01 ? 'good' : value <= 1.1 ? 'warn' : 'bad' };
  if (key === 'perplexity') return { key, text: value.toFixed(2), tone: 'neutral' };
  return { key, text: String(Number(value.toPrecision(3))), tone: 'neutral' };
}

export function checkFigures(checks: Record<string, unknown> | null | undefined): CheckFigure[] {
  const entries = Object.entries(checks ?? {}).filter((entry): entry is [string, number] => typeof entry[1] === 'number' && Number.isFinite(entry[1]));
  const rank = (key: string) => (ORDER.includes(key) ? ORDER.indexOf(key) : ORDER.length);
  entries.sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
  return entries.map(([key, value]) => figure(key, value));
}

export const TONE_COLORS: Record<Tone, string> = { good: 'green', warn: 'yellow', bad: 'red', neutral: 'gray' };
