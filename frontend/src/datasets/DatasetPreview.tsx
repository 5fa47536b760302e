// A dataset version rendered with a model's chat template: trained spans vs masked (prompt) spans,
// token counts per example, the token-length histogram and how many examples the cutoff truncates.
import { Badge, Button, Group, NumberInput, Paper, Select, SimpleGrid, Stack, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, call, type Schemas } from '../api/client';
import { useModels } from '../api/queries';
import { LengthHistogram } from '../charts/LengthHistogram';
import { ErrorAlert } from '../components/Page';
import { TEMPLATE_OPTIONS } from '../pages/Models';
import { PreviewExample, type PreviewRow } from './PreviewExample';

function Stat({ label, value }: { label: string; value: string | number }) {
  return (
    <Stack gap={0}>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text fw={600}>{value}</Text>
    </Stack>
  );
}

interface PreviewRequest {
  model: string;
  template: string | null;
  cutoff: number;
  n: number;
}

export function PreviewResult({ preview }: { preview: Schemas['PreviewPublic'] }) {
  const { t } = useTranslation();
  const stats = preview.stats as {
    examples?: number;
    tokens?: number;
    trained_tokens?: number;
    truncated?: number;
    cutoff_len?: number;
    sampled?: boolean;
    lengths?: { min?: number; mean?: number; p50?: number; p95?: number; max?: number };
    histogram?: [number, number][];
    // preference and RL rows
    dropped?: number;
    desirable?: number;
    undesirable?: number;
    with_reference?: number;
  };
  return (
    <Stack data-testid="preview-result">
      <Paper withBorder p="sm" radius="md">
        <SimpleGrid cols={{ base: 2, sm: 4, md: 7 }}>
          <Stat label={t('preview.examples')} value={stats.examples ?? '–'} />
          <Stat label={t('preview.tokens')} value={stats.tokens ?? '–'} />
          <Stat label={t('preview.trainedTokens')} value={stats.trained_tokens ?? '–'} />
          <Stat label={t('preview.truncated')} value={stats.truncated ?? 0} />
          <Stat label={t('preview.meanLength')} value={stats.lengths?.mean ?? '–'} />
          <Stat label="p95" value={stats.lengths?.p95 ?? '–'} />
          <Stat label={t('preview.maxLength')} value={stats.lengths?.max ?? '–'} />
        </SimpleGrid>
        <Text size="xs" c="dimmed" mt="xs" data-testid="truncation-count">
          {t('preview.truncatedNote', { count: stats.truncated ?? 0, cutoff: stats.cutoff_len ?? '?' })}
          {stats.sampled ? ` ${t('preview.sampled')}` : ''}
        </Text>
        {(stats.dropped ?? 0) > 0 && (
          <Text size="xs" c="orange" data-testid="preview-dropped">
            {t('preview.dropped', { count: stats.dropped })}
          </Text>
        )}
        {stats.desirable !== undefined && (
          <Text size="xs" c="dimmed" data-testid="preview-labels">
            {t('preview.labels', { desirable: stats.desirable, undesirable: stats.undesirable ?? 0 })}
          </Text>
        )}
        {stats.with_reference !== undefined && (
          <Text size="xs" c="dimmed" data-testid="preview-with-reference">
            {t('preview.withReference', { count: stats.with_reference, total: stats.examples ?? 0 })}
          </Text>
        )}
      </Paper>
      {stats.histogram && stats.histogram.length > 0 && (
        <LengthHistogram buckets={stats.histogram} cutoff={stats.cutoff_len ?? Infinity} title={t('preview.histogram')} countLabel={t('preview.examples')} />
      )}
      <Group gap="xs">
        <Text size="xs">{t('preview.legend')}:</Text>
        <Badge variant="light" color="green" radius="sm">
          {t('preview.trained')}
        </Badge>
        <Badge variant="light" color="gray" radius="sm">
          {t('preview.masked')}
        </Badge>
      </Group>
      {preview.examples.map((example, index) => (
        <PreviewExample key={index} example={example as PreviewRow} />
      ))}
    </Stack>
  );
}

export function DatasetPreview({
  projectId,
  datasetId,
  version,
  initialModel,
  initialTemplate,
  initialCutoff = 2048,
}: {
  projectId: string;
  datasetId: string;
  version: number;
  initialModel?: string;
  initialTemplate?: string | null;
  initialCutoff?: number;
}) {
  const { t } = useTranslation();
  const models = useModels(projectId);
  const [model, setModel] = useState<string | null>(initialModel || null);
  const [template, setTemplate] = useState<string | null>(initialTemplate ?? null);
  const [cutoff, setCutoff] = useState<number | string>(initialCutoff);
  const [n, setN] = useState<number | string>(3);
  const [request, setRequest] = useState<PreviewRequest | null>(null);
  const chosenModel = model ?? models.data?.[0]?.name ?? null;
  const preview = useQuery({
    queryKey: ['preview', datasetId, version, request],
    queryFn: () =>
      call(
        api.GET('/api/datasets/{dataset_id}/versions/{version}/preview', {
          params: {
            path: { dataset_id: datasetId, version },
            query: { model: request!.model, template: request!.template, cutoff_len: request!.cutoff, n: request!.n },
          },
        }),
      ),
    enabled: request !== null,
    staleTime: Infinity,
    retry: false,
  });
  const modelOptions = (models.data ?? []).map((m) => ({ value: m.name, label: m.template ? `${m.name} (${m.template})` : m.name }));
  return (
    <Stack>
      <Group align="flex-end" wrap="wrap">
        <Select
          label={t('preview.model')}
          data={modelOptions}
          value={chosenModel}
          onChange={setModel}
          w={220}
          data-testid="preview-model"
          nothingFoundMessage={t('models.none')}
        />
        <Select
          label={t('preview.template')}
          placeholder={t('preview.modelTemplate')}
          data={TEMPLATE_OPTIONS}
          value={template}
          onChange={setTemplate}
          clearable
          searchable
          w={180}
          data-testid="preview-template"
        />
        <NumberInput label={t('form.cutoff_len')} value={cutoff} onChange={setCutoff} min={1} w={120} />
        <NumberInput label={t('preview.count')} value={n} onChange={setN} min={1} max={20} w={90} />
        <Button
          onClick={() =>
            chosenModel && setRequest({ model: chosenModel, template, cutoff: Number(cutoff) || 2048, n: Number(n) || 3 })
          }
          disabled={!chosenModel}
          loading={preview.isFetching}
          data-testid="preview-run"
        >
          {t('preview.run')}
        </Button>
      </Group>
      {!models.isLoading && !modelOptions.length && <Text c="dimmed">{t('preview.needModel')}</Text>}
      <ErrorAlert error={preview.error} />
      {preview.data && <PreviewResult preview={preview.data} />}
    </Stack>
  );
}
