// Export: merge a run's adapter (or several) into its base model and write it as safetensors, GGUF, ONNX or
// GPTQ, with the expected size shown before starting; then follow the export live and use its files: download,
// read the Modelfile and model card, chat with a served one, deploy it, delete what is not needed.
import { Badge, Tabs, Text } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useSearchParams } from 'react-router';
import { ErrorAlert, Page } from '../components/Page';
import { ExportFormView } from '../export/ExportFormView';
import { ExportList } from '../export/ExportList';
import { useExportCatalog, useExports } from '../export/queries';
import { useProjectId } from '../project/ProjectContext';

export function Export() {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const queryClient = useQueryClient();
  const catalog = useExportCatalog();
  const exports = useExports(projectId);
  const [params, setParams] = useSearchParams();
  const [highlight, setHighlight] = useState<string | null>(null);
  // a link that names a model starts on the form; else the list, once there is something in it
  const fallback = params.get('model') || params.get('job') || (exports.data && exports.data.length === 0) ? 'new' : 'list';
  const tab = params.get('tab') ?? fallback;
  const setTab = (value: string | null) => {
    const next = new URLSearchParams(params);
    next.set('tab', value ?? 'list');
    setParams(next, { replace: true });
  };
  const count = exports.data?.length ?? 0;
  return (
    <Page title={<span data-testid="export-title">{t('nav.export')}</span>}>
      <Text size="sm" c="dimmed">
        {t('exports.intro')}
      </Text>
      <ErrorAlert error={catalog.error} />
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="new" data-testid="tab-export-new">
            {t('exports.newExport')}
          </Tabs.Tab>
          <Tabs.Tab value="list" data-testid="tab-export-list" rightSection={count ? <Badge size="xs" variant="light">{count}</Badge> : undefined}>
            {t('exports.list')}
          </Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="new" pt="md">
          {catalog.data ? (
            <ExportFormView
              catalog={catalog.data}
              onStarted={(job) => {
                void queryClient.invalidateQueries({ queryKey: ['exports', projectId] });
                setHighlight(job.id);
                notifications.show({ message: t('exports.started', { name: job.name || job.id.slice(0, 8) }) });
                setTab('list');
              }}
            />
          ) : (
            !catalog.error && <Text c="dimmed">{t('common.loading')}</Text>
          )}
        </Tabs.Panel>
        <Tabs.Panel value="list" pt="md">
          <ExportList projectId={projectId} highlight={highlight} />
        </Tabs.Panel>
      </Tabs>
    </Page>
  );
}
