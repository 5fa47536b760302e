import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { installFakeApi, json, PROJECT, USER } from '../test/fakeApi';
import { EVAL_CATALOG, RUN_BASE, RUN_FT } from '../test/evaluation';
import { renderPage } from '../test/render';
import { NewEval } from './NewEval';

const DATASET = { id: 'd1', project_id: 'p1', name: 'identity', description: null, created_at: '2025-01-01T00:00:00Z', latest_version: 1 };
const TRAIN = { ...RUN_FT.job, id: 'j1', name: 'first run', kind: 'train' };

function api(catalog = EVAL_CATALOG, post: () => unknown = () => ({ id: 'job-9' })) {
  return installFakeApi({
    'GET /api/auth/me': () => USER,
    'GET /api/projects': () => [PROJECT],
    'GET /api/evaluations/catalog': () => catalog,
    'GET /api/projects/p1/evaluations': () => ({ items: [RUN_FT, RUN_BASE], next_cursor: null }),
    'GET /api/projects/p1/datasets': () => [DATASET],
    'GET /api/jobs': () => ({ items: [TRAIN], next_cursor: null }),
    'GET /api/workers': () => [{ id: 'w1', hostname: 'box', status: 'online', queues: ['cpu'], slots: 1, last_seen_at: null, gpus: [] }],
    'GET /v1/models': () => ({
      object: 'list',
      data: [{ id: 'tiny' }, { id: 'ft:tiny:demo:j1' }, { id: 'ft:tiny:demo:j1:ckpt-50' }, { id: 'scorer', reward_model: true }],
    }),
    'POST /api/projects/p1/evaluations': post,
  });
}

type User = ReturnType<typeof userEvent.setup>;
async function pick(user: User, testId: string, option: string) {
  await user.click(screen.getByTestId(testId));
  await user.click(await screen.findByRole('option', { name: option }));
}

describe('new evaluation', () => {
  it('starts a predict eval of a fine-tune and opens its run page', async () => {
    const requests = api();
    const user = userEvent.setup({ delay: null });
    renderPage(<NewEval />, { route: '/evaluate/new' });
    await screen.findByTestId('eval-model');
    // served models in groups, runs by name, reward models left out
    await user.click(screen.getByTestId('eval-model'));
    expect((await screen.findAllByRole('option')).map((option) => option.textContent)).toEqual(['tiny', 'first run (tiny)', 'first run · step 50']);
    await user.click(screen.getByRole('option', { name: 'first run (tiny)' }));
    await pick(user, 'eval-datasets', 'identity');
    await user.keyboard('{Escape}');
    await user.type(screen.getByTestId('eval-max-samples'), '5');
    await user.click(screen.getByTestId('eval-metric-exact_match'));
    const tokens = screen.getByTestId('gen-max_new_tokens');
    await user.clear(tokens);
    await user.type(tokens, '16');
    await user.click(screen.getByTestId('eval-submit'));
    await screen.findByTestId('run-page');
    const body = requests.find((r) => r.method === 'POST')!.body;
    expect(body).toMatchObject({
      model: 'ft:tiny:demo:j1',
      kind: 'predict',
      datasets: ['identity'],
      max_samples: 5,
      metrics: ['bleu', 'rouge', 'length'],
      generation: { max_new_tokens: 16, do_sample: false },
      infer_backend: 'huggingface',
      // CPU-only workers: the eval runs on the CPU
      gpus: 0,
    });
  });

  it('says what is missing before sending anything, and shows the server’s problems', async () => {
    const requests = api(EVAL_CATALOG, () => json(422, { detail: 'invalid', errors: [{ field: 'datasets', message: "dataset 'identity' has no valid version" }] }));
    const user = userEvent.setup({ delay: null });
    renderPage(<NewEval />, { route: '/evaluate/new?job=j1' });
    await screen.findByTestId('eval-model');
    // ?job= picks the run's fine-tune
    await waitFor(() => expect(screen.getByTestId('eval-model')).toHaveValue('first run (tiny)'));
    await user.click(screen.getByTestId('eval-submit'));
    expect(await screen.findByTestId('eval-problems')).toHaveTextContent('Pick at least one dataset.');
    expect(requests.some((r) => r.method === 'POST')).toBe(false);
    await pick(user, 'eval-datasets', 'identity');
    await user.keyboard('{Escape}');
    await user.click(screen.getByTestId('eval-submit'));
    expect(await screen.findByTestId('eval-server-problems')).toHaveTextContent("dataset 'identity' has no valid version");
  });

  it('takes benchmarks, kinds, judge modes and metrics from the catalog', async () => {
    const catalog = { ...EVAL_CATALOG, kinds: [...EVAL_CATALOG.kinds], predict_metrics: ['bleu', 'chrf'] };
    const requests = api(catalog);
    const user = userEvent.setup({ delay: null });
    renderPage(<NewEval />, { route: '/evaluate/new?model=tiny' });
    await screen.findByTestId('eval-model');
    // a metric the dashboard has no text for yet is offered by its name
    expect(screen.getByTestId('eval-metric-chrf')).toBeInTheDocument();
    expect(screen.queryByTestId('eval-metric-rouge')).toBeNull();
    await user.click(within(screen.getByTestId('eval-kind')).getByText('Benchmark'));
    await pick(user, 'eval-benchmark', 'CMMLU (sample)');
    expect(screen.getByTestId('eval-lang')).toHaveTextContent('Chinese');
    await user.click(within(screen.getByTestId('eval-lang')).getByText('Chinese'));
    await user.click(screen.getByTestId('eval-submit'));
    await screen.findByTestId('run-page');
    expect(requests.find((r) => r.method === 'POST')!.body).toEqual({ model: 'tiny', kind: 'benchmark', task: 'cmmlu_test', lang: 'zh', n_shot: 5, gpus: 0 });
  });

  it('judges two earlier predict runs pairwise', async () => {
    const requests = api();
    const user = userEvent.setup({ delay: null });
    renderPage(<NewEval />, { route: '/evaluate/new' });
    await screen.findByTestId('eval-model');
    await user.click(within(screen.getByTestId('eval-kind')).getByText('LLM judge'));
    await user.click(within(screen.getByTestId('judge-mode')).getByText('Pairwise: A vs B'));
    await pick(user, 'judge-run-0', 'eval base · tiny');
    await pick(user, 'judge-run-1', 'eval fine-tune · ft:tiny:demo:j1');
    await user.type(screen.getByTestId('judge-url'), 'http://127.0.0.1:8000/v1');
    await user.type(screen.getByTestId('judge-model'), 'tiny');
    await user.type(screen.getByTestId('judge-key-env'), 'TUNERY_KEY');
    await user.click(screen.getByTestId('eval-submit'));
    await screen.findByTestId('run-page');
    expect(requests.find((r) => r.method === 'POST')!.body).toEqual({
      model: 'tiny',
      kind: 'judge',
      judge: { model: 'tiny', base_url: 'http://127.0.0.1:8000/v1', api_key_env: 'TUNERY_KEY', rubric: null, mode: 'pairwise' },
      judge_jobs: ['e-base', 'e-ft'],
      gpus: 0,
    });
  });
});
