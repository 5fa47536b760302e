// The evaluation endpoints as TanStack Query hooks (the generated client): the catalog (metrics, benchmarks,
// kinds, judge modes), a project's eval runs, one job's results, its samples page by page, and the output diff
// of two runs; and the API's evaluation shapes by the names the dashboard uses.
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { api, call, type Schemas } from '../api/client';

export type EvalCatalog = Schemas['EvaluationCatalog'];
export type MetricInfo = Schemas['MetricInfoPublic'];
export type BenchmarkInfo = Schemas['BenchmarkInfoPublic'];
export type EvalKind = EvalCatalog['kinds'][number];
export type JudgeMode = EvalCatalog['judge_modes'][number];
export type EvaluationCreate = Schemas['EvaluationCreate'];
export type EvalResultPublic = Schemas['EvalResultPublic'];
export type EvaluationRun = Schemas['EvaluationRun'];
export type EvalSamplePublic = Schemas['EvalSamplePublic'];
export type EvalDiffItem = Schemas['EvalDiffItem'];
export type EvalDiffPage = Schemas['EvalDiffPage'];

export function useEvalCatalog() {
  return useQuery({
    queryKey: ['eval-catalog'],
    queryFn: () => call(api.GET('/api/evaluations/catalog')),
    staleTime: Infinity, // changes only with the server
  });
}

export function useEvaluations(projectId: string, poll?: number) {
  return useQuery({
    queryKey: ['evaluations', projectId],
    queryFn: () =>
      call(api.GET('/api/projects/{project_id}/evaluations', { params: { path: { project_id: projectId }, query: { limit: 100 } } })),
    refetchInterval: poll,
  });
}

export function useEvalResults(jobId: string | null, version: string | number = 0) {
  return useQuery({
    queryKey: ['eval-results', jobId, version],
    queryFn: () => call(api.GET('/api/jobs/{job_id}/eval-results', { params: { path: { job_id: jobId ?? '' } } })),
    enabled: Boolean(jobId),
    placeholderData: keepPreviousData,
  });
}

export interface SampleQuery {
  result: string;
  sort: 'index' | 'worst' | 'best';
  metric?: string | null;
  q?: string;
  offset: number;
  limit: number;
}

export function useEvalSamples(jobId: string | null, query: SampleQuery) {
  return useQuery({
    queryKey: ['eval-samples', jobId, query],
    queryFn: () => call(api.GET('/api/jobs/{job_id}/eval-samples', { params: { path: { job_id: jobId ?? '' }, query } })),
    enabled: Boolean(jobId && query.result),
    placeholderData: keepPreviousData,
  });
}

export interface DiffQuery {
  a: string;
  b: string;
  result: string;
  metric?: string | null;
  changed_only: boolean;
  offset: number;
  limit: number;
}

export function useEvalDiff(query: DiffQuery | null) {
  return useQuery({
    queryKey: ['eval-diff', query],
    queryFn: () => call(api.GET('/api/evaluations/diff', { params: { query: query as DiffQuery } })),
    enabled: Boolean(query && query.a && query.b && query.result),
    placeholderData: keepPreviousData,
  });
}

export function createEvaluation(projectId: string, body: EvaluationCreate): Promise<Schemas['JobPublic']> {
  return call(api.POST('/api/projects/{project_id}/evaluations', { params: { path: { project_id: projectId } }, body }));
}
