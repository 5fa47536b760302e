import { afterEach, describe, expect, it, vi } from 'vitest';
import { setToken } from '../auth/token';
import { installFakeApi, json } from '../test/fakeApi';
import { api, call } from './client';
import { byField, problemsFrom, toApiError } from './errors';
import { fetchServedModels, fetchWorkers, readEventStream } from './extras';

afterEach(() => {
  vi.unstubAllGlobals();
  setToken(null);
});

describe('API errors', () => {
  it('reads job input problems and FastAPI validation errors alike', () => {
    expect(problemsFrom({ detail: 'invalid spec', errors: [{ field: 'stage', message: 'bad', kind: 'invalid_spec', file: null, row: null }] })).toEqual([
      { field: 'stage', message: 'bad', file: null, row: null, dataset: null },
    ]);
    expect(problemsFrom({ detail: [{ loc: ['body', 'gpus'], msg: 'Input should be less than or equal to 64', type: 'x' }] })).toEqual([
      { field: 'gpus', message: 'Input should be less than or equal to 64' },
    ]);
    const error = toApiError(422, { detail: [{ loc: ['body', 'spec'], msg: 'Field required' }] });
    expect(error.message).toBe('spec: Field required');
    expect(toApiError(409, { detail: 'in use' }).message).toBe('in use');
    expect(toApiError(502, '<html>bad gateway</html>').message).toBe('<html>bad gateway</html>');
    expect(byField([{ field: 'x', message: 'm', file: 'a.json', row: 2 }])).toEqual({ x: ['a.json, row 2: m'] });
  });
});

describe('generated client', () => {
  it('sends the bearer token, and a 401 signs out', async () => {
    setToken('tnt_abc.def');
    const seen: string[] = [];
    vi.stubGlobal('fetch', async (request: Request) => {
      seen.push(request.headers.get('Authorization') ?? '');
      return json(401, { detail: 'invalid, expired or revoked credentials' });
    });
    await expect(call(api.GET('/api/auth/me'))).rejects.toMatchObject({ status: 401, message: 'invalid, expired or revoked credentials' });
    expect(seen).toEqual(['Bearer tnt_abc.def']);
    expect(localStorage.getItem('tunery.token')).toBeNull();
  });

  it('serializes repeated query parameters for the job list', async () => {
    const requests = installFakeApi({ 'GET /api/jobs': () => ({ items: [], next_cursor: null }) });
    await call(api.GET('/api/jobs', { params: { query: { project_id: 'p1', status: ['queued', 'running'] } } }));
    expect(requests[0].query.getAll('status')).toEqual(['queued', 'running']);
  });
});

describe('endpoints outside the OpenAPI document', () => {
  it('says workers and /v1 are unavailable when the server lacks them', async () => {
    installFakeApi({});
    expect(await fetchWorkers()).toEqual({ available: false, status: 404 });
    expect(await fetchServedModels()).toEqual({ available: false, status: 404 });
    // a dashboard served by the API answers unknown paths with index.html
    vi.stubGlobal('fetch', async () => new Response('<!doctype html>', { status: 200, headers: { 'Content-Type': 'text/html' } }));
    expect((await fetchServedModels()).available).toBe(false);
  });

  it('reads workers and served models when present', async () => {
    installFakeApi({
      'GET /api/workers': () => [{ id: 'w1', hostname: 'gpu-1', status: 'online', queues: ['gpu'], gpus: [{ index: 0, name: 'H100', memory_mb: 81920, job_id: 'j1' }] }],
      'GET /v1/models': () => ({ object: 'list', data: [{ id: 'run-a', owned_by: 'tunery' }] }),
    });
    const workers = await fetchWorkers();
    expect(workers.available && workers.data[0].gpus[0]).toEqual({ index: 0, name: 'H100', memory_mb: 81920, job_id: 'j1' });
    const models = await fetchServedModels();
    expect(models.available && models.data.map((m) => m.id)).toEqual(['run-a']);
  });

  it('reads a chat completion stream split across chunks', async () => {
    const encoder = new TextEncoder();
    const parts = [
      'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\ndata: {"choi',
      'ces":[{"delta":{"content":"Hel"}}]}\n\n',
      ': keep-alive\n\ndata: {"choices":[{"delta":{"content":"lo"}}]}\n\ndata: [DONE]\n\n',
      'data: {"choices":[{"delta":{"content":"ignored"}}]}\n\n',
    ];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(encoder.encode(part));
        controller.close();
      },
    });
    const deltas: string[] = [];
    await readEventStream(body, (text) => deltas.push(text));
    expect(deltas.join('')).toBe('Hello');
  });
});
