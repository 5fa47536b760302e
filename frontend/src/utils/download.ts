// Artifacts download through a short-lived signed link: the browser streams the file to disk (large GGUF
// files never sit in page memory) and can resume it, which a fetch + blob URL cannot do.
import { api, call } from '../api/client';

export async function downloadArtifact(jobId: string, name: string): Promise<void> {
  const link = await call(
    api.POST('/api/jobs/{job_id}/artifacts/{name}/link', { params: { path: { job_id: jobId, name } } }),
  );
  const anchor = document.createElement('a');
  anchor.href = new URL(link.url, window.location.origin).toString();
  document.body.appendChild(anchor);
  anchor.click();
  anchor.remove();
}
