// A line chart of one metric for one or more runs, over steps; optional smoothing keeps the raw curve faint.
import { Paper, Text } from '@mantine/core';
import { useMemo } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { smooth } from './smoothing';

export interface ChartSeries {
  key: string;
  name: string;
  points: { step: number; value: number | null | undefined }[];
  /** this series' smoothing, instead of the chart's */
  smoothing?: number;
}

export interface MetricChartProps {
  title: string;
  series: ChartSeries[];
  smoothing?: number;
  height?: number;
  /** a fixed width (tests); otherwise the chart fills its container */
  width?: number;
  emptyText?: string;
  testId?: string;
}

export const PALETTE = ['#4c6ef5', '#f76707', '#2f9e44', '#e64980', '#1098ad', '#7048e8', '#f59f00', '#868e96'];

type Row = { step: number } & Record<string, number | null>;

export function chartRows(series: ChartSeries[], smoothing: number): Row[] {
  const rows = new Map<number, Row>();
  for (const item of series) {
    const points = item.points.filter((p) => p.value !== null && p.value !== undefined && Number.isFinite(p.value));
    const smoothed = smooth(points.map((p) => p.value), item.smoothing ?? smoothing);
    points.forEach((point, index) => {
      let row = rows.get(point.step);
      if (!row) rows.set(point.step, (row = { step: point.step } as Row));
      row[item.key] = smoothed[index];
      row[`${item.key}__raw`] = point.value ?? null;
    });
  }
  return [...rows.values()].sort((a, b) => a.step - b.step);
}

function formatValue(value: number): string {
  if (value === 0) return '0';
  const size = Math.abs(value);
  return size < 1e-3 || size >= 1e5 ? value.toExponential(2) : Number(value.toPrecision(4)).toString();
}

export function MetricChart({ title, series, smoothing = 0, height = 220, width, emptyText, testId }: MetricChartProps) {
  const rows = useMemo(() => chartRows(series, smoothing), [series, smoothing]);
  const visible = series.filter((item) => rows.some((row) => row[item.key] !== undefined && row[item.key] !== null));
  const smoothed = (item: ChartSeries) => (item.smoothing ?? smoothing) > 0;
  // a series with few points among many steps (eval metrics) shows its points, or one point would not show
  const sparse = (item: ChartSeries) => {
    const count = rows.filter((row) => row[item.key] !== undefined && row[item.key] !== null).length;
    return count < 3 || count * 4 < rows.length;
  };
  const chart = (
    <LineChart data={rows} width={width} height={height} margin={{ top: 8, right: 16, bottom: 4, left: 0 }}>
      <CartesianGrid strokeDasharray="3 3" stroke="var(--mantine-color-default-border)" />
      <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} fontSize={11} />
      <YAxis width={56} fontSize={11} tickFormatter={formatValue} domain={['auto', 'auto']} tickCount={5} />
      <Tooltip formatter={(value) => (typeof value === 'number' ? formatValue(value) : String(value))} labelFormatter={(step) => `step ${step}`} />
      {visible.length > 1 && <Legend wrapperStyle={{ fontSize: 12 }} />}
      {visible.filter(smoothed).map((item) => (
        <Line
          key={`${item.key}__raw`}
          dataKey={`${item.key}__raw`}
          stroke={PALETTE[series.indexOf(item) % PALETTE.length]}
          strokeOpacity={0.25}
          dot={false}
          isAnimationActive={false}
          connectNulls
          legendType="none"
          name={`${item.name} (raw)`}
        />
      ))}
      {visible.map((item) => (
        <Line
          key={item.key}
          dataKey={item.key}
          name={item.name}
          stroke={PALETTE[series.indexOf(item) % PALETTE.length]}
          strokeWidth={2}
          dot={sparse(item)}
          isAnimationActive={false}
          connectNulls
        />
      ))}
    </LineChart>
  );
  return (
    <Paper withBorder p="sm" radius="md" data-testid={testId} data-series={visible.map((item) => item.key).join(',')} data-names={visible.map((item) => item.name).join('|')} data-points={rows.length} data-last-step={rows.length ? rows[rows.length - 1].step : 0}>
      <Text size="sm" fw={600} mb={4}>
        {title}
      </Text>
      {visible.length === 0 ? (
        <Text c="dimmed" size="sm" h={height} ta="center" pt={height / 2 - 12}>
          {emptyText ?? '–'}
        </Text>
      ) : width ? (
        chart
      ) : (
        <ResponsiveContainer width="100%" height={height}>
          {chart}
        </ResponsiveContainer>
      )}
    </Paper>
  );
}
