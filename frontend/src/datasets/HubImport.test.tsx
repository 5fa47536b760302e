// Importing a hub dataset: the form's request, and the progress shown while the worker imports.
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { installFakeApi, json, PROJECT, USER } from '../test/fakeApi';
import { renderPage } from '../test/render';
import { STAGES } from '../test/stages';
import { DatasetDetail } from '../pages/DatasetDetail';

const DATASET = { id: 'd1', project_id: 'p1', name: 'hubbed', description: null, created_at: '2025-01-01T00:00:00Z', latest_version: 1, stages: ['sft'] };
const SOURCE = { hub: 'hf', repo: 'org/name', subset: null, split: 'train', revision: null, token_secret: null };
const BASE = {
  id: 'v1', dataset_id: 'd1', version: 1, content_hash: '', size_bytes: 0, stage: 'sft', rows_total: null, rows_valid: null,
  info: { file_name: 'data.jsonl' }, created_at: '2025-01-01T00:00:00Z', stages: ['sft'], source: SOURCE,
};
const REPORT = { version: 1, stage: 'sft', error: null, error_count: 0, warnings: [], errors: [], offset: 0, validated_at: null };

function routes(versions: () => unknown[], extra: Record<string, (request: { body: unknown }) => unknown> = {}) {
  return installFakeApi({
    'GET /api/auth/me': () => USER,
    'GET /api/projects': () => [PROJECT],
    'GET /api/stages': () => STAGES,
    'GET /api/projects/p1/models': () => [],
    'GET /api/datasets/d1': () => DATASET,
    'GET /api/datasets/d1/versions': versions,
    'GET /api/datasets/d1/versions/1/report': () => ({ ...REPORT, status: 'valid', rows_total: 3, rows_valid: 3 }),
    ...extra,
  });
}

describe('hub import', () => {
  it('sends the hub, dataset, subset, split, revision and token secret', async () => {
    let started = false;
    const seen = routes(() => (started ? [{ ...BASE, status: 'importing', progress: { phase: 'queued', bytes_done: 0, rows_done: 0, rows_total: null } }] : []), {
      'POST /api/datasets/d1/versions/import-hub': () => {
        started = true;
        return json(202, { ...BASE, status: 'importing', progress: { phase: 'queued', bytes_done: 0, rows_done: 0, rows_total: null } });
      },
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<DatasetDetail />, { route: '/datasets/d1', path: '/datasets/:datasetId' });
    await user.click(await screen.findByTestId('hub-import-open'));
    expect(screen.getByTestId('hub-start')).toBeDisabled();
    await user.click(screen.getByRole('radio', { name: 'ModelScope' }));
    await user.type(screen.getByTestId('hub-repo'), 'org/name');
    await user.type(screen.getByTestId('hub-subset'), 'small');
    await user.clear(screen.getByTestId('hub-split'));
    await user.type(screen.getByTestId('hub-split'), 'test');
    await user.type(screen.getByTestId('hub-revision'), 'v1');
    await user.type(screen.getByTestId('hub-token-secret'), 'HF_TOKEN');
    await user.click(screen.getByTestId('hub-start'));
    await waitFor(() => expect(seen.some((r) => r.method === 'POST')).toBe(true));
    const post = seen.find((r) => r.method === 'POST');
    expect(post?.body).toEqual({ hub: 'ms', repo: 'org/name', subset: 'small', split: 'test', revision: 'v1', token_secret: 'HF_TOKEN' });
    expect(await screen.findByTestId('import-progress')).toHaveAttribute('data-phase', 'queued');
    expect(screen.getByText('Waiting for a worker…')).toBeInTheDocument();
    expect(screen.getByTestId('import-source')).toHaveTextContent('Imported from Hugging Face org/name (split train)');
  });

  it('shows the progress while importing and the result once the worker is done', async () => {
    let calls = 0;
    routes(() => {
      calls += 1;
      if (calls === 1) return [{ ...BASE, status: 'importing', progress: { phase: 'downloading', bytes_done: 2048, rows_done: 0, rows_total: null } }];
      if (calls === 2) return [{ ...BASE, status: 'importing', progress: { phase: 'writing', bytes_done: 2048, rows_done: 1, rows_total: 4 } }];
      return [{ ...BASE, status: 'valid', rows_total: 3, rows_valid: 3, progress: { phase: 'done', bytes_done: 2048, rows_done: 4, rows_total: 4 } }];
    });
    renderPage(<DatasetDetail />, { route: '/datasets/d1', path: '/datasets/:datasetId' });
    expect(await screen.findByText('Downloading: 2.0 KB')).toBeInTheDocument();
    await waitFor(() => expect(screen.getByTestId('import-progress')).toHaveAttribute('data-percent', '25'), { timeout: 5000 });
    expect(screen.getByText('Writing rows: 1 of 4')).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByTestId('import-progress')).toBeNull(), { timeout: 5000 });
    expect(screen.getAllByTestId('status-badge')[0]).toHaveAttribute('data-status', 'valid');
    expect(await screen.findByText('Every row is valid.')).toBeInTheDocument();
  });
});
