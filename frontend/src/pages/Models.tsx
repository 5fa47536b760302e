// Base models: register one (hub id or a server folder) and see its architecture, size and template.
import { Anchor, Badge, Button, Code, Group, Modal, NumberInput, Paper, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, call, type Schemas } from '../api/client';
import { byField, type ApiError } from '../api/errors';
import { useModels } from '../api/queries';
import { ErrorAlert, formatParams, formatTime, Page } from '../components/Page';
import { useProjectId } from '../project/ProjectContext';
import { TEMPLATES } from '../spec/schema';

export const TEMPLATE_OPTIONS = TEMPLATES.map((name) => ({ value: name, label: name }));

function RegisterModel({ projectId, onDone }: { projectId: string; onDone: () => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [name, setName] = useState('');
  const [path, setPath] = useState('');
  const [template, setTemplate] = useState<string | null>(null);
  const [architecture, setArchitecture] = useState('');
  const [params, setParams] = useState<number | string>('');
  const register = useMutation({
    mutationFn: () =>
      call(
        api.POST('/api/projects/{project_id}/models', {
          params: { path: { project_id: projectId } },
          body: {
            name,
            path_or_hub_id: path,
            template: template || null,
            architecture: architecture || null,
            num_parameters: typeof params === 'number' ? params : null,
          },
        }),
      ),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['models', projectId] });
      onDone();
    },
  });
  const fieldErrors = byField((register.error as ApiError | null)?.problems ?? []);
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        register.mutate();
      }}
    >
      <Stack>
        <TextInput
          label={t('models.name')}
          description={t('models.nameHint')}
          required
          value={name}
          onChange={(e) => setName(e.currentTarget.value)}
          error={fieldErrors.name?.join('; ')}
          data-testid="model-name"
        />
        <TextInput
          label={t('models.path')}
          description={t('models.pathHint')}
          required
          value={path}
          onChange={(e) => setPath(e.currentTarget.value)}
          error={fieldErrors.path_or_hub_id?.join('; ')}
          data-testid="model-path"
        />
        <Select
          label={t('models.template')}
          description={t('models.templateHint')}
          data={TEMPLATE_OPTIONS}
          value={template}
          onChange={setTemplate}
          clearable
          searchable
          data-testid="model-template"
        />
        <Group grow>
          <TextInput label={t('models.architecture')} value={architecture} onChange={(e) => setArchitecture(e.currentTarget.value)} />
          <NumberInput label={t('models.parameters')} value={params} onChange={setParams} min={0} thousandSeparator="," />
        </Group>
        <ErrorAlert error={register.error} />
        <Group justify="flex-end">
          <Button type="submit" loading={register.isPending} data-testid="model-register">
            {t('models.register')}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function ModelRow({ model, onOpen }: { model: Schemas['BaseModelPublic']; onOpen: () => void }) {
  const { t } = useTranslation();
  return (
    <Table.Tr>
      <Table.Td>
        <Anchor component="button" onClick={onOpen} fw={600}>
          {model.name}
        </Anchor>
        {model.project_id === null && (
          <Badge ml={6} size="xs" variant="outline">
            {t('models.shared')}
          </Badge>
        )}
      </Table.Td>
      <Table.Td>
        <Code>{model.path_or_hub_id}</Code>
      </Table.Td>
      <Table.Td>{model.architecture ?? '–'}</Table.Td>
      <Table.Td>{formatParams(model.num_parameters)}</Table.Td>
      <Table.Td>{model.template ?? <Text c="dimmed" span>{t('models.auto')}</Text>}</Table.Td>
    </Table.Tr>
  );
}

function ModelDetails({ model, onClose }: { model: Schemas['BaseModelPublic']; onClose: () => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [template, setTemplate] = useState<string | null>(model.template);
  const update = useMutation({
    mutationFn: () => call(api.PATCH('/api/models/{model_id}', { params: { path: { model_id: model.id } }, body: { template } })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ['models'] }),
  });
  const remove = useMutation({
    mutationFn: () => call(api.DELETE('/api/models/{model_id}', { params: { path: { model_id: model.id } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['models'] });
      onClose();
    },
  });
  return (
    <Stack>
      <Text size="sm">
        <b>{t('models.path')}:</b> <Code>{model.path_or_hub_id}</Code>
      </Text>
      <Text size="sm">
        <b>{t('models.architecture')}:</b> {model.architecture ?? '–'} · <b>{t('models.size')}:</b> {formatParams(model.num_parameters)} ·{' '}
        {formatTime(model.created_at)}
      </Text>
      <Group align="flex-end">
        <Select label={t('models.template')} data={TEMPLATE_OPTIONS} value={template} onChange={setTemplate} clearable searchable w={220} />
        <Button variant="light" onClick={() => update.mutate()} loading={update.isPending} disabled={template === model.template}>
          {t('common.save')}
        </Button>
      </Group>
      <Text size="sm" fw={600}>
        {t('models.details')}
      </Text>
      <Code block>{JSON.stringify(model.details, null, 2)}</Code>
      <ErrorAlert error={update.error ?? remove.error} />
      <Group justify="flex-end">
        <Button color="red" variant="light" onClick={() => remove.mutate()} loading={remove.isPending}>
          {t('models.forget')}
        </Button>
      </Group>
    </Stack>
  );
}

export function Models() {
  const { t } = useTranslation();
  const projectId = useProjectId();
  const models = useModels(projectId);
  const [adding, setAdding] = useState(false);
  const [open, setOpen] = useState<Schemas['BaseModelPublic'] | null>(null);
  return (
    <Page
      title={t('nav.models')}
      actions={
        <Button onClick={() => setAdding(true)} data-testid="model-add">
          {t('models.register')}
        </Button>
      }
    >
      <ErrorAlert error={models.error} />
      <Paper withBorder radius="md">
        <Table.ScrollContainer minWidth={640}>
          <Table striped highlightOnHover data-testid="models-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('models.name')}</Table.Th>
                <Table.Th>{t('models.path')}</Table.Th>
                <Table.Th>{t('models.architecture')}</Table.Th>
                <Table.Th>{t('models.size')}</Table.Th>
                <Table.Th>{t('models.template')}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(models.data ?? []).map((model) => (
                <ModelRow key={model.id} model={model} onOpen={() => setOpen(model)} />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        {models.data?.length === 0 && (
          <Text c="dimmed" p="md">
            {t('models.none')}
          </Text>
        )}
      </Paper>
      <Modal opened={adding} onClose={() => setAdding(false)} title={<Title order={4}>{t('models.register')}</Title>} size="lg">
        <RegisterModel projectId={projectId} onDone={() => setAdding(false)} />
      </Modal>
      <Modal opened={open !== null} onClose={() => setOpen(null)} title={<Title order={4}>{open?.name}</Title>} size="lg">
        {open && <ModelDetails key={open.id} model={open} onClose={() => setOpen(null)} />}
      </Modal>
    </Page>
  );
}
