// A project's secrets (hub tokens and the like): names and dates only; a value is sent once and never shown back.
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../api/client';

const fetchSecrets = (projectId: string) => call(api.GET('/api/projects/{project_id}/secrets', { params: { path: { project_id: projectId } } }));

export type Secret = Awaited<ReturnType<typeof fetchSecrets>>[number];

export function useSecrets(projectId: string) {
  return useQuery({ queryKey: ['secrets', projectId], queryFn: () => fetchSecrets(projectId) });
}

export function putSecret(projectId: string, name: string, value: string) {
  return call(api.PUT('/api/projects/{project_id}/secrets/{name}', { params: { path: { project_id: projectId, name } }, body: { value } }));
}

export function deleteSecret(projectId: string, name: string) {
  return call(api.DELETE('/api/projects/{project_id}/secrets/{name}', { params: { path: { project_id: projectId, name } } }));
}
