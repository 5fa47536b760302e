// Account settings: API keys (create: the key is shown once; revoke), language, the current project's secrets,
// projects.
import {
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  CopyButton,
  Group,
  Modal,
  NumberInput,
  Paper,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, call, type Schemas } from '../api/client';
import { useAuth } from '../auth/AuthContext';
import { LanguageSwitch } from '../components/Layout';
import { ErrorAlert, formatTime, Page } from '../components/Page';
import { ProjectSecrets } from '../project/ProjectSecrets';
import { useProject } from '../project/ProjectContext';
import { CreateProject } from './CreateProject';

function KeyStatus({ item }: { item: Schemas['ApiKeyPublic'] }) {
  const { t } = useTranslation();
  if (item.revoked_at) return <Badge color="gray">{t('keys.revoked')}</Badge>;
  if (item.expires_at && new Date(item.expires_at) < new Date()) return <Badge color="orange">{t('keys.expired')}</Badge>;
  return <Badge color="green">{t('keys.active')}</Badge>;
}

function ApiKeys() {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey: ['keys'], queryFn: () => call(api.GET('/api/keys')) });
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>(['read', 'write']);
  const [days, setDays] = useState<number | string>('');
  const [created, setCreated] = useState<Schemas['ApiKeyCreated'] | null>(null);
  const [revoking, setRevoking] = useState<Schemas['ApiKeyPublic'] | null>(null);
  const create = useMutation({
    mutationFn: () =>
      call(
        api.POST('/api/keys', {
          body: { name, scopes, expires_in_days: typeof days === 'number' && days > 0 ? days : null },
        }),
      ),
    onSuccess: (key) => {
      setCreated(key);
      setName('');
      void queryClient.invalidateQueries({ queryKey: ['keys'] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => call(api.DELETE('/api/keys/{key_id}', { params: { path: { key_id: id } } })),
    onSuccess: () => {
      setRevoking(null);
      void queryClient.invalidateQueries({ queryKey: ['keys'] });
    },
  });
  return (
    <Paper withBorder p="md" radius="md">
      <Stack>
        <Title order={4}>{t('keys.title')}</Title>
        <Text size="sm" c="dimmed">
          {t('keys.hint')}
        </Text>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <Group align="flex-end" wrap="wrap">
            <TextInput
              label={t('keys.name')}
              required
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              data-testid="key-name"
              w={220}
            />
            <Checkbox.Group label={t('keys.scopes')} value={scopes} onChange={setScopes}>
              <Group mt={6}>
                <Checkbox value="read" label={t('keys.read')} />
                <Checkbox value="write" label={t('keys.write')} />
              </Group>
            </Checkbox.Group>
            <NumberInput
              label={t('keys.expiresDays')}
              placeholder={t('keys.never')}
              min={1}
              max={3650}
              value={days}
              onChange={setDays}
              w={160}
            />
            <Button type="submit" loading={create.isPending} disabled={!scopes.length} data-testid="key-create">
              {t('keys.create')}
            </Button>
          </Group>
        </form>
        <ErrorAlert error={create.error ?? keys.error ?? revoke.error} />
        <Table.ScrollContainer minWidth={640}>
          <Table striped data-testid="keys-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('keys.name')}</Table.Th>
                <Table.Th>{t('keys.prefix')}</Table.Th>
                <Table.Th>{t('keys.scopes')}</Table.Th>
                <Table.Th>{t('keys.created')}</Table.Th>
                <Table.Th>{t('keys.lastUsed')}</Table.Th>
                <Table.Th>{t('keys.expires')}</Table.Th>
                <Table.Th>{t('keys.status')}</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {(keys.data ?? []).map((item) => (
                <Table.Tr key={item.id}>
                  <Table.Td>{item.name}</Table.Td>
                  <Table.Td>
                    <Code>{item.prefix}</Code>
                  </Table.Td>
                  <Table.Td>{item.scopes.join(', ')}</Table.Td>
                  <Table.Td>{formatTime(item.created_at)}</Table.Td>
                  <Table.Td>{formatTime(item.last_used_at)}</Table.Td>
                  <Table.Td>{item.expires_at ? formatTime(item.expires_at) : t('keys.never')}</Table.Td>
                  <Table.Td>
                    <KeyStatus item={item} />
                  </Table.Td>
                  <Table.Td>
                    {!item.revoked_at && (
                      <Button size="xs" color="red" variant="light" onClick={() => setRevoking(item)}>
                        {t('keys.revoke')}
                      </Button>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
              {keys.data?.length === 0 && (
                <Table.Tr>
                  <Table.Td colSpan={8}>
                    <Text c="dimmed" size="sm">
                      {t('keys.none')}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              )}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Stack>
      <Modal opened={created !== null} onClose={() => setCreated(null)} title={t('keys.createdTitle')} size="lg">
        {created && (
          <Stack>
            <Alert color="yellow">{t('keys.shownOnce')}</Alert>
            <Code block data-testid="new-key">
              {created.key}
            </Code>
            <Group justify="flex-end">
              <CopyButton value={created.key}>
                {({ copied, copy }) => <Button onClick={copy}>{copied ? t('common.copied') : t('common.copy')}</Button>}
              </CopyButton>
              <Button variant="default" onClick={() => setCreated(null)} data-testid="key-done">
                {t('common.done')}
              </Button>
            </Group>
          </Stack>
        )}
      </Modal>
      <Modal opened={revoking !== null} onClose={() => setRevoking(null)} title={t('keys.revokeTitle')}>
        <Stack>
          <Text>{t('keys.revokeConfirm', { name: revoking?.name ?? '' })}</Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setRevoking(null)}>
              {t('common.cancel')}
            </Button>
            <Button color="red" loading={revoke.isPending} onClick={() => revoking && revoke.mutate(revoking.id)} data-testid="key-revoke-confirm">
              {t('keys.revoke')}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Paper>
  );
}

export function Settings() {
  const { t } = useTranslation();
  const { user } = useAuth();
  const { projectId } = useProject();
  return (
    <Page title={t('nav.settings')}>
      <Paper withBorder p="md" radius="md">
        <Group justify="space-between" wrap="wrap">
          <Stack gap={2}>
            <Text fw={600}>{t('settings.account')}</Text>
            <Text size="sm" c="dimmed">
              {user?.email} {user?.is_admin ? `· ${t('settings.admin')}` : ''}
            </Text>
          </Stack>
          <Group>
            <Text size="sm">{t('common.language')}</Text>
            <LanguageSwitch />
          </Group>
        </Group>
      </Paper>
      <ApiKeys />
      {projectId && <ProjectSecrets projectId={projectId} />}
      <Paper withBorder p="md" radius="md">
        <Title order={4} mb="sm">
          {t('project.newProject')}
        </Title>
        <CreateProject compact />
      </Paper>
    </Page>
  );
}
