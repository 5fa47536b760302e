// One run: status, progress and ETA, live charts over the websocket, log tail, checkpoints, artifacts, spec;
// cancel / resume / retry. Reopening the page replays every event (the stream starts at ?after=0).
// An eval job is a job too: the same live progress, with its results (figures, samples) instead of charts; an
// export job shows its files.
import { Alert, Badge, Button, Group, Paper, SimpleGrid, Slider, Stack, Tabs, Text, Tooltip } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconFileExport, IconTestPipe } from '@tabler/icons-react';
import { useEffect, useMemo, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router';
import { api, call } from '../api/client';
import { useJob } from '../api/queries';
import { MetricChart } from '../charts/MetricChart';
import { JobProgress, progressOf } from '../components/JobProgress';
import { ErrorAlert, formatTime, Page, StatusBadge, TERMINAL } from '../components/Page';
import { EvalResults } from '../evaluate/EvalResults';
import { metricGroups, metricKeys, splitEvalKey } from '../live/metricGroups';
import { bestCheckpoint, eventLines, latestProgress, type MetricPoint, metricPoints, stoppedEarly } from '../live/series';
import { useJobStream } from '../live/useJobStream';
import { Artifacts, Checkpoints, LogTail, SpecView } from './RunParts';

/** series names of the metrics every stage reports; any other metric is named by its key */
const METRIC_NAMES: Record<string, string> = {
  loss: 'run.chartLoss',
  eval_loss: 'run.chartEvalLoss',
  lr: 'run.chartLr',
  grad_norm: 'run.chartGradNorm',
};

/** The eval sets of a job's spec (eval_dataset, versions pinned with @N left out): per-set metric names. */
export function evalSets(spec: Record<string, unknown> | undefined): string[] {
  const data = (spec?.data ?? {}) as { eval_dataset?: unknown };
  const names = Array.isArray(data.eval_dataset) ? data.eval_dataset : typeof data.eval_dataset === 'string' ? data.eval_dataset.split(',') : [];
  return names.map((name) => String(name).trim().replace(/@\d+$/, '')).filter(Boolean);
}

function Charts({ points, smoothing, sets }: { points: MetricPoint[]; smoothing: number; sets: string[] }) {
  const { t } = useTranslation();
  // the loss chart is there from the start (empty until the first point)
  const groups = useMemo(() => metricGroups(['loss', ...metricKeys(points)], sets), [points, sets]);
  const seriesName = (key: string) => {
    if (METRIC_NAMES[key]) return t(METRIC_NAMES[key]);
    const { metric, dataset } = splitEvalKey(key, sets);
    if (!dataset) return key;
    return metric === 'loss' ? t('run.chartEvalLossOf', { name: dataset }) : `eval_${metric} · ${dataset}`;
  };
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
            name: seriesName(key),
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
  const checkpointCount = stream.events.filter((e) => e.type === 'checkpoint' || e.type === 'best_checkpoint').length;
  const resultCount = stream.events.filter((e) => e.type === 'eval_result').length;
  const [tab, setTab] = useState<string | null>(null);

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
  const isEval = data?.kind === 'eval';
  const isExport = data?.kind === 'export';
  const sets = useMemo(() => evalSets(data?.spec), [data?.spec]);
  // the best checkpoint and early stopping: from the job once it is stored, live from the events before
  const bestStep = data?.best_checkpoint_step ?? bestCheckpoint(stream.events)?.step ?? null;
  const early = Boolean(data?.stopped_early) || stoppedEarly(stream.events);
  const progressValues = progress
    ? { step: progress.step, totalSteps: progress.totalSteps, etaSeconds: progress.etaSeconds, elapsedSeconds: progress.elapsedSeconds }
    : progressOf(data?.progress);
  return (
    <Page
      title={
        <Group gap="sm" component="span">
          <span data-testid="run-title">{data?.name || jobId.slice(0, 8)}</span>
          {data && <StatusBadge status={data.status} />}
          {isEval && (
            <Badge variant="outline" leftSection={<IconTestPipe size={12} />} data-testid="run-kind-eval">
              {t('run.evaluation')}
            </Badge>
          )}
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
            {!isEval && !isExport && data.status === 'succeeded' && (
              <Button variant="default" component={Link} to={`/evaluate/new?job=${jobId}`} leftSection={<IconTestPipe size={16} />} data-testid="run-evaluate">
                {t('run.evaluate')}
              </Button>
            )}
            {data.kind === 'train' && data.status === 'succeeded' && (
              <Button variant="default" component={Link} to={`/export?job=${jobId}`} leftSection={<IconFileExport size={16} />} data-testid="run-export">
                {t('run.export')}
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
              {bestStep !== null && (
                <Badge size="sm" color="green" variant="light" data-testid="run-best-checkpoint" data-step={bestStep}>
                  {t('run.bestCheckpoint', { step: bestStep })}
                </Badge>
              )}
              {early && (
                <Tooltip label={t('run.stoppedEarlyHint')} multiline w={300}>
                  <Badge size="sm" color="orange" variant="light" data-testid="run-stopped-early">
                    {t('run.stoppedEarly')}
                  </Badge>
                </Tooltip>
              )}
              <Text size="xs" c="dimmed" data-testid="stream-state" data-state={stream.state} data-seq={stream.lastSeq}>
                {t(`stream.${stream.state}`)} · seq {stream.lastSeq}
              </Text>
            </Group>
          </Stack>
        </Paper>
      )}
      <Tabs value={tab ?? (isEval ? 'results' : isExport ? 'artifacts' : 'charts')} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          {isEval ? (
            <Tabs.Tab value="results" data-testid="tab-results">
              {t('run.results')}
            </Tabs.Tab>
          ) : (
            !isExport && <Tabs.Tab value="charts">{t('run.charts')}</Tabs.Tab>
          )}
          <Tabs.Tab value="logs" data-testid="tab-logs">
            {t('run.logs')}
          </Tabs.Tab>
          {!isEval && !isExport && <Tabs.Tab value="checkpoints">{t('run.checkpoints')}</Tabs.Tab>}
          <Tabs.Tab value="artifacts">{t('run.artifacts')}</Tabs.Tab>
          <Tabs.Tab value="spec" data-testid="tab-spec">
            {t('run.spec')}
          </Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="results" pt="sm">
          <EvalResults jobId={jobId} version={`${resultCount}-${status}`} />
        </Tabs.Panel>
        <Tabs.Panel value="charts" pt="sm">
          <Stack>
            <Group gap="sm" maw={360}>
              <Text size="sm">{t('run.smoothing')}</Text>
              <Slider flex={1} min={0} max={0.99} step={0.01} value={smoothing} onChange={setSmoothing} label={(v) => v.toFixed(2)} />
            </Group>
            <Charts points={points} smoothing={smoothing} sets={sets} />
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="logs" pt="sm">
          <LogTail jobId={jobId} lines={lines} active={active} />
        </Tabs.Panel>
        <Tabs.Panel value="checkpoints" pt="sm">
          <Checkpoints jobId={jobId} version={checkpointCount} bestStep={bestStep} />
        </Tabs.Panel>
        <Tabs.Panel value="artifacts" pt="sm">
          <Artifacts jobId={jobId} version={status} exported={isExport} />
        </Tabs.Panel>
        <Tabs.Panel value="spec" pt="sm">
          <SpecView jobId={jobId} />
        </Tabs.Panel>
      </Tabs>
    </Page>
  );
}
