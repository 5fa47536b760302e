// A table of figures across eval runs: a row per (result, metric) or (result, subject), a column per run,
// the best value of each row highlighted when the metric has a direction.
import { Badge, Group, Table, Text, Tooltip } from '@mantine/core';
import { IconArrowDown, IconArrowUp } from '@tabler/icons-react';
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { bestIndexes, type FigureRow, formatFigure } from './metrics';

export interface FigureTableProps {
  /** run labels, one per column */
  columns: ReactNode[];
  rows: FigureRow[];
  /** the row's label cell */
  label: (row: FigureRow) => ReactNode;
  /** which way is better for the row; null: neither (nothing highlighted) */
  direction: (row: FigureRow) => boolean | null | undefined;
  testId?: string;
  nameHeader: string;
}

export function DirectionIcon({ higher }: { higher: boolean | null | undefined }) {
  const { t } = useTranslation();
  if (higher === null || higher === undefined) return null;
  return (
    <Tooltip label={higher ? t('evaluate.higherBetter') : t('evaluate.lowerBetter')}>
      {higher ? <IconArrowUp size={12} aria-label={t('evaluate.higherBetter')} /> : <IconArrowDown size={12} aria-label={t('evaluate.lowerBetter')} />}
    </Tooltip>
  );
}

export function FigureTable({ columns, rows, label, direction, testId, nameHeader }: FigureTableProps) {
  const { t } = useTranslation();
  const results = [...new Set(rows.map((row) => row.result))];
  return (
    <Table.ScrollContainer minWidth={360 + 120 * columns.length}>
      <Table striped withTableBorder data-testid={testId}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>{nameHeader}</Table.Th>
            {columns.map((column, index) => (
              <Table.Th key={index} ta="right">
                {column}
              </Table.Th>
            ))}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {results.map((result) => [
            <Table.Tr key={`${result}-head`}>
                <Table.Td colSpan={columns.length + 1} bg="var(--mantine-color-default-hover)">
                  <Text size="xs" fw={700} c="dimmed" data-testid="figure-result">
                    {result}
                  </Text>
                </Table.Td>
              </Table.Tr>,
            ...rows
              .filter((row) => row.result === result)
              .map((row) => {
                const best = bestIndexes(row.values, direction(row));
                return (
                  <Table.Tr key={`${result}/${row.name}`} data-testid="figure-row" data-name={row.name} data-result={row.result}>
                    <Table.Td>{label(row)}</Table.Td>
                    {row.values.map((value, index) => (
                      <Table.Td key={index} ta="right" data-best={best.has(index) || undefined} data-value={value ?? ''}>
                        {best.has(index) ? (
                          <Group gap={4} justify="flex-end" wrap="nowrap">
                            <Badge size="xs" color="green" variant="light">
                              {t('evaluate.best')}
                            </Badge>
                            <Text size="sm" fw={700} c="green.8">
                              {formatFigure(value)}
                            </Text>
                          </Group>
                        ) : (
                          <Text size="sm">{formatFigure(value)}</Text>
                        )}
                      </Table.Td>
                    ))}
                  </Table.Tr>
                );
              }),
          ])}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
