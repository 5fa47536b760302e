// The expected size of what the form would write (POST /api/exports/estimate), asked again as the choices
// change: a line per file (format and quantization) and the total, before anything starts.
import { Group, Loader, Paper, Stack, Table, Text } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { errorText } from '../api/errors';
import { formatBytes, formatParams } from '../components/Page';
import type { EstimateRequest } from './queries';
import { useEstimate } from './queries';

export function SizeEstimate({ request, formatTitle }: { request: EstimateRequest | null; formatTitle: (format: string) => string }) {
  const { t } = useTranslation();
  const estimate = useEstimate(request);
  const data = request ? estimate.data : undefined;
  return (
    <Paper withBorder radius="md" p="md" data-testid="export-estimate" data-state={!request ? 'idle' : estimate.isFetching ? 'loading' : estimate.error ? 'error' : 'ready'}>
      <Group justify="space-between" mb="xs" wrap="nowrap">
        <Text fw={600}>{t('exports.estimate')}</Text>
        {request && estimate.isFetching && <Loader size="xs" />}
      </Group>
      {!request ? (
        <Text size="sm" c="dimmed">
          {t('exports.estimateHint')}
        </Text>
      ) : estimate.error ? (
        <Text size="sm" c="red" data-testid="export-estimate-error">
          {errorText(estimate.error)}
        </Text>
      ) : !data ? (
        <Text size="sm" c="dimmed">
          {t('exports.estimating')}
        </Text>
      ) : (
        <Stack gap="xs" style={{ opacity: estimate.isPlaceholderData ? 0.6 : 1 }}>
          <Group justify="space-between" align="baseline">
            <Text size="xl" fw={700} data-testid="export-estimate-total" data-bytes={data.total_bytes}>
              {formatBytes(data.total_bytes)}
            </Text>
            <Text size="xs" c="dimmed">
              {t('exports.parameters', { value: formatParams(data.parameters) })}
            </Text>
          </Group>
          <Table withRowBorders={false} verticalSpacing={2} fz="sm">
            <Table.Tbody>
              {data.items.map((item) => (
                <Table.Tr key={`${item.format}-${item.quantization ?? ''}`} data-testid="export-estimate-item" data-format={item.format} data-quantization={item.quantization ?? ''}>
                  <Table.Td pl={0}>
                    {formatTitle(item.format)}
                    {item.quantization && (
                      <Text span size="sm" c="dimmed">
                        {` · ${item.quantization}`}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td pr={0} ta="right" style={{ whiteSpace: 'nowrap' }}>
                    {formatBytes(item.size_bytes)}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          <Text size="xs" c="dimmed">
            {t('exports.estimateNote')}
          </Text>
        </Stack>
      )}
    </Paper>
  );
}
