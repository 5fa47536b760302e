// New run: the form, the resulting spec as YAML, LLaMA-Factory YAML import, presets, and a checked submit.
import { Alert, Box, Button, Code, CopyButton, Grid, Group, List, Menu, Modal, Paper, ScrollArea, Stack, Text, Textarea, TextInput, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery } from '@tanstack/react-query';
import { IconChevronDown, IconFileImport } from '@tabler/icons-react';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate } from 'react-router';
import { api, call } from '../api/client';
import { ApiError, byField, errorText, type Problem } from '../api/errors';
import { fetchWorkers } from '../api/extras';
import { useDatasets, useExperiments, useModels } from '../api/queries';
import { ErrorAlert, Page } from '../components/Page';
import { DatasetPreview } from '../datasets/DatasetPreview';
import { useProjectId } from '../project/ProjectContext';
import { DEFAULT_FORM, formToSpec, hardwareDefaults, importYaml, ImportError, type RunForm, specToYaml } from '../spec/form';
import { deletePreset, loadPresets, savePreset } from '../spec/presets';
import { RunFormFields } from '../spec/RunFormFields';
import { validateSpec } from '../spec/schema';
import { datasetStages, stageOptionKeys, useStages } from '../stages/catalog';
import { useRewardModelRuns } from '../stages/rewardModels';

function ImportDialog({ opened, onClose, onImport }: { opened: boolean; onClose: () => void; onImport: (text: string) => string | null }) {
  const { t } = useTranslation();
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <Modal opened={opened} onClose={onClose} title={<Title order={4}>{t('newRun.importTitle')}</Title>} size="lg">
      <Stack>
        <Text size="sm" c="dimmed">
          {t('newRun.importHint')}
        </Text>
        <Textarea
          value={text}
          onChange={(e) => setText(e.currentTarget.value)}
          autosize
          minRows={10}
          maxRows={24}
          styles={{ input: { fontFamily: 'monospace', fontSize: 12 } }}
          placeholder={'model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\nstage: sft\nfinetuning_type: lora\ndataset: alpaca_en_demo\ntemplate: qwen\nlearning_rate: 1.0e-4'}
          data-testid="import-text"
        />
        {error && <Alert color="red">{error}</Alert>}
        <Group justify="flex-end">
          <Button
            leftSection={<IconFileImport size={16} />}
            onClick={() => {
              const problem = onImport(text);
              setError(problem);
              if (!problem) {
                setText('');
                onClose();
              }
            }}
            data-testid="import-apply"
          >
            {t('newRun.import')}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function Presets({ form, onLoad }: { form: RunForm; onLoad: (form: RunForm, name: string) => void }) {
  const { t } = useTranslation();
  const [presets, setPresets] = useState(loadPresets);
  const [saving, setSaving] = useState(false);
  const [name, setName] = useState('');
  const names = Object.keys(presets).sort();
  return (
    <>
      <Menu position="bottom-end" withinPortal>
        <Menu.Target>
          <Button variant="default" rightSection={<IconChevronDown size={14} />} data-testid="presets-menu">
            {t('newRun.presets')}
          </Button>
        </Menu.Target>
        <Menu.Dropdown>
          <Menu.Item onClick={() => setSaving(true)} data-testid="preset-save">
            {t('newRun.savePreset')}
          </Menu.Item>
          {names.length > 0 && <Menu.Divider />}
          {names.map((preset) => (
            <Menu.Item key={preset} onClick={() => onLoad(presets[preset], preset)} data-testid={`preset-load-${preset}`}>
              {t('newRun.loadPreset', { name: preset })}
            </Menu.Item>
          ))}
          {names.length > 0 && <Menu.Divider />}
          {names.map((preset) => (
            <Menu.Item
              key={`delete-${preset}`}
              color="red"
              onClick={() => {
                deletePreset(preset);
                setPresets(loadPresets());
              }}
            >
              {t('newRun.deletePreset', { name: preset })}
            </Menu.Item>
          ))}
        </Menu.Dropdown>
      </Menu>
      <Modal opened={saving} onClose={() => setSaving(false)} title={t('newRun.savePreset')}>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (!name.trim()) return;
            savePreset(name.trim(), form);
            setPresets(loadPresets());
            setSaving(false);
            notifications.show({ message: t('newRun.presetSaved', { name: name.trim() }) });
            setName('');
          }}
        >
          <Stack>
            <TextInput label={t('newRun.presetName')} value={name} onChange={(e) => setName(e.currentTarget.value)} required data-testid="preset-name" />
            <Group justify="flex-end">
              <Button type="submit" data-testid="preset-save-confirm">
                {t('common.save')}
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}

export function NewRun() {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const projectId = useProjectId();
  const models = useModels(projectId);
  const datasets = useDatasets(projectId);
  const experiments = useExperiments(projectId);
  const [form, setForm] = useState<RunForm>(DEFAULT_FORM);
  const [experimentId, setExperimentId] = useState<string | null>(null);
  const [serverProblems, setServerProblems] = useState<Problem[]>([]);
  const [checked, setChecked] = useState(false);
  const [importing, setImporting] = useState(false);
  const [previewing, setPreviewing] = useState<string | null>(null);
  // precision and GPUs follow the workers' hardware until the user sets them (fp32 on CPU-only installs)
  const workers = useQuery({ queryKey: ['workers'], queryFn: fetchWorkers });
  const hardwareApplied = useRef(false);
  useEffect(() => {
    if (hardwareApplied.current || !workers.data?.available) return;
    hardwareApplied.current = true;
    const defaults = hardwareDefaults(workers.data.data);
    setForm((old) => (old.compute_type === DEFAULT_FORM.compute_type && old.gpus === DEFAULT_FORM.gpus ? { ...old, ...defaults } : old));
  }, [workers.data]);
  const stages = useStages();
  const catalog = useMemo(() => stages.data ?? [], [stages.data]);
  const stageKeys = useMemo(() => stageOptionKeys(catalog, form.stage), [catalog, form.stage]);
  const rewardModels = useRewardModelRuns(projectId, catalog, stageKeys.includes('reward_model'));
  const spec = useMemo(() => formToSpec(form, stageKeys), [form, stageKeys]);
  const yaml = useMemo(() => specToYaml(spec), [spec]);
  // after a first submit, the form's own checks follow it as it changes; the server's stay until it changes
  const clientProblems = useMemo(() => (checked ? validateSpec(spec, catalog) : []), [checked, spec, catalog]);
  const shown = clientProblems.length ? clientProblems : serverProblems;
  const update = useCallback(<K extends keyof RunForm>(key: K, value: RunForm[K]) => {
    setForm((old) => ({ ...old, [key]: value }));
    setServerProblems((old) => (old.length ? [] : old));
  }, []);
  const replaceForm = (next: RunForm) => {
    setForm(next);
    setServerProblems([]);
  };
  const submit = useMutation({
    mutationFn: () =>
      call(
        api.POST('/api/jobs', {
          body: {
            // flat LLaMA-Factory keys: the API accepts them besides the nested JobSpec
            spec: spec as Record<string, never>,
            project_id: projectId,
            experiment_id: experimentId,
            name: form.name.trim() || null,
            gpus: Number.isFinite(form.gpus) ? form.gpus : null,
          },
        }),
      ),
    onSuccess: (job) => navigate(`/runs/${job.id}`),
    onError: (error) => {
      if (error instanceof ApiError && error.problems.length) setServerProblems(error.problems);
    },
  });
  const onSubmit = () => {
    setChecked(true);
    setServerProblems([]);
    if (validateSpec(spec, catalog).length === 0) submit.mutate();
    else window.scrollTo({ top: 0, behavior: 'smooth' });
  };
  const onImport = (text: string): string | null => {
    try {
      const result = importYaml(text, { ...DEFAULT_FORM, name: form.name, gpus: form.gpus }, catalog);
      replaceForm(result.form);
      const notes = [];
      if (result.extra.length) notes.push(t('newRun.importedExtra', { keys: result.extra.join(', ') }));
      if (result.unknown.length) notes.push(t('newRun.importedUnknown', { keys: result.unknown.join(', ') }));
      notifications.show({ title: t('newRun.imported'), message: notes.join(' ') || t('newRun.importedAll'), color: result.unknown.length ? 'yellow' : 'green' });
      return null;
    } catch (error) {
      return error instanceof ImportError ? error.message : errorText(error);
    }
  };
  const fieldErrors = useMemo(() => byField(shown), [shown]);
  const modelChoices = useMemo(
    () => (models.data ?? []).map((m) => ({ value: m.name, label: m.template ? `${m.name} · ${m.template}` : m.name })),
    [models.data],
  );
  const datasetChoices = useMemo(
    () => (datasets.data ?? []).filter((d) => d.latest_version !== null).map((d) => ({ value: d.name, label: d.name })),
    [datasets.data],
  );
  // datasets whose rows cannot feed the chosen stage (the server refuses them too; said here before submitting)
  const mismatched = useMemo(
    () =>
      form.datasets.flatMap((name) => {
        const dataset = (datasets.data ?? []).find((d) => d.name === name.split('@')[0]);
        const fed = dataset && !name.includes('@') ? datasetStages(dataset, catalog) : null;
        return fed?.length && !fed.includes(form.stage) ? [{ name, stages: fed }] : [];
      }),
    [form.datasets, form.stage, datasets.data, catalog],
  );
  const experimentChoices = useMemo(() => (experiments.data ?? []).map((e) => ({ value: e.id, label: e.name })), [experiments.data]);
  const datasetByName = new Map((datasets.data ?? []).map((d) => [d.name, d]));
  const previewDataset = previewing ? datasetByName.get(previewing.split('@')[0]) : undefined;
  const previewVersion = previewing?.includes('@') ? Number(previewing.split('@')[1]) : previewDataset?.latest_version;
  const chosenModel = (models.data ?? []).find((m) => m.name === form.model);
  const submitError = submit.error && !(submit.error instanceof ApiError && submit.error.problems.length) ? submit.error : null;
  return (
    <Page
      title={t('nav.newRun')}
      actions={
        <>
          <Button variant="default" leftSection={<IconFileImport size={16} />} onClick={() => setImporting(true)} data-testid="import-open">
            {t('newRun.importButton')}
          </Button>
          <Presets
            form={form}
            onLoad={(preset, name) => {
              replaceForm(preset);
              notifications.show({ message: t('newRun.presetLoaded', { name }) });
            }}
          />
        </>
      }
    >
      {shown.length > 0 && (
        <Alert color="red" title={t('newRun.problems', { count: shown.length })} data-testid="form-problems">
          <List size="sm">
            {shown.map((p, index) => (
              <List.Item key={`${p.field}-${index}`}>
                <Code>{p.field}</Code> {p.file ? `${p.file}, row ${p.row ?? '?'}: ` : ''}
                {p.message}
              </List.Item>
            ))}
          </List>
        </Alert>
      )}
      <ErrorAlert error={stages.error} />
      {submitError && (
        <Alert color="red" title={t('common.error')} data-testid="submit-error">
          {errorText(submitError)}
        </Alert>
      )}
      <Grid gap="md">
        <Grid.Col span={{ base: 12, lg: 7 }}>
          <RunFormFields
            form={form}
            update={update}
            errors={fieldErrors}
            models={modelChoices}
            datasets={datasetChoices}
            experiments={experimentChoices}
            experimentId={experimentId}
            onExperiment={setExperimentId}
            onPreviewDataset={setPreviewing}
            stages={catalog}
            rewardModels={rewardModels}
            mismatched={mismatched}
          />
          <Group justify="flex-end" mt="md">
            <Button size="md" onClick={onSubmit} loading={submit.isPending} data-testid="submit-run">
              {t('newRun.start')}
            </Button>
          </Group>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 5 }}>
          <Box pos={{ base: 'static', lg: 'sticky' } as never} style={{ top: 72 }}>
            <Paper withBorder radius="md" p="sm">
              <Group justify="space-between" mb="xs">
                <Text fw={600} size="sm">
                  {t('newRun.yaml')}
                </Text>
                <CopyButton value={yaml}>
                  {({ copied, copy }) => (
                    <Button size="compact-xs" variant="light" onClick={copy}>
                      {copied ? t('common.copied') : t('common.copy')}
                    </Button>
                  )}
                </CopyButton>
              </Group>
              <ScrollArea.Autosize mah={640}>
                <Code block data-testid="spec-yaml" style={{ fontSize: 12 }}>
                  {yaml}
                </Code>
              </ScrollArea.Autosize>
              <Text size="xs" c="dimmed" mt="xs">
                {t('newRun.yamlHint')}
              </Text>
            </Paper>
          </Box>
        </Grid.Col>
      </Grid>
      <ImportDialog opened={importing} onClose={() => setImporting(false)} onImport={onImport} />
      <Modal opened={previewing !== null} onClose={() => setPreviewing(null)} title={<Title order={4}>{t('form.previewDataset', { name: previewing ?? '' })}</Title>} size="xl">
        {previewDataset && previewVersion ? (
          <DatasetPreview
            projectId={projectId}
            datasetId={previewDataset.id}
            version={previewVersion}
            initialModel={chosenModel?.name}
            initialTemplate={form.template || null}
            initialCutoff={Number.isFinite(form.cutoff_len) ? form.cutoff_len : 2048}
          />
        ) : (
          <Text c="dimmed">{t('newRun.previewUnavailable')}</Text>
        )}
      </Modal>
    </Page>
  );
}
