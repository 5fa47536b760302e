// A job's progress bar with step counts and ETA, from its latest progress event.
import { Group, Progress, Stack, Text } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { formatDuration } from '../live/series';

export interface ProgressValues {
  step?: number;
  totalSteps?: number;
  etaSeconds?: number | null;
  elapsedSeconds?: number | null;
}

export function progressOf(progress: Record<string, unknown> | undefined | null): ProgressValues {
  const p = progress ?? {};
  const n = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return { step: n(p.step), totalSteps: n(p.total_steps), etaSeconds: n(p.eta_seconds) ?? null, elapsedSeconds: n(p.elapsed_seconds) ?? null };
}

export function JobProgress({ values, status, size = 'md' }: { values: ProgressValues; status: string; size?: 'sm' | 'md' | 'lg' }) {
  const { t } = useTranslation();
  const { step = 0, totalSteps = 0, etaSeconds, elapsedSeconds } = values;
  const percent = status === 'succeeded' ? 100 : totalSteps > 0 ? Math.min(100, (100 * step) / totalSteps) : 0;
  return (
    <Stack gap={4} data-testid="job-progress" data-step={step} data-total={totalSteps}>
      <Progress
        value={percent}
        size={size}
        animated={status === 'running'}
        color={status === 'failed' ? 'red' : status === 'cancelled' ? 'orange' : status === 'succeeded' ? 'green' : 'blue'}
      />
      <Group gap="md" wrap="wrap">
        <Text size="xs" c="dimmed">
          {totalSteps > 0 ? t('run.steps', { step, total: totalSteps }) : status === 'queued' ? t('run.waiting') : t('run.noProgress')}
          {totalSteps > 0 && ` · ${percent.toFixed(0)}%`}
        </Text>
        {status === 'running' && etaSeconds !== null && etaSeconds !== undefined && (
          <Text size="xs" c="dimmed" data-testid="eta">
            {t('run.eta', { time: formatDuration(etaSeconds) })}
          </Text>
        )}
        {elapsedSeconds !== null && elapsedSeconds !== undefined && (
          <Text size="xs" c="dimmed">
            {t('run.elapsed', { time: formatDuration(elapsedSeconds) })}
          </Text>
        )}
      </Group>
    </Stack>
  );
}
