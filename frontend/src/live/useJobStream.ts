// React binding of JobStream: every event of a job (replayed from the start, then live), batched into renders.
import { useEffect, useRef, useState } from 'react';
import { getToken } from '../auth/token';
import { type JobEvent, JobStream, type JobStreamOptions, type StreamEnd, type StreamState, streamTarget } from './jobStream';

export interface JobStreamView {
  events: JobEvent[];
  lastSeq: number;
  state: StreamState;
  end: StreamEnd | null;
}

export interface UseJobStreamOptions {
  WebSocketImpl?: JobStreamOptions['WebSocketImpl'];
  backoff?: JobStreamOptions['backoff'];
  /** how long to gather events before rendering (ms) */
  batchMs?: number;
  /** a change starts the stream again (e.g. after a resumed job is queued again) */
  restartKey?: string | number;
}

export function useJobStream(jobId: string | null, options: UseJobStreamOptions = {}): JobStreamView {
  const [view, setView] = useState<JobStreamView>({ events: [], lastSeq: 0, state: 'stopped', end: null });
  const { WebSocketImpl, backoff, batchMs = 50, restartKey } = options;
  const optionsRef = useRef({ WebSocketImpl, backoff });

  useEffect(() => {
    if (!jobId) return;
    const buffer: JobEvent[] = [];
    let flush: ReturnType<typeof setTimeout> | null = null;
    const commit = () => {
      flush = null;
      const fresh = buffer.splice(0);
      if (fresh.length) {
        setView((old) => ({ ...old, events: old.events.concat(fresh), lastSeq: fresh[fresh.length - 1].seq }));
      }
    };
    setView({ events: [], lastSeq: 0, state: 'connecting', end: null });
    const stream = new JobStream({
      ...streamTarget(jobId, getToken()),
      ...optionsRef.current,
      onEvent: (event) => {
        buffer.push(event);
        flush ??= setTimeout(commit, batchMs);
      },
      onState: (state) => setView((old) => ({ ...old, state })),
      onEnd: (end) => {
        commit();
        setView((old) => ({ ...old, end }));
      },
    });
    stream.start();
    return () => {
      if (flush) clearTimeout(flush);
      stream.stop();
    };
  }, [jobId, batchMs, restartKey]);

  return view;
}
