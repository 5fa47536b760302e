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
    expect(screen.getByTestId('chart-eval_loss').dataset.points).toBe('1');
    expect(screen.getByTestId('job-progress').dataset.step).toBe('5');
    expect(screen.getByTestId('eta')).toHaveTextContent('1m 35s');
    expect(screen.getByTestId('stream-state').dataset.seq).toBe('7');
    await user.click(screen.getByTestId('run-cancel'));
    await waitFor(() => expect(screen.getByTestId('run-cancel')).toBeDisabled());
    expect(requests.some((r) => r.method === 'POST' && r.path === '/api/jobs/j1/cancel')).toBe(true);
  });
});
