// The typed API client, generated from the backend's OpenAPI (schema.gen.ts; `npm run gen:api`).
// Paths are relative to the page's origin, so the dashboard works wherever the API serves it.
import createClient, { type Middleware } from 'openapi-fetch';
import { getToken, setToken } from '../auth/token';
import { toApiError } from './errors';
import type { components, paths } from './schema.gen';

export type Schemas = components['schemas'];

const auth: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token && !request.headers.has('Authorization')) request.headers.set('Authorization', `Bearer ${token}`);
    return request;
  },
  onResponse({ request, response }) {
    if (response.status === 401 && !request.url.endsWith('/api/auth/login') && getToken()) setToken(null);
    return response;
  },
};

function origin(): string {
  return typeof window !== 'undefined' ? window.location.origin : 'http://localhost';
}

export const api = createClient<paths>({
  baseUrl: origin(),
  // looked up per call, so tests (and polyfills) can replace fetch
  fetch: (request) => globalThis.fetch(request),
});
api.use(auth);

interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a successful answer; else throws an ApiError with the server's message and field problems. */
export async function call<T>(pending: Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await pending;
  if (!response.ok) throw toApiError(response.status, error);
  return data as T;
}

/** fetch for endpoints outside the OpenAPI document (workers before their route lands, /v1 serving). */
export async function rawFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = getToken();
  if (token && !headers.has('Authorization')) headers.set('Authorization', `Bearer ${token}`);
  return globalThis.fetch(new URL(path, origin()).toString(), { ...init, headers });
}
