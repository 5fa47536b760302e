import { describe, expect, it } from 'vitest';
import { EVAL_CATALOG } from '../test/evaluation';
import { defaultForm, type EvalForm, formProblems, toRequest } from './form';

const base = (patch: Partial<EvalForm> = {}): EvalForm => ({ ...defaultForm(EVAL_CATALOG), model: 'ft:tiny:demo:j1', gpus: 0, ...patch });

describe('new evaluation form', () => {
  it('starts from the catalog and the spec defaults, greedy', () => {
    const form = defaultForm(EVAL_CATALOG);
    expect(form.kind).toBe('predict');
    expect(form.metrics).toEqual(['bleu', 'rouge', 'exact_match', 'length']);
    expect(form.benchmark).toBe('mmlu');
    expect(form.split).toBe('test');
    expect(form.judge_mode).toBe('single');
    expect(form.generation).toMatchObject({ do_sample: false, max_new_tokens: 1024, num_beams: 1, temperature: 0.95 });
  });

  it('makes a predict request with datasets, row limit, metrics, generation and engine', () => {
    const form = base({ datasets: ['identity'], max_samples: 8, metrics: ['bleu', 'rouge'], name: ' ft on identity ' });
    form.generation = { ...form.generation, max_new_tokens: 16 };
    expect(formProblems(form)).toEqual([]);
    expect(toRequest(form)).toEqual({
      model: 'ft:tiny:demo:j1',
      kind: 'predict',
      name: 'ft on identity',
      datasets: ['identity'],
      max_samples: 8,
      metrics: ['bleu', 'rouge'],
      generation: { do_sample: false, temperature: 0.95, top_p: 0.7, top_k: 50, max_new_tokens: 16, num_beams: 1, repetition_penalty: 1 },
      infer_backend: 'huggingface',
      gpus: 0,
    });
  });

  it('makes a benchmark request: task and split, language, n-shot, nothing generated', () => {
    const body = toRequest(base({ kind: 'benchmark', benchmark: 'cmmlu', split: 'test', lang: 'zh', n_shot: 0 }));
    expect(body).toEqual({ model: 'ft:tiny:demo:j1', kind: 'benchmark', task: 'cmmlu_test', lang: 'zh', n_shot: 0, gpus: 0 });
  });

  it('judges two earlier runs pairwise; the key is named, never given', () => {
    const form = base({
      kind: 'judge', model: null, judge_mode: 'pairwise', judge_jobs: ['e-base', 'e-ft'], judge_model: 'gpt-4o-mini',
      judge_base_url: 'https://api.example.com/v1', judge_api_key_env: 'JUDGE_KEY', judge_rubric: '',
    });
    expect(formProblems(form)).toEqual([]);
    expect(toRequest(form, 'tiny')).toEqual({
      model: 'tiny',
      kind: 'judge',
      judge: { model: 'gpt-4o-mini', base_url: 'https://api.example.com/v1', api_key_env: 'JUDGE_KEY', rubric: null, mode: 'pairwise' },
      judge_jobs: ['e-base', 'e-ft'],
      gpus: 0,
    });
  });

  it('says what is missing or wrong', () => {
    const keys = (form: EvalForm) => formProblems(form).map((problem) => problem.key);
    expect(keys(base({ model: null }))).toEqual(['model', 'datasets']);
    expect(keys(base({ datasets: ['identity'], metrics: [] }))).toEqual(['metrics']);
    expect(keys(base({ datasets: ['identity'], judge_on: true, judge_model: 'x', judge_base_url: 'localhost:8000', judge_api_key_env: 'sk-abc123' }))).toEqual([
      'judgeUrlFormat',
      'judgeKeyEnv',
    ]);
    expect(keys(base({ kind: 'judge', judge_mode: 'pairwise', judge_jobs: ['a', 'a'], judge_model: 'x', judge_base_url: 'http://h/v1' }))).toEqual(['judgeRunsSame']);
    expect(keys(base({ kind: 'judge', judge_jobs: [null, null], judge_model: 'x', judge_base_url: 'http://h/v1' }))).toEqual(['judgeRuns']);
    // a predict run with the judge on needs no metric of its own
    expect(keys(base({ datasets: ['identity'], metrics: [], judge_on: true, judge_model: 'x', judge_base_url: 'http://h/v1' }))).toEqual([]);
  });
});
