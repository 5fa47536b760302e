// What the run screen shows, derived from the job's events: metric points per step, progress, log tail.
import type { JobEvent } from './jobStream';

export interface MetricPoint {
  step: number;
  loss?: number;
  lr?: number;
  grad_norm?: number;
  eval_loss?: number;
  [metric: string]: number | undefined;
}

export interface Progress {
  step: number;
  totalSteps: number;
  epoch: number;
  elapsedSeconds: number;
  etaSeconds: number | null;
}

function numberOr(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** One point per step (a later attempt's value for a step replaces the earlier one), sorted by step. */
export function metricPoints(events: JobEvent[]): MetricPoint[] {
  const bySteps = new Map<number, MetricPoint>();
  const at = (step: number) => {
    let point = bySteps.get(step);
    if (!point) bySteps.set(step, (point = { step }));
    return point;
  };
  for (const event of events) {
    const step = numberOr(event.step);
    if (step === undefined) continue;
    if (event.type === 'progress') {
      const point = at(step);
      for (const key of ['loss', 'lr', 'grad_norm'] as const) {
        const value = numberOr(event[key]);
        if (value !== undefined) point[key] = value;
      }
      // the stage's own metrics (rewards/chosen, kl, reward ...)
      if (typeof event.metrics === 'object' && event.metrics !== null) {
        for (const [key, value] of Object.entries(event.metrics as Record<string, unknown>)) {
          const number = numberOr(value);
          if (number !== undefined) point[key] = number;
        }
      }
    } else if (event.type === 'eval' && typeof event.metrics === 'object' && event.metrics !== null) {
      const point = at(step);
      for (const [key, value] of Object.entries(event.metrics as Record<string, unknown>)) {
        const number = numberOr(value);
        if (number !== undefined) point[key] = number;
      }
    }
  }
  return [...bySteps.values()].sort((a, b) => a.step - b.step);
}

export function latestProgress(events: JobEvent[]): Progress | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i];
    if (event.type === 'progress') {
      return {
        step: numberOr(event.step) ?? 0,
        totalSteps: numberOr(event.total_steps) ?? 0,
        epoch: numberOr(event.epoch) ?? 0,
        elapsedSeconds: numberOr(event.elapsed_seconds) ?? 0,
        etaSeconds: numberOr(event.eta_seconds) ?? null,
      };
    }
  }
  return null;
}

/** The newest best_checkpoint event: the best checkpoint so far (step, metric, value). */
export function bestCheckpoint(events: JobEvent[]): { step: number; metric: string; value: number | undefined } | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i];
    const step = numberOr(event.step);
    if (event.type === 'best_checkpoint' && step !== undefined) return { step, metric: String(event.metric ?? ''), value: numberOr(event.value) };
  }
  return null;
}

/** Whether the run's finished event says early stopping ended training. */
export function stoppedEarly(events: JobEvent[]): boolean {
  return events.some((event) => event.type === 'finished' && event.stopped_early === true);
}

function figures(metrics: unknown): string {
  if (typeof metrics !== 'object' || metrics === null) return '';
  return Object.entries(metrics as Record<string, unknown>)
    .filter(([, value]) => typeof value === 'number')
    .map(([key, value]) => `${key}=${Number((value as number).toPrecision(4))}`)
    .join(' ');
}

/** Human-readable lines for the events that carry text (logs, status changes, checkpoints, the end). */
export function eventLines(events: JobEvent[]): string[] {
  const lines: string[] = [];
  for (const event of events) {
    const time = typeof event.time === 'string' ? event.time.slice(11, 19) : '';
    if (event.type === 'log') lines.push(`${time} ${String(event.level ?? 'info').toUpperCase()} ${String(event.message ?? '')}`);
    else if (event.type === 'status') lines.push(`${time} status: ${String(event.status)}${event.message ? ` (${String(event.message)})` : ''}`);
    else if (event.type === 'started') lines.push(`${time} started: ${String(event.total_steps)} steps on ${String(event.device)}`);
    else if (event.type === 'checkpoint') lines.push(`${time} checkpoint at step ${String(event.step)}`);
    else if (event.type === 'best_checkpoint') lines.push(`${time} best checkpoint: step ${String(event.step)} (${String(event.metric)} ${String(event.value)})`);
    else if (event.type === 'eval_result') lines.push(`${time} ${String(event.kind)} result ${String(event.name)}: ${figures(event.metrics)}`);
    else if (event.type === 'artifact') {
      const kind = [event.format, event.quantization].filter((part) => typeof part === 'string' && part).join(' ');
      lines.push(`${time} wrote ${String(event.name)} (${kind}, ${String(event.size_bytes)} bytes)${event.checks ? ` ${figures(event.checks)}` : ''}`.trimEnd());
    }
    else if (event.type === 'finished') {
      lines.push(`${time} finished: ${String(event.outcome)} at step ${String(event.step)}${event.stopped_early ? ' (stopped early)' : ''}`);
    }
    else if (event.type === 'failed') lines.push(`${time} failed (${String(event.code)}): ${String(event.message)}`);
  }
  return lines;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}h ${String(m).padStart(2, '0')}m` : m ? `${m}m ${String(s).padStart(2, '0')}s` : `${s}s`;
}
