// The project's eval runs; pick some to see their figures side by side (the best per metric highlighted),
// browse their samples, and diff the answers of two runs on the same samples.
import { Anchor, Badge, Button, Checkbox, Paper, Stack, Table, Tabs, Text } from '@mantine/core';
import { IconPlus } from '@tabler/icons-react';
import { useTranslation } from 'react-i18next';
import { Link, useSearchParams } from 'react-router';
import { JobProgress, progressOf } from '../components/JobProgress';
import { ErrorAlert, formatTime, Page, StatusBadge, TERMINAL } from '../components/Page';
import { EvalFigures, type LabelledColumn } from '../evaluate/EvalFigures';
import { formatFigure } from '../evaluate/metrics';
import { servedLabel, useJobNames } from '../evaluate/ModelSelect';
import { OutputDiff } from '../evaluate/OutputDiff';
import { type EvaluationRun, useEvalCatalog, useEvaluations } from '../evaluate/queries';
import { SampleBrowser } from '../evaluate/SampleBrowser';
import { useEvalText } from '../i18n/evalText';
import { useProjectId } from '../project/ProjectContext';

/** A column per picked run, labelled by its name (its short id when names repeat or are missing). */
export function columnsOf(runs: readonly EvaluationRun[]): LabelledColumn[] {
  const names = runs.map((run) => run.job.name || run.job.id.slice(0, 8));
  return runs.map((run, index) => ({
    id: run.job.id,
    label: names.indexOf(names[index]) !== index || names.lastIndexOf(names[index]) !== index ? `${names[index]} (${run.job.id.slice(0, 8)})` : names[index],
    results: run.results,
  }));
}

/** What a run evaluated, from its request: the datasets, the benchmark task, or the judge's mode. */
export function evaluated(run: EvaluationRun): string {
  const request = run.request ?? {};
  if (Array.isArray(request.datasets) && request.datasets.length) return request.datasets.map(String).join(', ');
  if (typeof request.task === 'string') return request.task;
  const judge = request.judge as { mode?: unknown } | null | undefined;
  return typeof judge?.mode === 'string' ? judge.mode : '';
}

function Headline({ run, metricTitle }: { run: EvaluationRun; metricTitle: (name: string) => string }) {
  const first = run.results[0];
  if (!first) return <Text size="xs" c="dimmed">–</Text>;
  const figures = Object.entries(first.metrics).slice(0, 3);
  return (
    <Text size="xs">
      {figures.map(([name, value]) => `${metricTitle(name)} ${formatFigure(value)}`).join(' · ')}
      {run.results.length > 1 && <Text span size="xs" c="dimmed">{` +${run.results.length - 1}`}</Text>}
    </Text>
  );
}

export function Evaluate() {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const catalog = useEvalCatalog();
  const text = useEvalText(catalog.data?.metrics);
  const [params, setParams] = useSearchParams();
  const evaluations = useEvaluations(projectId, 5000);
  const jobNames = useJobNames();
  const runs = evaluations.data?.items ?? [];
  const picked = (params.get('runs') ?? '').split(',').filter(Boolean);
  const toggle = (id: string) => {
    const next = picked.includes(id) ? picked.filter((x) => x !== id) : [...picked, id];
    setParams(next.length ? { runs: next.join(',') } : {}, { replace: true });
  };
  const chosen = picked.map((id) => runs.find((run) => run.job.id === id)).filter((run): run is EvaluationRun => Boolean(run));
  const columns = columnsOf(chosen);
  const metrics = catalog.data?.metrics;
  return (
    <Page
      title={t('nav.evaluate')}
      actions={
        <Button component={Link} to="/evaluate/new" leftSection={<IconPlus size={16} />} data-testid="eval-new">
          {t('evaluate.newEval')}
        </Button>
      }
    >
      <ErrorAlert error={evaluations.error ?? catalog.error} />
      <Paper withBorder radius="md">
        <Table.ScrollContainer minWidth={820}>
          <Table striped highlightOnHover data-testid="eval-runs">
            <Table.Thead>
              <Table.Tr>
                <Table.Th w={32} />
                <Table.Th>{t('evaluate.run')}</Table.Th>
                <Table.Th>{t('evaluate.model')}</Table.Th>
                <Table.Th>{t('runs.status')}</Table.Th>
                <Table.Th w={220}>{t('evaluate.figures')}</Table.Th>
                <Table.Th>{t('run.created')}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {runs.map((run) => (
                <Table.Tr key={run.job.id} data-testid="eval-row" data-status={run.job.status} data-kind={run.kind}>
                  <Table.Td>
                    <Checkbox checked={picked.includes(run.job.id)} onChange={() => toggle(run.job.id)} aria-label={t('evaluate.pick')} data-testid="eval-pick" />
                  </Table.Td>
                  <Table.Td>
                    <Anchor component={Link} to={`/runs/${run.job.id}`} fw={600}>
                      {run.job.name || run.job.id.slice(0, 8)}
                    </Anchor>
                    <div>
                      <Badge size="xs" variant="light">
                        {t(`evaluate.kinds.${run.kind}`, { defaultValue: run.kind })}
                      </Badge>{' '}
                      <Text span size="xs" c="dimmed" data-testid="eval-what">
                        {evaluated(run)}
                      </Text>
                    </div>
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs" style={{ overflowWrap: 'anywhere' }} title={run.model ?? undefined}>
                      {run.model ? servedLabel(run.model, jobNames, (step) => t('evaluate.step', { step })) : '–'}
                    </Text>
                  </Table.Td>
                  <Table.Td style={{ whiteSpace: 'nowrap' }}>
                    <StatusBadge status={run.job.status} />
                  </Table.Td>
                  <Table.Td>
                    {TERMINAL.includes(run.job.status) ? (
                      <Headline run={run} metricTitle={(name) => text.metric(name).title} />
                    ) : (
                      <JobProgress values={progressOf(run.job.progress)} status={run.job.status} size="sm" />
                    )}
                  </Table.Td>
                  <Table.Td>{formatTime(run.job.created_at)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        {evaluations.data && runs.length === 0 && (
          <Text c="dimmed" p="md" data-testid="eval-none">
            {t('evaluate.none')}
          </Text>
        )}
      </Paper>
      {chosen.length === 0 ? (
        runs.length > 0 && <Text c="dimmed">{t('evaluate.pickRuns')}</Text>
      ) : (
        <Tabs defaultValue="metrics" keepMounted={false}>
          <Tabs.List>
            <Tabs.Tab value="metrics" data-testid="tab-metrics">
              {t('evaluate.tabs.metrics')}
            </Tabs.Tab>
            <Tabs.Tab value="samples" data-testid="tab-samples">
              {t('evaluate.tabs.samples')}
            </Tabs.Tab>
            <Tabs.Tab value="diff" data-testid="tab-diff" disabled={chosen.length < 2}>
              {t('evaluate.tabs.diff')}
            </Tabs.Tab>
          </Tabs.List>
          <Tabs.Panel value="metrics" pt="sm">
            <EvalFigures columns={columns} catalog={metrics} />
          </Tabs.Panel>
          <Tabs.Panel value="samples" pt="sm">
            <SampleBrowser runs={columns} catalog={metrics} />
          </Tabs.Panel>
          <Tabs.Panel value="diff" pt="sm">
            <Stack>
              <OutputDiff runs={columns} catalog={metrics} />
            </Stack>
          </Tabs.Panel>
        </Tabs>
      )}
    </Page>
  );
}
