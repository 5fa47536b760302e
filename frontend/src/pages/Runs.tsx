// All runs of the project, newest first; filter by status or text, pick some to compare.
import { Anchor, Button, Checkbox, Group, MultiSelect, Paper, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router';
import { type JobStatus, useJobs } from '../api/queries';
import { JobProgress, progressOf } from '../components/JobProgress';
import { ErrorAlert, formatTime, Page, StatusBadge } from '../components/Page';
import { useProjectId } from '../project/ProjectContext';

const STATUSES: JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export function Runs() {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const projectId = useProjectId();
  const [status, setStatus] = useState<string[]>([]);
  const [q, setQ] = useState('');
  const [debounced] = useDebouncedValue(q, 300);
  const [picked, setPicked] = useState<string[]>([]);
  const jobs = useJobs(projectId, { status: status as JobStatus[], q: debounced, limit: 100, poll: 5000 });
  const toggle = (id: string) => setPicked((old) => (old.includes(id) ? old.filter((x) => x !== id) : [...old, id]));
  return (
    <Page
      title={t('nav.runs')}
      actions={
        <>
          <Button variant="default" disabled={picked.length < 2} onClick={() => navigate(`/compare?runs=${picked.join(',')}`)} data-testid="compare-picked">
            {t('runs.compare', { count: picked.length })}
          </Button>
          <Button component={Link} to="/runs/new">
            {t('nav.newRun')}
          </Button>
        </>
      }
    >
      <Group wrap="wrap">
        <MultiSelect
          placeholder={t('runs.status')}
          data={STATUSES.map((s) => ({ value: s, label: t(`status.${s}`) }))}
          value={status}
          onChange={setStatus}
          clearable
          w={{ base: '100%', sm: 320 }}
        />
        <TextInput placeholder={t('runs.search')} value={q} onChange={(e) => setQ(e.currentTarget.value)} w={{ base: '100%', sm: 260 }} />
      </Group>
      <ErrorAlert error={jobs.error} />
      <Paper withBorder radius="md">
        <Table.ScrollContainer minWidth={720}>
          <Table striped highlightOnHover data-testid="runs-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th w={32} />
                <Table.Th>{t('runs.name')}</Table.Th>
                <Table.Th>{t('runs.status')}</Table.Th>
                <Table.Th w={260}>{t('runs.progress')}</Table.Th>
                <Table.Th>{t('run.created')}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(jobs.data?.items ?? []).map((job) => (
                <Table.Tr key={job.id} data-testid="run-row" data-status={job.status}>
                  <Table.Td>
                    <Checkbox checked={picked.includes(job.id)} onChange={() => toggle(job.id)} aria-label={t('runs.pick')} />
                  </Table.Td>
                  <Table.Td>
                    <Anchor component={Link} to={`/runs/${job.id}`} fw={600}>
                      {job.name || job.id.slice(0, 8)}
                    </Anchor>
                    <Text size="xs" c="dimmed">
                      {job.kind} · {job.id.slice(0, 8)}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <StatusBadge status={job.status} />
                  </Table.Td>
                  <Table.Td>
                    <JobProgress values={progressOf(job.progress)} status={job.status} size="sm" />
                  </Table.Td>
                  <Table.Td>{formatTime(job.created_at)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        {jobs.data?.items.length === 0 && (
          <Text c="dimmed" p="md">
            {t('runs.none')}
          </Text>
        )}
      </Paper>
    </Page>
  );
}
