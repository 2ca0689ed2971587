/**
 * Typed failures of the NATS transport. Foreign errors (nats.js's own classes) are parsed into
 * these at the edge (`toNatsError`), so callers branch on `name`, never on message text.
 */

export class NatsTransportError extends Error {
  override name = 'NatsTransportError';
}

/** No connection to the server within the wait bound (server down, wrong URL, still reconnecting). */
export class NatsUnavailableError extends NatsTransportError {
  override name = 'NatsUnavailableError';
  constructor(readonly url: string, readonly waitedMs: number, detail?: string) {
    super(`NATS at ${url} is not reachable (waited ${waitedMs} ms${detail ? `: ${detail}` : ''})`);
  }
}

/** The transport (or the connection it was given) was closed. */
export class NatsTransportClosedError extends NatsTransportError {
  override name = 'NatsTransportClosedError';
  constructor(readonly url: string) {
    super(`the NATS transport for ${url} is closed`);
  }
}

/** A JetStream publish was refused or not acknowledged in time. `code` is JetStream's err_code when it gave one. */
export class NatsPublishError extends NatsTransportError {
  override name = 'NatsPublishError';
  constructor(readonly subject: string, readonly gseq: number, readonly code: number | undefined, detail: string) {
    super(`publishing event gseq ${gseq} on ${subject} failed${code !== undefined ? ` (JetStream code ${code})` : ''}: ${detail}`);
  }
}

/**
 * A KV compare-and-swap lost: the entry's revision was not the one given (JetStream code 10071 on
 * nats-server 2.9: "wrong last sequence"), or `create` found the key already present.
 */
export class KvRevisionConflictError extends NatsTransportError {
  override name = 'KvRevisionConflictError';
  constructor(readonly bucket: string, readonly key: string, readonly expectedRevision: number, detail: string) {
    super(`KV ${bucket}/${key}: revision ${expectedRevision === 0 ? '(absent)' : expectedRevision} is not the current one (${detail})`);
  }
}

/** JetStream's error code for "wrong last sequence" (a stale KV revision or expected sequence). */
export const JS_WRONG_LAST_SEQUENCE = 10071;
/** JetStream's error code for "wrong last msg ID" (an expected-last-msg-id that did not match). */
export const JS_WRONG_LAST_MSG_ID = 10070;
/** JetStream's error code for "stream not found". */
export const JS_STREAM_NOT_FOUND = 10059;

/** JetStream's `err_code` of a nats.js error, when it carries one. */
export function jetStreamCode(error: unknown): number | undefined {
  const e = error as { name?: string; code?: unknown; api_error?: { err_code?: number } } | null;
  if (!e || typeof e !== 'object') return undefined;
  if (typeof e.api_error?.err_code === 'number') return e.api_error.err_code;
  if (e.name === 'JetStreamApiError' && typeof e.code === 'number') return e.code;
  return undefined;
}

/** Whether a nats.js error says the stream does not exist. */
export function isStreamNotFound(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === 'StreamNotFoundError' || jetStreamCode(error) === JS_STREAM_NOT_FOUND;
}

/** Whether a nats.js error means the connection is closed for good. */
export function isClosedError(error: unknown): boolean {
  const name = (error as { name?: string } | null)?.name;
  return name === 'ClosedConnectionError' || name === 'DrainingConnectionError';
}

export function describe(error: unknown): string {
  return (error as Error | null)?.message ?? String(error);
}
