// The job's captured output lines (GET /api/jobs/{id}/logs?after=), polled while the job is active.
import { useEffect, useState } from 'react';
import { api, call } from '../api/client';

export interface LogLine {
  seq: number;
  line: string;
  attempt: number;
}

export function useLogTail(jobId: string, active: boolean, keep = 500, everyMs = 2000): { lines: LogLine[]; error: unknown } {
  const [state, setState] = useState<{ lines: LogLine[]; after: number; error: unknown; job: string }>({ lines: [], after: 0, error: null, job: jobId });
  const current = state.job === jobId ? state : { lines: [], after: 0, error: null, job: jobId };
  const after = current.after;
  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let cursor = after;
    const load = async () => {
      try {
        for (let page = 0; page < 20; page++) {
          const answer = await call(api.GET('/api/jobs/{job_id}/logs', { params: { path: { job_id: jobId }, query: { after: cursor, limit: 1000 } } }));
          if (cancelled) return;
          if (answer.lines.length) {
            cursor = answer.next_after;
            const fresh = answer.lines.map((l) => ({ seq: l.seq, line: l.line, attempt: l.attempt }));
            setState((old) => ({ job: jobId, lines: (old.job === jobId ? old.lines : []).concat(fresh).slice(-keep), after: cursor, error: null }));
          }
          if (answer.lines.length < 1000) break;
        }
      } catch (error) {
        if (!cancelled) setState((old) => ({ ...old, error }));
      }
      if (!cancelled && active) timer = setTimeout(load, everyMs);
    };
    void load();
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
    // `after` is read once per (job, active) change; later pages advance the local cursor
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [jobId, active, keep, everyMs]);
  return { lines: current.lines, error: current.error };
}
