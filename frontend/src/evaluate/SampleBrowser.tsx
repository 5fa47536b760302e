// Browse the per-sample rows of an eval run: prompt, label and prediction (and B's prediction and the winner
// for a pairwise judge, the subject for a benchmark), in order or worst / best first by a metric, with search
// and paging. The server sorts, filters and pages (GET /api/jobs/{id}/eval-samples).
import { Badge, Group, Pagination, Paper, Select, SegmentedControl, SimpleGrid, Spoiler, Stack, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconSearch } from '@tabler/icons-react';
import { useMemo, useState, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { ErrorAlert } from '../components/Page';
import { useEvalText } from '../i18n/evalText';
import { formatFigure, sortableMetrics } from './metrics';
import { type EvalSamplePublic, type MetricInfo, type SampleQuery, useEvalSamples } from './queries';
import type { LabelledColumn } from './EvalFigures';

export const PAGE_SIZE = 10;

export function TextBlock({ title, text, testId, muted }: { title: ReactNode; text: string; testId?: string; muted?: boolean }) {
  const { t } = useTranslation();
  return (
    <Stack gap={2} miw={0}>
      <Text size="xs" fw={700} c="dimmed">
        {title}
      </Text>
      <Spoiler maxHeight={140} showLabel={t('evaluate.more')} hideLabel={t('evaluate.less')}>
        <Text size="sm" style={{ whiteSpace: 'pre-wrap', overflowWrap: 'anywhere' }} c={muted ? 'dimmed' : undefined} data-testid={testId}>
          {text || <Text span fs="italic" c="dimmed">{t('evaluate.emptyText')}</Text>}
        </Text>
      </Spoiler>
    </Stack>
  );
}

function Sample({ sample, metricTitle }: { sample: EvalSamplePublic; metricTitle: (name: string) => string }) {
  const { t } = useTranslation();
  const pairwise = sample.predict_b !== undefined && sample.predict_b !== null;
  return (
    <Paper withBorder radius="md" p="sm" data-testid="sample" data-index={sample.index}>
      <Group gap="xs" mb="xs" wrap="wrap">
        <Text size="sm" fw={700}>
          #{sample.index}
        </Text>
        {sample.subject && <Badge variant="outline" size="sm">{sample.subject}</Badge>}
        {sample.winner && (
          <Badge color={sample.winner === 'tie' ? 'gray' : 'indigo'} size="sm" data-testid="sample-winner">
            {t(`evaluate.winner.${sample.winner}`)}
          </Badge>
        )}
        {Object.entries(sample.scores ?? {}).map(([name, value]) => (
          <Badge key={name} variant="light" color="gray" size="sm" tt="none">
            {metricTitle(name)}: {formatFigure(value)}
          </Badge>
        ))}
      </Group>
      <SimpleGrid cols={{ base: 1, md: pairwise ? 4 : 3 }} spacing="sm">
        <TextBlock title={t('evaluate.prompt')} text={sample.prompt} muted />
        <TextBlock title={t('evaluate.label')} text={sample.label} />
        <TextBlock title={pairwise ? t('evaluate.predictionA') : t('evaluate.prediction')} text={sample.predict} testId="sample-predict" />
        {pairwise && <TextBlock title={t('evaluate.predictionB')} text={sample.predict_b ?? ''} />}
      </SimpleGrid>
    </Paper>
  );
}

export function SampleBrowser({ runs, catalog }: { runs: LabelledColumn[]; catalog: readonly MetricInfo[] | undefined }) {
  const { t } = useTranslation();
  const text = useEvalText(catalog);
  const [runId, setRunId] = useState<string | null>(null);
  const run = runs.find((item) => item.id === runId) ?? runs[0];
  const withSamples = (run?.results ?? []).filter((result) => result.samples > 0);
  const [resultName, setResultName] = useState<string | null>(null);
  const result = withSamples.find((item) => item.name === resultName) ?? withSamples[0];
  const [sort, setSort] = useState<SampleQuery['sort']>('index');
  const [metric, setMetric] = useState<string | null>(null);
  const [search, setSearch] = useState('');
  const [q] = useDebouncedValue(search, 300);
  const [paging, setPaging] = useState({ key: '', page: 1 });
  // the metrics rows can be sorted by: the per-sample score names of the rows last shown
  const [scoreNames, setScoreNames] = useState<string[]>([]);
  const sortable = useMemo(() => sortableMetrics(scoreNames, catalog), [scoreNames, catalog]);
  const sortMetric = metric && sortable.includes(metric) ? metric : sortable[0];
  // a new run, result, order or search starts at the first page
  const pagingKey = [run?.id, result?.name, sort, sortMetric, q].join('|');
  const page = paging.key === pagingKey ? paging.page : 1;
  const query: SampleQuery = {
    result: result?.name ?? '',
    sort: sortMetric ? sort : 'index',
    metric: sort === 'index' ? undefined : sortMetric,
    q: q.trim() || undefined,
    offset: (page - 1) * PAGE_SIZE,
    limit: PAGE_SIZE,
  };
  const samples = useEvalSamples(run?.id ?? null, query);
  const items = samples.data?.items;
  const names = [...new Set((items ?? []).flatMap((item) => Object.keys(item.scores ?? {})))];
  if (names.length && names.join() !== scoreNames.join()) setScoreNames(names);

  if (!run) return <Text c="dimmed">{t('evaluate.pickRuns')}</Text>;
  const total = samples.data?.total ?? 0;
  return (
    <Stack gap="sm" data-testid="sample-browser">
      <Group wrap="wrap" gap="sm" align="flex-end">
        {runs.length > 1 && (
          <Select
            label={t('evaluate.run')}
            data={runs.map((item) => ({ value: item.id, label: item.label }))}
            value={run.id}
            onChange={(value) => {
              setRunId(value);
              setResultName(null);
            }}
            allowDeselect={false}
            w={240}
            data-testid="samples-run"
          />
        )}
        {withSamples.length > 1 && (
          <Select
            label={t('evaluate.result')}
            data={withSamples.map((item) => item.name)}
            value={result?.name ?? null}
            onChange={(value) => {
              setResultName(value);
            }}
            allowDeselect={false}
            w={200}
            data-testid="samples-result"
          />
        )}
        <SegmentedControl
          data={(['index', 'worst', 'best'] as const).map((value) => ({ value, label: t(`evaluate.sort.${value}`), disabled: value !== 'index' && !sortMetric }))}
          value={sort}
          onChange={(value) => setSort(value as SampleQuery['sort'])}
          data-testid="samples-sort"
        />
        {sort !== 'index' && sortable.length > 0 && (
          <Select
            label={t('evaluate.byMetric')}
            data={sortable.map((name) => ({ value: name, label: text.metric(name).title }))}
            value={sortMetric ?? null}
            onChange={setMetric}
            allowDeselect={false}
            w={180}
            data-testid="samples-metric"
          />
        )}
        <TextInput
          leftSection={<IconSearch size={14} />}
          placeholder={t('evaluate.search')}
          value={search}
          onChange={(event) => setSearch(event.currentTarget.value)}
          w={{ base: '100%', sm: 240 }}
          data-testid="samples-search"
        />
      </Group>
      <ErrorAlert error={samples.error} />
      {!result ? (
        <Text c="dimmed">{t('evaluate.noSamples')}</Text>
      ) : (
        <>
          <Text size="xs" c="dimmed" data-testid="samples-total" data-total={total}>
            {t('evaluate.sampleCount', { count: total })}
          </Text>
          {(items ?? []).map((sample) => (
            <Sample key={sample.index} sample={sample} metricTitle={(name) => text.metric(name).title} />
          ))}
          {total > PAGE_SIZE && <Pagination total={Math.ceil(total / PAGE_SIZE)} value={page} onChange={(value) => setPaging({ key: pagingKey, page: value })} size="sm" data-testid="samples-pages" />}
        </>
      )}
    </Stack>
  );
}
