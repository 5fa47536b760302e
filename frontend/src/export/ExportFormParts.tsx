// Parts of the new-export form: the formats (with GGUF types and the Modelfile), GPTQ calibration, the hub push.
import { Anchor, Badge, Checkbox, Group, Select, SegmentedControl, SimpleGrid, Stack, Switch, Text, TextInput } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api, call } from '../api/client';
import { useDatasets } from '../api/queries';
import { formatBytes } from '../components/Page';
import { useExportText } from '../i18n/exportText';
import { useProjectId } from '../project/ProjectContext';
import { useSecrets } from '../project/secrets';
import { type ExportForm, GPTQ_BITS, requestEnum } from './form';
import type { ExportCatalog } from './queries';

export type Update = (patch: Partial<ExportForm>) => void;
export type FieldErrors = Record<string, string | undefined>;

/** ``noGpu``: the workers are known and none has a GPU (formats that need one cannot run). */
export function FormatFields({ form, update, catalog, errors, noGpu }: { form: ExportForm; update: Update; catalog: ExportCatalog; errors: FieldErrors; noGpu: boolean }) {
  const { t } = useTranslation();
  const text = useExportText(catalog.formats, catalog.gguf_types);
  return (
    <Stack gap="sm">
      <Checkbox.Group value={form.formats} onChange={(formats) => update({ formats })} error={errors['formats']} data-testid="export-formats">
        <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm" mt={4}>
          {catalog.formats.map((format) => {
            const blocked = format.needs_gpu && noGpu && !form.formats.includes(format.name);
            return (
              <Checkbox
                key={format.name}
                value={format.name}
                disabled={blocked}
                data-testid={`export-format-${format.name}`}
                label={
                  <Group gap={6} wrap="wrap">
                    <Text size="sm" fw={500}>
                      {text.format(format.name).title}
                    </Text>
                    {format.serve_engine && (
                      <Badge size="xs" variant="light" color="teal">
                        {t('exports.servable')}
                      </Badge>
                    )}
                    {format.needs_gpu && (
                      <Badge size="xs" variant="light" color={noGpu ? 'red' : 'gray'}>
                        {t('exports.needsGpu')}
                      </Badge>
                    )}
                  </Group>
                }
                description={blocked ? t('exports.noGpuWorker') : text.format(format.name).summary}
              />
            );
          })}
        </SimpleGrid>
      </Checkbox.Group>
      {form.formats.includes('gguf') && (
        <Stack gap="xs" data-testid="export-gguf">
          <Checkbox.Group label={t('exports.ggufTypes')} description={t('exports.ggufTypesHint')} value={form.gguf_types} onChange={(gguf_types) => update({ gguf_types })} error={errors['gguf_types']}>
            <SimpleGrid cols={{ base: 2, sm: 3 }} spacing="xs" mt={6}>
              {catalog.gguf_types.map((type) => (
                <Checkbox
                  key={type.name}
                  value={type.name}
                  label={type.name}
                  description={`${t('exports.bitsPerWeight', { bits: type.bits_per_weight })} · ${text.gguf(type.name)}`}
                  data-testid={`export-gguf-${type.name}`}
                />
              ))}
            </SimpleGrid>
          </Checkbox.Group>
          <Switch label={t('exports.ollama')} description={t('exports.ollamaHint')} checked={form.ollama} onChange={(event) => update({ ollama: event.currentTarget.checked })} data-testid="export-ollama" />
        </Stack>
      )}
    </Stack>
  );
}

function DatasetVersionSelect({ datasetId, value, onChange, error }: { datasetId: string | null; value: string | null; onChange: (id: string | null) => void; error?: string }) {
  const { t } = useTranslation();
  const versions = useQuery({
    queryKey: ['dataset-versions', datasetId],
    queryFn: () => call(api.GET('/api/datasets/{dataset_id}/versions', { params: { path: { dataset_id: datasetId ?? '' } } })),
    enabled: Boolean(datasetId),
  });
  const items = versions.data ?? [];
  return (
    <Select
      label={t('exports.gptqVersion')}
      data={[...items].sort((a, b) => b.version - a.version).map((version) => ({ value: version.id, label: `v${version.version} · ${formatBytes(version.size_bytes)} · ${t(`status.${version.status}`, { defaultValue: version.status })}`, disabled: version.status === 'invalid' }))}
      value={value}
      onChange={onChange}
      disabled={!datasetId}
      error={error}
      data-testid="export-gptq-version"
    />
  );
}

export function GptqFields({ form, update, errors }: { form: ExportForm; update: Update; errors: FieldErrors }) {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const datasets = useDatasets(projectId);
  return (
    <Stack gap="xs" data-testid="export-gptq">
      <Text size="sm" c="dimmed">
        {t('exports.gptqHint')}
      </Text>
      <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="xs">
        <Select label={t('exports.gptqBits')} data={GPTQ_BITS} value={form.gptq_bits} onChange={(gptq_bits) => update({ gptq_bits })} error={errors['gptq_bits']} data-testid="export-gptq-bits" />
        <Select
          label={t('exports.gptqDataset')}
          data={(datasets.data ?? []).filter((dataset) => dataset.latest_version !== null).map((dataset) => ({ value: dataset.id, label: dataset.name }))}
          value={form.gptq_dataset}
          onChange={(gptq_dataset) => update({ gptq_dataset, gptq_dataset_version_id: null })}
          searchable
          data-testid="export-gptq-dataset"
        />
        <DatasetVersionSelect datasetId={form.gptq_dataset} value={form.gptq_dataset_version_id} onChange={(gptq_dataset_version_id) => update({ gptq_dataset_version_id })} error={errors['gptq_dataset_version_id']} />
      </SimpleGrid>
    </Stack>
  );
}

export function HubFields({ form, update, errors }: { form: ExportForm; update: Update; errors: FieldErrors }) {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const secrets = useSecrets(projectId);
  const names = (secrets.data ?? []).map((secret) => secret.name);
  const pushing = form.hub_model_id.trim() !== '';
  return (
    <Stack gap="xs">
      <TextInput
        label={t('exports.hubRepo')}
        description={t('exports.hubRepoHint')}
        placeholder="my-org/my-model"
        value={form.hub_model_id}
        onChange={(event) => update({ hub_model_id: event.currentTarget.value })}
        error={errors['hub_model_id']}
        data-testid="export-hub-repo"
      />
      {pushing && (
        <>
          <SegmentedControl
            w="fit-content"
            data={(requestEnum('hub').length ? requestEnum('hub') : [form.hub]).map((hub) => ({ value: hub, label: t(`exports.hubs.${hub}`, { defaultValue: hub }) }))}
            value={form.hub}
            onChange={(hub) => update({ hub })}
            data-testid="export-hub"
          />
          <Select
            label={t('exports.hubSecret')}
            description={
              <>
                {t('exports.hubSecretHint')}{' '}
                <Anchor component={Link} to="/settings#secrets" size="xs">
                  {t('exports.manageSecrets')}
                </Anchor>
              </>
            }
            placeholder={names.length ? undefined : t('exports.noSecrets')}
            data={names}
            value={form.hub_token_secret}
            onChange={(hub_token_secret) => update({ hub_token_secret })}
            error={errors['hub_token_secret']}
            data-testid="export-hub-secret"
          />
          <Switch label={t('exports.hubPrivate')} checked={form.hub_private} onChange={(event) => update({ hub_private: event.currentTarget.checked })} data-testid="export-hub-private" />
        </>
      )}
    </Stack>
  );
}
