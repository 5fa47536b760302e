import { MantineProvider } from '@mantine/core';
import { render, screen } from '@testing-library/react';
import type { ReactElement } from 'react';
import { describe, expect, it } from 'vitest';
import { metricPoints } from '../live/series';
import { bucketLabels, LengthHistogram } from './LengthHistogram';
import { chartRows, MetricChart } from './MetricChart';
import { smooth } from './smoothing';

const wrap = (ui: ReactElement) => render(<MantineProvider>{ui}</MantineProvider>);

describe('smoothing', () => {
  it('is the identity at weight 0 and a debiased moving average otherwise', () => {
    expect(smooth([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const out = smooth([1, 3], 0.5);
    expect(out[0]).toBeCloseTo(1); // bias-corrected: the first point stays put
    expect(out[1]).toBeCloseTo((0.5 * 0.5 + 0.5 * 3) / (1 - 0.25));
    expect(smooth([2, null, 2], 0.9)).toEqual([2, null, 2]);
  });
});

describe('chart rows', () => {
  it('merges series by step and keeps the raw values beside the smoothed ones', () => {
    const rows = chartRows(
      [
        { key: 'a', name: 'A', points: [{ step: 1, value: 4 }, { step: 2, value: 2 }] },
        { key: 'b', name: 'B', points: [{ step: 2, value: 1 }, { step: 3, value: null }] },
      ],
      0.5,
    );
    expect(rows.map((r) => r.step)).toEqual([1, 2]);
    expect(rows[1].a__raw).toBe(2);
    expect(rows[1].a).toBeCloseTo((0.5 * 0.5 * 4 + 0.5 * 2) / 0.75);
    expect(rows[1].b).toBe(1);
    expect(rows[0].b).toBeUndefined();
  });
});

describe('MetricChart', () => {
  const series = (n: number) => [
    { key: 'loss', name: 'loss', points: Array.from({ length: n }, (_, i) => ({ step: i + 1, value: 3 - i * 0.1 })) },
  ];

  it('draws one curve per run and grows as points arrive', () => {
    const { container, rerender } = wrap(<MetricChart title="Loss" series={series(3)} width={400} height={200} testId="c" />);
    expect(screen.getByTestId('c').dataset.points).toBe('3');
    const curves = container.querySelectorAll('.recharts-line-curve');
    expect(curves).toHaveLength(1);
    const before = curves[0].getAttribute('d') ?? '';
    rerender(
      <MantineProvider>
        <MetricChart title="Loss" series={series(8)} width={400} height={200} testId="c" />
      </MantineProvider>,
    );
    expect(screen.getByTestId('c').dataset.points).toBe('8');
    const after = container.querySelector('.recharts-line-curve')?.getAttribute('d') ?? '';
    expect(after.length).toBeGreaterThan(before.length);
  });

  it('overlays several runs with a legend, and a faint raw curve under each smoothed one', () => {
    const two = [
      { key: 'r0', name: 'run A', points: [{ step: 1, value: 2 }, { step: 2, value: 1 }] },
      { key: 'r1', name: 'run B', points: [{ step: 1, value: 3 }, { step: 2, value: 2 }] },
    ];
    const { container } = wrap(<MetricChart title="Loss" series={two} smoothing={0.5} width={400} height={200} />);
    expect(container.querySelectorAll('.recharts-line-curve')).toHaveLength(4);
    expect(screen.getByText('run A')).toBeInTheDocument();
    expect(screen.getByText('run B')).toBeInTheDocument();
  });

  it('says when there is no data', () => {
    wrap(<MetricChart title="Eval" series={[{ key: 'eval_loss', name: 'eval', points: [{ step: 1, value: undefined }] }]} width={300} emptyText="No data yet" />);
    expect(screen.getByText('No data yet')).toBeInTheDocument();
  });

  it('plots the metrics carried by progress and eval events', () => {
    const points = metricPoints([
      { seq: 1, type: 'progress', step: 10, loss: 2, lr: 1e-4, grad_norm: 0.5 },
      { seq: 2, type: 'eval', step: 10, metrics: { eval_loss: 2.2 } },
      { seq: 3, type: 'progress', step: 20, loss: 1.5 },
      { seq: 4, type: 'log', message: 'hi' },
    ]);
    expect(points).toEqual([
      { step: 10, loss: 2, lr: 1e-4, grad_norm: 0.5, eval_loss: 2.2 },
      { step: 20, loss: 1.5 },
    ]);
  });
});

describe('LengthHistogram', () => {
  it('labels buckets by their bounds and draws a bar per bucket', () => {
    const buckets: [number, number][] = [
      [16, 1],
      [32, 4],
      [64, 2],
      [100, 3],
    ];
    expect(bucketLabels(buckets)).toEqual(['≤16', '17–32', '33–64', '65–100']);
    const { container } = wrap(<LengthHistogram buckets={buckets} cutoff={64} title="Lengths" countLabel="examples" width={400} />);
    expect(container.querySelectorAll('.recharts-bar-rectangle')).toHaveLength(4);
    const fills = [...container.querySelectorAll('.recharts-bar-rectangle path')].map((p) => p.getAttribute('fill'));
    expect(fills).toEqual(['#4c6ef5', '#4c6ef5', '#4c6ef5', '#fa5252']);
  });
});
