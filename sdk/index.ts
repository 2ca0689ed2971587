/**
 * The typed client of `loom serve` (DESIGN §7). Request and response types are inferred from the
 * server's zod contract (server/contract.ts, imported for types only: the SDK loads no server
 * code), so a change to the contract is a type error here. Transport is the global `fetch`.
 *
 *     const loom = createLoomClient({ baseUrl: 'http://127.0.0.1:4747', token });
 *     const { session } = await loom.createSession({ location: '/work/app', text: 'list the files' });
 *     for await (const e of loom.events({ sessionId: session.sessionId })) console.log(e.type);
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { z } from 'zod';
import { SDK_REQUEST_TIMEOUT_MS, SDK_SSE_RECONNECT_DELAY_MS, SDK_SSE_RECONNECTS_MAX } from '../core/limits.js';
import type { Envelope, ErrorBody, Routes } from '../server/contract.js';

type JsonSchemaOf<T> = T extends { content: { 'application/json': { schema: infer S extends z.ZodType } } } ? S : never;
/** The JSON body a route answers with `status`. */
export type ResponseOf<K extends keyof Routes, S extends keyof Routes[K]['responses']> = z.output<JsonSchemaOf<Routes[K]['responses'][S]>>;
/** The JSON body a route takes. */
export type BodyOf<K extends keyof Routes> = Routes[K] extends { request: { body: infer B } } ? z.input<JsonSchemaOf<B>> : never;

export type Session = ResponseOf<'getSession', 200>;
export type SessionState = ResponseOf<'getSessionState', 200>;
export type CreatedSession = ResponseOf<'createSession', 201>;
export type InputResult = ResponseOf<'postInput', 202>;
export type Accepted = ResponseOf<'run', 202>;
export type Permissions = ResponseOf<'listPermissions', 200>;
export type Revoked = ResponseOf<'revokePermission', 200>;
export type JobList = ResponseOf<'listJobs', 200>;
export type EventsPage = ResponseOf<'listEvents', 200>;
export type DiffReport = ResponseOf<'getDiff', 200>;
export type Models = ResponseOf<'models', 200>;
export type RegisteredModel = ResponseOf<'registerModel', 201>;
export type RemovedModel = ResponseOf<'removeModel', 200>;
export type ConfigView = ResponseOf<'config', 200>;
export type Health = ResponseOf<'health', 200>;
export type { Envelope };

/** A 4xx or 5xx from the server, with the contract's error body (`field` names the invalid field). */
export class LoomApiError extends Error {
  override name = 'LoomApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The server could not be reached, or did not answer in time. */
export class LoomConnectionError extends Error {
  override name = 'LoomConnectionError';
}

export interface LoomClientOptions {
  /** `http://127.0.0.1:4747` (no trailing path). */
  baseUrl: string;
  /** The bearer token (LOOM_SERVER_TOKEN or $LOOM_HOME/server-token). */
  token: string;
  /** Timeout of one non-streaming request. Default SDK_REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface EventStreamOptions {
  /** One session's events (cursor = seq); without it, every event (cursor = gseq). */
  sessionId?: string;
  /** Start after this cursor (default 0: from the beginning). */
  after?: number;
  signal?: AbortSignal;
  /** Reconnections in a row without receiving an event before giving up. Default SDK_SSE_RECONNECTS_MAX. */
  reconnectsMax?: number;
  /** Called on every reconnect with the cursor it resumes from (for logs and tests). */
  onReconnect?(cursor: number): void;
}

export type LoomClient = ReturnType<typeof createLoomClient>;

/** Builds a client; every method is one endpoint of the contract. */
export function createLoomClient(options: LoomClientOptions) {
  const base = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? SDK_REQUEST_TIMEOUT_MS;
  const auth = { authorization: `Bearer ${options.token}` };
  const seg = encodeURIComponent;

  async function call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        method,
        headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new LoomConnectionError(`${method} ${base}${path}: ${(error as Error).message}${(error as { cause?: Error }).cause ? ` (${(error as { cause: Error }).cause.message})` : ''}`);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!res.ok) throw errorOf(res.status, text);
    return JSON.parse(text) as T;
  }

  return {
    baseUrl: base,
    health: () => call<Health>('GET', '/health'),
    listSessions: () => call<ResponseOf<'listSessions', 200>>('GET', '/sessions'),
    createSession: (body: BodyOf<'createSession'>) => call<CreatedSession>('POST', '/sessions', body),
    getSession: (id: string) => call<Session>('GET', `/sessions/${seg(id)}`),
    getSessionState: (id: string) => call<SessionState>('GET', `/sessions/${seg(id)}/state`),
    /** Admits an input; without `mode` a busy session applies its double-texting policy. */
    prompt: (id: string, body: BodyOf<'postInput'>) => call<InputResult>('POST', `/sessions/${seg(id)}/inputs`, body),
    /** Requests a run; `budget` caps the activity it opens (and the session from now on). */
    run: (id: string, body: BodyOf<'run'> = {}) => call<Accepted>('POST', `/sessions/${seg(id)}/run`, body),
    /** Records compaction.requested: the owner summarises the conversation at its next safe point. */
    compact: (id: string, body: BodyOf<'compact'> = {}) => call<Accepted>('POST', `/sessions/${seg(id)}/compact`, body),
    wake: (id: string) => call<Accepted>('POST', `/sessions/${seg(id)}/wake`),
    cancel: (id: string, body: BodyOf<'cancel'> = {}) => call<Accepted>('POST', `/sessions/${seg(id)}/cancel`, body),
    recover: (id: string, body: BodyOf<'recovery'>) => call<Accepted>('POST', `/sessions/${seg(id)}/recovery`, body),
    permissions: (id: string) => call<Permissions>('GET', `/sessions/${seg(id)}/permissions`),
    replyPermission: (id: string, requestId: string, body: BodyOf<'replyPermission'>) =>
      call<Accepted>('POST', `/sessions/${seg(id)}/permissions/${seg(requestId)}`, body),
    revokePermission: (id: string, body: BodyOf<'revokePermission'>) => call<Revoked>('POST', `/sessions/${seg(id)}/permissions/revoke`, body),
    jobs: (id: string) => call<JobList>('GET', `/sessions/${seg(id)}/jobs`),
    cancelJob: (jobId: string) => call<Accepted>('POST', `/jobs/${seg(jobId)}/cancel`),
    /** What an activity (default: the last with changes not undone) or, with `all`, the whole session changed in files. */
    diff: (id: string, query: { activity?: string; all?: boolean } = {}) =>
      call<DiffReport>('GET', `/sessions/${seg(id)}/diff${queryString({ activity: query.activity, all: query.all ? 'true' : undefined })}`),
    /** One page of a session's events after `after` (paged: pass `next` back as `after`). */
    eventsPage: (id: string, query: { after?: number; limit?: number } = {}) =>
      call<EventsPage>('GET', `/sessions/${seg(id)}/events${queryString(query)}`),
    sessionMachine: () => call<unknown>('GET', '/machines/session'),
    /** The default model, the model catalog and the providers with their state (optionally of one provider). */
    models: (query: { provider?: string } = {}) => call<Models>('GET', `/models${query.provider === undefined ? '' : `?provider=${seg(query.provider)}`}`),
    /** Registers a model for every process (fields left out keep the entry below); recorded as model.added or model.updated. */
    registerModel: (body: BodyOf<'registerModel'>) => call<RegisteredModel>('POST', '/models', body),
    /** Removes a model registered with registerModel or `loom models add`. */
    removeModel: (id: string) => call<RemovedModel>('DELETE', `/models/${seg(id)}`),
    /** One page of the system log after `after`, or the newest `last` system events. */
    systemEvents: (query: { after?: number; limit?: number; last?: number } = {}) => call<EventsPage>('GET', `/events/system${queryString(query)}`),
    config: () => call<ConfigView>('GET', '/config'),
    /** Exchanges the token for the HttpOnly cookie (returns the Set-Cookie header value). */
    async cookie(): Promise<string> {
      const res = await doFetch(`${base}/auth/cookie`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: options.token }) });
      if (!res.ok) throw errorOf(res.status, await res.text());
      return res.headers.get('set-cookie') ?? '';
    },
    /**
     * Follows events over SSE from `after`, resuming by cursor: when the stream ends (the server
     * cut a slow reader, restarted, or the connection dropped) it reconnects with `Last-Event-ID`
     * and continues with no gap and no duplicate. Ends when `signal` aborts; gives up after
     * `reconnectsMax` reconnections in a row that brought no event.
     */
    events: (stream: EventStreamOptions = {}): AsyncGenerator<Envelope> => followEvents(doFetch, base, auth, stream),
  };
}

function queryString(query: Record<string, number | string | undefined>): string {
  const parts = Object.entries(query).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

function errorOf(status: number, text: string): LoomApiError {
  try {
    const body = JSON.parse(text) as ErrorBody;
    return new LoomApiError(status, body.error.code, body.error.message, body.error.field);
  } catch {
    return new LoomApiError(status, 'http_error', `HTTP ${status}: ${text.slice(0, 200)}`);
  }
}

async function* followEvents(doFetch: typeof fetch, base: string, auth: Record<string, string>, options: EventStreamOptions): AsyncGenerator<Envelope> {
  const path = options.sessionId === undefined ? '/events/stream' : `/sessions/${encodeURIComponent(options.sessionId)}/events/stream`;
  const reconnectsMax = options.reconnectsMax ?? SDK_SSE_RECONNECTS_MAX;
  let cursor = options.after ?? 0;
  let fruitless = 0;
  let first = true;
  while (!options.signal?.aborted) {
    if (!first) {
      if (++fruitless > reconnectsMax) throw new LoomConnectionError(`${base}${path}: ${reconnectsMax} reconnections brought no event`);
      await sleep(SDK_SSE_RECONNECT_DELAY_MS * Math.min(10, 2 ** (fruitless - 1)), options.signal);
      if (options.signal?.aborted) return;
      options.onReconnect?.(cursor);
    }
    first = false;
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        headers: { ...auth, accept: 'text/event-stream', 'last-event-id': String(cursor) },
        signal: options.signal,
      });
    } catch (error) {
      if (options.signal?.aborted) return;
      continue; // the server is restarting or unreachable: try again
    }
    if (!res.ok) {
      const error = errorOf(res.status, await res.text());
      if (res.status >= 500 || res.status === 429) continue;
      throw error;
    }
    const pending: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (m) => pending.push(m) });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch {
          break; // connection dropped: reconnect from the cursor
        }
        if (chunk.done) break;
        parser.feed(decoder.decode(chunk.value, { stream: true }));
        while (pending.length > 0) {
          const m = pending.shift()!;
          const id = m.id === undefined ? NaN : Number(m.id);
          if (!Number.isFinite(id) || id <= cursor) continue; // never yield an event twice
          cursor = id;
          fruitless = 0;
          yield JSON.parse(m.data) as Envelope;
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
