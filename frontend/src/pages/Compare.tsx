// Compare runs: overlaid metric curves with smoothing, and a table of only the settings that differ.
import { Code, Group, MultiSelect, Paper, SegmentedControl, Select, Slider, Table, Text, Title } from '@mantine/core';
import { useQueries } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useSearchParams } from 'react-router';
import { api, call } from '../api/client';
import { fetchAllMetrics, useJobs } from '../api/queries';
import { type ChartSeries, MetricChart } from '../charts/MetricChart';
import { metricGroups } from '../live/metricGroups';
import { ErrorAlert, Page } from '../components/Page';
import { useProjectId } from '../project/ProjectContext';
import { flattenSpec, specDiff } from '../spec/flatten';

/** metrics every stage reports, with their own names; any other metric is named by its key */
const NAMED = ['loss', 'eval_loss', 'lr', 'grad_norm'];

function show(value: unknown): string {
  return value === undefined ? '–' : typeof value === 'string' ? value : JSON.stringify(value);
}

export function Compare() {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const [params, setParams] = useSearchParams();
  const picked = (params.get('runs') ?? '').split(',').filter(Boolean);
  const [metric, setMetric] = useState('loss');
  const [smoothing, setSmoothing] = useState(0.6);
  const jobs = useJobs(projectId, { limit: 200 });
  const label = (id: string) => {
    const job = jobs.data?.items.find((j) => j.id === id);
    return job?.name || id.slice(0, 8);
  };
  const metrics = useQueries({ queries: picked.map((id) => ({ queryKey: ['metrics', id], queryFn: () => fetchAllMetrics(id), refetchInterval: 10_000 })) });
  const details = useQueries({
    queries: picked.map((id) => ({ queryKey: ['job', id], queryFn: () => call(api.GET('/api/jobs/{job_id}', { params: { path: { job_id: id } } })) })),
  });
  // every metric the picked runs report (a DPO run has rewards/*, a PPO run reward and kl ...), grouped as on a run
  const available = useMemo(() => {
    const keys = new Set<string>(['loss']);
    for (const query of metrics) for (const row of query.data ?? []) for (const [key, value] of Object.entries(row.values)) if (typeof value === 'number') keys.add(key);
    return metricGroups(keys).flatMap((group) => group.keys);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [metrics.map((query) => query.dataUpdatedAt).join()]);
  const metricLabel = (key: string) => (NAMED.includes(key) ? t(`compare.metric_${key}`) : key);
  const metricOptions = available.map((key) => ({ value: key, label: metricLabel(key) }));
  const series: ChartSeries[] = picked.map((id, index) => ({
    key: `run${index}`,
    name: label(id),
    points: (metrics[index]?.data ?? []).map((row) => ({ step: row.step, value: typeof row.values[metric] === 'number' ? (row.values[metric] as number) : null })),
  }));
  const specs = details.map((d) => (d.data ? flattenSpec(d.data.spec, false) : null));
  const ready = specs.every(Boolean) && specs.length > 1;
  const diff = useMemo(
    () => (ready ? specDiff(specs as Record<string, unknown>[]).filter((row) => !['output_dir', 'dataset_dir'].includes(row.key)) : []),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [ready, JSON.stringify(specs)],
  );
  const error = [...metrics, ...details].find((q) => q.error)?.error;
  return (
    <Page title={t('nav.compare')}>
      <MultiSelect
        label={t('compare.pick')}
        data={(jobs.data?.items ?? []).map((j) => ({ value: j.id, label: `${j.name || j.id.slice(0, 8)} (${t(`status.${j.status}`)})` }))}
        value={picked}
        onChange={(value) => setParams(value.length ? { runs: value.join(',') } : {})}
        searchable
        clearable
        data-testid="compare-pick"
      />
      <ErrorAlert error={error} />
      {picked.length === 0 ? (
        <Text c="dimmed">{t('compare.empty')}</Text>
      ) : (
        <>
          <Group wrap="wrap" gap="lg">
            {metricOptions.length <= 4 ? (
              <SegmentedControl data={metricOptions} value={metric} onChange={setMetric} />
            ) : (
              <Select data={metricOptions} value={metric} onChange={(value) => value && setMetric(value)} searchable allowDeselect={false} w={260} data-testid="compare-metric" />
            )}
            <Group gap="sm" w={280}>
              <Text size="sm">{t('run.smoothing')}</Text>
              <Slider flex={1} min={0} max={0.99} step={0.01} value={smoothing} onChange={setSmoothing} label={(v) => v.toFixed(2)} />
            </Group>
          </Group>
          <MetricChart title={metricLabel(metric)} series={series} smoothing={smoothing} height={340} testId="compare-chart" emptyText={t('run.noData')} />
          <Paper withBorder p="md" radius="md">
            <Title order={5} mb="xs">
              {t('compare.diff')}
            </Title>
            {picked.length < 2 ? (
              <Text c="dimmed">{t('compare.needTwo')}</Text>
            ) : !ready ? (
              <Text c="dimmed">{t('common.loading')}</Text>
            ) : diff.length === 0 ? (
              <Text c="dimmed">{t('compare.same')}</Text>
            ) : (
              <Table.ScrollContainer minWidth={480}>
                <Table striped data-testid="compare-diff">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>{t('compare.setting')}</Table.Th>
                      {picked.map((id) => (
                        <Table.Th key={id}>{label(id)}</Table.Th>
                      ))}
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {diff.map((row) => (
                      <Table.Tr key={row.key}>
                        <Table.Td>
                          <Code>{row.key}</Code>
                        </Table.Td>
                        {row.values.map((value, index) => (
                          <Table.Td key={index}>{show(value)}</Table.Td>
                        ))}
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </Table.ScrollContainer>
            )}
          </Paper>
        </>
      )}
    </Page>
  );
}
