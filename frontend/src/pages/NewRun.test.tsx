import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { installFakeApi, json, PROJECT, USER, type FakeRequest } from '../test/fakeApi';
import { renderPage } from '../test/render';
import { STAGES } from '../test/stages';
import { NewRun } from './NewRun';

const MODEL = {
  id: 'm1', project_id: 'p1', name: 'tiny', path_or_hub_id: '/models/tiny', architecture: 'LlamaForCausalLM',
  num_parameters: 1000, template: 'llama3', details: {}, created_at: '2025-01-01T00:00:00Z',
};
const DATASET = { id: 'd1', project_id: 'p1', name: 'identity', description: null, created_at: '2025-01-01T00:00:00Z', latest_version: 1 };

let requests: FakeRequest[];
let jobAnswer: (request: FakeRequest) => unknown;

const CATALOG = {
  'GET /api/auth/me': () => USER,
  'GET /api/projects': () => [PROJECT],
  'GET /api/projects/p1/models': () => [MODEL],
  'GET /api/projects/p1/datasets': () => [DATASET],
  'GET /api/projects/p1/experiments': () => [],
  'GET /api/stages': () => STAGES,
};

beforeEach(() => {
  jobAnswer = () => ({ id: 'job-9' });
  requests = installFakeApi({ ...CATALOG, 'POST /api/jobs': (request) => jobAnswer(request) });
});

const yaml = () => screen.getByTestId('spec-yaml').textContent ?? '';

async function pick(user: ReturnType<typeof userEvent.setup>, testId: string, option: string) {
  await user.click(screen.getByTestId(testId));
  await user.click(await screen.findByRole('option', { name: option }));
}

async function fillValid(user: ReturnType<typeof userEvent.setup>) {
  await screen.findByTestId('field-model');
  await waitFor(() => expect(requests.some((r) => r.path === '/api/projects/p1/datasets')).toBe(true));
  await pick(user, 'field-model', 'tiny · llama3');
  await pick(user, 'field-datasets', 'identity');
  await user.keyboard('{Escape}');
}

describe('new run form', () => {
  it('shows the resulting spec as YAML and follows every change', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await fillValid(user);
    expect(yaml()).toContain('model_name_or_path: tiny');
    expect(yaml()).toContain('dataset: identity');
    expect(yaml()).toContain('lora_rank: 8');
    const rank = screen.getByTestId('field-lora_rank');
    await user.clear(rank);
    await user.type(rank, '16');
    expect(yaml()).toContain('lora_rank: 16');
    const lr = screen.getByTestId('field-learning_rate');
    await user.clear(lr);
    await user.type(lr, '3e-5');
    expect(parse(yaml()).learning_rate).toBe(3e-5);
    await user.click(screen.getByRole('radio', { name: 'Freeze' }));
    expect(yaml()).toContain('finetuning_type: freeze');
    expect(yaml()).toContain('freeze_trainable_layers: 2');
    expect(yaml()).not.toContain('lora_rank');
  });

  it.each([
    ['CPU-only workers', [], 'use_cpu: true', 'bf16'],
    ['a GPU worker', [{ index: 0, name: 'H100', memory_mb: 81920, busy: false, job_id: null }], 'bf16: true', 'use_cpu'],
  ])('starts with the precision and GPUs of the workers: %s', async (_, gpus, expected, absent) => {
    const user = userEvent.setup({ delay: null });
    requests = installFakeApi({
      ...CATALOG,
      'GET /api/workers': () => [
        { id: 'w1', hostname: 'box', status: 'online', queues: ['gpu'], slots: 1, last_seen_at: '2025-01-01T00:00:00Z', gpus, jobs: [] },
      ],
    });
    renderPage(<NewRun />);
    await fillValid(user);
    await waitFor(() => expect(yaml()).toContain(expected));
    expect(yaml()).not.toContain(absent);
  });

  it('imports a pasted LLaMA-Factory YAML', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await screen.findByTestId('field-model');
    await user.click(screen.getByTestId('import-open'));
    const box = await screen.findByTestId('import-text');
    await user.click(box);
    await user.paste(
      'model_name_or_path: tiny\nstage: sft\nfinetuning_type: lora\nlora_rank: 32\ndataset: identity\ntemplate: qwen\nlearning_rate: 2.0e-4\nnum_train_epochs: 1.0\nbf16: true\ntrust_remote_code: true\n',
    );
    await user.click(screen.getByTestId('import-apply'));
    await waitFor(() => expect(yaml()).toContain('lora_rank: 32'));
    expect(yaml()).toContain('template: qwen');
    expect(yaml()).toContain('learning_rate: 0.0002');
    expect(yaml()).toContain('trust_remote_code: true');
    expect((screen.getByTestId('field-learning_rate') as HTMLInputElement).value).toBe('0.0002');
    expect((screen.getByTestId('field-lora_rank') as HTMLInputElement).value).toBe('32');
    expect(within(screen.getByTestId('extra-keys')).getByText('trust_remote_code')).toBeInTheDocument();
  });

  it('rejects a YAML that is not a mapping and says why', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await screen.findByTestId('field-model');
    await user.click(screen.getByTestId('import-open'));
    await user.click(await screen.findByTestId('import-text'));
    await user.paste('- just\n- a list\n');
    await user.click(screen.getByTestId('import-apply'));
    expect(await screen.findByText('the YAML must be a mapping of keys')).toBeInTheDocument();
  });

  it('catches invalid input before submitting, with the server wording, and updates as it is fixed', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await screen.findByTestId('field-model');
    const lr = screen.getByTestId('field-learning_rate');
    await user.clear(lr);
    await user.type(lr, '-1');
    await user.click(screen.getByTestId('submit-run'));
    const problems = await screen.findByTestId('form-problems');
    expect(problems).toHaveTextContent('model_name_or_path is required');
    expect(problems).toHaveTextContent('dataset is required to train');
    expect(problems).toHaveTextContent('learning_rate Input should be greater than 0 (got -1)');
    expect(screen.getByText('Input should be greater than 0 (got -1)', { selector: '.mantine-InputWrapper-error, [class*="error"]' })).toBeInTheDocument();
    expect(requests.some((r) => r.method === 'POST')).toBe(false);
    await fillValid(user);
    await user.clear(lr);
    await user.type(lr, '1e-4');
    await waitFor(() => expect(screen.queryByTestId('form-problems')).toBeNull());
  });

  it("shows the server's 422 problems next to their fields", async () => {
    jobAnswer = () =>
      json(422, {
        detail: 'invalid data: ...',
        errors: [
          { field: 'cutoff_len', message: 'is longer than the model allows', kind: 'invalid_spec', dataset: null, file: null, row: null },
          { field: 'instruction', message: 'must be a string', kind: 'invalid_data', dataset: 'identity', file: 'identity.json', row: 3 },
        ],
      });
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await fillValid(user);
    await user.click(screen.getByTestId('submit-run'));
    const problems = await screen.findByTestId('form-problems');
    expect(problems).toHaveTextContent('cutoff_len is longer than the model allows');
    expect(problems).toHaveTextContent('instruction identity.json, row 3: must be a string');
    expect(screen.getByTestId('field-cutoff_len')).toHaveAttribute('aria-invalid', 'true');
    const posted = requests.find((r) => r.method === 'POST' && r.path === '/api/jobs');
    expect(posted?.body).toMatchObject({ project_id: 'p1', gpus: 1, spec: { model_name_or_path: 'tiny', dataset: 'identity' } });
  });

  it('opens the new run once the server accepts it', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await fillValid(user);
    await user.type(screen.getByTestId('field-name'), 'first try');
    await user.click(screen.getByTestId('submit-run'));
    expect(await screen.findByTestId('run-page')).toBeInTheDocument();
    const posted = requests.find((r) => r.method === 'POST' && r.path === '/api/jobs');
    expect(posted?.body).toMatchObject({ name: 'first try' });
  });

  it('saves a preset and loads it back', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await fillValid(user);
    await user.click(screen.getByTestId('presets-menu'));
    await user.click(await screen.findByTestId('preset-save'));
    await user.type(await screen.findByTestId('preset-name'), 'small');
    await user.click(screen.getByTestId('preset-save-confirm'));
    expect(JSON.parse(localStorage.getItem('tunery.presets') ?? '{}').small.model).toBe('tiny');
    const rank = screen.getByTestId('field-lora_rank');
    await user.clear(rank);
    await user.type(rank, '64');
    expect(yaml()).toContain('lora_rank: 64');
    await user.click(screen.getByTestId('presets-menu'));
    await user.click(await screen.findByTestId('preset-load-small'));
    await waitFor(() => expect(yaml()).toContain('lora_rank: 8'));
  });
});
