// Import a hub dataset as a new version (the worker downloads it), and the progress of a running import.
import { Button, Group, Progress, SegmentedControl, Stack, Text, TextInput } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, call, type Schemas } from '../api/client';
import { ErrorAlert, formatBytes } from '../components/Page';

type Version = Schemas['DatasetVersionPublic'];
type Hub = Schemas['HubImportCreate']['hub'];

const HUBS = ['hf', 'ms', 'om'] as const;

function optional(value: string): string | null {
  return value.trim() ? value.trim() : null;
}

export function HubImportForm({ datasetId, onStarted }: { datasetId: string; onStarted: (version: Version) => void }) {
  const { t } = useTranslation();
  const [hub, setHub] = useState<Hub>('hf');
  const [repo, setRepo] = useState('');
  const [subset, setSubset] = useState('');
  const [split, setSplit] = useState('train');
  const [revision, setRevision] = useState('');
  const [tokenSecret, setTokenSecret] = useState('');
  const start = useMutation({
    mutationFn: () =>
      call(
        api.POST('/api/datasets/{dataset_id}/versions/import-hub', {
          params: { path: { dataset_id: datasetId } },
          body: {
            hub,
            repo: repo.trim(),
            subset: optional(subset),
            split: split.trim() || 'train',
            revision: optional(revision),
            token_secret: optional(tokenSecret),
          },
        }),
      ),
    onSuccess: onStarted,
  });
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        start.mutate();
      }}
    >
      <Stack>
        <div>
          <Text size="sm" fw={500} mb={4}>
            {t('hubImport.hub')}
          </Text>
          <SegmentedControl
            data-testid="hub-choice"
            value={hub}
            onChange={(value) => setHub(value as Hub)}
            data={HUBS.map((value) => ({ value, label: t(`hubImport.${value}`) }))}
          />
        </div>
        <TextInput
          required
          label={t('hubImport.repo')}
          description={t('hubImport.repoHint')}
          placeholder="org/name"
          value={repo}
          onChange={(e) => setRepo(e.currentTarget.value)}
          data-testid="hub-repo"
        />
        <Group grow>
          <TextInput label={t('hubImport.subset')} value={subset} onChange={(e) => setSubset(e.currentTarget.value)} data-testid="hub-subset" />
          <TextInput label={t('hubImport.split')} value={split} onChange={(e) => setSplit(e.currentTarget.value)} data-testid="hub-split" />
        </Group>
        <TextInput
          label={t('hubImport.revision')}
          description={t('hubImport.revisionHint')}
          value={revision}
          onChange={(e) => setRevision(e.currentTarget.value)}
          data-testid="hub-revision"
        />
        <TextInput
          label={t('hubImport.tokenSecret')}
          description={t('hubImport.tokenSecretHint')}
          value={tokenSecret}
          onChange={(e) => setTokenSecret(e.currentTarget.value)}
          data-testid="hub-token-secret"
        />
        <ErrorAlert error={start.error} />
        <Group justify="flex-end">
          <Button type="submit" loading={start.isPending} disabled={!repo.trim()} data-testid="hub-start">
            {t('hubImport.start')}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** How far a hub import got: a striped bar while downloading, rows written of rows in the split after. */
export function ImportProgress({ version }: { version: Version }) {
  const { t } = useTranslation();
  const progress = version.progress;
  if (version.status === 'failed') {
    return (
      <Text size="sm" c="red" data-testid="import-failed">
        {t('hubImport.failed')}
      </Text>
    );
  }
  if (version.status !== 'importing' || !progress) return null;
  const total = progress.rows_total ?? 0;
  const writing = progress.phase === 'writing' && total > 0;
  const percent = writing ? Math.min(100, Math.round(((progress.rows_done ?? 0) * 100) / total)) : 100;
  const label =
    progress.phase === 'queued'
      ? t('hubImport.queued')
      : writing
        ? t('hubImport.writing', { done: progress.rows_done ?? 0, total })
        : t('hubImport.downloading', { bytes: formatBytes(progress.bytes_done ?? 0) });
  return (
    <Stack gap={4} data-testid="import-progress" data-phase={progress.phase} data-percent={percent}>
      <Progress value={percent} striped animated={!writing} aria-label={label} />
      <Text size="xs" c="dimmed">
        {label}
      </Text>
    </Stack>
  );
}
