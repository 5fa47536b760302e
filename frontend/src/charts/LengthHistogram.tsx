// Token-length histogram of a dataset preview: buckets (previous bound, bound] from the server's stats.
import { Paper, Text } from '@mantine/core';
import { Bar, BarChart, CartesianGrid, Cell, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';

export interface LengthHistogramProps {
  buckets: [number, number][];
  cutoff: number;
  title: string;
  countLabel: string;
  width?: number;
  height?: number;
}

export function bucketLabels(buckets: [number, number][]): string[] {
  return buckets.map(([bound], index) => (index === 0 ? `≤${bound}` : `${buckets[index - 1][0] + 1}–${bound}`));
}

export function LengthHistogram({ buckets, cutoff, title, countLabel, width, height = 200 }: LengthHistogramProps) {
  const labels = bucketLabels(buckets);
  const data = buckets.map(([bound, count], index) => ({ label: labels[index], count, over: bound > cutoff }));
  const chart = (
    <BarChart data={data} width={width} height={height} margin={{ top: 8, right: 8, bottom: 4, left: 0 }}>
      <CartesianGrid strokeDasharray="3 3" stroke="var(--mantine-color-default-border)" />
      <XAxis dataKey="label" fontSize={10} interval={0} angle={-30} textAnchor="end" height={44} />
      <YAxis allowDecimals={false} width={40} fontSize={11} />
      <Tooltip formatter={(value) => [String(value), countLabel]} />
      <Bar dataKey="count" isAnimationActive={false}>
        {data.map((item) => (
          <Cell key={item.label} fill={item.over ? '#fa5252' : '#4c6ef5'} />
        ))}
      </Bar>
    </BarChart>
  );
  return (
    <Paper withBorder p="sm" radius="md" data-testid="length-histogram">
      <Text size="sm" fw={600} mb={4}>
        {title}
      </Text>
      {width ? chart : <ResponsiveContainer width="100%" height={height}>{chart}</ResponsiveContainer>}
    </Paper>
  );
}
