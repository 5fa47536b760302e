import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { installFakeApi, PROJECT, USER } from '../test/fakeApi';
import { FakeWebSocket } from '../test/fakeWebSocket';
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
