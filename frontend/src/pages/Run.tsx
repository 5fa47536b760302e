// One run: status, progress and ETA, live charts over the websocket, log tail, checkpoints, artifacts, spec;
// cancel / resume / retry. Reopening the page replays every event (the stream starts at ?after=0).
import { Alert, Badge, Button, Code, Group, Paper, ScrollArea, SegmentedControl, SimpleGrid, Slider, Stack, Table, Tabs, Text } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { IconDownload } from '@tabler/icons-react';
import { useEffect, useMemo, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate, useParams } from 'react-router';
import { api, call } from '../api/client';
import { useJob } from '../api/queries';
import { MetricChart } from '../charts/MetricChart';
import { JobProgress, progressOf } from '../components/JobProgress';
import { ErrorAlert, formatBytes, formatTime, Page, StatusBadge, TERMINAL } from '../components/Page';
import { metricGroups, metricKeys } from '../live/metricGroups';
import { eventLines, latestProgress, type MetricPoint, metricPoints } from '../live/series';
import { useJobStream } from '../live/useJobStream';
import { useLogTail } from '../live/useLogTail';
import { flattenSpec } from '../spec/flatten';
import { specToYaml } from '../spec/form';
import { downloadFile } from '../utils/download';

/** series names of the metrics every stage reports; any other metric is named by its key */
const METRIC_NAMES: Record<string, string> = {
  loss: 'run.chartLoss',
  eval_loss: 'run.chartEvalLoss',
  lr: 'run.chartLr',
  grad_norm: 'run.chartGradNorm',
};

function Charts({ points, smoothing }: { points: MetricPoint[]; smoothing: number }) {
  const { t } = useTranslation();
  // the loss chart is there from the start (empty until the first point)
  const groups = useMemo(() => metricGroups(['loss', ...metricKeys(points)]), [points]);
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }}>
      {groups.map((group) => (
        <MetricChart
          key={group.id}
          title={t(`run.groups.${group.id}`, { defaultValue: group.id })}
          testId={`chart-${group.id}`}
          smoothing={smoothing}
          series={group.keys.map((key) => ({
            key,
            name: METRIC_NAMES[key] ? t(METRIC_NAMES[key]) : key,
            points: points.map((p) => ({ step: p.step, value: p[key] })),
            // sparse eval points and the scheduled learning rate are drawn as they are
            smoothing: key.startsWith('eval_') || key === 'lr' ? 0 : undefined,
          }))}
          emptyText={t('run.noData')}
        />
      ))}
    </SimpleGrid>
  );
}

function LogTail({ jobId, lines, active }: { jobId: string; lines: string[]; active: boolean }) {
  const { t } = useTranslation();
  const [source, setSource] = useState<'events' | 'output'>('events');
  const output = useLogTail(jobId, active);
  const shown = source === 'events' ? lines.slice(-500) : output.lines.map((l) => l.line);
  const viewport = useRef<HTMLDivElement>(null);
  useEffect(() => {
    viewport.current?.scrollTo({ top: viewport.current.scrollHeight });
  }, [shown.length]);
  return (
    <Stack gap="xs">
      <SegmentedControl
        size="xs"
        w="fit-content"
        data={[
          { value: 'events', label: t('run.logEvents') },
          { value: 'output', label: t('run.logOutput') },
        ]}
        value={source}
        onChange={(value) => setSource(value as 'events' | 'output')}
      />
      <ErrorAlert error={source === 'output' ? output.error : null} />
      <ScrollArea h={320} viewportRef={viewport} type="auto">
        <Code block data-testid="log-tail" style={{ fontSize: 11, minHeight: 300 }}>
          {shown.length ? shown.join('\n') : t('run.noLogs')}
        </Code>
      </ScrollArea>
    </Stack>
  );
}

function Checkpoints({ jobId, version }: { jobId: string; version: number }) {
  const { t } = useTranslation();
  const checkpoints = useQuery({
    queryKey: ['checkpoints', jobId, version],
    queryFn: () => call(api.GET('/api/jobs/{job_id}/checkpoints', { params: { path: { job_id: jobId } } })),
  });
  if (checkpoints.error) return <ErrorAlert error={checkpoints.error} />;
  if (!checkpoints.data?.length) return <Text c="dimmed">{t('run.noCheckpoints')}</Text>;
  return (
    <Table.ScrollContainer minWidth={480}>
      <Table data-testid="checkpoints">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>{t('run.step')}</Table.Th>
            <Table.Th>{t('run.path')}</Table.Th>
            <Table.Th>{t('run.created')}</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {checkpoints.data.map((c) => (
            <Table.Tr key={c.id}>
              <Table.Td>{c.step}</Table.Td>
              <Table.Td>
                <Code>{c.path}</Code>
              </Table.Td>
              <Table.Td>{formatTime(c.created_at)}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

function Artifacts({ jobId, version }: { jobId: string; version: string }) {
  const { t } = useTranslation();
  const [error, setError] = useState<unknown>(null);
  const artifacts = useQuery({
    queryKey: ['artifacts', jobId, version],
    queryFn: () => call(api.GET('/api/jobs/{job_id}/artifacts', { params: { path: { job_id: jobId } } })),
  });
  if (artifacts.error) return <ErrorAlert error={artifacts.error} />;
  if (!artifacts.data?.length) return <Text c="dimmed">{t('run.noArtifacts')}</Text>;
  return (
    <Stack>
      <ErrorAlert error={error} />
      <Table.ScrollContainer minWidth={480}>
        <Table data-testid="artifacts">
          <Table.Tbody>
            {artifacts.data.map((a) => (
              <Table.Tr key={a.id}>
                <Table.Td>
                  {a.name} <Badge size="xs" variant="outline">{a.kind}</Badge>
                </Table.Td>
                <Table.Td>{formatBytes(a.size_bytes)}</Table.Td>
                <Table.Td>
                  <Button
                    size="compact-xs"
                    variant="subtle"
                    leftSection={<IconDownload size={14} />}
                    onClick={() => downloadFile(`/api/jobs/${jobId}/artifacts/${encodeURIComponent(a.name)}`, a.name).catch(setError)}
                  >
                    {t('run.download')}
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    </Stack>
  );
}

function SpecView({ jobId }: { jobId: string }) {
  const { t } = useTranslation();
  const spec = useQuery({
    queryKey: ['spec', jobId],
    queryFn: () => call(api.GET('/api/jobs/{job_id}/spec', { params: { path: { job_id: jobId } } })),
    staleTime: Infinity,
  });
  if (spec.error) return <ErrorAlert error={spec.error} />;
  if (!spec.data) return <Text c="dimmed">{t('common.loading')}</Text>;
  return (
    <Stack gap="xs">
      <Text size="xs" c="dimmed">
        {t('run.specHint')}
      </Text>
      <Code block data-testid="run-spec">
        {specToYaml(flattenSpec(spec.data))}
      </Code>
    </Stack>
  );
}

export function Run() {
  const { t } = useTranslation();
  const { jobId = '' } = useParams();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [generation, setGeneration] = useState(0);
  const [smoothing, setSmoothing] = useState(0.6);
  const job = useJob(jobId, 5000);
  const status = job.data?.status ?? 'queued';
  const active = !TERMINAL.includes(status);
  const stream = useJobStream(jobId, { restartKey: generation });
  const points = useMemo(() => metricPoints(stream.events), [stream.events]);
  const lines = useMemo(() => eventLines(stream.events), [stream.events]);
  const progress = latestProgress(stream.events);
  const checkpointCount = stream.events.filter((e) => e.type === 'checkpoint').length;

  // status-changing events refresh the job row (status, attempt, error)
  const seen = useRef(0);
  useEffect(() => {
    const fresh = stream.events.slice(seen.current);
    seen.current = stream.events.length;
    if (fresh.some((e) => ['status', 'started', 'finished', 'failed'].includes(e.type)) || stream.end) {
      void queryClient.invalidateQueries({ queryKey: ['job', jobId] });
    }
  }, [stream.events, stream.end, jobId, queryClient]);
  useEffect(() => {
    seen.current = 0;
  }, [jobId, generation]);

  const act = useMutation({
    mutationFn: async (action: 'cancel' | 'resume' | 'retry') => {
      const path = { params: { path: { job_id: jobId } } };
      if (action === 'cancel') return call(api.POST('/api/jobs/{job_id}/cancel', path));
      if (action === 'resume') return call(api.POST('/api/jobs/{job_id}/resume', path));
      return call(api.POST('/api/jobs/{job_id}/retry', path));
    },
    onSuccess: (answer, action) => {
      if (action === 'retry') {
        navigate(`/runs/${answer.id}`);
        return;
      }
      queryClient.setQueryData(['job', jobId], answer);
      if (action === 'resume') setGeneration((g) => g + 1);
    },
  });

  const data = job.data;
  const progressValues = progress
    ? { step: progress.step, totalSteps: progress.totalSteps, etaSeconds: progress.etaSeconds, elapsedSeconds: progress.elapsedSeconds }
    : progressOf(data?.progress);
  return (
    <Page
      title={
        <Group gap="sm" component="span">
          <span data-testid="run-title">{data?.name || jobId.slice(0, 8)}</span>
          {data && <StatusBadge status={data.status} />}
        </Group>
      }
      actions={
        data && (
          <>
            {active && (
              <Button color="red" variant="light" onClick={() => act.mutate('cancel')} loading={act.isPending && act.variables === 'cancel'} disabled={data.cancel_requested} data-testid="run-cancel">
                {data.cancel_requested ? t('run.cancelRequested') : t('run.cancel')}
              </Button>
            )}
            {(status === 'failed' || status === 'cancelled') && (
              <Button variant="light" onClick={() => act.mutate('resume')} loading={act.isPending && act.variables === 'resume'} data-testid="run-resume">
                {t('run.resume')}
              </Button>
            )}
            {!active && (
              <Button variant="default" onClick={() => act.mutate('retry')} loading={act.isPending && act.variables === 'retry'} data-testid="run-retry">
                {t('run.retry')}
              </Button>
            )}
          </>
        )
      }
    >
      <ErrorAlert error={job.error ?? act.error} />
      {data?.status === 'failed' && (
        <Alert color="red" title={data.error_code ?? t('status.failed')} data-testid="run-error">
          {data.error_message}
        </Alert>
      )}
      {data && (
        <Paper withBorder p="md" radius="md">
          <Stack gap="xs">
            <JobProgress values={progressValues} status={data.status} size="lg" />
            <Group gap="lg" wrap="wrap">
              <Text size="xs" c="dimmed">
                {t('run.attempt', { attempt: data.attempt, max: data.max_attempts })}
              </Text>
              <Text size="xs" c="dimmed">
                {t('overview.gpus', { count: data.gpu_count })}
                {data.worker_id ? ` · ${data.worker_id}` : ''}
              </Text>
              <Text size="xs" c="dimmed">
                {t('run.createdAt', { time: formatTime(data.created_at) })}
              </Text>
              {data.started_at && <Text size="xs" c="dimmed">{t('run.startedAt', { time: formatTime(data.started_at) })}</Text>}
              {data.finished_at && <Text size="xs" c="dimmed">{t('run.finishedAt', { time: formatTime(data.finished_at) })}</Text>}
              <Text size="xs" c="dimmed" data-testid="stream-state" data-state={stream.state} data-seq={stream.lastSeq}>
                {t(`stream.${stream.state}`)} · seq {stream.lastSeq}
              </Text>
            </Group>
          </Stack>
        </Paper>
      )}
      <Tabs defaultValue="charts" keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="charts">{t('run.charts')}</Tabs.Tab>
          <Tabs.Tab value="logs" data-testid="tab-logs">
            {t('run.logs')}
          </Tabs.Tab>
          <Tabs.Tab value="checkpoints">{t('run.checkpoints')}</Tabs.Tab>
          <Tabs.Tab value="artifacts">{t('run.artifacts')}</Tabs.Tab>
          <Tabs.Tab value="spec" data-testid="tab-spec">
            {t('run.spec')}
          </Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="charts" pt="sm">
          <Stack>
            <Group gap="sm" maw={360}>
              <Text size="sm">{t('run.smoothing')}</Text>
              <Slider flex={1} min={0} max={0.99} step={0.01} value={smoothing} onChange={setSmoothing} label={(v) => v.toFixed(2)} />
            </Group>
            <Charts points={points} smoothing={smoothing} />
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="logs" pt="sm">
          <LogTail jobId={jobId} lines={lines} active={active} />
        </Tabs.Panel>
        <Tabs.Panel value="checkpoints" pt="sm">
          <Checkpoints jobId={jobId} version={checkpointCount} />
        </Tabs.Panel>
        <Tabs.Panel value="artifacts" pt="sm">
          <Artifacts jobId={jobId} version={status} />
        </Tabs.Panel>
        <Tabs.Panel value="spec" pt="sm">
          <SpecView jobId={jobId} />
        </Tabs.Panel>
      </Tabs>
    </Page>
  );
}
