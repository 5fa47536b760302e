// One eval job's results on its run page: the figures of each evaluation it made and its samples. Reloaded
// when the stream brings a new eval_result event or the job's status changes (``version``).
import { Anchor, Stack, Text, Title } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { ErrorAlert } from '../components/Page';
import { EvalFigures } from './EvalFigures';
import { useEvalCatalog, useEvalResults } from './queries';
import { SampleBrowser } from './SampleBrowser';

export function EvalResults({ jobId, version }: { jobId: string; version: string | number }) {
  const { t } = useTranslation();
  const catalog = useEvalCatalog();
  const results = useEvalResults(jobId, version);
  const error = results.error ?? catalog.error;
  if (!results.data) return error ? <ErrorAlert error={error} /> : <Text c="dimmed">{t('common.loading')}</Text>;
  if (!results.data.length) return <Text c="dimmed" data-testid="eval-results-none">{t('evaluate.noResultsYet')}</Text>;
  const columns = [{ id: jobId, label: t('evaluate.thisRun'), results: results.data }];
  return (
    <Stack gap="md" data-testid="eval-results">
      <ErrorAlert error={error} />
      <EvalFigures columns={columns} catalog={catalog.data?.metrics} />
      <Anchor component={Link} to={`/evaluate?runs=${jobId}`} size="sm" data-testid="eval-compare-link">
        {t('evaluate.compareOthers')}
      </Anchor>
      <Title order={5}>{t('evaluate.tabs.samples')}</Title>
      <SampleBrowser runs={columns} catalog={catalog.data?.metrics} />
    </Stack>
  );
}
