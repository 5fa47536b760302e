// Start an export: the model (a base model, a run's fine-tune or one of its checkpoints) and LoRA adapters merged
// after it, the formats and GGUF types, the dtype, options, an optional hub push; the expected size is shown
// as the choices change. Every list comes from the export catalog and the served models.
import { Alert, Button, Code, Grid, List, MultiSelect, NumberInput, Paper, SegmentedControl, Select, SimpleGrid, Stack, Switch, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQuery } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useSearchParams } from 'react-router';
import { ApiError } from '../api/errors';
import { fetchWorkers } from '../api/extras';
import type { Schemas } from '../api/client';
import { ErrorAlert } from '../components/Page';
import { modelOptions, parseServedId, servedKind, useExportJobIds, useJobNames, useServedModels } from '../evaluate/ModelSelect';
import { useExportText } from '../i18n/exportText';
import { useProjectId } from '../project/ProjectContext';
import { defaultForm, estimateRequest, type ExportForm, formProblems, toRequest } from './form';
import { type FieldErrors, FormatFields, GptqFields, HubFields } from './ExportFormParts';
import { createExport, type ExportCatalog } from './queries';
import { SizeEstimate } from './SizeEstimate';

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

export function ExportFormView({ catalog, onStarted }: { catalog: ExportCatalog; onStarted: (job: Schemas['JobPublic']) => void }) {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const [params] = useSearchParams();
  const served = useServedModels();
  const names = useJobNames();
  const exportJobs = useExportJobIds();
  const workers = useQuery({ queryKey: ['workers'], queryFn: fetchWorkers });
  const text = useExportText(catalog.formats, catalog.gguf_types);
  const models = served.data?.available ? served.data.data : [];
  const [form, setForm] = useState<ExportForm | null>(null);
  const [tried, setTried] = useState(false);
  // a ?job= link (from a run page) starts from that run's fine-tune, once the served ids are known
  const wanted = params.get('model') ?? (params.get('job') ? (models.find((m) => parseServedId(m.id).kind === 'finetune' && parseServedId(m.id).jobId === params.get('job'))?.id ?? null) : null);
  const current = form ?? (served.data !== undefined ? defaultForm(catalog, wanted) : null);
  const update = (patch: Partial<ExportForm>) => setForm({ ...(current as ExportForm), ...patch });
  const submit = useMutation({
    mutationFn: (values: ExportForm) => createExport(projectId, toRequest(values)),
    onSuccess: (job) => {
      setTried(false);
      onStarted(job);
    },
  });
  if (!current) return <Text c="dimmed">{t('common.loading')}</Text>;

  const stepLabel = (step: number) => t('evaluate.step', { step });
  const groupTitle = (kind: string) => t(`evaluate.modelGroups.${kind}`);
  const sources = modelOptions(models, names, groupTitle, stepLabel, { exportJobs, kinds: ['base', 'finetune', 'checkpoint'] });
  // adapters: fine-tunes (or checkpoints) of the same base model as the source
  const base = current.model ? parseServedId(current.model).base : null;
  const adapterModels = models.filter((m) => m.id !== current.model && base !== null && parseServedId(m.id).base === base && ['finetune', 'checkpoint'].includes(servedKind(m.id, exportJobs)));
  const adapters = modelOptions(adapterModels, names, groupTitle, stepLabel, { exportJobs, kinds: ['finetune', 'checkpoint'] });
  const noGpu = Boolean(workers.data?.available && !workers.data.data.some((worker) => worker.status === 'online' && worker.gpus.length > 0));

  const problems = formProblems(current);
  const serverProblems = submit.error instanceof ApiError ? submit.error.problems : [];
  const errors: FieldErrors = {};
  if (tried) for (const problem of problems) errors[problem.field] ??= t(`exports.problems.${problem.key}`);
  for (const problem of serverProblems) errors[problem.field] ??= problem.message;
  const start = () => {
    setTried(true);
    if (!problems.length) submit.mutate(current);
  };

  return (
    <Stack gap="md" data-testid="export-form">
      {tried && problems.length > 0 && (
        <Alert color="red" title={t('exports.problemsTitle', { count: problems.length })} data-testid="export-problems">
          <List size="sm">
            {problems.map((problem) => (
              <List.Item key={problem.field + problem.key}>{t(`exports.problems.${problem.key}`)}</List.Item>
            ))}
          </List>
        </Alert>
      )}
      {submit.error && !serverProblems.length && <ErrorAlert error={submit.error} />}
      {serverProblems.length > 0 && (
        <Alert color="red" title={t('common.error')} data-testid="export-server-problems">
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
        <Grid.Col span={{ base: 12, lg: 8 }}>
          <Stack gap="md">
            <Section title={t('exports.source')}>
              <Stack gap="sm">
                <Select
                  label={t('exports.model')}
                  description={t('exports.modelHint')}
                  placeholder={served.data && !served.data.available ? t('evaluate.noServing') : undefined}
                  data={sources}
                  value={current.model}
                  onChange={(model) => update({ model, extra_adapters: current.extra_adapters.filter((id) => id !== model && (!model || parseServedId(id).base === parseServedId(model).base)) })}
                  searchable
                  nothingFoundMessage={t('evaluate.noModels')}
                  error={errors['model']}
                  data-testid="export-model"
                />
                <MultiSelect
                  label={t('exports.adapters')}
                  description={t('exports.adaptersHint')}
                  data={adapters}
                  value={current.extra_adapters}
                  onChange={(extra_adapters) => update({ extra_adapters })}
                  disabled={!current.model}
                  searchable
                  clearable
                  error={errors['extra_adapters']}
                  data-testid="export-adapters"
                />
                <TextInput label={t('exports.name')} placeholder={t('exports.nameHint')} value={current.name} onChange={(event) => update({ name: event.currentTarget.value })} data-testid="export-name" />
              </Stack>
            </Section>
            <Section title={t('exports.formats')}>
              <FormatFields form={current} update={update} catalog={catalog} errors={errors} noGpu={noGpu} />
            </Section>
            {current.formats.includes('gptq') && (
              <Section title={t('exports.gptq')}>
                <GptqFields form={current} update={update} errors={errors} />
              </Section>
            )}
            <Section title={t('exports.options')}>
              <Stack gap="sm">
                <Stack gap={4}>
                  <Text size="sm" fw={500}>
                    {t('exports.dtype')}
                  </Text>
                  <SegmentedControl
                    w="fit-content"
                    data={catalog.dtypes.map((dtype) => ({ value: dtype, label: t(`exports.dtypes.${dtype}`, { defaultValue: dtype }) }))}
                    value={current.dtype}
                    onChange={(dtype) => update({ dtype })}
                    data-testid="export-dtype"
                  />
                </Stack>
                <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
                  <NumberInput label={t('exports.shardSize')} description={t('exports.shardSizeHint')} min={1} max={100} value={current.export_size} onChange={(export_size) => update({ export_size })} error={errors['export_size']} data-testid="export-size" />
                  <Stack gap="xs" pt={4}>
                    <Switch label={t('exports.verify')} description={t('exports.verifyHint')} checked={current.verify} onChange={(event) => update({ verify: event.currentTarget.checked })} data-testid="export-verify" />
                    <Switch label={t('exports.legacy')} description={t('exports.legacyHint')} checked={current.legacy_format} onChange={(event) => update({ legacy_format: event.currentTarget.checked })} data-testid="export-legacy" />
                  </Stack>
                </SimpleGrid>
              </Stack>
            </Section>
            <Section title={t('exports.hub')}>
              <HubFields form={current} update={update} errors={errors} />
            </Section>
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 4 }}>
          <Stack gap="md" style={{ position: 'sticky', top: 72 }}>
            <SizeEstimate request={estimateRequest(current)} formatTitle={(format) => text.format(format).title} />
            <Button size="md" onClick={start} loading={submit.isPending} data-testid="export-submit">
              {t('exports.start')}
            </Button>
          </Stack>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
