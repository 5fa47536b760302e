// The model an eval job targets, from the served models (GET /v1/models): base models, the fine-tunes of the
// project's runs and their checkpoints, grouped, the runs named as the runs list names them.
import { Select } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { fetchServedModels, type ServedModel } from '../api/extras';
import { useJobs } from '../api/queries';
import { useProjectId } from '../project/ProjectContext';

export interface ServedId {
  kind: 'base' | 'finetune' | 'checkpoint';
  base: string;
  jobId?: string;
  step?: number;
}

/** The parts of a served model id: ``ft:<base>:<project>:<job>[:ckpt-<step>]`` or a base model's name. */
export function parseServedId(id: string): ServedId {
  if (!id.startsWith('ft:')) return { kind: 'base', base: id };
  const parts = id.slice(3).split(':');
  let step: number | undefined;
  const last = parts[parts.length - 1] ?? '';
  if (/^ckpt-\d+$/.test(last)) {
    step = Number(last.slice(5));
    parts.pop();
  }
  if (parts.length < 3) return { kind: 'base', base: id };
  const jobId = parts[parts.length - 1];
  const base = parts.slice(0, -2).join(':');
  return step === undefined ? { kind: 'finetune', base, jobId } : { kind: 'checkpoint', base, jobId, step };
}

export interface ModelGroup {
  group: string;
  items: { value: string; label: string }[];
}

/** A served model id as people read it: a base model by its id, a fine-tune by its run's name (short id when
 * unnamed) and base, a checkpoint by its run and step. */
export function servedLabel(id: string, jobNames: Record<string, string>, stepLabel: (step: number) => string): string {
  const parsed = parseServedId(id);
  const run = parsed.jobId ? jobNames[parsed.jobId] || parsed.jobId.slice(0, 8) : '';
  if (parsed.kind === 'base') return id;
  return parsed.kind === 'finetune' ? `${run} (${parsed.base})` : `${run} · ${stepLabel(parsed.step ?? 0)}`;
}

/** Select options in three groups; labels name the run (or its short id) and are unique. */
export function modelOptions(models: readonly ServedModel[], jobNames: Record<string, string>, groupTitle: (kind: ServedId['kind']) => string, stepLabel: (step: number) => string): ModelGroup[] {
  const groups: Record<ServedId['kind'], ModelGroup['items']> = { base: [], finetune: [], checkpoint: [] };
  const used = new Set<string>();
  for (const model of models) {
    if (model.reward_model) continue; // scored, never generated with
    const parsed = parseServedId(model.id);
    let label = servedLabel(model.id, jobNames, stepLabel);
    if (used.has(label)) label = `${label} · ${parsed.jobId?.slice(0, 8) ?? model.id}`;
    used.add(label);
    groups[parsed.kind].push({ value: model.id, label });
  }
  return (['base', 'finetune', 'checkpoint'] as const).filter((kind) => groups[kind].length).map((kind) => ({ group: groupTitle(kind), items: groups[kind] }));
}

/** Names of the project's runs by id (fine-tunes are named after their run). */
export function useJobNames(): Record<string, string> {
  const projectId = useProjectId();
  const jobs = useJobs(projectId, { limit: 200 });
  return Object.fromEntries((jobs.data?.items ?? []).map((job) => [job.id, job.name ?? '']));
}

export function useServedModels() {
  return useQuery({ queryKey: ['v1-models'], queryFn: fetchServedModels, retry: false });
}

export function ModelSelect({ value, onChange, error }: { value: string | null; onChange: (value: string | null) => void; error?: string }) {
  const { t } = useTranslation();
  const served = useServedModels();
  const names = useJobNames();
  const models = served.data?.available ? served.data.data : [];
  const data = modelOptions(models, names, (kind) => t(`evaluate.modelGroups.${kind}`), (step) => t('evaluate.step', { step }));
  return (
    <Select
      label={t('evaluate.model')}
      description={t('evaluate.modelHint')}
      placeholder={served.data && !served.data.available ? t('evaluate.noServing') : undefined}
      data={data}
      value={value}
      onChange={onChange}
      searchable
      nothingFoundMessage={t('evaluate.noModels')}
      error={error}
      data-testid="eval-model"
    />
  );
}
