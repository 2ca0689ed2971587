/**
 * Typed provider failures. Adapters parse every foreign failure (HTTP status, socket error, bad
 * chunk, timer, abort) into exactly one of these at the edge, so the session loop decides on
 * `retryable` and `kind` alone and the user reads `message`.
 */
import { PROVIDER_ERROR_BODY_BYTES_MAX } from '../core/limits.js';

export type ProviderErrorKind =
  | 'auth'
  | 'not_found'
  | 'rate_limit'
  | 'server'
  | 'bad_request'
  | 'stream_truncated'
  | 'malformed_chunk'
  | 'response_too_large'
  | 'timeout'
  | 'aborted'
  | 'connection'
  | 'config'
  | 'context_overflow';

export interface ProviderErrorOptions {
  status?: number;
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * The base of every provider failure. Narrow with `kind` (or `instanceof`); retry only when
 * `retryable` is true, waiting at least `retryAfterMs` when the provider named a delay (the session
 * loop waits up to ATTEMPT_RETRY_AFTER_MAX_MS and fails the activity when asked for more).
 */
export abstract class ProviderError extends Error {
  abstract readonly kind: ProviderErrorKind;
  abstract readonly retryable: boolean;
  /** The HTTP status, when the failure was an HTTP response. */
  readonly status?: number;
  /** How long the provider asked us to wait before retrying. */
  readonly retryAfterMs?: number;

  constructor(message: string, options: ProviderErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** 401/403: the credentials were refused. Retrying cannot help until the key changes. */
export class ProviderAuthError extends ProviderError {
  override readonly name = 'ProviderAuthError';
  readonly kind = 'auth' as const;
  readonly retryable = false;
}

/** 404: the model or the endpoint does not exist at this base URL. */
export class ProviderNotFoundError extends ProviderError {
  override readonly name = 'ProviderNotFoundError';
  readonly kind = 'not_found' as const;
  readonly retryable = false;
}

/** 429: too many requests or tokens; `retryAfterMs` is set when the provider said how long to wait. */
export class ProviderRateLimitError extends ProviderError {
  override readonly name = 'ProviderRateLimitError';
  readonly kind = 'rate_limit' as const;
  readonly retryable = true;
}

/** 5xx, or an error the provider reported in the middle of a stream. */
export class ProviderServerError extends ProviderError {
  override readonly name = 'ProviderServerError';
  readonly kind = 'server' as const;
  readonly retryable = true;
}

/** Any other 4xx: the request itself is wrong (context too long, bad parameter, …). */
export class ProviderBadRequestError extends ProviderError {
  override readonly name = 'ProviderBadRequestError';
  readonly kind = 'bad_request' as const;
  readonly retryable = false;
}

/** The stream ended (or its connection closed) before the model finished. */
export class ProviderStreamTruncatedError extends ProviderError {
  override readonly name = 'ProviderStreamTruncatedError';
  readonly kind = 'stream_truncated' as const;
  readonly retryable = true;
}

/** A stream event was not JSON, failed its schema, or broke the protocol. */
export class ProviderMalformedChunkError extends ProviderError {
  override readonly name = 'ProviderMalformedChunkError';
  readonly kind = 'malformed_chunk' as const;
  readonly retryable = false;
}

/** The response (or one tool call's arguments) passed its byte bound and was cut off. */
export class ProviderResponseTooLargeError extends ProviderError {
  override readonly name = 'ProviderResponseTooLargeError';
  readonly kind = 'response_too_large' as const;
  readonly retryable = false;
}

export type ProviderTimeoutPhase = 'headers' | 'idle' | 'total';

/** No headers in time, too long a silence between chunks, or the whole request took too long. */
export class ProviderTimeoutError extends ProviderError {
  override readonly name = 'ProviderTimeoutError';
  readonly kind = 'timeout' as const;
  readonly retryable = true;
  readonly phase: ProviderTimeoutPhase;
  readonly timeoutMs: number;

  constructor(phase: ProviderTimeoutPhase, timeoutMs: number, url: string, options: ProviderErrorOptions = {}) {
    super(timeoutMessage(phase, timeoutMs, url), options);
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's AbortSignal fired. Not retryable: somebody asked us to stop. */
export class ProviderAbortedError extends ProviderError {
  override readonly name = 'ProviderAbortedError';
  readonly kind = 'aborted' as const;
  readonly retryable = false;
}

/** The connection could not be made or broke before the response started (ECONNREFUSED, DNS, …). */
export class ProviderConnectionError extends ProviderError {
  override readonly name = 'ProviderConnectionError';
  readonly kind = 'connection' as const;
  readonly retryable = true;
}

/** The provider is not configured: a variable is missing or a setting is invalid. */
export class ProviderConfigError extends ProviderError {
  override readonly name = 'ProviderConfigError';
  readonly kind = 'config' as const;
  readonly retryable = false;
  /** The environment variables or settings the message names. */
  readonly variables: readonly string[];

  constructor(message: string, variables: readonly string[] = [], options: ProviderErrorOptions = {}) {
    super(message, options);
    this.variables = variables;
  }
}

/**
 * The request is longer than the model's context window: OpenAI's (and the Responses API's)
 * `context_length_exceeded`, Anthropic's `prompt is too long` (an `invalid_request_error`), or a
 * 413 for a request too large. Not retryable as it is; the session compacts its conversation and
 * retries the turn once (actors/compaction.ts).
 */
export class ProviderContextOverflowError extends ProviderError {
  override readonly name = 'ProviderContextOverflowError';
  readonly kind = 'context_overflow' as const;
  readonly retryable = false;
}

export type AnyProviderError =
  | ProviderAuthError
  | ProviderNotFoundError
  | ProviderRateLimitError
  | ProviderServerError
  | ProviderBadRequestError
  | ProviderStreamTruncatedError
  | ProviderMalformedChunkError
  | ProviderResponseTooLargeError
  | ProviderTimeoutError
  | ProviderAbortedError
  | ProviderConnectionError
  | ProviderConfigError
  | ProviderContextOverflowError;

export function isProviderError(error: unknown): error is AnyProviderError {
  return error instanceof ProviderError;
}

function timeoutMessage(phase: ProviderTimeoutPhase, timeoutMs: number, url: string): string {
  if (phase === 'headers') return `No response headers from ${url} within ${timeoutMs} ms`;
  if (phase === 'idle') return `The stream from ${url} was silent for more than ${timeoutMs} ms`;
  return `The request to ${url} took longer than ${timeoutMs} ms`;
}

// ---- HTTP responses ----------------------------------------------------------------------------

export type HttpHeaders = Record<string, string | string[] | undefined>;

export interface HttpFailure {
  status: number;
  headers: HttpHeaders;
  /** The error body as read (the caller bounds the read). */
  body: string;
  /** `POST https://…/chat/completions`: named in messages so the user sees where it went. */
  target: string;
  model?: string;
  /** Wall time for HTTP-date retry-after values; an injected clock's `now()` in tests. */
  nowMs?: number;
}

/**
 * Turns a non-2xx response into its typed failure. The message carries a bounded excerpt of the
 * body (its `error.message` when the body is an OpenAI/Anthropic-style JSON error).
 */
export function providerErrorFromResponse(failure: HttpFailure): AnyProviderError {
  const { status, target } = failure;
  const detail = excerptErrorBody(failure.body);
  const suffix = detail === '' ? '' : `: ${detail}`;
  const options = { status };
  if (status === 401 || status === 403) {
    return new ProviderAuthError(`The provider refused the credentials (HTTP ${status}) for ${target}${suffix}`, options);
  }
  if (status === 404) return new ProviderNotFoundError(notFoundMessage(failure, suffix), options);
  if (status === 429) return rateLimitError(failure, suffix);
  if (status >= 500) return serverError(failure, suffix);
  if (status === 413 || isContextOverflow(errorFields(failure.body))) {
    return new ProviderContextOverflowError(`The request is too long for the model's context window (HTTP ${status}) for ${target}${suffix}`, options);
  }
  return new ProviderBadRequestError(`The provider rejected the request (HTTP ${status}) for ${target}${suffix}`, options);
}

/** What a provider's error says about itself: its `code`, `type` and `message`, wherever they are. */
export interface ErrorFields {
  code?: string;
  type?: string;
  message?: string;
}

/** Matches the messages providers give for a prompt longer than the context window. */
const CONTEXT_OVERFLOW_MESSAGE = /context[_ ]length[_ ]exceeded|prompt is too long|maximum context length|exceeds the context window|context window (?:is )?exceeded|input is too long for (?:the|this) model/i;

/**
 * Whether an error says the request is longer than the model's context window: OpenAI and the
 * Responses API say `code: "context_length_exceeded"`; Anthropic says `invalid_request_error` with
 * "prompt is too long: N tokens > M maximum"; compatible servers say "maximum context length".
 */
export function isContextOverflow(fields: ErrorFields): boolean {
  if (fields.code === 'context_length_exceeded' || fields.type === 'context_length_exceeded') return true;
  return fields.message !== undefined && CONTEXT_OVERFLOW_MESSAGE.test(fields.message);
}

/** The `code`, `type` and `message` of a JSON error body (`{error: {…}}`, or the fields at the top); empty when it is not JSON. */
export function errorFields(body: string | unknown): ErrorFields {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return { message: body };
    }
  }
  if (typeof parsed !== 'object' || parsed === null) return {};
  const record = parsed as Record<string, unknown>;
  const inner = typeof record.error === 'object' && record.error !== null ? (record.error as Record<string, unknown>) : record;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { code: text(inner.code), type: text(inner.type), message: text(inner.message) ?? text(record.error) };
}

function notFoundMessage(failure: HttpFailure, suffix: string): string {
  const model = failure.model === undefined ? 'the model' : `model "${failure.model}"`;
  return `Not found (HTTP 404): ${model} or the endpoint ${failure.target} does not exist${suffix}`;
}

/** 5xx: a 503 (or Anthropic's 529) often says when to come back; the delay is honoured like a 429's. */
function serverError(failure: HttpFailure, suffix: string): ProviderServerError {
  const retryAfterMs = parseRetryAfterMs(failure.headers, failure.nowMs);
  const wait = retryAfterMs === undefined ? '' : `; retry after ${Math.ceil(retryAfterMs / 1000)} s`;
  const message = `The provider failed (HTTP ${failure.status}) for ${failure.target}${wait}${suffix}`;
  return new ProviderServerError(message, { status: failure.status, retryAfterMs });
}

function rateLimitError(failure: HttpFailure, suffix: string): ProviderRateLimitError {
  const retryAfterMs = parseRetryAfterMs(failure.headers, failure.nowMs);
  const wait = retryAfterMs === undefined ? '' : `; retry after ${Math.ceil(retryAfterMs / 1000)} s`;
  const message = `The provider is rate limiting requests (HTTP 429) for ${failure.target}${wait}${suffix}`;
  return new ProviderRateLimitError(message, { status: failure.status, retryAfterMs });
}

/**
 * The delay a response asks for: `retry-after-ms` (milliseconds, OpenAI) first, then
 * `retry-after` as seconds or an HTTP-date. Returns undefined when absent or unparseable; a date
 * in the past gives 0. The value is not capped here.
 */
export function parseRetryAfterMs(headers: HttpHeaders, nowMs: number = Date.now()): number | undefined {
  const milliseconds = firstHeader(headers, 'retry-after-ms')?.trim();
  if (milliseconds !== undefined && DECIMAL.test(milliseconds)) return Math.round(Number(milliseconds));
  const value = firstHeader(headers, 'retry-after')?.trim();
  if (value === undefined || value === '') return undefined;
  if (DECIMAL.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

const DECIMAL = /^\d+(\.\d+)?$/;

function firstHeader(headers: HttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A single-line excerpt of an error body of at most `bytesMax` UTF-8 bytes: the JSON
 * `error.message` (or `message`) when there is one, the raw text otherwise.
 */
export function excerptErrorBody(body: string, bytesMax: number = PROVIDER_ERROR_BODY_BYTES_MAX): string {
  const text = (jsonErrorMessage(body) ?? body).replace(/\s+/g, ' ').trim();
  return truncateUtf8(text, bytesMax);
}

function jsonErrorMessage(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const record = parsed as { error?: unknown; message?: unknown };
  if (typeof record.error === 'string') return record.error;
  const nested = (record.error as { message?: unknown } | null | undefined)?.message;
  if (typeof nested === 'string') return nested;
  return typeof record.message === 'string' ? record.message : undefined;
}

/** Cuts `text` to at most `bytesMax` UTF-8 bytes without splitting a character, marking the cut with `…`. */
export function truncateUtf8(text: string, bytesMax: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= bytesMax) return text;
  const ellipsisBytes = 3;
  const cut = bytes.subarray(0, Math.max(0, bytesMax - ellipsisBytes)).toString('utf8').replace(/\uFFFD$/, '');
  return `${cut}…`;
}
