// Uploading a dataset version (multipart): data files, optionally a dataset_info.json and which entry of it.
import { api, call } from '../api/client';

export interface UploadInput {
  datasetId: string;
  files: File[];
  stage: string;
  entry?: string;
  entryName?: string;
}

export function uploadVersion({ datasetId, files, stage, entry, entryName }: UploadInput) {
  const form = new FormData();
  for (const file of files) form.append('files', file, file.name);
  if (stage) form.append('stage', stage); // none: the server picks it from the entry
  if (entry?.trim()) form.append('entry', entry.trim());
  if (entryName) form.append('entry_name', entryName);
  return call(
    api.POST('/api/datasets/{dataset_id}/versions', {
      params: { path: { dataset_id: datasetId } },
      // the generated body type describes the form fields; the FormData above is what is sent
      body: { files: [] },
      bodySerializer: () => form,
    }),
  );
}

/** The entry names of an uploaded dataset_info.json (empty when the file is not one or not readable). */
export async function infoEntries(files: File[]): Promise<string[]> {
  const info = files.find((file) => file.name === 'dataset_info.json');
  if (!info) return [];
  try {
    const parsed = JSON.parse(await info.text()) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? Object.keys(parsed) : [];
  } catch {
    return [];
  }
}
