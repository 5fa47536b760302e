// Finished runs of the reward-model stages (the catalog's `reward_model: true`), offered where a stage takes
// a reward_model: their output folder is the model to score with.
import { useQueries, useQuery } from '@tanstack/react-query';
import { useMemo } from 'react';
import { api, call } from '../api/client';
import { flattenSpec } from '../spec/flatten';
import type { RewardModelChoice } from '../spec/StageOptionFields';
import type { StageInfo } from './catalog';

/** the newest finished runs looked at */
const LIMIT = 20;

export function useRewardModelRuns(projectId: string, stages: readonly StageInfo[], enabled: boolean): RewardModelChoice[] {
  const names = stages.filter((stage) => stage.reward_model).map((stage) => stage.name);
  // the list has no spec: narrow it by the stored spec's text, then read each candidate's spec
  const candidates = useQuery({
    queryKey: ['jobs', projectId, 'reward-models', names],
    queryFn: async () => {
      const pages = await Promise.all(
        names.map((name) =>
          call(api.GET('/api/jobs', { params: { query: { project_id: projectId, status: ['succeeded'], q: `"stage": "${name}"`, limit: LIMIT } } })),
        ),
      );
      return pages.flatMap((page) => page.items.map((job) => job.id));
    },
    enabled: enabled && names.length > 0,
  });
  const details = useQueries({
    queries: (candidates.data ?? []).map((id) => ({
      queryKey: ['job', id],
      queryFn: () => call(api.GET('/api/jobs/{job_id}', { params: { path: { job_id: id } } })),
    })),
  });
  const found = details.flatMap(({ data: job }) =>
    job?.output_dir && names.includes(String(flattenSpec(job.spec, false).stage)) ? [{ path: job.output_dir, name: job.name || job.id.slice(0, 8) }] : [],
  );
  // the same list keeps its identity, so the form part showing it does not render again
  const key = JSON.stringify(found);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  return useMemo(() => found, [key]);
}
