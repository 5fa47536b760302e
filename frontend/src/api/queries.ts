// TanStack Query hooks for the server state the pages share.
import { useQuery } from '@tanstack/react-query';
import { api, call, type Schemas } from './client';

export type JobStatus = Schemas['JobStatus'];
export const ACTIVE: JobStatus[] = ['queued', 'running'];

export function useJobs(projectId: string, options: { status?: JobStatus[]; limit?: number; q?: string; poll?: number } = {}) {
  const { status, limit = 50, q, poll } = options;
  return useQuery({
    queryKey: ['jobs', projectId, status ?? [], limit, q ?? ''],
    queryFn: () =>
      call(api.GET('/api/jobs', { params: { query: { project_id: projectId, status, limit, q: q || undefined } } })),
    refetchInterval: poll,
  });
}

export function useJob(jobId: string, poll?: number | false) {
  return useQuery({
    queryKey: ['job', jobId],
    queryFn: () => call(api.GET('/api/jobs/{job_id}', { params: { path: { job_id: jobId } } })),
    refetchInterval: poll,
  });
}

export function useModels(projectId: string) {
  return useQuery({
    queryKey: ['models', projectId],
    queryFn: () => call(api.GET('/api/projects/{project_id}/models', { params: { path: { project_id: projectId } } })),
  });
}

export function useDatasets(projectId: string) {
  return useQuery({
    queryKey: ['datasets', projectId],
    queryFn: () => call(api.GET('/api/projects/{project_id}/datasets', { params: { path: { project_id: projectId } } })),
  });
}

export function useExperiments(projectId: string) {
  return useQuery({
    queryKey: ['experiments', projectId],
    queryFn: () =>
      call(api.GET('/api/projects/{project_id}/experiments', { params: { path: { project_id: projectId } } })),
  });
}

/** Every metric row of a job (pages of up to 2000 steps). */
export async function fetchAllMetrics(jobId: string): Promise<Schemas['MetricPublic'][]> {
  const out: Schemas['MetricPublic'][] = [];
  let after = -1;
  for (let page = 0; page < 100; page++) {
    const answer = await call(
      api.GET('/api/jobs/{job_id}/metrics', { params: { path: { job_id: jobId }, query: { after_step: after, limit: 2000 } } }),
    );
    out.push(...answer.items);
    if (answer.items.length < 2000 || answer.next_after_step === after) break;
    after = answer.next_after_step;
  }
  return out;
}
