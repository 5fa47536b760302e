// The project's exports, newest first: what each merged (the source model and adapters), its status, live
// progress while it runs (the job's events over the websocket, files listed as they are written), then its files.
import { Alert, Anchor, Badge, Group, Paper, Stack, Table, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { JobProgress, progressOf } from '../components/JobProgress';
import { ErrorAlert, formatBytes, formatTime, StatusBadge, TERMINAL } from '../components/Page';
import { servedLabel, useJobNames } from '../evaluate/ModelSelect';
import type { JobEvent } from '../live/jobStream';
import { latestProgress } from '../live/series';
import { useJobStream } from '../live/useJobStream';
import { ArtifactTable, Checks, KindBadge, sortArtifacts } from './ArtifactTable';
import { type ExportRun, useExports } from './queries';

export interface WrittenFile {
  name: string;
  format: string;
  quantization: string | null;
  size_bytes: number;
  checks: Record<string, unknown>;
}

/** The files an export job has written so far, from its ``artifact`` events (a repeated name: the newest). */
export function writtenFiles(events: readonly JobEvent[]): WrittenFile[] {
  const byName = new Map<string, WrittenFile>();
  for (const event of events) {
    if (event.type !== 'artifact' || typeof event.name !== 'string') continue;
    byName.set(event.name, {
      name: event.name,
      format: String(event.format ?? ''),
      quantization: typeof event.quantization === 'string' ? event.quantization : null,
      size_bytes: typeof event.size_bytes === 'number' ? event.size_bytes : 0,
      checks: typeof event.checks === 'object' && event.checks !== null ? (event.checks as Record<string, unknown>) : {},
    });
  }
  return [...byName.values()];
}

/** The newest log message of the stream (what the export is doing now). */
function currentPhase(events: readonly JobEvent[]): string | null {
  for (let i = events.length - 1; i >= 0; i--) if (events[i].type === 'log' && typeof events[i].message === 'string') return events[i].message as string;
  return null;
}

function Live({ run }: { run: ExportRun }) {
  const queryClient = useQueryClient();
  const stream = useJobStream(run.job.id);
  const progress = latestProgress(stream.events);
  const files = writtenFiles(stream.events);
  const phase = currentPhase(stream.events);
  const ended = stream.end !== null || stream.events.some((event) => event.type === 'finished' || event.type === 'failed');
  useEffect(() => {
    // the job's row, its registered files and the served models change when it ends
    if (!ended) return;
    void queryClient.invalidateQueries({ queryKey: ['exports'] });
    void queryClient.invalidateQueries({ queryKey: ['v1-models'] });
  }, [ended, queryClient]);
  const values = progress ? { step: progress.step, totalSteps: progress.totalSteps, etaSeconds: progress.etaSeconds, elapsedSeconds: progress.elapsedSeconds } : progressOf(run.job.progress);
  return (
    <Stack gap="xs" data-testid="export-live" data-state={stream.state} data-files={files.length}>
      <JobProgress values={values} status={run.job.status} />
      {phase && (
        <Text size="sm" c="dimmed" data-testid="export-phase">
          {phase}
        </Text>
      )}
      {files.length > 0 && (
        <Table withRowBorders={false} verticalSpacing={2} fz="sm">
          <Table.Tbody>
            {sortArtifacts(files).map((file) => (
              <Table.Tr key={file.name} data-testid="written-file" data-name={file.name}>
                <Table.Td pl={0}>{file.name}</Table.Td>
                <Table.Td>
                  <KindBadge format={file.format} quantization={file.quantization} />
                </Table.Td>
                <Table.Td ta="right">{formatBytes(file.size_bytes)}</Table.Td>
                <Table.Td>
                  <Checks checks={file.checks} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}

function ExportCard({ run, highlighted }: { run: ExportRun; highlighted: boolean }) {
  const { t } = useTranslation();
  const names = useJobNames();
  const { job } = run;
  const label = (id: string) => servedLabel(id, names, (step) => t('evaluate.step', { step }));
  const active = !TERMINAL.includes(job.status);
  const total = run.artifacts.reduce((sum, artifact) => sum + artifact.size_bytes, 0);
  return (
    <Paper withBorder radius="md" p="md" data-testid="export-row" data-job={job.id} data-status={job.status} style={highlighted ? { borderColor: 'var(--mantine-color-indigo-5)' } : undefined}>
      <Stack gap="sm">
        <Group justify="space-between" wrap="wrap" gap="xs">
          <Group gap="sm" wrap="wrap">
            <Anchor component={Link} to={`/runs/${job.id}`} fw={600}>
              {job.name || job.id.slice(0, 8)}
            </Anchor>
            <StatusBadge status={job.status} />
            {run.artifacts.length > 0 && (
              <Badge variant="default" size="sm" data-testid="export-total" style={{ textTransform: 'none' }}>
                {t('exports.filesTotal', { count: run.artifacts.length, size: formatBytes(total) })}
              </Badge>
            )}
          </Group>
          <Text size="xs" c="dimmed">
            {formatTime(job.created_at)}
          </Text>
        </Group>
        <Text size="sm" data-testid="export-source" style={{ overflowWrap: 'anywhere' }}>
          <Text span c="dimmed" size="sm">
            {t('exports.from')}{' '}
          </Text>
          {label(run.source_model)}
          {run.extra_adapters.map((id) => (
            <Text span key={id} size="sm">
              {' + '}
              {label(id)}
            </Text>
          ))}
        </Text>
        {active && <Live run={run} />}
        {job.status === 'failed' && (
          <Alert color="red" title={job.error_code ?? t('status.failed')} data-testid="export-error">
            {job.error_message}
          </Alert>
        )}
        {run.artifacts.length > 0 ? (
          <ArtifactTable jobId={job.id} artifacts={run.artifacts} />
        ) : (
          !active && (
            <Text size="sm" c="dimmed">
              {t('exports.noFiles')}
            </Text>
          )
        )}
      </Stack>
    </Paper>
  );
}

export function ExportList({ projectId, highlight }: { projectId: string; highlight: string | null }) {
  const { t } = useTranslation();
  const exports = useExports(projectId);
  const runs = exports.data ?? [];
  return (
    <Stack gap="sm" data-testid="export-list">
      <ErrorAlert error={exports.error} />
      {exports.data && runs.length === 0 && (
        <Text c="dimmed" data-testid="export-none">
          {t('exports.none')}
        </Text>
      )}
      {runs.map((run) => (
        <ExportCard key={run.job.id} run={run} highlighted={run.job.id === highlight} />
      ))}
    </Stack>
  );
}
