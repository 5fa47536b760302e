// One dataset: its versions, the validation report of the chosen version (per row), and the template preview.
import { Alert, Button, Code, Group, Modal, Pagination, Paper, SegmentedControl, Stack, Table, Tabs, Text, Title } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useParams } from 'react-router';
import { api, call } from '../api/client';
import { ErrorAlert, formatBytes, formatTime, Page, StatusBadge } from '../components/Page';
import { DatasetPreview } from '../datasets/DatasetPreview';
import { HubImportForm, ImportProgress } from '../datasets/HubImport';
import { uploadVersion } from '../datasets/upload';
import { EMPTY_UPLOAD, UploadFields, type UploadValues } from '../datasets/UploadFields';
import { useProjectId } from '../project/ProjectContext';
import { StageBadges } from '../stages/StageBadges';

const PAGE = 50;
const IMPORT_POLL_MS = 1500;

function Report({ datasetId, version, status }: { datasetId: string; version: number; status: string }) {
  const { t } = useTranslation();
  const [page, setPage] = useState(1);
  const report = useQuery({
    queryKey: ['report', datasetId, version, status, page],
    queryFn: () =>
      call(
        api.GET('/api/datasets/{dataset_id}/versions/{version}/report', {
          params: { path: { dataset_id: datasetId, version }, query: { offset: (page - 1) * PAGE, limit: PAGE } },
        }),
      ),
  });
  if (report.error) return <ErrorAlert error={report.error} />;
  const data = report.data;
  if (!data) return <Text c="dimmed">{t('common.loading')}</Text>;
  const kept = Math.min(data.error_count, 1000);
  return (
    <Stack data-testid="validation-report">
      <Group gap="lg">
        <StatusBadge status={data.status} />
        <Text size="sm">{t('datasets.rowsValid', { valid: data.rows_valid ?? '–', total: data.rows_total ?? '–' })}</Text>
        <Text size="sm">{t('datasets.errorCount', { count: data.error_count })}</Text>
        <Text size="xs" c="dimmed">
          {t('datasets.validatedAt', { time: formatTime(data.validated_at) })}
        </Text>
      </Group>
      {data.error && <Alert color="red">{data.error}</Alert>}
      {data.warnings.map((warning) => (
        <Alert key={warning} color="yellow">
          {warning}
        </Alert>
      ))}
      {data.errors.length > 0 && (
        <>
          <Table.ScrollContainer minWidth={560}>
            <Table striped data-testid="report-errors">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('datasets.file')}</Table.Th>
                  <Table.Th>{t('datasets.row')}</Table.Th>
                  <Table.Th>{t('datasets.field')}</Table.Th>
                  <Table.Th>{t('datasets.message')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {data.errors.map((error, index) => (
                  <Table.Tr key={`${error.file}-${error.row}-${error.field}-${index}`}>
                    <Table.Td>
                      <Code>{error.file}</Code>
                    </Table.Td>
                    <Table.Td>{error.row}</Table.Td>
                    <Table.Td>
                      <Code>{error.field}</Code>
                    </Table.Td>
                    <Table.Td>{error.message}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
          {kept > PAGE && <Pagination total={Math.ceil(kept / PAGE)} value={page} onChange={setPage} size="sm" />}
        </>
      )}
      {data.status === 'valid' && data.errors.length === 0 && <Text c="green">{t('datasets.allValid')}</Text>}
    </Stack>
  );
}

export function DatasetDetail() {
  const { t } = useTranslation();
  const { datasetId = '' } = useParams();
  const projectId = useProjectId();
  const queryClient = useQueryClient();
  const dataset = useQuery({
    queryKey: ['dataset', datasetId],
    queryFn: () => call(api.GET('/api/datasets/{dataset_id}', { params: { path: { dataset_id: datasetId } } })),
  });
  const versions = useQuery({
    queryKey: ['versions', datasetId],
    queryFn: () => call(api.GET('/api/datasets/{dataset_id}/versions', { params: { path: { dataset_id: datasetId } } })),
    // a hub import shows its progress while it runs
    refetchInterval: (query) => (query.state.data?.some((v) => v.status === 'importing') ? IMPORT_POLL_MS : false),
  });
  const [chosen, setChosen] = useState<number | null>(null);
  const [uploading, setUploading] = useState(false);
  const [importing, setImporting] = useState(false);
  const [upload, setUpload] = useState<UploadValues>(EMPTY_UPLOAD);
  const list = [...(versions.data ?? [])].sort((a, b) => b.version - a.version);
  const current = list.find((v) => v.version === chosen) ?? list[0];
  const newVersion = useMutation({
    mutationFn: () => uploadVersion({ datasetId, files: upload.files, stage: upload.stage, entry: upload.entry, entryName: upload.entryName ?? undefined }),
    onSuccess: (version) => {
      setUploading(false);
      setUpload(EMPTY_UPLOAD);
      setChosen(version.version);
      void queryClient.invalidateQueries({ queryKey: ['versions', datasetId] });
      void queryClient.invalidateQueries({ queryKey: ['dataset', datasetId] });
    },
  });
  const revalidate = useMutation({
    mutationFn: (version: number) =>
      call(api.POST('/api/datasets/{dataset_id}/versions/{version}/validate', { params: { path: { dataset_id: datasetId, version } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['versions', datasetId] });
      void queryClient.invalidateQueries({ queryKey: ['report', datasetId] });
    },
  });
  return (
    <Page
      title={dataset.data?.name ?? t('nav.datasets')}
      actions={
        <Group gap="xs">
          <Button onClick={() => setImporting(true)} variant="default" data-testid="hub-import-open">
            {t('hubImport.open')}
          </Button>
          <Button onClick={() => setUploading(true)} variant="light" data-testid="version-add">
            {t('datasets.newVersion')}
          </Button>
        </Group>
      }
    >
      <ErrorAlert error={dataset.error ?? versions.error} />
      {dataset.data?.description && <Text c="dimmed">{dataset.data.description}</Text>}
      {list.length > 1 && (
        <SegmentedControl
          data={list.map((v) => ({ value: String(v.version), label: `v${v.version}` }))}
          value={String(current?.version ?? '')}
          onChange={(value) => setChosen(Number(value))}
        />
      )}
      {current && (
        <Paper withBorder p="md" radius="md">
          <Stack gap="xs">
            <Group justify="space-between" wrap="wrap">
              <Group gap="sm">
                <Title order={4}>v{current.version}</Title>
                <StatusBadge status={current.status} />
                <Text size="sm" c="dimmed">
                  {t('datasets.stage')}: {current.stage} · {formatBytes(current.size_bytes)} · {formatTime(current.created_at)}
                </Text>
              </Group>
              <Button size="xs" variant="subtle" onClick={() => revalidate.mutate(current.version)} loading={revalidate.isPending}>
                {t('datasets.revalidate')}
              </Button>
            </Group>
            <Group gap="xs">
              <Text size="sm">{t('datasets.feeds')}:</Text>
              <StageBadges dataset={current} />
            </Group>
            <Text size="xs" c="dimmed">
              {t('datasets.entryShown')}: <Code>{JSON.stringify(current.info)}</Code>
            </Text>
            {current.source && (
              <Text size="xs" c="dimmed" data-testid="import-source">
                {t('hubImport.source', { hub: t(`hubImport.${current.source.hub}`), repo: current.source.repo, split: current.source.split })}
              </Text>
            )}
            <ImportProgress version={current} />
            <ErrorAlert error={revalidate.error} />
            <Tabs defaultValue="report" keepMounted={false}>
              <Tabs.List>
                <Tabs.Tab value="report" data-testid="tab-report">
                  {t('datasets.report')}
                </Tabs.Tab>
                <Tabs.Tab value="preview" data-testid="tab-preview">
                  {t('datasets.preview')}
                </Tabs.Tab>
              </Tabs.List>
              <Tabs.Panel value="report" pt="sm">
                <Report key={current.version} datasetId={datasetId} version={current.version} status={current.status} />
              </Tabs.Panel>
              <Tabs.Panel value="preview" pt="sm">
                <DatasetPreview key={current.version} projectId={projectId} datasetId={datasetId} version={current.version} />
              </Tabs.Panel>
            </Tabs>
          </Stack>
        </Paper>
      )}
      {versions.data?.length === 0 && <Text c="dimmed">{t('datasets.noVersions')}</Text>}
      <Modal opened={importing} onClose={() => setImporting(false)} title={t('hubImport.title')} size="lg">
        <HubImportForm
          datasetId={datasetId}
          onStarted={(version) => {
            setImporting(false);
            setChosen(version.version);
            void queryClient.invalidateQueries({ queryKey: ['versions', datasetId] });
            void queryClient.invalidateQueries({ queryKey: ['dataset', datasetId] });
          }}
        />
      </Modal>
      <Modal opened={uploading} onClose={() => setUploading(false)} title={<Title order={4}>{t('datasets.newVersion')}</Title>} size="lg">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            newVersion.mutate();
          }}
        >
          <Stack>
            <UploadFields value={upload} onChange={setUpload} />
            <ErrorAlert error={newVersion.error} />
            <Group justify="flex-end">
              <Button type="submit" loading={newVersion.isPending} disabled={!upload.files.length}>
                {t('datasets.upload')}
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </Page>
  );
}
