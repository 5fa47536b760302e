// Shown when the user belongs to no project yet.
import { Button, Paper, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, call } from '../api/client';
import { ErrorAlert } from '../components/Page';
import { useProject } from '../project/ProjectContext';

export function CreateProject({ compact = false }: { compact?: boolean }) {
  const { t } = useTranslation();
  const [name, setName] = useState('');
  const queryClient = useQueryClient();
  const { select } = useProject();
  const create = useMutation({
    mutationFn: () => call(api.POST('/api/projects', { body: { name } })),
    onSuccess: async (project) => {
      select(project.id);
      await queryClient.invalidateQueries({ queryKey: ['projects'] });
      setName('');
    },
  });
  return (
    <Paper withBorder p="lg" radius="md" maw={compact ? undefined : 480}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Stack>
          {!compact && <Title order={3}>{t('project.createTitle')}</Title>}
          {!compact && <Text c="dimmed">{t('project.createHint')}</Text>}
          <TextInput
            label={t('project.name')}
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-testid="project-name"
          />
          <ErrorAlert error={create.error} />
          <Button type="submit" loading={create.isPending} data-testid="project-create">
            {t('project.create')}
          </Button>
        </Stack>
      </form>
    </Paper>
  );
}
