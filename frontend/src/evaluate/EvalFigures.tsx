// The figures of one or more eval runs: the metric table (best per metric highlighted by the catalog's
// direction) and, for benchmarks, the breakdown per subject and per category.
import { SegmentedControl, Stack, Text, Title, Tooltip } from '@mantine/core';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useEvalText } from '../i18n/evalText';
import { DirectionIcon, FigureTable } from './FigureTable';
import { breakdownGroups, breakdownRows, metricIndex, metricRows, type ResultColumn } from './metrics';
import type { MetricInfo } from './queries';

export interface LabelledColumn extends ResultColumn {
  label: string;
}

export function EvalFigures({ columns, catalog }: { columns: LabelledColumn[]; catalog: readonly MetricInfo[] | undefined }) {
  const { t } = useTranslation();
  const text = useEvalText(catalog);
  const index = metricIndex(catalog);
  const rows = metricRows(columns, catalog);
  const groups = breakdownGroups(columns);
  const [picked, setGroup] = useState<string | null>(null);
  const group = picked && groups.includes(picked) ? picked : groups[0];
  if (!rows.length) return <Text c="dimmed">{t('evaluate.noResults')}</Text>;
  return (
    <Stack gap="md">
      <FigureTable
        testId="metric-table"
        nameHeader={t('evaluate.metric')}
        columns={columns.map((column) => column.label)}
        rows={rows}
        direction={(row) => index.get(row.name)?.higher_is_better}
        label={(row) => {
          const info = index.get(row.name);
          const { title, summary } = text.metric(row.name);
          return (
            <Tooltip label={summary} disabled={!summary} multiline w={280}>
              <Text size="sm" span>
                {title}
                {info?.unit ? <Text span size="xs" c="dimmed">{` (${info.unit}) `}</Text> : ' '}
                <DirectionIcon higher={info?.higher_is_better} />
              </Text>
            </Tooltip>
          );
        }}
      />
      {group && (
        <Stack gap="xs" data-testid="breakdown">
          <Title order={5}>{t('evaluate.breakdown')}</Title>
          {groups.length > 1 && (
            <SegmentedControl
              size="xs"
              w="fit-content"
              data={groups.map((name) => ({ value: name, label: t(`evaluate.groups.${name}`, { defaultValue: name }) }))}
              value={group}
              onChange={setGroup}
              data-testid="breakdown-group"
            />
          )}
          <FigureTable
            testId="breakdown-table"
            nameHeader={t(`evaluate.groups.${group}`, { defaultValue: group })}
            columns={columns.map((column) => column.label)}
            rows={breakdownRows(columns, group)}
            // a breakdown holds accuracies: higher is better
            direction={() => index.get('accuracy')?.higher_is_better ?? true}
            label={(row) => <Text size="sm">{row.name}</Text>}
          />
        </Stack>
      )}
    </Stack>
  );
}
