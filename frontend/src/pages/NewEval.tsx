// Start an evaluation: a model (base, fine-tune or checkpoint), what to measure (predictions on project
// datasets, a multiple-choice benchmark, or an LLM judge over earlier runs' predictions), then generation
// settings and the engine. Every list comes from the evaluation catalog. The job opens on its run page.
import { Alert, Button, Checkbox, Code, Grid, Group, List, MultiSelect, NumberInput, Paper, SegmentedControl, Stack, Switch, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useState, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate, useSearchParams } from 'react-router';
import { fetchWorkers } from '../api/extras';
import { useDatasets } from '../api/queries';
import { ErrorAlert, Page } from '../components/Page';
import { BenchmarkFields, GenerationFields, JudgeFields, type FieldErrors } from '../evaluate/EvalFormParts';
import { defaultForm, ENGINES, type EvalForm, formProblems, toRequest } from '../evaluate/form';
import { ModelSelect, parseServedId, useServedModels } from '../evaluate/ModelSelect';
import { createEvaluation, type EvalCatalog, useEvalCatalog, useEvaluations } from '../evaluate/queries';
import { useProjectId } from '../project/ProjectContext';
import { hardwareDefaults } from '../spec/form';
import { ApiError } from '../api/errors';

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Paper withBorder radius="md" p="md">
      <Title order={5} mb="sm">
        {title}
      </Title>
      {children}
    </Paper>
  );
}

/** The form's first values: the catalog's defaults, the model named in the URL (?model= or ?job=). */
function initialForm(catalog: EvalCatalog, model: string | null, gpus: number): EvalForm {
  return { ...defaultForm(catalog), model, gpus };
}

function EvalFormView({ catalog }: { catalog: EvalCatalog }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const projectId = useProjectId();
  const [params] = useSearchParams();
  const served = useServedModels();
  const workers = useQuery({ queryKey: ['workers'], queryFn: fetchWorkers });
  const datasets = useDatasets(projectId);
  const evaluations = useEvaluations(projectId);
  const modelIds = served.data?.available ? served.data.data.filter((m) => !m.reward_model).map((m) => m.id) : [];
  const [form, setForm] = useState<EvalForm | null>(null);
  const [tried, setTried] = useState(false);
  // the form starts once what it defaults from is known (a ?job= link needs the served ids)
  const ready = served.data !== undefined && workers.data !== undefined;
  const wanted = params.get('model') ?? (params.get('job') ? (modelIds.find((id) => parseServedId(id).kind === 'finetune' && parseServedId(id).jobId === params.get('job')) ?? null) : null);
  const gpus = workers.data?.available ? hardwareDefaults(workers.data.data).gpus : 1;
  const current = form ?? (ready ? initialForm(catalog, wanted, gpus) : null);
  const update = (patch: Partial<EvalForm>) => setForm({ ...(current as EvalForm), ...patch });

  const evalRuns = (evaluations.data?.items ?? []).filter((run) => run.kind === 'predict' && run.job.status === 'succeeded' && run.results.some((result) => result.samples > 0));
  const runOptions = evalRuns.map((run) => ({ value: run.job.id, label: `${run.job.name || run.job.id.slice(0, 8)} · ${run.model ?? '–'}` }));
  const submit = useMutation({
    mutationFn: (values: EvalForm) => {
      const runA = evalRuns.find((run) => run.job.id === values.judge_jobs[0]);
      return createEvaluation(projectId, toRequest(values, runA?.model));
    },
    onSuccess: (job) => navigate(`/runs/${job.id}`),
  });
  if (!current) return <Text c="dimmed">{t('common.loading')}</Text>;

  const problems = formProblems(current);
  const serverProblems = submit.error instanceof ApiError ? submit.error.problems : [];
  const errors: FieldErrors = {};
  if (tried) for (const problem of problems) errors[problem.field] ??= t(`evaluate.problems.${problem.key}`);
  for (const problem of serverProblems) errors[problem.field] ??= problem.message;
  const start = () => {
    setTried(true);
    if (!problems.length) submit.mutate(current);
  };
  const kindHelp = t(`evaluate.kindHelp.${current.kind}`, { defaultValue: '' });

  return (
    <Stack gap="md">
      {tried && problems.length > 0 && (
        <Alert color="red" title={t('evaluate.problemsTitle', { count: problems.length })} data-testid="eval-problems">
          <List size="sm">
            {problems.map((problem) => (
              <List.Item key={problem.field + problem.key}>{t(`evaluate.problems.${problem.key}`)}</List.Item>
            ))}
          </List>
        </Alert>
      )}
      {submit.error && !serverProblems.length && <ErrorAlert error={submit.error} />}
      {serverProblems.length > 0 && (
        <Alert color="red" title={t('common.error')} data-testid="eval-server-problems">
          <List size="sm">
            {serverProblems.map((problem, index) => (
              <List.Item key={index}>
                <Code>{problem.field}</Code> {problem.message}
              </List.Item>
            ))}
          </List>
        </Alert>
      )}
      <Grid gap="md">
        <Grid.Col span={{ base: 12, lg: 7 }}>
          <Stack gap="md">
            <Section title={t('evaluate.what')}>
              <Stack gap="sm">
                <SegmentedControl
                  w="fit-content"
                  data={catalog.kinds.map((kind) => ({ value: kind, label: t(`evaluate.kinds.${kind}`, { defaultValue: kind }) }))}
                  value={current.kind}
                  onChange={(value) => update({ kind: value as EvalForm['kind'] })}
                  data-testid="eval-kind"
                />
                {kindHelp && (
                  <Text size="sm" c="dimmed">
                    {kindHelp}
                  </Text>
                )}
                {current.kind !== 'judge' && <ModelSelect value={current.model} onChange={(model) => update({ model })} error={errors['model']} />}
                {current.kind === 'predict' && (
                  <>
                    <MultiSelect
                      label={t('evaluate.datasets')}
                      description={t('evaluate.datasetsHint')}
                      data={(datasets.data ?? []).map((dataset) => dataset.name)}
                      value={current.datasets}
                      onChange={(value) => update({ datasets: value })}
                      searchable
                      error={errors['datasets']}
                      data-testid="eval-datasets"
                    />
                    <NumberInput
                      label={t('evaluate.maxSamples')}
                      description={t('evaluate.maxSamplesHint')}
                      min={1}
                      value={current.max_samples}
                      onChange={(value) => update({ max_samples: value })}
                      data-testid="eval-max-samples"
                    />
                    <Checkbox.Group label={t('evaluate.metrics')} value={current.metrics} onChange={(value) => update({ metrics: value })} error={errors['metrics']}>
                      <Group gap="md" mt={4}>
                        {(catalog.predict_metrics ?? []).map((name) => (
                          <Checkbox key={name} value={name} label={t(`evaluate.predictMetrics.${name}`, { defaultValue: name })} data-testid={`eval-metric-${name}`} />
                        ))}
                      </Group>
                    </Checkbox.Group>
                  </>
                )}
                {current.kind === 'benchmark' && <BenchmarkFields form={current} update={update} catalog={catalog} errors={errors} />}
              </Stack>
            </Section>
            {current.kind === 'predict' && (
              <Switch
                label={t('evaluate.alsoJudge')}
                checked={current.judge_on}
                onChange={(event) => update({ judge_on: event.currentTarget.checked })}
                data-testid="eval-judge-on"
              />
            )}
            {(current.kind === 'judge' || current.judge_on) && (
              <Section title={t('evaluate.judge')}>
                <JudgeFields form={current} update={update} catalog={catalog} errors={errors} runs={runOptions} modelIds={modelIds} />
              </Section>
            )}
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 5 }}>
          <Stack gap="md">
            <Section title={t('evaluate.runSection')}>
              <Stack gap="sm">
                <TextInput label={t('evaluate.name')} placeholder={t('evaluate.nameHint')} value={current.name} onChange={(event) => update({ name: event.currentTarget.value })} data-testid="eval-name" />
                {current.kind === 'predict' && ENGINES.length > 1 && (
                  <Stack gap={4}>
                    <Text size="sm" fw={500}>
                      {t('evaluate.engine')}
                    </Text>
                    <SegmentedControl
                      w="fit-content"
                      data={ENGINES.map((engine) => ({ value: engine, label: t(`evaluate.engines.${engine}`, { defaultValue: engine }) }))}
                      value={current.infer_backend}
                      onChange={(value) => update({ infer_backend: value })}
                      data-testid="eval-engine"
                    />
                  </Stack>
                )}
                <NumberInput label={t('form.gpus')} description={t('evaluate.gpusHint')} min={0} max={16} value={current.gpus} onChange={(value) => update({ gpus: value })} data-testid="eval-gpus" />
              </Stack>
            </Section>
            {current.kind === 'predict' && (
              <Section title={t('evaluate.generation')}>
                <GenerationFields form={current} update={update} />
              </Section>
            )}
            <Button size="md" onClick={start} loading={submit.isPending} data-testid="eval-submit">
              {t('evaluate.start')}
            </Button>
          </Stack>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}

export function NewEval() {
  const { t } = useTranslation();
  const catalog = useEvalCatalog();
  return (
    <Page title={t('evaluate.newEval')}>
      <ErrorAlert error={catalog.error} />
      {catalog.data ? <EvalFormView catalog={catalog.data} /> : !catalog.error && <Text c="dimmed">{t('common.loading')}</Text>}
    </Page>
  );
}
