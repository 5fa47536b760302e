// Turns the API's error bodies into one shape: a message and per-field problems.
//   {detail: "text"}                                   -> ServiceError
//   {detail: "invalid spec: ...", errors: [{field, message, file?, row?}]}  -> JobInputError (422)
//   {detail: [{loc: ["body", "spec"], msg}]}           -> FastAPI request validation (422)

export interface Problem {
  field: string;
  message: string;
  file?: string | null;
  row?: number | null;
  dataset?: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problems: Problem[];

  constructor(status: number, message: string, problems: Problem[] = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.problems = problems;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fromLoc(loc: unknown): string {
  if (!Array.isArray(loc)) return 'body';
  const parts = loc.map(String).filter((part) => part !== 'body');
  return parts.join('.') || 'body';
}

export function problemsFrom(body: unknown): Problem[] {
  if (!isRecord(body)) return [];
  if (Array.isArray(body.errors)) {
    return body.errors.filter(isRecord).map((item) => ({
      field: String(item.field ?? ''),
      message: String(item.message ?? ''),
      file: typeof item.file === 'string' ? item.file : null,
      row: typeof item.row === 'number' ? item.row : null,
      dataset: typeof item.dataset === 'string' ? item.dataset : null,
    }));
  }
  if (Array.isArray(body.detail)) {
    return body.detail.filter(isRecord).map((item) => ({ field: fromLoc(item.loc), message: String(item.msg ?? '') }));
  }
  return [];
}

export function messageFrom(status: number, body: unknown): string {
  if (isRecord(body) && typeof body.detail === 'string') return body.detail;
  const problems = problemsFrom(body);
  if (problems.length) return problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  if (typeof body === 'string' && body.trim()) return body.trim().slice(0, 300);
  return `HTTP ${status}`;
}

export function toApiError(status: number, body: unknown): ApiError {
  return new ApiError(status, messageFrom(status, body), problemsFrom(body));
}

/** A message for any thrown value (network errors included). */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Problems grouped by field; a problem about a data row names the file and row. */
export function byField(problems: Problem[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const p of problems) {
    const where = p.file ? `${p.file}, row ${p.row ?? '?'}: ` : '';
    (out[p.field] ??= []).push(where + p.message);
  }
  return out;
}
