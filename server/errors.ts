import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ZodError } from 'zod';
import type { ErrorBody } from './contract.js';

/** Where an invalid value was: the prefix of `field` in an error body. */
export type FieldLocation = 'body' | 'query' | 'path' | 'header' | 'cookie';

/**
 * An HTTP error with the body of the contract: `{ error: { code, message, field? } }`. Route
 * handlers throw it; the app's error handler turns it into the response.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 421 | 429 | 503,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.field === undefined ? {} : { field: this.field }) } };
  }
}

export const notFound = (what: string, field: string, value: string) => new ApiError(404, 'not_found', `no ${what} "${value}"`, field);

const TARGETS: Record<string, FieldLocation> = { json: 'body', form: 'body', query: 'query', param: 'path', header: 'header', cookie: 'cookie' };

/** The first zod issue as a 400 that names the field (`body.text`, `query.after`, `path.id`). */
export function fromZodError(error: ZodError, target: string): ApiError {
  const where = TARGETS[target] ?? target;
  const issue = error.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  // An unknown key is reported against the key itself, not the object holding it.
  const keys = issue && issue.code === 'unrecognized_keys' ? (issue as { keys?: string[] }).keys ?? [] : [];
  const name = keys.length > 0 ? [path, keys[0]].filter((s) => s !== '').join('.') : path;
  const field = name === '' ? where : `${where}.${name}`;
  const detail = issue ? `${field}: ${issue.message}` : `${field} is invalid`;
  return new ApiError(400, 'invalid_request', detail, field);
}

/** Foreign failures (store errors, hono's own) mapped onto the contract's statuses. */
export function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error instanceof HTTPException) {
    const status = error.status;
    if (status === 400) return new ApiError(400, 'invalid_request', `body: ${error.message || 'malformed request body'}`, 'body');
    if (status === 413) return new ApiError(413, 'too_large', error.message || 'request body too large', 'body');
    if (status === 415) return new ApiError(415, 'unsupported_media_type', 'body must be application/json', 'header.content-type');
    if (status === 401) return new ApiError(401, 'unauthorized', error.message || 'unauthorized');
    if (status === 404) return new ApiError(404, 'not_found', error.message || 'not found');
    return undefined;
  }
  const e = error as { name?: string; message?: string; field?: string; limit?: string; sessionId?: string };
  switch (e?.name) {
    case 'SessionNotFoundError':
      return new ApiError(404, 'not_found', e.message ?? 'no such session', 'path.id');
    case 'PermissionRequestNotFoundError':
      return new ApiError(404, 'not_found', e.message ?? 'no such permission request', 'path.requestId');
    case 'PermissionNotPendingError':
      return new ApiError(409, 'not_pending', e.message ?? 'the permission request is not pending', 'path.requestId');
    case 'PermissionGrantNotFoundError':
      return new ApiError(404, 'not_found', e.message ?? 'no such grant', 'body.tool');
    case 'InvalidEventError':
      return new ApiError(400, 'invalid_request', e.message ?? 'invalid', e.field ? `body.${e.field}` : 'body');
    case 'LimitExceededError':
      return new ApiError(429, 'limit_exceeded', e.message ?? 'a limit was reached', e.limit?.startsWith('INPUT') ? 'body.text' : undefined);
    case 'SessionBusyError':
      return new ApiError(409, 'busy', e.message ?? 'the session is busy and its policy rejects new input', 'body.mode');
    case 'IllegalInboxTransitionError':
      return new ApiError(409, 'conflict', e.message ?? 'illegal inbox transition');
    case 'CatalogFullError':
      return new ApiError(429, 'limit_exceeded', e.message ?? 'the model catalog is full', 'body.id');
    case 'CatalogEntryError':
      return new ApiError(400, 'invalid_request', e.message ?? 'invalid model entry', 'body');
    case 'ProviderConfigError':
    case 'ConfigError':
      return new ApiError(400, 'configuration', e.message ?? 'configuration problem', 'body.model');
    default:
      return undefined;
  }
}

/** Writes an ApiError as the response. */
export function errorResponse(c: Context, error: ApiError): Response {
  return c.json(error.body(), error.status);
}
