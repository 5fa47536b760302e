// Datasets of the project; a new one is created and its first version uploaded in one step.
import { Anchor, Button, Group, Modal, Paper, Stack, Table, Text, Textarea, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router';
import { api, call } from '../api/client';
import { byField, type ApiError } from '../api/errors';
import { useDatasets } from '../api/queries';
import { ErrorAlert, formatTime, Page } from '../components/Page';
import { uploadVersion } from '../datasets/upload';
import { EMPTY_UPLOAD, UploadFields, type UploadValues } from '../datasets/UploadFields';
import { useProjectId } from '../project/ProjectContext';
import { StageBadges } from '../stages/StageBadges';

function NewDataset({ projectId }: { projectId: string }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [upload, setUpload] = useState<UploadValues>(EMPTY_UPLOAD);
  const [createdId, setCreatedId] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: async () => {
      let datasetId = createdId;
      if (!datasetId) {
        const dataset = await call(
          api.POST('/api/projects/{project_id}/datasets', {
            params: { path: { project_id: projectId } },
            body: { name, description: description || null },
          }),
        );
        datasetId = dataset.id;
        setCreatedId(datasetId);
        void queryClient.invalidateQueries({ queryKey: ['datasets', projectId] });
      }
      await uploadVersion({ datasetId, files: upload.files, stage: upload.stage, entry: upload.entry, entryName: upload.entryName ?? undefined });
      return datasetId;
    },
    onSuccess: (datasetId) => {
      void queryClient.invalidateQueries({ queryKey: ['datasets', projectId] });
      navigate(`/datasets/${datasetId}`);
    },
  });
  const fieldErrors = byField((create.error as ApiError | null)?.problems ?? []);
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate();
      }}
    >
      <Stack>
        <TextInput
          label={t('datasets.name')}
          description={t('datasets.nameHint')}
          required
          disabled={createdId !== null}
          value={name}
          onChange={(e) => setName(e.currentTarget.value)}
          error={fieldErrors.name?.join('; ')}
          data-testid="dataset-name"
        />
        <Textarea label={t('datasets.description')} value={description} onChange={(e) => setDescription(e.currentTarget.value)} disabled={createdId !== null} autosize minRows={1} />
        <UploadFields value={upload} onChange={setUpload} />
        <ErrorAlert error={create.error} />
        {createdId && create.error && <Text size="sm">{t('datasets.createdRetry')}</Text>}
        <Group justify="flex-end">
          <Button type="submit" loading={create.isPending} disabled={!upload.files.length} data-testid="dataset-upload">
            {t('datasets.upload')}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

export function Datasets() {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const datasets = useDatasets(projectId);
  const [adding, setAdding] = useState(false);
  return (
    <Page
      title={t('nav.datasets')}
      actions={
        <Button onClick={() => setAdding(true)} data-testid="dataset-add">
          {t('datasets.new')}
        </Button>
      }
    >
      <ErrorAlert error={datasets.error} />
      <Paper withBorder radius="md">
        <Table.ScrollContainer minWidth={640}>
          <Table striped highlightOnHover data-testid="datasets-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('datasets.name')}</Table.Th>
                <Table.Th>{t('datasets.latest')}</Table.Th>
                <Table.Th>{t('datasets.feeds')}</Table.Th>
                <Table.Th>{t('datasets.description')}</Table.Th>
                <Table.Th>{t('run.created')}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(datasets.data ?? []).map((dataset) => (
                <Table.Tr key={dataset.id}>
                  <Table.Td>
                    <Anchor component={Link} to={`/datasets/${dataset.id}`} fw={600}>
                      {dataset.name}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>{dataset.latest_version ?? '–'}</Table.Td>
                  <Table.Td>
                    <StageBadges dataset={dataset} testId={`dataset-stages-${dataset.name}`} />
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={1}>
                      {dataset.description ?? ''}
                    </Text>
                  </Table.Td>
                  <Table.Td>{formatTime(dataset.created_at)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        {datasets.data?.length === 0 && (
          <Text c="dimmed" p="md">
            {t('datasets.none')}
          </Text>
        )}
      </Paper>
      <Modal opened={adding} onClose={() => setAdding(false)} title={<Title order={4}>{t('datasets.new')}</Title>} size="lg">
        <NewDataset projectId={projectId} />
      </Modal>
    </Page>
  );
}
