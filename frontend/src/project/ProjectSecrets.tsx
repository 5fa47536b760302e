// The current project's secrets (e.g. a hub token an export pushes with): their names and dates; add one,
// replace a value, delete one. Values are write-only: sent once, stored encrypted, never shown back.
import { Button, Group, Modal, Paper, PasswordInput, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { byField, type ApiError } from '../api/errors';
import { ErrorAlert, formatTime } from '../components/Page';
import { pathParameterPattern } from '../spec/schema';
import { useProject } from './ProjectContext';
import { deleteSecret, putSecret, type Secret, useSecrets } from './secrets';

/** The names the server accepts (its path parameter's pattern); without one, no spaces or slashes. */
const NAME = pathParameterPattern('/api/projects/{project_id}/secrets/{name}', 'put', 'name') ?? /^[^\s/]+$/;

/** What is wrong with a secret before sending it (i18n keys under secrets.problems). */
export function secretProblems(name: string, value: string): Record<string, string> {
  const problems: Record<string, string> = {};
  if (!name.trim()) problems.name = 'name';
  else if (!NAME.test(name.trim())) problems.name = 'nameChars';
  if (!value) problems.value = 'value';
  return problems;
}

export function ProjectSecrets({ projectId }: { projectId: string }) {
  const { t } = useTranslation();
  const { project } = useProject();
  const queryClient = useQueryClient();
  const secrets = useSecrets(projectId);
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [tried, setTried] = useState(false);
  const [deleting, setDeleting] = useState<Secret | null>(null);
  const existing = (secrets.data ?? []).some((secret) => secret.name === name.trim());
  const save = useMutation({
    mutationFn: () => putSecret(projectId, name.trim(), value),
    onSuccess: () => {
      // the value leaves the page as soon as the server has it
      setName('');
      setValue('');
      setTried(false);
      void queryClient.invalidateQueries({ queryKey: ['secrets', projectId] });
    },
  });
  const remove = useMutation({
    mutationFn: (secret: string) => deleteSecret(projectId, secret),
    onSuccess: () => {
      setDeleting(null);
      void queryClient.invalidateQueries({ queryKey: ['secrets', projectId] });
    },
  });
  const problems = tried ? secretProblems(name, value) : {};
  const server = byField((save.error as ApiError | null)?.problems ?? []);
  const submit = () => {
    setTried(true);
    if (!Object.keys(secretProblems(name, value)).length) save.mutate();
  };
  return (
    <Paper withBorder p="md" radius="md" id="secrets" data-testid="project-secrets">
      <Stack>
        <Title order={4}>{t('secrets.title', { project: project?.name ?? '' })}</Title>
        <Text size="sm" c="dimmed">
          {t('secrets.hint')}
        </Text>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            submit();
          }}
        >
          <Group align="flex-start" wrap="wrap">
            <TextInput
              label={t('secrets.name')}
              placeholder="HF_TOKEN"
              value={name}
              onChange={(event) => setName(event.currentTarget.value)}
              error={problems.name ? t(`secrets.problems.${problems.name}`) : server.name?.join('; ')}
              w={220}
              data-testid="secret-name"
            />
            <PasswordInput
              label={t('secrets.value')}
              value={value}
              onChange={(event) => setValue(event.currentTarget.value)}
              error={problems.value ? t(`secrets.problems.${problems.value}`) : server.value?.join('; ')}
              autoComplete="new-password"
              w={320}
              data-testid="secret-value"
            />
            <Button type="submit" mt={25} loading={save.isPending} data-testid="secret-save">
              {existing ? t('secrets.replace') : t('secrets.add')}
            </Button>
          </Group>
        </form>
        <ErrorAlert error={(!Object.keys(server).length && save.error) || secrets.error || remove.error} />
        <Table.ScrollContainer minWidth={480}>
          <Table striped data-testid="secrets-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('secrets.name')}</Table.Th>
                <Table.Th>{t('secrets.value')}</Table.Th>
                <Table.Th>{t('secrets.updated')}</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(secrets.data ?? []).map((secret) => (
                <Table.Tr key={secret.name} data-testid="secret-row" data-name={secret.name}>
                  <Table.Td>
                    <Text size="sm" ff="monospace">
                      {secret.name}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" c="dimmed">
                      ••••••••
                    </Text>
                  </Table.Td>
                  <Table.Td>{formatTime(secret.updated_at ?? secret.created_at)}</Table.Td>
                  <Table.Td>
                    <Group gap="xs" justify="flex-end" wrap="nowrap">
                      <Button
                        size="xs"
                        variant="default"
                        onClick={() => {
                          setName(secret.name);
                          setValue('');
                        }}
                        data-testid="secret-replace"
                      >
                        {t('secrets.replace')}
                      </Button>
                      <Button size="xs" color="red" variant="light" onClick={() => setDeleting(secret)} data-testid="secret-delete">
                        {t('secrets.delete')}
                      </Button>
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
              {secrets.data?.length === 0 && (
                <Table.Tr>
                  <Table.Td colSpan={4}>
                    <Text c="dimmed" size="sm">
                      {t('secrets.none')}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              )}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Stack>
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title={t('secrets.deleteTitle')}>
        <Stack>
          <Text>{t('secrets.deleteConfirm', { name: deleting?.name ?? '' })}</Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              {t('common.cancel')}
            </Button>
            <Button color="red" loading={remove.isPending} onClick={() => deleting && remove.mutate(deleting.name)} data-testid="secret-delete-confirm">
              {t('secrets.delete')}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Paper>
  );
}
