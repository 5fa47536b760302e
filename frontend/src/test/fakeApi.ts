// A fake of the API for component tests: `fetch` answers from a table of "METHOD /path" handlers.
import { vi } from 'vitest';

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

type Handler = (request: FakeRequest) => unknown | Response | Promise<unknown | Response>;

export function json(status: number, body: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

/** Replaces global fetch; returns the requests seen. Unknown routes answer 404. */
export function installFakeApi(routes: Record<string, Handler>): FakeRequest[] {
  const seen: FakeRequest[] = [];
  vi.stubGlobal('fetch', async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const url = new URL(request.url);
    const text = request.method === 'GET' ? '' : await request.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    const fake: FakeRequest = { method: request.method, path: url.pathname, query: url.searchParams, body };
    seen.push(fake);
    const handler = routes[`${request.method} ${url.pathname}`];
    if (!handler) return json(404, { detail: 'Not Found' });
    const answer = await handler(fake);
    return answer instanceof Response ? answer : json(request.method === 'POST' ? 201 : 200, answer);
  });
  return seen;
}

export const PROJECT = { id: 'p1', name: 'Demo', slug: 'demo', created_at: '2025-01-01T00:00:00Z', role: 'owner' };
export const USER = { id: 'u1', email: 'ada@example.com', is_admin: false, created_at: '2025-01-01T00:00:00Z' };
