// Two eval runs on the same samples, answer by answer: which answers changed, and whether B did better, worse
// or the same as A by a per-sample metric (GET /api/evaluations/diff; the server pairs rows by index).
import { Badge, Group, Pagination, Paper, Select, SimpleGrid, Stack, Switch, Text } from '@mantine/core';
import { IconArrowRight } from '@tabler/icons-react';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ErrorAlert } from '../components/Page';
import { useEvalText } from '../i18n/evalText';
import type { LabelledColumn } from './EvalFigures';
import { formatFigure, sortableMetrics } from './metrics';
import { type EvalDiffItem, type MetricInfo, useEvalDiff, useEvalSamples } from './queries';
import { PAGE_SIZE, TextBlock } from './SampleBrowser';

const CHANGE_COLORS: Record<EvalDiffItem['change'], string> = { better: 'green', worse: 'red', same: 'gray' };

function DiffItem({ item, labels }: { item: EvalDiffItem; labels: [string, string] }) {
  const { t } = useTranslation();
  const changed = item.predict_a !== item.predict_b;
  return (
    <Paper withBorder radius="md" p="sm" data-testid="diff-item" data-change={item.change} data-changed={changed}>
      <Group gap="xs" mb="xs">
        <Text size="sm" fw={700}>
          #{item.index}
        </Text>
        <Badge color={CHANGE_COLORS[item.change]} size="sm">
          {t(`evaluate.change.${item.change}`)}
        </Badge>
        {!changed && (
          <Badge variant="outline" color="gray" size="sm">
            {t('evaluate.sameText')}
          </Badge>
        )}
        <Text size="xs" c="dimmed">
          {formatFigure(item.score_a)} <IconArrowRight size={10} /> {formatFigure(item.score_b)}
        </Text>
      </Group>
      <SimpleGrid cols={{ base: 1, md: 2, lg: 4 }} spacing="sm">
        <TextBlock title={t('evaluate.prompt')} text={item.prompt} muted />
        <TextBlock title={t('evaluate.label')} text={item.label} />
        <TextBlock title={`A · ${labels[0]}`} text={item.predict_a} testId="diff-a" />
        <TextBlock title={`B · ${labels[1]}`} text={item.predict_b} testId="diff-b" />
      </SimpleGrid>
    </Paper>
  );
}

export function OutputDiff({ runs, catalog }: { runs: LabelledColumn[]; catalog: readonly MetricInfo[] | undefined }) {
  const { t } = useTranslation();
  const text = useEvalText(catalog);
  const [aId, setA] = useState<string | null>(null);
  const [bId, setB] = useState<string | null>(null);
  const a = runs.find((run) => run.id === aId) ?? runs[0];
  const b = runs.find((run) => run.id === bId && run.id !== a?.id) ?? runs.find((run) => run.id !== a?.id);
  // results both runs have samples for (the same dataset or benchmark)
  const common = (a?.results ?? []).filter((result) => result.samples > 0 && b?.results.some((other) => other.name === result.name && other.samples > 0));
  const [resultName, setResult] = useState<string | null>(null);
  const result = common.find((item) => item.name === resultName) ?? common[0];
  // the per-sample score names, read from A's first row
  const first = useEvalSamples(result ? (a?.id ?? null) : null, { result: result?.name ?? '', sort: 'index', offset: 0, limit: 1 });
  const metrics = useMemo(() => sortableMetrics(Object.keys(first.data?.items[0]?.scores ?? {}), catalog), [first.data, catalog]);
  const [metricName, setMetric] = useState<string | null>(null);
  const metric = metricName && metrics.includes(metricName) ? metricName : metrics[0];
  const [changedOnly, setChangedOnly] = useState(true);
  const [paging, setPaging] = useState({ key: '', page: 1 });
  const pagingKey = [a?.id, b?.id, result?.name, metric, changedOnly].join('|');
  const page = paging.key === pagingKey ? paging.page : 1;
  const diff = useEvalDiff(
    a && b && result
      ? { a: a.id, b: b.id, result: result.name, metric, changed_only: changedOnly, offset: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE }
      : null,
  );
  if (runs.length < 2 || !a || !b) return <Text c="dimmed">{t('evaluate.diffNeedsTwo')}</Text>;
  const options = runs.map((run) => ({ value: run.id, label: run.label }));
  const data = diff.data;
  return (
    <Stack gap="sm" data-testid="output-diff">
      <Group wrap="wrap" gap="sm" align="flex-end">
        <Select label={t('evaluate.runA')} data={options} value={a.id} onChange={setA} allowDeselect={false} w={220} data-testid="diff-run-a" />
        <Select label={t('evaluate.runB')} data={options.filter((option) => option.value !== a.id)} value={b.id} onChange={setB} allowDeselect={false} w={220} data-testid="diff-run-b" />
        {common.length > 1 && (
          <Select label={t('evaluate.result')} data={common.map((item) => item.name)} value={result?.name ?? null} onChange={setResult} allowDeselect={false} w={200} />
        )}
        {metrics.length > 0 && (
          <Select
            label={t('evaluate.byMetric')}
            data={metrics.map((name) => ({ value: name, label: text.metric(name).title }))}
            value={metric ?? null}
            onChange={setMetric}
            allowDeselect={false}
            w={180}
            data-testid="diff-metric"
          />
        )}
        <Switch label={t('evaluate.changedOnly')} checked={changedOnly} onChange={(event) => setChangedOnly(event.currentTarget.checked)} data-testid="diff-changed-only" />
      </Group>
      <ErrorAlert error={diff.error} />
      {!result ? (
        <Text c="dimmed">{t('evaluate.diffNoCommon')}</Text>
      ) : (
        data && (
          <>
            <Group gap="xs" data-testid="diff-counts" data-better={data.better} data-worse={data.worse} data-same={data.same}>
              <Text size="sm">{t('evaluate.diffSummary', { b: b.label, a: a.label, metric: text.metric(data.metric).title })}</Text>
              <Badge color="green">{t('evaluate.countBetter', { count: data.better })}</Badge>
              <Badge color="red">{t('evaluate.countWorse', { count: data.worse })}</Badge>
              <Badge color="gray">{t('evaluate.countSame', { count: data.same })}</Badge>
            </Group>
            {data.items.length === 0 && <Text c="dimmed">{changedOnly ? t('evaluate.noChanges') : t('evaluate.noSamples')}</Text>}
            {data.items.map((item) => (
              <DiffItem key={item.index} item={item} labels={[a.label, b.label]} />
            ))}
            {data.total > PAGE_SIZE && (
              <Pagination total={Math.ceil(data.total / PAGE_SIZE)} value={page} onChange={(value) => setPaging({ key: pagingKey, page: value })} size="sm" />
            )}
          </>
        )
      )}
    </Stack>
  );
}
