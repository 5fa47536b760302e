// The model an eval job targets, from the served models (GET /v1/models): base models, the fine-tunes of the
// project's runs and their checkpoints, and exported models, grouped, the runs named as the runs list names them.
import { Select } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useMemo } from 'react';
import { useTranslation } from 'react-i18next';
import { fetchServedModels, type ServedModel } from '../api/extras';
import { useJobs } from '../api/queries';
import { useProjectId } from '../project/ProjectContext';

export interface ServedId {
  kind: 'base' | 'finetune' | 'checkpoint' | 'export';
  base: string;
  jobId?: string;
  step?: number;
  /** an exported GGUF file's type (F16, Q4_K_M) */
  gguf?: string;
}

/** The parts of a served model id: ``ft:<base>:<project>:<job>[:ckpt-<step> | :gguf-<type>]`` or a base model's
 * name. A merged export (``ft:<base>:<project>:<export job>``) reads as a fine-tune: only the job's kind tells. */
export function parseServedId(id: string): ServedId {
  if (!id.startsWith('ft:')) return { kind: 'base', base: id };
  const parts = id.slice(3).split(':');
  let step: number | undefined;
  let gguf: string | undefined;
  const last = parts[parts.length - 1] ?? '';
  if (/^ckpt-\d+$/.test(last)) {
    step = Number(last.slice(5));
    parts.pop();
  } else if (/^gguf-\w+$/.test(last)) {
    gguf = last.slice(5).toUpperCase();
    parts.pop();
  }
  if (parts.length < 3) return { kind: 'base', base: id };
  const jobId = parts[parts.length - 1];
  const base = parts.slice(0, -2).join(':');
  if (gguf !== undefined) return { kind: 'export', base, jobId, gguf };
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
  if (parsed.kind === 'export') return `${run} · GGUF ${parsed.gguf ?? ''}`;
  return parsed.kind === 'finetune' ? `${run} (${parsed.base})` : `${run} · ${stepLabel(parsed.step ?? 0)}`;
}

/** The kind of a served id, a merged export (named like a fine-tune) told apart by its job being an export. */
export function servedKind(id: string, exportJobs?: ReadonlySet<string>): ServedId['kind'] {
  const parsed = parseServedId(id);
  return parsed.kind === 'finetune' && parsed.jobId && exportJobs?.has(parsed.jobId) ? 'export' : parsed.kind;
}

const KINDS = ['base', 'finetune', 'checkpoint', 'export'] as const;

/** Select options in groups by kind (those in ``kinds``); labels name the run (or its short id) and are unique. */
export function modelOptions(
  models: readonly ServedModel[],
  jobNames: Record<string, string>,
  groupTitle: (kind: ServedId['kind']) => string,
  stepLabel: (step: number) => string,
  { exportJobs, kinds = KINDS }: { exportJobs?: ReadonlySet<string>; kinds?: readonly ServedId['kind'][] } = {},
): ModelGroup[] {
  const groups: Record<ServedId['kind'], ModelGroup['items']> = { base: [], finetune: [], checkpoint: [], export: [] };
  const used = new Set<string>();
  for (const model of models) {
    if (model.reward_model) continue; // scored, never generated with
    const parsed = parseServedId(model.id);
    const kind = servedKind(model.id, exportJobs);
    if (!kinds.includes(kind)) continue;
    let label = servedLabel(model.id, jobNames, stepLabel);
    if (used.has(label)) label = `${label} · ${parsed.jobId?.slice(0, 8) ?? model.id}`;
    used.add(label);
    groups[kind].push({ value: model.id, label });
  }
  return KINDS.filter((kind) => groups[kind].length).map((kind) => ({ group: groupTitle(kind), items: groups[kind] }));
}

function useProjectJobs() {
  const projectId = useProjectId();
  return useJobs(projectId, { limit: 200 });
}

/** Names of the project's runs by id (fine-tunes are named after their run). */
export function useJobNames(): Record<string, string> {
  const jobs = useProjectJobs();
  return Object.fromEntries((jobs.data?.items ?? []).map((job) => [job.id, job.name ?? '']));
}

/** Ids of the project's export jobs (their merged models are served under ids shaped like fine-tunes'). */
export function useExportJobIds(): ReadonlySet<string> {
  const jobs = useProjectJobs();
  const items = jobs.data?.items;
  return useMemo(() => new Set((items ?? []).filter((job) => job.kind === 'export').map((job) => job.id)), [items]);
}

export function useServedModels() {
  return useQuery({ queryKey: ['v1-models'], queryFn: fetchServedModels, retry: false });
}

export function ModelSelect({ value, onChange, error }: { value: string | null; onChange: (value: string | null) => void; error?: string }) {
  const { t } = useTranslation();
  const served = useServedModels();
  const names = useJobNames();
  const exportJobs = useExportJobIds();
  const models = served.data?.available ? served.data.data : [];
  const data = modelOptions(models, names, (kind) => t(`evaluate.modelGroups.${kind}`), (step) => t('evaluate.step', { step }), { exportJobs });
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
