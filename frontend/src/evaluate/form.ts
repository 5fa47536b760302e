// The new-evaluation form: its values, their defaults (generation settings from the spec's schema, lists
// from the evaluation catalog), what must be filled in, and the request (POST .../evaluations) they make.
import { enumValues, SPEC_KEYS } from '../spec/schema';
import type { EvalCatalog, EvalKind, EvaluationCreate, JudgeMode } from './queries';

export const GENERATION_KEYS = ['do_sample', 'temperature', 'top_p', 'top_k', 'max_new_tokens', 'num_beams', 'repetition_penalty'] as const;
export type GenerationKey = (typeof GENERATION_KEYS)[number];

/** Engines an eval job generates with: the spec's infer_backend values the evaluation runner supports. */
export const ENGINES: string[] = ['huggingface', 'vllm'].filter((engine) => enumValues('infer_backend').includes(engine));

export interface EvalForm {
  name: string;
  model: string | null;
  kind: EvalKind;
  // predict
  datasets: string[];
  max_samples: number | string;
  metrics: string[];
  // benchmark
  benchmark: string | null;
  split: string | null;
  lang: string;
  n_shot: number | string;
  // judge: on for kind judge; optional after a predict run
  judge_on: boolean;
  judge_model: string;
  judge_base_url: string;
  judge_api_key_env: string;
  judge_rubric: string;
  judge_mode: JudgeMode;
  /** eval runs whose predictions are judged (kind judge): one, or A and B (pairwise) */
  judge_jobs: (string | null)[];
  generation: { [key in GenerationKey]: key extends 'do_sample' ? boolean : number };
  infer_backend: string;
  gpus: number | string;
}

function schemaDefault<T>(key: string, fallback: T): T {
  const value = SPEC_KEYS[key]?.schema.default;
  return value === undefined || value === null ? fallback : (value as T);
}

/** The form before the user touches it; generation follows the spec's defaults, greedy (comparable runs). */
export function defaultForm(catalog?: EvalCatalog): EvalForm {
  return {
    name: '',
    model: null,
    kind: catalog?.kinds[0] ?? 'predict',
    datasets: [],
    max_samples: '',
    metrics: [...(catalog?.predict_metrics ?? [])],
    benchmark: catalog?.benchmarks[0]?.task ?? null,
    split: catalog?.benchmarks[0]?.splits[0] ?? null,
    lang: catalog?.benchmarks[0]?.languages[0] ?? schemaDefault('lang', 'en'),
    n_shot: schemaDefault('n_shot', 5),
    judge_on: false,
    judge_model: '',
    judge_base_url: '',
    judge_api_key_env: '',
    judge_rubric: '',
    judge_mode: catalog?.judge_modes[0] ?? 'single',
    judge_jobs: [null, null],
    generation: {
      do_sample: false,
      temperature: schemaDefault('temperature', 0.95),
      top_p: schemaDefault('top_p', 0.7),
      top_k: schemaDefault('top_k', 50),
      max_new_tokens: schemaDefault('max_new_tokens', 1024),
      num_beams: schemaDefault('num_beams', 1),
      repetition_penalty: schemaDefault('repetition_penalty', 1.0),
    },
    infer_backend: ENGINES[0] ?? 'huggingface',
    gpus: 1,
  };
}

export interface FormProblem {
  field: string;
  /** i18n key under evaluate.problems */
  key: string;
}

function judging(form: EvalForm): boolean {
  return form.kind === 'judge' || (form.kind === 'predict' && form.judge_on);
}

/** How many runs' predictions a judge run takes: two side by side, else one. */
export function judgeRunCount(form: EvalForm): number {
  return form.judge_mode === 'pairwise' ? 2 : 1;
}

export function formProblems(form: EvalForm): FormProblem[] {
  const problems: FormProblem[] = [];
  if (form.kind !== 'judge' && !form.model) problems.push({ field: 'model', key: 'model' });
  if (form.kind === 'predict' && !form.datasets.length) problems.push({ field: 'datasets', key: 'datasets' });
  if (form.kind === 'predict' && !form.metrics.length && !form.judge_on) problems.push({ field: 'metrics', key: 'metrics' });
  if (form.kind === 'benchmark' && !form.benchmark) problems.push({ field: 'task', key: 'benchmark' });
  if (judging(form)) {
    if (!form.judge_model.trim()) problems.push({ field: 'judge.model', key: 'judgeModel' });
    if (!form.judge_base_url.trim()) problems.push({ field: 'judge.base_url', key: 'judgeUrl' });
    else if (!/^https?:\/\/\S+$/.test(form.judge_base_url.trim())) problems.push({ field: 'judge.base_url', key: 'judgeUrlFormat' });
    if (form.judge_api_key_env.trim() && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(form.judge_api_key_env.trim())) {
      problems.push({ field: 'judge.api_key_env', key: 'judgeKeyEnv' });
    }
  }
  if (form.kind === 'judge') {
    const runs = form.judge_jobs.slice(0, judgeRunCount(form));
    if (runs.some((run) => !run)) problems.push({ field: 'judge_jobs', key: 'judgeRuns' });
    else if (runs.length === 2 && runs[0] === runs[1]) problems.push({ field: 'judge_jobs', key: 'judgeRunsSame' });
  }
  return problems;
}

function count(value: number | string): number | null {
  const number = typeof value === 'number' ? value : Number(value);
  return value === '' || !Number.isFinite(number) ? null : number;
}

/** The request body; ``judgeModel`` is the model of judge run A for kind judge (the runs' model). */
export function toRequest(form: EvalForm, judgeModel?: string | null): EvaluationCreate {
  // judging earlier runs: their model (the server defaults to the first judged run's too)
  const model = form.kind === 'judge' ? judgeModel : form.model;
  const body: EvaluationCreate = model ? { model, kind: form.kind } : { kind: form.kind };
  if (form.name.trim()) body.name = form.name.trim();
  if (form.kind === 'predict') {
    body.datasets = form.datasets;
    body.metrics = form.metrics;
    const max = count(form.max_samples);
    if (max !== null && max > 0) body.max_samples = max;
  }
  if (form.kind === 'benchmark' && form.benchmark) {
    body.task = form.split ? `${form.benchmark}_${form.split}` : form.benchmark;
    body.lang = form.lang === 'zh' ? 'zh' : 'en';
    body.n_shot = count(form.n_shot) ?? 0;
  }
  if (judging(form)) {
    body.judge = {
      model: form.judge_model.trim(),
      base_url: form.judge_base_url.trim(),
      api_key_env: form.judge_api_key_env.trim() || null,
      rubric: form.judge_rubric.trim() || null,
      mode: form.kind === 'judge' ? form.judge_mode : 'single',
    };
  }
  if (form.kind === 'judge') body.judge_jobs = form.judge_jobs.slice(0, judgeRunCount(form)).filter((run): run is string => Boolean(run));
  // only a predict run generates (a benchmark scores the answer letters by log-likelihood)
  if (form.kind === 'predict') {
    body.generation = { ...form.generation };
    body.infer_backend = form.infer_backend;
  }
  const gpus = count(form.gpus);
  if (gpus !== null) body.gpus = gpus;
  return body;
}
