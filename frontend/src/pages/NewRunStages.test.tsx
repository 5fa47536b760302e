// The new-run form and the stage catalog: stages, their own options, the GRPO reward functions.
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { installFakeApi, PROJECT, USER } from '../test/fakeApi';
import { renderPage } from '../test/render';
import { STAGES } from '../test/stages';
import { NewRun } from './NewRun';

type User = ReturnType<typeof userEvent.setup>;

const MODEL = {
  id: 'm1', project_id: 'p1', name: 'tiny', path_or_hub_id: '/models/tiny', architecture: 'LlamaForCausalLM',
  num_parameters: 1000, template: 'llama3', details: {}, created_at: '2025-01-01T00:00:00Z',
};
const RM_JOB = {
  id: 'rm-job-1', project_id: 'p1', experiment_id: null, base_model_id: 'm1', parent_job_id: null, created_by: 'u1',
  name: 'my reward model', kind: 'train', status: 'succeeded', cancel_requested: false, attempt: 1, max_attempts: 3,
  gpu_count: 0, progress: {}, last_seq: 9, error_code: null, error_message: null, created_at: '2025-01-01T00:00:00Z',
  queued_at: null, started_at: null, finished_at: null, spec: { model: { model_name_or_path: 'tiny' }, method: { stage: 'rm' } },
  resume_from: null, gpus: [], queue: 'cpu', worker_id: null, output_dir: '/srv/tunery/jobs/rm-job-1/output', dataset_versions: [],
};

function routes(stages = STAGES) {
  return {
    'GET /api/auth/me': () => USER,
    'GET /api/projects': () => [PROJECT],
    'GET /api/projects/p1/models': () => [MODEL],
    'GET /api/projects/p1/datasets': () => [
      { id: 'd1', project_id: 'p1', name: 'identity', description: null, created_at: '2025-01-01T00:00:00Z', latest_version: 1, stages: ['sft', 'ppo', 'grpo'] },
    ],
    'GET /api/projects/p1/experiments': () => [],
    'GET /api/stages': () => stages,
    'GET /api/jobs': () => ({ items: [{ ...RM_JOB, spec: undefined }], next_cursor: null }),
    'GET /api/jobs/rm-job-1': () => RM_JOB,
  };
}

const yaml = () => parse(screen.getByTestId('spec-yaml').textContent ?? '') as Record<string, unknown>;

async function pickStage(user: User, name: string) {
  const title = STAGES.find((stage) => stage.name === name)?.title;
  await user.click(screen.getByTestId('field-stage'));
  await user.click(await screen.findByRole('option', { name: `${title} (${name})` }));
}

async function pickOption(user: User, testId: string, option: string) {
  await user.click(screen.getByTestId(testId));
  await user.click(await screen.findByRole('option', { name: option }));
}

describe('new run form: stages from the catalog', () => {
  beforeEach(() => {
    installFakeApi(routes());
  });

  it('lists the stages of GET /api/stages, with what each needs from the data', async () => {
    const catalog = [...STAGES, { ...STAGES[0], name: 'xpo', title: 'A stage from the future', data_help: 'Rows of the future.' }];
    installFakeApi(routes(catalog));
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await waitFor(() => expect(screen.getByTestId('stage-data-help')).toHaveTextContent(STAGES[0].data_help));
    await user.click(screen.getByTestId('field-stage'));
    const options = await screen.findAllByRole('option');
    expect(options.map((option) => option.textContent)).toEqual(catalog.map((stage) => `${stage.title} (${stage.name})`));
    await user.click(screen.getByRole('option', { name: 'A stage from the future (xpo)' }));
    expect(screen.getByTestId('stage-data-help')).toHaveTextContent('Rows of the future.');
    expect(yaml().stage).toBe('xpo');
  });

  it('shows the DPO options when dpo is picked, and no PPO or GRPO ones', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await screen.findByTestId('stage-data-help');
    expect(screen.queryByTestId('stage-options')).toBeNull(); // sft has no options of its own
    await pickOption(user, 'field-datasets', 'identity');
    await user.keyboard('{Escape}');
    expect(screen.queryByTestId('dataset-stage-warning')).toBeNull();
    await pickStage(user, 'dpo');
    // an SFT dataset cannot feed DPO: said before submitting
    expect(screen.getByTestId('dataset-stage-warning')).toHaveTextContent('identity cannot train stage dpo: its rows fit sft, ppo, grpo.');
    const options = screen.getByTestId('stage-options');
    for (const key of ['pref_beta', 'pref_loss', 'pref_ftx', 'dpo_label_smoothing', 'ref_model']) expect(within(options).getByTestId(`field-${key}`)).toBeInTheDocument();
    for (const key of ['ppo_epochs', 'reward_model', 'reward_funcs', 'num_generations', 'kto_chosen_weight']) expect(screen.queryByTestId(`field-${key}`)).toBeNull();
    expect(screen.getByTestId('stage-data-help')).toHaveTextContent('Preference pairs');
    // the schema's default is shown; a changed value is written, the other stage's are not
    const beta = screen.getByTestId('field-pref_beta') as HTMLInputElement;
    expect(beta.value).toBe('0.1');
    await user.clear(beta);
    await user.type(beta, '0.25');
    expect(yaml()).toMatchObject({ stage: 'dpo', pref_beta: 0.25 });
    await pickStage(user, 'ppo');
    expect(screen.queryByTestId('field-pref_loss')).toBeNull();
    expect(screen.getByTestId('field-ppo_epochs')).toBeInTheDocument();
    expect(yaml()).not.toHaveProperty('pref_beta');
  });

  it('shows simpo_gamma only with the SimPO loss, and no reference model for reference-free losses', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await screen.findByTestId('stage-data-help');
    await pickStage(user, 'dpo');
    expect(screen.queryByTestId('field-simpo_gamma')).toBeNull();
    await pickOption(user, 'field-pref_loss', 'simpo');
    const gamma = await screen.findByTestId('field-simpo_gamma');
    expect(screen.queryByTestId('field-ref_model')).toBeNull();
    await user.clear(gamma);
    await user.type(gamma, '1.5');
    expect(yaml()).toMatchObject({ pref_loss: 'simpo', simpo_gamma: 1.5 });
    await pickOption(user, 'field-pref_loss', 'ipo');
    await waitFor(() => expect(screen.queryByTestId('field-simpo_gamma')).toBeNull());
    expect(screen.getByTestId('field-ref_model')).toBeInTheDocument();
    expect(yaml()).toMatchObject({ pref_loss: 'ipo' });
    expect(yaml()).not.toHaveProperty('simpo_gamma');
  });

  it('offers finished reward-model runs for PPO', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await screen.findByTestId('stage-data-help');
    await pickStage(user, 'ppo');
    await user.click(screen.getByTestId('field-reward_model'));
    await user.click(await screen.findByText('my reward model'));
    await waitFor(() => expect(yaml().reward_model).toBe(RM_JOB.output_dir));
  });

  it('edits the GRPO reward functions into the spec', async () => {
    const user = userEvent.setup({ delay: null });
    renderPage(<NewRun />);
    await screen.findByTestId('stage-data-help');
    await pickStage(user, 'grpo');
    expect(screen.queryByTestId('field-pref_beta')).toBeNull();
    expect(screen.getByTestId('field-num_generations')).toBeInTheDocument();
    await user.click(screen.getByTestId('reward-func-add'));
    expect(yaml().reward_funcs).toEqual([{ name: 'exact_match', weight: 1 }]);
    await user.click(screen.getByTestId('reward-func-add'));
    const name = screen.getByTestId('reward-func-name-1');
    await user.type(name, 'mypkg.rewards:brevity');
    const weight = screen.getByTestId('reward-func-weight-1');
    await user.clear(weight);
    await user.type(weight, '0.5');
    const args = screen.getByTestId('reward-func-args-1');
    await user.click(args);
    await user.paste('{"max_chars": 200');
    expect(screen.getByText('not a JSON object')).toBeInTheDocument();
    await user.type(args, '}');
    expect(screen.queryByText('not a JSON object')).toBeNull();
    expect(yaml().reward_funcs).toEqual([
      { name: 'exact_match', weight: 1 },
      { name: 'mypkg.rewards:brevity', weight: 0.5, args: { max_chars: 200 } },
    ]);
    await user.click(screen.getByRole('button', { name: 'Remove exact_match' }));
    expect(yaml().reward_funcs).toEqual([{ name: 'mypkg.rewards:brevity', weight: 0.5, args: { max_chars: 200 } }]);
  });
});
