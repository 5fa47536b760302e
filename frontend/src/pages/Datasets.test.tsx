// The datasets screens: which stages a dataset can feed, and previews of preference and RL rows.
import { MantineProvider } from '@mantine/core';
import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { I18nextProvider } from 'react-i18next';
import { describe, expect, it } from 'vitest';
import type { Schemas } from '../api/client';
import { PreviewResult } from '../datasets/DatasetPreview';
import i18n from '../i18n';
import { installFakeApi, PROJECT, USER } from '../test/fakeApi';
import { renderPage } from '../test/render';
import { STAGES } from '../test/stages';
import { DatasetDetail } from './DatasetDetail';
import { Datasets } from './Datasets';

const DATASET = { project_id: 'p1', description: null, created_at: '2025-01-01T00:00:00Z', latest_version: 1 };
const VERSION = {
  id: 'v1', dataset_id: 'd2', version: 1, content_hash: 'abc', size_bytes: 2048, stage: 'rm', status: 'valid', rows_total: 10,
  rows_valid: 10, info: { file_name: 'dpo_en_demo.json', ranking: true }, created_at: '2025-01-01T00:00:00Z', stages: ['rm', 'dpo'],
};

describe('datasets screen', () => {
  it('tells which stages each dataset can feed', async () => {
    installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/stages': () => STAGES,
      'GET /api/projects/p1/datasets': () => [
        { ...DATASET, id: 'd1', name: 'identity', stages: ['sft', 'ppo', 'grpo'] },
        { ...DATASET, id: 'd2', name: 'dpo_en_demo', stages: ['rm', 'dpo'] },
        { ...DATASET, id: 'd3', name: 'empty', latest_version: null, stages: [] },
      ],
    });
    renderPage(<Datasets />);
    const identity = await screen.findByTestId('dataset-stages-identity');
    expect(identity.dataset.stages).toBe('sft,ppo,grpo');
    expect(within(identity).getByText('grpo')).toBeInTheDocument();
    expect(screen.getByTestId('dataset-stages-dpo_en_demo').dataset.stages).toBe('rm,dpo');
    expect(screen.queryByTestId('dataset-stages-empty')).toBeNull();
    expect(within(screen.getByTestId('datasets-table')).getByText('Can train')).toBeInTheDocument();
  });

  it("shows a version's stages, and lets an upload pick any catalog stage", async () => {
    installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/stages': () => STAGES,
      'GET /api/datasets/d2': () => ({ ...DATASET, id: 'd2', name: 'dpo_en_demo', stages: ['rm', 'dpo'] }),
      'GET /api/datasets/d2/versions': () => [VERSION],
      'GET /api/datasets/d2/versions/1/report': () => ({
        version: 1, status: 'valid', stage: 'rm', rows_total: 10, rows_valid: 10, error: null, error_count: 0, warnings: [], errors: [], offset: 0, validated_at: null,
      }),
      'GET /api/projects/p1/models': () => [],
    });
    const user = userEvent.setup({ delay: null });
    renderPage(<DatasetDetail />, { route: '/datasets/d2', path: '/datasets/:datasetId' });
    await waitFor(() => expect(screen.getByTestId('dataset-stages').dataset.stages).toBe('rm,dpo'));
    await user.click(screen.getByTestId('version-add'));
    await user.click(await screen.findByTestId('dataset-stage'));
    const options = (await screen.findAllByRole('option')).map((option) => option.textContent);
    expect(options).toEqual(['Automatic (from the dataset_info.json entry)', ...STAGES.map((stage) => `${stage.title} (${stage.name})`)]);
    await user.click(screen.getByRole('option', { name: 'KTO (kto)' }));
    expect(await screen.findByText(STAGES.find((stage) => stage.name === 'kto')!.data_help)).toBeInTheDocument();
  });

  it('falls back to the stages of the same data shape when the server does not list them', async () => {
    installFakeApi({
      'GET /api/auth/me': () => USER,
      'GET /api/projects': () => [PROJECT],
      'GET /api/stages': () => STAGES,
      'GET /api/datasets/d2': () => ({ ...DATASET, id: 'd2', name: 'kto_en_demo' }),
      'GET /api/datasets/d2/versions': () => [{ ...VERSION, stage: 'kto', stages: undefined }],
      'GET /api/datasets/d2/versions/1/report': () => ({
        version: 1, status: 'valid', stage: 'kto', rows_total: 10, rows_valid: 10, error: null, error_count: 0, warnings: [], errors: [], offset: 0, validated_at: null,
      }),
    });
    renderPage(<DatasetDetail />, { route: '/datasets/d2', path: '/datasets/:datasetId' });
    await waitFor(() => expect(screen.getByTestId('dataset-stages').dataset.stages).toBe('kto'));
  });
});

describe('dataset preview of preference and RL rows', () => {
  const base = { file: 'data.json', tokens: 30, trained_tokens: 20, truncated_from: null, spans: [{ trained: false, text: 'Q?' }, { trained: true, text: 'A.' }] };
  const stats = { examples: 3, tokens: 90, trained_tokens: 40, truncated: 0, cutoff_len: 1024, lengths: { mean: 30, max: 40 }, histogram: [] };

  it('shows both sides of a pair, a KTO label and a prompt with its reference', async () => {
    await i18n.changeLanguage('en');
    const preview = {
      stats: { ...stats, kind: 'pairwise', dropped: 1, desirable: 1, undesirable: 0, with_reference: 1 },
      examples: [
        { ...base, row: 1, prompt: { tokens: 10, text: 'Which is better?' }, chosen: { tokens: 12, text: 'The good answer' }, rejected: { tokens: 8, text: 'The bad answer' } },
        { ...base, row: 2, prompt: { tokens: 10, text: 'Say hi' }, completion: { tokens: 3, text: 'Hi!' }, label: false },
        { ...base, row: 3, trained_tokens: 0, prompt: { tokens: 10, text: 'What is 2+2?' }, reference: '4' },
        { ...base, row: 4 },
      ],
    } as unknown as Schemas['PreviewPublic'];
    render(
      <MantineProvider env="test">
        <I18nextProvider i18n={i18n}>
          <PreviewResult preview={preview} />
        </I18nextProvider>
      </MantineProvider>,
    );
    const [pair, kto, prompt, sft] = screen.getAllByTestId('preview-example');
    const chosen = within(pair).getByTestId('preview-chosen');
    const rejected = within(pair).getByTestId('preview-rejected');
    expect(chosen).toHaveTextContent('The good answer');
    expect(chosen).toHaveTextContent('12 tokens');
    expect(within(chosen).getByText('The good answer').dataset.trained).toBe('true');
    expect(within(rejected).getByText('The bad answer').dataset.trained).toBe('true');
    expect(within(within(pair).getByTestId('preview-prompt')).getByText('Which is better?').dataset.trained).toBe('false');
    expect(within(kto).getByTestId('preview-label')).toHaveTextContent('undesirable');
    expect(within(kto).getByTestId('preview-completion')).toHaveTextContent('Hi!');
    expect(within(prompt).getByTestId('preview-reference')).toHaveTextContent('4');
    expect(within(prompt).queryByText((_, node) => node?.getAttribute('data-trained') === 'true')).toBeNull();
    expect(within(sft).getByTestId('preview-spans')).toHaveTextContent('Q?A.');
    expect(screen.getByTestId('preview-dropped')).toHaveTextContent('1 row is dropped');
    expect(screen.getByTestId('preview-labels')).toHaveTextContent('1 desirable, 0 undesirable');
  });
});
