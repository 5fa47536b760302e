// The evaluation API as the server answers it, for tests: the catalog (a copy of tunery.spec.eval_metrics
// METRICS and a bundled benchmark), eval runs with results, samples and a diff.
import type { EvalCatalog, EvalDiffPage, EvalResultPublic, EvalSamplePublic, EvaluationRun } from '../evaluate/queries';

export const EVAL_CATALOG: EvalCatalog = {
  metrics: [
    { name: 'bleu-4', title: 'BLEU-4', higher_is_better: true, unit: '0-100', summary: "4-gram BLEU per sample (LF's smoothing), averaged" },
    { name: 'rouge-1', title: 'ROUGE-1', higher_is_better: true, unit: '0-100', summary: 'unigram F1 per sample (jieba words for Chinese), averaged' },
    { name: 'rouge-2', title: 'ROUGE-2', higher_is_better: true, unit: '0-100', summary: 'bigram F1 per sample, averaged' },
    { name: 'rouge-l', title: 'ROUGE-L', higher_is_better: true, unit: '0-100', summary: 'longest-common-subsequence F1 per sample, averaged' },
    { name: 'exact_match', title: 'Exact match', higher_is_better: true, unit: '%', summary: 'answers equal to the label (whitespace trimmed)' },
    { name: 'length_mean', title: 'Mean length', higher_is_better: null, unit: 'tokens', summary: 'tokens per answer, averaged' },
    { name: 'length_max', title: 'Longest answer', higher_is_better: null, unit: 'tokens', summary: 'tokens of the longest answer' },
    { name: 'accuracy', title: 'Accuracy', higher_is_better: true, unit: '%', summary: 'benchmark questions answered right' },
    { name: 'judge_score', title: 'Judge score', higher_is_better: true, unit: '1-10', summary: "the judge's score per answer, averaged" },
    { name: 'judge_failures', title: 'Judge failures', higher_is_better: false, unit: 'count', summary: 'answers the judge gave no usable score for' },
    { name: 'win_rate_a', title: 'Wins of A', higher_is_better: true, unit: '%', summary: 'pairwise: prompts where the judge prefers A' },
    { name: 'win_rate_b', title: 'Wins of B', higher_is_better: true, unit: '%', summary: 'pairwise: prompts where the judge prefers B' },
    { name: 'tie_rate', title: 'Ties', higher_is_better: false, unit: '%', summary: 'pairwise: prompts judged a tie' },
    { name: 'samples_per_second', title: 'Samples/s', higher_is_better: true, unit: '1/s', summary: 'rows evaluated per second' },
  ],
  benchmarks: [
    { task: 'mmlu', title: 'MMLU (sample)', subjects: ['abstract_algebra', 'anatomy'], languages: ['en'], splits: ['test', 'validation'], bundled: true },
    { task: 'cmmlu', title: 'CMMLU (sample)', subjects: ['agronomy'], languages: ['zh', 'en'], splits: ['test'], bundled: true },
  ],
  kinds: ['predict', 'benchmark', 'judge'],
  judge_modes: ['single', 'pairwise'],
  predict_metrics: ['bleu', 'rouge', 'exact_match', 'length'],
};

const SUMMARY = {
  project_id: 'p1', experiment_id: null, base_model_id: 'm1', parent_job_id: null, created_by: 'u1', kind: 'eval' as const,
  cancel_requested: false, attempt: 1, max_attempts: 1, gpu_count: 0, progress: {}, last_seq: 10, error_code: null,
  error_message: null, best_checkpoint_step: null, stopped_early: false, created_at: '2025-01-02T00:00:00Z', queued_at: null, started_at: '2025-01-02T00:00:01Z', finished_at: '2025-01-02T00:01:00Z',
};

export function predictResult(metrics: Record<string, number>, name = 'identity'): EvalResultPublic {
  return { name, kind: 'predict', metrics, breakdown: {}, samples: 25, created_at: '2025-01-02T00:01:00Z' };
}

export const RUN_FT: EvaluationRun = {
  job: { ...SUMMARY, id: 'e-ft', name: 'eval fine-tune', status: 'succeeded' },
  model: 'ft:tiny:demo:j1',
  kind: 'predict',
  request: { model: 'ft:tiny:demo:j1', kind: 'predict', datasets: ['identity'], max_samples: 25 },
  results: [predictResult({ 'bleu-4': 31.5, 'rouge-1': 40.25, exact_match: 8, length_mean: 12.5, judge_failures: 1, samples_per_second: 3.2 })],
};

export const RUN_BASE: EvaluationRun = {
  job: { ...SUMMARY, id: 'e-base', name: 'eval base', status: 'succeeded' },
  model: 'tiny',
  kind: 'predict',
  results: [predictResult({ 'bleu-4': 12.25, 'rouge-1': 22, exact_match: 0, length_mean: 30, judge_failures: 3, samples_per_second: 4.1 })],
};

export const RUN_BENCH: EvaluationRun = {
  job: { ...SUMMARY, id: 'e-bench', name: 'mmlu', status: 'succeeded' },
  model: 'tiny',
  kind: 'benchmark',
  request: { model: 'tiny', kind: 'benchmark', task: 'mmlu_test' },
  results: [
    {
      name: 'mmlu_test',
      kind: 'benchmark',
      metrics: { accuracy: 27.5 },
      breakdown: { subject: { abstract_algebra: 20, anatomy: 35 }, category: { STEM: 27.5 } },
      samples: 40,
      created_at: '2025-01-02T00:01:00Z',
    },
  ],
};

export const RUN_RUNNING: EvaluationRun = {
  job: { ...SUMMARY, id: 'e-run', name: 'eval running', status: 'running', finished_at: null, progress: { step: 3, total_steps: 10 } },
  model: 'tiny',
  kind: 'predict',
  results: [],
};

export function sample(index: number, extra: Partial<EvalSamplePublic> = {}): EvalSamplePublic {
  return { index, prompt: `question ${index}`, label: `answer ${index}`, predict: `prediction ${index}`, scores: { 'bleu-4': index * 10, 'rouge-1': index * 5 }, ...extra };
}

export const DIFF: EvalDiffPage = {
  items: [
    { index: 0, prompt: 'Who are you?', label: 'I am Tunery.', predict_a: 'Hello', predict_b: 'I am Tunery.', score_a: 0, score_b: 100, change: 'better' },
    { index: 3, prompt: 'Name?', label: 'Tunery', predict_a: 'Tunery', predict_b: 'No idea', score_a: 100, score_b: 5, change: 'worse' },
  ],
  total: 2,
  better: 1,
  worse: 1,
  same: 23,
  metric: 'bleu-4',
  result: 'identity',
};
