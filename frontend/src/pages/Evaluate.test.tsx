import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { installFakeApi, PROJECT, USER, type FakeRequest } from '../test/fakeApi';
import { DIFF, EVAL_CATALOG, RUN_BASE, RUN_BENCH, RUN_FT, RUN_RUNNING, sample } from '../test/evaluation';
import { renderPage } from '../test/render';
import { Evaluate } from './Evaluate';

const SAMPLES = Array.from({ length: 25 }, (_, index) => sample(index));

function api() {
  return installFakeApi({
    'GET /api/auth/me': () => USER,
    'GET /api/projects': () => [PROJECT],
    'GET /api/evaluations/catalog': () => EVAL_CATALOG,
    'GET /api/projects/p1/evaluations': () => ({ items: [RUN_RUNNING, RUN_FT, RUN_BASE, RUN_BENCH], next_cursor: null }),
    'GET /api/jobs/e-ft/eval-samples': (request) => {
      const offset = Number(request.query.get('offset'));
      const limit = Number(request.query.get('limit'));
      const q = request.query.get('q') ?? '';
      let rows = SAMPLES.filter((row) => !q || row.prompt.includes(q));
      if (request.query.get('sort') === 'worst') rows = [...rows].sort((a, b) => a.scores[request.query.get('metric')!] - b.scores[request.query.get('metric')!]);
      if (request.query.get('sort') === 'best') rows = [...rows].sort((a, b) => b.scores[request.query.get('metric')!] - a.scores[request.query.get('metric')!]);
      return { items: rows.slice(offset, offset + limit), total: rows.length };
    },
    'GET /api/jobs/e-base/eval-samples': () => ({ items: [sample(0, { scores: { 'bleu-4': 1 } })], total: 25 }),
    'GET /api/evaluations/diff': () => DIFF,
  });
}

const last = (requests: FakeRequest[], path: string) => [...requests].reverse().find((r) => r.path === path)!;

describe('evaluate screen', () => {
  it('lists eval runs and compares the picked ones: the best per metric by its direction', async () => {
    api();
    const user = userEvent.setup({ delay: null });
    renderPage(<Evaluate />, { route: '/evaluate' });
    const rows = await screen.findAllByTestId('eval-row');
    expect(rows.map((row) => row.dataset.status)).toEqual(['running', 'succeeded', 'succeeded', 'succeeded']);
    // a running eval shows its progress like a training run; a finished one its headline figures
    expect(within(rows[0]).getByTestId('job-progress').dataset.step).toBe('3');
    await waitFor(() => expect(rows[1]).toHaveTextContent('BLEU-4 31.5'));
    // what each run evaluated, from its request
    expect(rows.map((row) => within(row).getByTestId('eval-what').textContent)).toEqual(['', 'identity', '', 'mmlu_test']);
    await user.click(within(rows[1]).getByTestId('eval-pick'));
    await user.click(within(rows[2]).getByTestId('eval-pick'));
    const table = await screen.findByTestId('metric-table');
    const cell = (name: string, column: number) => within(table).getAllByTestId('figure-row').find((row) => row.dataset.name === name)!.querySelectorAll('td')[column + 1] as HTMLElement;
    expect(within(table).getAllByRole('columnheader').map((th) => th.textContent)).toEqual(['Metric', 'eval fine-tune', 'eval base']);
    // higher is better
    expect(cell('bleu-4', 0).dataset.best).toBe('true');
    expect(cell('bleu-4', 1).dataset.best).toBeUndefined();
    // lower is better
    expect(cell('judge_failures', 0).dataset.best).toBe('true');
    // no direction: nothing highlighted
    expect(cell('length_mean', 0).dataset.best).toBeUndefined();
    expect(cell('length_mean', 1).dataset.best).toBeUndefined();
    expect(within(table).getAllByTestId('figure-row').find((row) => row.dataset.name === 'bleu-4')).toHaveTextContent('BLEU-4 (0-100)');
  });

  it('breaks a benchmark down per subject and per category', async () => {
    api();
    const user = userEvent.setup({ delay: null });
    renderPage(<Evaluate />, { route: '/evaluate?runs=e-bench' });
    const breakdown = await screen.findByTestId('breakdown-table');
    expect(within(breakdown).getAllByTestId('figure-row').map((row) => row.dataset.name)).toEqual(['abstract_algebra', 'anatomy']);
    await user.click(screen.getByRole('radio', { name: 'Category' }));
    await waitFor(() => expect(within(screen.getByTestId('breakdown-table')).getAllByTestId('figure-row').map((row) => row.dataset.name)).toEqual(['STEM']));
  });

  it('browses samples: worst first by a metric, search, pages', async () => {
    const requests = api();
    const user = userEvent.setup({ delay: null });
    renderPage(<Evaluate />, { route: '/evaluate?runs=e-ft' });
    await user.click(await screen.findByTestId('tab-samples'));
    await waitFor(() => expect(screen.getAllByTestId('sample')).toHaveLength(10));
    expect(screen.getByTestId('samples-total').dataset.total).toBe('25');
    expect(screen.getAllByTestId('sample')[0]).toHaveTextContent('question 0');
    expect(screen.getAllByTestId('sample')[0]).toHaveTextContent('prediction 0');
    expect(screen.getAllByTestId('sample')[0]).toHaveTextContent('answer 0');
    await user.click(screen.getByRole('radio', { name: 'Best first' }));
    await waitFor(() => expect(screen.getAllByTestId('sample')[0].dataset.index).toBe('24'));
    expect(last(requests, '/api/jobs/e-ft/eval-samples').query.get('metric')).toBe('bleu-4');
    // page 2, then a search starts again at the first page
    await user.click(within(screen.getByTestId('samples-pages')).getByRole('button', { name: '2' }));
    await waitFor(() => expect(screen.getAllByTestId('sample')[0].dataset.index).toBe('14'));
    await user.type(screen.getByTestId('samples-search'), 'question 1');
    await waitFor(() => expect(last(requests, '/api/jobs/e-ft/eval-samples').query.get('q')).toBe('question 1'));
    expect(last(requests, '/api/jobs/e-ft/eval-samples').query.get('offset')).toBe('0');
    await waitFor(() => expect(screen.getByTestId('samples-total').dataset.total).toBe('11'));
  });

  it('diffs the answers of two runs on the same samples', async () => {
    const requests = api();
    const user = userEvent.setup({ delay: null });
    renderPage(<Evaluate />, { route: '/evaluate?runs=e-base,e-ft' });
    await user.click(await screen.findByTestId('tab-diff'));
    const counts = await screen.findByTestId('diff-counts');
    expect([counts.dataset.better, counts.dataset.worse, counts.dataset.same]).toEqual(['1', '1', '23']);
    const items = screen.getAllByTestId('diff-item');
    expect(items.map((item) => item.dataset.change)).toEqual(['better', 'worse']);
    expect(within(items[0]).getByTestId('diff-a')).toHaveTextContent('Hello');
    expect(within(items[0]).getByTestId('diff-b')).toHaveTextContent('I am Tunery.');
    let query = last(requests, '/api/evaluations/diff').query;
    expect(Object.fromEntries(query)).toMatchObject({ a: 'e-base', b: 'e-ft', result: 'identity', metric: 'bleu-4', changed_only: 'true' });
    await user.click(screen.getByTestId('diff-changed-only'));
    await waitFor(() => expect(last(requests, '/api/evaluations/diff').query.get('changed_only')).toBe('false'));
    query = last(requests, '/api/evaluations/diff').query;
    expect(query.get('offset')).toBe('0');
  });
});
