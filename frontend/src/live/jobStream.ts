// A job's event stream over the websocket `/api/jobs/{id}/stream?after=SEQ`.
// Each event has a job-level `seq`; after a dropped connection the stream reconnects with `after=` the last
// seq it saw, so nothing is lost or repeated. It stops when the server sends `{"type": "end"}`.

export interface JobEvent {
  seq: number;
  type: string;
  attempt?: number;
  time?: string;
  [key: string]: unknown;
}

export interface StreamEnd {
  type: 'end';
  status: string | null;
  last_seq: number;
}

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'ended' | 'stopped';

type SocketClass = new (url: string, protocols?: string | string[]) => WebSocket;

export interface JobStreamOptions {
  /** the websocket URL that resumes after ``after`` */
  url: (after: number) => string;
  protocols?: string[];
  onEvent: (event: JobEvent) => void;
  onState?: (state: StreamState) => void;
  onEnd?: (end: StreamEnd) => void;
  /** the seq already seen (events up to it are not wanted again) */
  after?: number;
  /** milliseconds to wait before reconnect number ``attempt`` (1, 2, ...) */
  backoff?: (attempt: number) => number;
  WebSocketImpl?: SocketClass;
}

export const defaultBackoff = (attempt: number): number => Math.min(10_000, 500 * 2 ** (attempt - 1));

export class JobStream {
  lastSeq: number;
  state: StreamState = 'stopped';
  private socket: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private readonly options: JobStreamOptions;

  constructor(options: JobStreamOptions) {
    this.options = options;
    this.lastSeq = options.after ?? 0;
  }

  start(): void {
    if (this.state !== 'stopped') return;
    this.open('connecting');
  }

  stop(): void {
    this.clearTimer();
    this.setState('stopped');
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= 1) socket.close(1000);
  }

  private open(state: StreamState): void {
    this.setState(state);
    const Impl = this.options.WebSocketImpl ?? WebSocket;
    const socket = new Impl(this.options.url(this.lastSeq), this.options.protocols);
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.failures = 0;
      this.setState('open');
    };
    socket.onmessage = (message: MessageEvent) => {
      if (this.socket === socket) this.receive(message.data);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.state === 'ended' || this.state === 'stopped') return;
      this.failures += 1;
      this.setState('reconnecting');
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.state === 'reconnecting') this.open('reconnecting');
      }, (this.options.backoff ?? defaultBackoff)(this.failures));
    };
  }

  private receive(data: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(String(data));
    } catch {
      return;
    }
    if (typeof message !== 'object' || message === null) return;
    const item = message as Record<string, unknown>;
    if (item.type === 'end') {
      const end: StreamEnd = {
        type: 'end',
        status: typeof item.status === 'string' ? item.status : null,
        last_seq: typeof item.last_seq === 'number' ? item.last_seq : this.lastSeq,
      };
      this.setState('ended');
      this.options.onEnd?.(end);
      this.socket?.close(1000);
      this.socket = null;
      return;
    }
    if (typeof item.seq !== 'number' || item.seq <= this.lastSeq) return; // a repeat after reconnecting
    this.lastSeq = item.seq;
    this.options.onEvent(item as JobEvent);
  }

  private setState(state: StreamState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onState?.(state);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** ws(s)://host/path for the page's own origin. */
export function websocketUrl(path: string, location: Pick<Location, 'protocol' | 'host'> = window.location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

const SUBPROTOCOL_SAFE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** URL and subprotocols for a job's stream: the token travels as a subprotocol when it can, else as ?token=. */
export function streamTarget(jobId: string, token: string | null): { url: (after: number) => string; protocols?: string[] } {
  const path = `/api/jobs/${encodeURIComponent(jobId)}/stream`;
  if (token && SUBPROTOCOL_SAFE.test(token)) {
    return { url: (after) => websocketUrl(`${path}?after=${after}`), protocols: ['bearer', token] };
  }
  const suffix = token ? `&token=${encodeURIComponent(token)}` : '';
  return { url: (after) => websocketUrl(`${path}?after=${after}${suffix}`) };
}
