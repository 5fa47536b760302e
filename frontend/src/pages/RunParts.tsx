// The run page's tabs besides the charts: log tail, checkpoints (the best one marked), artifacts, spec.
import { Badge, Button, Code, Group, SegmentedControl, ScrollArea, Stack, Table, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { IconDownload } from '@tabler/icons-react';
import { useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, call } from '../api/client';
import { ErrorAlert, formatBytes, formatTime } from '../components/Page';
import { ArtifactTable } from '../export/ArtifactTable';
import { useLogTail } from '../live/useLogTail';
import { flattenSpec } from '../spec/flatten';
import { specToYaml } from '../spec/form';
import { downloadArtifact } from '../utils/download';

export function LogTail({ jobId, lines, active }: { jobId: string; lines: string[]; active: boolean }) {
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

/** The checkpoints; the best one (the checkpoint's own ``best`` flag, else the job's best step) marked. */
export function Checkpoints({ jobId, version, bestStep }: { jobId: string; version: number; bestStep?: number | null }) {
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
            <Table.Tr key={c.id} data-testid="checkpoint-row" data-best={c.best || c.step === bestStep || undefined}>
              <Table.Td>
                <Group gap="xs" wrap="nowrap">
                  {c.step}
                  {(c.best || c.step === bestStep) && (
                    <Badge size="xs" color="green" data-testid="checkpoint-best">
                      {t('run.best')}
                    </Badge>
                  )}
                </Group>
              </Table.Td>
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

/** ``exported``: an export job's files, with their kinds, checks and actions (chat, deploy, delete). */
export function Artifacts({ jobId, version, exported = false }: { jobId: string; version: string; exported?: boolean }) {
  const { t } = useTranslation();
  const [error, setError] = useState<unknown>(null);
  const artifacts = useQuery({
    queryKey: ['artifacts', jobId, version],
    queryFn: () => call(api.GET('/api/jobs/{job_id}/artifacts', { params: { path: { job_id: jobId } } })),
  });
  if (artifacts.error) return <ErrorAlert error={artifacts.error} />;
  if (!artifacts.data?.length) return <Text c="dimmed">{t('run.noArtifacts')}</Text>;
  if (exported) return <ArtifactTable jobId={jobId} artifacts={artifacts.data} />;
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
                    onClick={() => downloadArtifact(jobId, a.name).catch(setError)}
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

export function SpecView({ jobId }: { jobId: string }) {
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
