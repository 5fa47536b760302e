import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { installFakeApi, PROJECT, USER } from '../test/fakeApi';
import { FakeWebSocket } from '../test/fakeWebSocket';
import { EVAL_CATALOG, predictResult, sample } from '../test/evaluation';
import { renderPage } from '../test/render';
import { Run } from './Run';

const JOB = {
  id: 'j1', project_id: 'p1', experiment_id: null, base_model_id: 'm1', parent_job_id: null, created_by: 'u1',
  name: 'first run', kind: 'train', status: 'running', cancel_requested: false, attempt: 1, max_attempts: 3,
  gpu_count: 1, progress: {}, last_seq: 0, error_code: null, error_message: null, created_at: '2025-01-01T00:00:00Z',
  queued_at: null, started_at: '2025-01-01T00:00:01Z', finished_at: null, spec: {}, resume_from: null, gpus: [0],
  queue: 'gpu', worker_id: 'w1', output_dir: null, dataset_versions: [],
};

describe('run page', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.stubGlobal('WebSocket', FakeWebSocket);
  });
  afterEach(() => vi.unstubAllGlobals());

  it('fills progress and charts from the stream, and cancels', async () => {
    let job = { ...JOB };
    const requests = installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/jobs/j1': () => job,
      'POST /api/jobs/j1/cancel': () => {
        job = { ...job, cancel_requested: true };
        return new Response(JSON.stringify(job), { status: 200, headers: { 'Content-Type': 'application/json' } });
      },
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Run />, { route: '/runs/j1', path: '/runs/:jobId' });
    await waitFor(() => expect(screen.getByTestId('run-title')).toHaveTextContent('first run'));
    await waitFor(() => expect(FakeWebSocket.instances.length).toBeGreaterThan(0));
    const socket = FakeWebSocket.last();
    expect(socket.url).toMatch(/\/api\/jobs\/j1\/stream\?after=0$/);
    act(() => {
      socket.accept();
      socket.push({ seq: 1, type: 'started', total_steps: 100, device: 'cuda' });
      for (let step = 1; step <= 5; step++) {
        socket.push({ seq: step + 1, type: 'progress', step, total_steps: 100, epoch: 0, loss: 3 - step / 10, lr: 1e-4, grad_norm: 1, elapsed_seconds: step, eta_seconds: 95 });
      }
      socket.push({ seq: 7, type: 'eval', step: 5, epoch: 0, metrics: { eval_loss: 2.9 } });
    });
    await waitFor(() => expect(screen.getByTestId('chart-loss').dataset.points).toBe('5'));
    // the eval loss is drawn with its training twin
    expect(screen.getByTestId('chart-loss').dataset.series).toBe('loss,eval_loss');
    expect(screen.getByTestId('job-progress').dataset.step).toBe('5');
    expect(screen.getByTestId('eta')).toHaveTextContent('1m 35s');
    expect(screen.getByTestId('stream-state').dataset.seq).toBe('7');
    await user.click(screen.getByTestId('run-cancel'));
    await waitFor(() => expect(screen.getByTestId('run-cancel')).toBeDisabled());
    expect(requests.some((r) => r.method === 'POST' && r.path === '/api/jobs/j1/cancel')).toBe(true);
  });

  it("charts whatever metrics the stage reports, one chart per group, the loss first", async () => {
    installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/jobs/j1': () => JOB,
    });
    renderPage(<Run />, { route: '/runs/j1', path: '/runs/:jobId' });
    await waitFor(() => expect(FakeWebSocket.instances.length).toBeGreaterThan(0));
    const socket = FakeWebSocket.last();
    act(() => {
      socket.accept();
      for (let step = 1; step <= 4; step++) {
        const metrics = {
          'rewards/chosen': step / 10, 'rewards/rejected': -step / 10, 'rewards/accuracies': 0.5 + step / 10, 'rewards/margins': step / 5,
          'logps/chosen': -20 + step, 'logps/rejected': -22, kl: 0.01 * step, reward: step, reward_std: 0.5, policy_loss: 0.3, value_loss: 0.2,
        };
        socket.push({ seq: step, type: 'progress', step, total_steps: 4, epoch: 0, loss: 1 - step / 10, lr: 1e-5, grad_norm: 2, elapsed_seconds: step, metrics });
      }
      socket.push({ seq: 5, type: 'eval', step: 4, epoch: 0, metrics: { eval_loss: 0.7, 'eval_rewards/accuracies': 0.75, eval_runtime: 1.2 } });
    });
    await waitFor(() => expect(screen.getByTestId('chart-rewards').dataset.points).toBe('4'));
    const charts = screen.getAllByTestId(/^chart-/).map((chart) => [chart.dataset.testid, chart.dataset.series]);
    expect(charts).toEqual([
      ['chart-loss', 'loss,eval_loss'],
      ['chart-losses', 'policy_loss,value_loss'],
      ['chart-rewards', 'rewards/chosen,rewards/rejected,rewards/accuracies,rewards/margins,eval_rewards/accuracies'],
      ['chart-logps', 'logps/chosen,logps/rejected'],
      ['chart-kl', 'kl'],
      ['chart-reward', 'reward,reward_std'],
      ['chart-lr', 'lr'],
      ['chart-grad', 'grad_norm'],
      ['chart-speed', 'eval_runtime'],
    ]);
    expect(screen.getByTestId('chart-rewards')).toHaveTextContent('Rewards');
    expect(screen.getByTestId('chart-kl')).toHaveTextContent('KL divergence');
    // a later event adds to the same charts live
    act(() => socket.push({ seq: 6, type: 'progress', step: 5, total_steps: 5, epoch: 1, loss: 0.4, metrics: { 'rewards/chosen': 0.6, 'logits/chosen': 1.5 } }));
    await waitFor(() => expect(screen.getByTestId('chart-rewards').dataset.points).toBe('5'));
    expect(screen.getByTestId('chart-logits').dataset.series).toBe('logits/chosen');
  });
});

describe('run page: best checkpoint, early stopping, eval sets, eval jobs', () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.stubGlobal('WebSocket', FakeWebSocket);
  });
  afterEach(() => vi.unstubAllGlobals());

  it('marks the best checkpoint and says training stopped early', async () => {
    const done = { ...JOB, status: 'succeeded', finished_at: '2025-01-01T00:10:00Z', best_checkpoint_step: 20, stopped_early: true };
    installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/jobs/j1': () => done,
      'GET /api/jobs/j1/checkpoints': () => [
        { id: 'c1', step: 10, path: 'jobs/j1/checkpoint-10', deleted: false, created_at: '2025-01-01T00:05:00Z', best: false },
        { id: 'c2', step: 20, path: 'jobs/j1/checkpoint-20', deleted: false, created_at: '2025-01-01T00:06:00Z', best: true },
        { id: 'c3', step: 30, path: 'jobs/j1/checkpoint-30', deleted: false, created_at: '2025-01-01T00:07:00Z', best: false },
      ],
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<Run />, { route: '/runs/j1', path: '/runs/:jobId' });
    expect(await screen.findByTestId('run-best-checkpoint')).toHaveTextContent('best checkpoint: step 20');
    expect(screen.getByTestId('run-stopped-early')).toHaveTextContent('stopped early');
    // a finished training run can be evaluated from here
    expect(screen.getByTestId('run-evaluate')).toHaveAttribute('href', '/evaluate/new?job=j1');
    await user.click(screen.getByRole('tab', { name: 'Checkpoints' }));
    const rows = await screen.findAllByTestId('checkpoint-row');
    expect(rows.map((row) => row.dataset.best ?? '')).toEqual(['', 'true', '']);
    expect(within(rows[1]).getByTestId('checkpoint-best')).toHaveTextContent('best');
  });

  it('shows the best checkpoint live, from the stream, before the job row has it', async () => {
    installFakeApi({ 'GET /api/auth/me': () => USER, 'GET /api/projects': () => [PROJECT], 'GET /api/jobs/j1': () => JOB });
    renderPage(<Run />, { route: '/runs/j1', path: '/runs/:jobId' });
    await waitFor(() => expect(FakeWebSocket.instances.length).toBeGreaterThan(0));
    const socket = FakeWebSocket.last();
    act(() => {
      socket.accept();
      socket.push({ seq: 1, type: 'best_checkpoint', step: 10, path: 'x', metric: 'eval_loss', value: 1.2 });
    });
    expect(await screen.findByTestId('run-best-checkpoint')).toHaveTextContent('step 10');
    expect(screen.queryByTestId('run-stopped-early')).toBeNull();
    act(() => socket.push({ seq: 2, type: 'finished', outcome: 'succeeded', step: 15, metrics: {}, output_dir: 'o', stopped_early: true }));
    await screen.findByTestId('run-stopped-early');
  });

  it("draws each eval set's loss in the loss chart, named by its set", async () => {
    installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/jobs/j1': () => ({ ...JOB, spec: { data: { eval_dataset: ['identity@2', 'alpaca_en_demo'] } } }),
    });
    renderPage(<Run />, { route: '/runs/j1', path: '/runs/:jobId' });
    await waitFor(() => expect(FakeWebSocket.instances.length).toBeGreaterThan(0));
    const socket = FakeWebSocket.last();
    act(() => {
      socket.accept();
      socket.push({ seq: 1, type: 'progress', step: 1, total_steps: 10, epoch: 0, loss: 2 });
      socket.push({ seq: 2, type: 'eval', step: 1, epoch: 0, metrics: { eval_identity_loss: 1.9, eval_alpaca_en_demo_loss: 2.1, eval_identity_runtime: 0.5 } });
    });
    await waitFor(() => expect(screen.getByTestId('chart-loss').dataset.series).toBe('loss,eval_identity_loss,eval_alpaca_en_demo_loss'));
    expect(screen.getByTestId('chart-loss').dataset.names).toBe('Training loss|Eval loss · identity|Eval loss · alpaca_en_demo');
    expect(screen.getByTestId('chart-speed').dataset.series).toBe('eval_identity_runtime');
    expect(screen.queryByTestId('chart-losses')).toBeNull();
  });

  it('an eval job: live progress, its figures and samples, reloaded as results arrive', async () => {
    const job = { ...JOB, id: 'e1', name: 'eval ft', kind: 'eval' };
    let results = [predictResult({ 'bleu-4': 31.5, 'rouge-1': 40 })];
    const requests = installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/jobs/e1': () => job,
      'GET /api/evaluations/catalog': () => EVAL_CATALOG,
      'GET /api/jobs/e1/eval-results': () => results,
      'GET /api/jobs/e1/eval-samples': () => ({ items: [sample(0), sample(1)], total: 2 }),
    });
    renderPage(<Run />, { route: '/runs/e1', path: '/runs/:jobId' });
    expect(await screen.findByTestId('run-kind-eval')).toHaveTextContent('Evaluation');
    // no loss charts or checkpoints for an eval job: its results instead
    expect(screen.queryByRole('tab', { name: 'Checkpoints' })).toBeNull();
    const table = await screen.findByTestId('metric-table');
    expect(within(table).getAllByTestId('figure-row').map((row) => row.dataset.name)).toEqual(['bleu-4', 'rouge-1']);
    await waitFor(() => expect(screen.getAllByTestId('sample')).toHaveLength(2));
    const socket = FakeWebSocket.last();
    act(() => {
      socket.accept();
      socket.push({ seq: 1, type: 'progress', step: 4, total_steps: 8, epoch: 0 });
    });
    await waitFor(() => expect(screen.getByTestId('job-progress').dataset.step).toBe('4'));
    results = [...results, predictResult({ 'bleu-4': 10 }, 'alpaca')];
    act(() => socket.push({ seq: 2, type: 'eval_result', name: 'alpaca', kind: 'predict', metrics: { 'bleu-4': 10 }, breakdown: {}, samples_file: 'x', samples: 2 }));
    await waitFor(() => expect(within(screen.getByTestId('metric-table')).getAllByTestId('figure-result').map((cell) => cell.textContent)).toEqual(['identity', 'alpaca']));
    expect(requests.filter((r) => r.path === '/api/jobs/e1/eval-results').length).toBeGreaterThanOrEqual(2);
  });
});
