// Overview: running and queued jobs with progress, workers and their GPUs, recent runs and artifacts.
import { Alert, Anchor, Badge, Button, Card, Group, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQueries, useQuery } from '@tanstack/react-query';
import { IconDownload } from '@tabler/icons-react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api, call } from '../api/client';
import { fetchWorkers } from '../api/extras';
import { ACTIVE, useJobs } from '../api/queries';
import { JobProgress, progressOf } from '../components/JobProgress';
import { ErrorAlert, formatBytes, formatTime, Page, StatusBadge } from '../components/Page';
import { useProjectId } from '../project/ProjectContext';
import { downloadArtifact } from '../utils/download';

function Stat({ label, value, testId }: { label: string; value: number | string; testId: string }) {
  return (
    <Card withBorder radius="md" padding="sm">
      <Text size="xs" c="dimmed" tt="uppercase" fw={600}>
        {label}
      </Text>
      <Text size="xl" fw={700} data-testid={testId}>
        {value}
      </Text>
    </Card>
  );
}

function Workers() {
  const { t } = useTranslation();
  const workers = useQuery({ queryKey: ['workers'], queryFn: fetchWorkers, refetchInterval: 10_000 });
  if (workers.error) return <ErrorAlert error={workers.error} />;
  if (!workers.data) return <Text c="dimmed">{t('common.loading')}</Text>;
  if (!workers.data.available) {
    return (
      <Alert color="gray" data-testid="workers-unavailable">
        {t('overview.workersUnavailable')}
      </Alert>
    );
  }
  if (!workers.data.data.length) return <Text c="dimmed">{t('overview.noWorkers')}</Text>;
  return (
    <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }} data-testid="workers">
      {workers.data.data.map((worker) => (
        <Card key={worker.id} withBorder radius="md" padding="sm">
          <Group justify="space-between" mb={4}>
            <Text fw={600} size="sm" truncate>
              {worker.hostname}
            </Text>
            <StatusBadge status={worker.status} />
          </Group>
          <Text size="xs" c="dimmed">
            {t('overview.queues')}: {worker.queues.join(', ') || '–'} · {t('overview.lastSeen')}: {formatTime(worker.last_seen_at)}
          </Text>
          <Stack gap={4} mt="xs">
            {worker.gpus.length === 0 && (
              <Text size="xs" c="dimmed">
                {t('overview.cpuOnly', { slots: worker.slots })}
              </Text>
            )}
            {worker.gpus.map((gpu) => (
              <Group key={gpu.index} justify="space-between" gap="xs" wrap="nowrap">
                <Text size="xs" truncate>
                  GPU {gpu.index}: {gpu.name} ({formatBytes(gpu.memory_mb * 1024 * 1024)})
                </Text>
                {gpu.job_id ? (
                  <Anchor component={Link} to={`/runs/${gpu.job_id}`} size="xs">
                    {t('overview.busy')}
                  </Anchor>
                ) : (
                  <Badge size="xs" variant="light" color="green">
                    {t('overview.free')}
                  </Badge>
                )}
              </Group>
            ))}
          </Stack>
        </Card>
      ))}
    </SimpleGrid>
  );
}

function RecentArtifacts({ jobIds }: { jobIds: { id: string; name: string | null }[] }) {
  const { t } = useTranslation();
  const results = useQueries({
    queries: jobIds.map((job) => ({
      queryKey: ['artifacts', job.id],
      queryFn: () => call(api.GET('/api/jobs/{job_id}/artifacts', { params: { path: { job_id: job.id } } })),
    })),
  });
  const rows = results.flatMap((result, index) => (result.data ?? []).map((artifact) => ({ artifact, job: jobIds[index] })));
  if (!rows.length) return <Text c="dimmed">{t('overview.noArtifacts')}</Text>;
  return (
    <Table.ScrollContainer minWidth={520}>
      <Table data-testid="recent-artifacts">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>{t('run.artifact')}</Table.Th>
            <Table.Th>{t('run.run')}</Table.Th>
            <Table.Th>{t('run.size')}</Table.Th>
            <Table.Th>{t('run.created')}</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.slice(0, 10).map(({ artifact, job }) => (
            <Table.Tr key={artifact.id}>
              <Table.Td>
                {artifact.name} <Badge size="xs" variant="outline">{artifact.kind}</Badge>
              </Table.Td>
              <Table.Td>
                <Anchor component={Link} to={`/runs/${job.id}`} size="sm">
                  {job.name || job.id.slice(0, 8)}
                </Anchor>
              </Table.Td>
              <Table.Td>{formatBytes(artifact.size_bytes)}</Table.Td>
              <Table.Td>{formatTime(artifact.created_at)}</Table.Td>
              <Table.Td>
                <Button
                  size="compact-xs"
                  variant="subtle"
                  leftSection={<IconDownload size={14} />}
                  onClick={() =>
                    void downloadArtifact(job.id, artifact.name)
                  }
                >
                  {t('run.download')}
                </Button>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function Overview() {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const active = useJobs(projectId, { status: ACTIVE, limit: 100, poll: 3000 });
  const recent = useJobs(projectId, { limit: 20, poll: 10_000 });
  const activeJobs = active.data?.items ?? [];
  const running = activeJobs.filter((job) => job.status === 'running');
  const queued = activeJobs.filter((job) => job.status === 'queued');
  const finished = (recent.data?.items ?? []).filter((job) => job.status === 'succeeded').slice(0, 5);
  const failedRecently = (recent.data?.items ?? []).filter((job) => job.status === 'failed').length;
  return (
    <Page
      title={t('nav.overview')}
      actions={
        <Button component={Link} to="/runs/new" data-testid="overview-new-run">
          {t('nav.newRun')}
        </Button>
      }
    >
      <SimpleGrid cols={{ base: 2, sm: 4 }}>
        <Stat label={t('overview.running')} value={running.length} testId="stat-running" />
        <Stat label={t('overview.queued')} value={queued.length} testId="stat-queued" />
        <Stat label={t('overview.succeeded')} value={(recent.data?.items ?? []).filter((j) => j.status === 'succeeded').length} testId="stat-succeeded" />
        <Stat label={t('overview.failed')} value={failedRecently} testId="stat-failed" />
      </SimpleGrid>
      <ErrorAlert error={active.error} />
      <Stack gap="xs">
        <Title order={4}>{t('overview.activeJobs')}</Title>
        {activeJobs.length === 0 && <Text c="dimmed">{t('overview.noActive')}</Text>}
        <SimpleGrid cols={{ base: 1, md: 2 }} data-testid="active-jobs">
          {activeJobs.map((job) => (
            <Card key={job.id} withBorder radius="md" padding="sm" component={Link} to={`/runs/${job.id}`}>
              <Group justify="space-between" mb={6} wrap="nowrap">
                <Text fw={600} size="sm" truncate>
                  {job.name || job.id.slice(0, 8)}
                </Text>
                <StatusBadge status={job.status} />
              </Group>
              <JobProgress values={progressOf(job.progress)} status={job.status} size="sm" />
              <Text size="xs" c="dimmed" mt={4}>
                {t('overview.gpus', { count: job.gpu_count })} · {t('run.attempt', { attempt: job.attempt, max: job.max_attempts })}
                {job.cancel_requested ? ` · ${t('run.cancelRequested')}` : ''}
              </Text>
            </Card>
          ))}
        </SimpleGrid>
      </Stack>
      <Stack gap="xs">
        <Title order={4}>{t('overview.workers')}</Title>
        <Workers />
      </Stack>
      <Stack gap="xs">
        <Title order={4}>{t('overview.recentArtifacts')}</Title>
        <RecentArtifacts jobIds={finished.map((job) => ({ id: job.id, name: job.name }))} />
      </Stack>
      <Stack gap="xs">
        <Group justify="space-between">
          <Title order={4}>{t('overview.recentRuns')}</Title>
          <Anchor component={Link} to="/runs" size="sm">
            {t('overview.allRuns')}
          </Anchor>
        </Group>
        <Table.ScrollContainer minWidth={480}>
          <Table>
            <Table.Tbody>
              {(recent.data?.items ?? []).slice(0, 8).map((job) => (
                <Table.Tr key={job.id}>
                  <Table.Td>
                    <Anchor component={Link} to={`/runs/${job.id}`} size="sm">
                      {job.name || job.id.slice(0, 8)}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>
                    <StatusBadge status={job.status} />
                  </Table.Td>
                  <Table.Td>{formatTime(job.created_at)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Stack>
    </Page>
  );
}
