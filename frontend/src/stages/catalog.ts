// The training stages, as the server's catalog lists them (GET /api/stages, from tunery.spec.stages).
// Everything stage-specific in the dashboard derives from it: the stage pickers, the options each stage
// shows, what a stage needs from the data, and which stages a dataset can feed.
import { useQuery } from '@tanstack/react-query';
import { api, call, type Schemas } from '../api/client';

export type StageInfo = Schemas['StagePublic'];
export type DataShape = StageInfo['data'];

export function useStages() {
  return useQuery({
    queryKey: ['stages'],
    queryFn: () => call(api.GET('/api/stages')),
    staleTime: Infinity, // the catalog changes only with the server
  });
}

export function stageInfo(stages: readonly StageInfo[], name: string): StageInfo | undefined {
  return stages.find((stage) => stage.name === name);
}

/** The spec keys of ``name`` beyond the common ones (empty for an unknown stage). */
export function stageOptionKeys(stages: readonly StageInfo[], name: string): string[] {
  return stageInfo(stages, name)?.options ?? [];
}

/** Every stage-specific spec key of the catalog. */
export function allStageOptionKeys(stages: readonly StageInfo[]): Set<string> {
  return new Set(stages.flatMap((stage) => stage.options));
}

/** The stages a dataset (version) can feed: the server says so in ``stages``; an older server only tells the
 * stage the rows were checked for, and then the stages with the same data shape are the answer. */
export function datasetStages(dataset: object, stages: readonly StageInfo[]): string[] | null {
  const record = dataset as { stages?: unknown; stage?: unknown };
  if (Array.isArray(record.stages)) return record.stages.map(String);
  if (typeof record.stage !== 'string') return null;
  const shape = stageInfo(stages, record.stage)?.data;
  return shape ? stages.filter((stage) => stage.data === shape).map((stage) => stage.name) : [record.stage];
}
