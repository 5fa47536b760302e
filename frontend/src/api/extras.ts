// Hand-written readers, from before these endpoints were in the OpenAPI document (they are now; moving the
// callers to the generated client is a follow-up), read defensively:
// - GET /api/workers (workers and their GPUs)
// - the OpenAI-compatible /v1 serving endpoints
// When one is missing (404/405/501, or no such route, e.g. a proxy that only forwards /api), callers get
// `available: false` and say so.
import { rawFetch } from './client';
import { toApiError } from './errors';

export interface GpuInfo {
  index: number;
  name: string;
  memory_mb: number;
  job_id: string | null;
}

export interface WorkerInfo {
  id: string;
  hostname: string;
  status: string;
  queues: string[];
  slots: number;
  last_seen_at: string | null;
  gpus: GpuInfo[];
}

export type Optional<T> = { available: true; data: T } | { available: false; status: number };

const MISSING = new Set([404, 405, 501]);

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

export function parseWorkers(body: unknown): WorkerInfo[] {
  const items = Array.isArray(body) ? body : Array.isArray(asRecord(body).items) ? (asRecord(body).items as unknown[]) : [];
  return items.map((raw) => {
    const item = asRecord(raw);
    const gpus = Array.isArray(item.gpus) ? item.gpus : [];
    return {
      id: String(item.id ?? ''),
      hostname: String(item.hostname ?? item.id ?? ''),
      status: String(item.status ?? 'online'),
      queues: Array.isArray(item.queues) ? item.queues.map(String) : [],
      slots: typeof item.slots === 'number' ? item.slots : 1,
      last_seen_at: typeof item.last_seen_at === 'string' ? item.last_seen_at : null,
      gpus: gpus.map((g) => {
        const gpu = asRecord(g);
        return {
          index: Number(gpu.index ?? 0),
          name: String(gpu.name ?? ''),
          memory_mb: Number(gpu.memory_mb ?? 0),
          job_id: typeof gpu.job_id === 'string' ? gpu.job_id : null,
        };
      }),
    };
  });
}

export async function fetchWorkers(): Promise<Optional<WorkerInfo[]>> {
  const response = await rawFetch('/api/workers');
  if (MISSING.has(response.status)) return { available: false, status: response.status };
  const body = await readJson(response);
  if (!response.ok) throw toApiError(response.status, body);
  return { available: true, data: parseWorkers(body) };
}

export interface ServedModel {
  id: string;
  owned_by?: string;
  /** scored through /v1/score, never generated with (Tunery's extension) */
  reward_model?: boolean;
}

export async function fetchServedModels(): Promise<Optional<ServedModel[]>> {
  let response: Response;
  try {
    response = await rawFetch('/v1/models');
  } catch {
    return { available: false, status: 0 };
  }
  const body = await readJson(response);
  // served by the dashboard's SPA fallback instead of the API: the endpoint does not exist
  if (MISSING.has(response.status) || typeof body === 'string') return { available: false, status: response.status };
  if (!response.ok) throw toApiError(response.status, body);
  const data = asRecord(body).data;
  return {
    available: true,
    data: (Array.isArray(data) ? data : []).map((item) => ({
      id: String(asRecord(item).id ?? ''),
      owned_by: String(asRecord(item).owned_by ?? ''),
      reward_model: asRecord(item).reward_model === true,
    })),
  };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatOptions {
  model: string;
  messages: ChatMessage[];
  temperature: number;
  top_p: number;
  max_tokens: number;
  signal?: AbortSignal;
  onDelta: (text: string) => void;
}

/** Streams a chat completion (server-sent events, OpenAI format); resolves when the stream ends. */
export async function streamChat(options: ChatOptions): Promise<void> {
  const response = await rawFetch('/v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify({
      model: options.model,
      messages: options.messages,
      temperature: options.temperature,
      top_p: options.top_p,
      max_tokens: options.max_tokens,
      stream: true,
    }),
    signal: options.signal,
  });
  if (!response.ok) throw toApiError(response.status, await readJson(response));
  if (!response.body) throw new Error('the server sent no stream');
  await readEventStream(response.body, options.onDelta);
}

/** Reads `data: {...}` lines; calls onDelta with each choices[0].delta.content; stops at `data: [DONE]`. */
export async function readEventStream(body: ReadableStream<Uint8Array>, onDelta: (text: string) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    pending += decoder.decode(value ?? new Uint8Array(), { stream: !done });
    const lines = pending.split(/\r?\n/);
    pending = done ? '' : (lines.pop() ?? '');
    for (const line of lines) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      try {
        const chunk = asRecord(JSON.parse(data));
        if (chunk.error) throw new Error(String(asRecord(chunk.error).message ?? chunk.error));
        const choice = asRecord(Array.isArray(chunk.choices) ? chunk.choices[0] : undefined);
        const text = asRecord(choice.delta).content;
        if (typeof text === 'string' && text) onDelta(text);
      } catch (error) {
        if (error instanceof SyntaxError) continue;
        throw error;
      }
    }
    if (done) return;
  }
}
