// The export endpoints as TanStack Query hooks (the generated client): the catalog (formats, GGUF types,
// dtypes), the size estimate, a project's exports, starting one, deleting an artifact, reading a text artifact
// (Modelfile, model card), deployments; and the API's export shapes by the names the dashboard uses, read from
// the generated client's answers.
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useDebouncedValue } from '@mantine/hooks';
import { api, call, rawFetch } from '../api/client';
import { ACTIVE } from '../api/queries';
import { toApiError } from '../api/errors';
import type { paths } from '../api/schema.gen';

const fetchCatalog = () => call(api.GET('/api/exports/catalog'));
const fetchExports = (projectId: string) => call(api.GET('/api/projects/{project_id}/exports', { params: { path: { project_id: projectId } } }));
const fetchDeployments = () => call(api.GET('/api/deployments'));

export type ExportCatalog = Awaited<ReturnType<typeof fetchCatalog>>;
export type ExportFormatInfo = ExportCatalog['formats'][number];
export type GgufTypeInfo = ExportCatalog['gguf_types'][number];
export type ExportRun = Awaited<ReturnType<typeof fetchExports>>[number];
export type ExportArtifact = ExportRun['artifacts'][number];
export type ExportCreate = paths['/api/projects/{project_id}/exports']['post']['requestBody']['content']['application/json'];
export type EstimateRequest = paths['/api/exports/estimate']['post']['requestBody']['content']['application/json'];
export type Estimate = Awaited<ReturnType<typeof estimate>>;
export type Deployment = Awaited<ReturnType<typeof fetchDeployments>>[number];

const estimate = (body: EstimateRequest) => call(api.POST('/api/exports/estimate', { body }));

export function useExportCatalog() {
  return useQuery({ queryKey: ['export-catalog'], queryFn: fetchCatalog, staleTime: Infinity });
}

/** A project's exports, polled while one of them is queued or running. */
export function useExports(projectId: string) {
  return useQuery({
    queryKey: ['exports', projectId],
    queryFn: () => fetchExports(projectId),
    refetchInterval: (query) => ((query.state.data ?? []).some((run) => ACTIVE.includes(run.job.status)) ? 3000 : false),
  });
}

/** The expected sizes of what the form would write, asked again a moment after the choices stop changing. */
export function useEstimate(body: EstimateRequest | null) {
  const [settled] = useDebouncedValue(body ? JSON.stringify(body) : null, 250);
  return useQuery({
    queryKey: ['export-estimate', settled],
    queryFn: () => estimate(JSON.parse(settled as string) as EstimateRequest),
    enabled: settled !== null,
    placeholderData: keepPreviousData,
    retry: false,
    staleTime: 60_000,
  });
}

export function createExport(projectId: string, body: ExportCreate) {
  return call(api.POST('/api/projects/{project_id}/exports', { params: { path: { project_id: projectId } }, body }));
}

/** Where an artifact downloads from (a folder comes as a zip); DELETE on the same path removes it. */
export function artifactPath(jobId: string, name: string): string {
  return `/api/jobs/${encodeURIComponent(jobId)}/artifacts/${encodeURIComponent(name)}`;
}

export function deleteArtifact(jobId: string, name: string) {
  return call(api.DELETE('/api/jobs/{job_id}/artifacts/{name}', { params: { path: { job_id: jobId, name } } }));
}

/** A small text artifact (Modelfile, model card) read for showing inline. */
export async function fetchArtifactText(jobId: string, name: string): Promise<string> {
  const response = await rawFetch(artifactPath(jobId, name));
  if (!response.ok) {
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      /* not JSON */
    }
    throw toApiError(response.status, body);
  }
  return response.text();
}

export function useArtifactText(jobId: string, name: string | null) {
  return useQuery({ queryKey: ['artifact-text', jobId, name], queryFn: () => fetchArtifactText(jobId, name as string), enabled: Boolean(name), retry: false });
}

export function useDeployments() {
  return useQuery({ queryKey: ['deployments'], queryFn: fetchDeployments, retry: false });
}

export function deploy(model: string) {
  return call(api.POST('/api/deployments', { body: { model } }));
}

export function undeploy(deploymentId: string) {
  return call(api.DELETE('/api/deployments/{deployment_id}', { params: { path: { deployment_id: deploymentId } } }));
}
