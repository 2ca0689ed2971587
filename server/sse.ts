import { SSE_CONNECTIONS_MAX } from '../core/limits.js';
import type { AnyEnvelope } from '../store/index.js';
import type { ServerContext } from './app.js';
import { ApiError } from './errors.js';

/** What one SSE connection follows: one session (cursor = seq) or every event (cursor = gseq). */
export type StreamFilter = { sessionId: string } | { all: true };

/** Events read from SQLite per history page while a connection catches up. */
const HISTORY_PAGE_EVENTS = 200;
/** Bytes of frames handed to the socket in one chunk. */
const CHUNK_BYTES = 64 * 1024;
/** How long a browser's EventSource waits before reconnecting (the `retry:` field). */
const CLIENT_RETRY_MS = 1_000;

let open = 0;

/** SSE connections open in this process. */
export function openStreams(): number {
  return open;
}

/**
 * The cursor a client resumes from: `Last-Event-ID` (what EventSource sends on reconnect) wins over
 * `?after=`. A Last-Event-ID that is not a non-negative integer is a 400 naming the header.
 */
export function resumeCursor(lastEventId: string | undefined, after: number | undefined): number {
  if (lastEventId !== undefined && lastEventId.trim() !== '') {
    const t = lastEventId.trim();
    if (!/^\d{1,15}$/.test(t)) throw new ApiError(400, 'invalid_request', 'header.last-event-id: must be the id of an event (a non-negative integer)', 'header.last-event-id');
    return Number(t);
  }
  return after ?? 0;
}

/** An envelope's JSON, made once however many connections write it (the hub hands every listener the same object). */
const jsonCache = new WeakMap<AnyEnvelope, string>();
function jsonOf(e: AnyEnvelope): string {
  let s = jsonCache.get(e);
  if (s === undefined) jsonCache.set(e, (s = JSON.stringify(e)));
  return s;
}

export function frame(e: AnyEnvelope, cursor: number): string {
  return `id: ${cursor}\nevent: ${e.type}\ndata: ${jsonOf(e)}\n\n`;
}

/**
 * An SSE response following `filter` from `after`, with no gap and no duplicate:
 *
 * 1. subscribe to the hub first (events committed from now on are queued for this connection);
 * 2. page history from SQLite after the client's cursor until a short page (caught up);
 * 3. then write queued events, dropping any the history already covered (cursor ≤ last written).
 *
 * Frames are produced only when the socket asks for more (the stream is pulled by the HTTP
 * server as the socket drains), so a slow reader makes the queue grow. Past
 * `bufferEventsMax` events or `bufferBytesMax` bytes the connection is closed cleanly: a final
 * comment names the cursor, the queue is dropped, and the client resumes from its Last-Event-ID
 * with nothing lost (everything is in SQLite). A heartbeat comment is written after
 * `heartbeatMs` without a frame.
 */
export function sseResponse(ctx: ServerContext, filter: StreamFilter, after: number, abort: AbortSignal): Response {
  if (open >= SSE_CONNECTIONS_MAX) throw new ApiError(503, 'too_many_streams', `${open} SSE connections are open (SSE_CONNECTIONS_MAX)`);
  const encoder = new TextEncoder();
  const bySession = 'sessionId' in filter;
  const cursorOf = (e: AnyEnvelope) => (bySession ? e.seq : e.gseq);
  const matches = bySession ? (e: AnyEnvelope) => e.sessionId === filter.sessionId : () => true;

  let sent = after;
  let historyDone = false;
  let closed = false;
  let overflowed = false;
  const queue: AnyEnvelope[] = [];
  let queuedBytes = 0;
  let wake: (() => void) | undefined;
  const signal = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  const onEvents = (events: readonly AnyEnvelope[]) => {
    if (closed || overflowed) return;
    for (const e of events) {
      if (!matches(e)) continue;
      queue.push(e);
      queuedBytes += approxBytes(e);
    }
    if (queue.length > ctx.sse.bufferEventsMax || queuedBytes > ctx.sse.bufferBytesMax) {
      overflowed = true;
      queue.length = 0;
      queuedBytes = 0;
      unsubscribe();
    }
    signal();
  };
  // 1. Subscribe before reading any history.
  const unsubscribe = ctx.hub.subscribe(onEvents);
  open++;

  const finish = () => {
    if (closed) return;
    closed = true;
    open--;
    unsubscribe();
    clearTimeout(heartbeat);
    abort.removeEventListener('abort', onAbort);
    signal();
  };
  const onAbort = () => finish();
  abort.addEventListener('abort', onAbort);
  let heartbeat: NodeJS.Timeout | undefined;

  const readHistory = (): string => {
    let out = '';
    while (out.length < CHUNK_BYTES) {
      const page = bySession
        ? ctx.store.read(filter.sessionId, { after: sent, limit: HISTORY_PAGE_EVENTS })
        : ctx.store.readAll({ afterGseq: sent, limit: HISTORY_PAGE_EVENTS });
      for (const e of page) {
        sent = cursorOf(e);
        out += frame(e, sent);
      }
      if (page.length < HISTORY_PAGE_EVENTS) {
        historyDone = true;
        break;
      }
    }
    return out;
  };

  const takeQueued = (): string => {
    let out = '';
    while (queue.length > 0 && out.length < CHUNK_BYTES) {
      const e = queue.shift()!;
      queuedBytes -= approxBytes(e);
      const cursor = cursorOf(e);
      if (cursor <= sent) continue; // already written from history
      sent = cursor;
      out += frame(e, cursor);
    }
    return out;
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controller.enqueue(encoder.encode(`retry: ${CLIENT_RETRY_MS}\n: loom event stream after ${after}\n\n`));
      },
      async pull(controller) {
        for (;;) {
          if (closed) {
            try {
              controller.close();
            } catch {
              // already cancelled
            }
            return;
          }
          if (overflowed) {
            controller.enqueue(encoder.encode(`: slow consumer: closed after ${sent}; reconnect with Last-Event-ID: ${sent}\n\n`));
            finish();
            controller.close();
            return;
          }
          let out: string;
          try {
            out = historyDone ? takeQueued() : readHistory();
          } catch (error) {
            finish(); // the store is closing
            controller.error(error);
            return;
          }
          if (out !== '') {
            controller.enqueue(encoder.encode(out));
            return;
          }
          if (!historyDone || queue.length > 0) continue;
          // Nothing to write: wait for events, a close, or the heartbeat.
          const timedOut = await new Promise<boolean>((resolve) => {
            heartbeat = setTimeout(() => {
              wake = undefined;
              resolve(true);
            }, ctx.sse.heartbeatMs);
            wake = () => {
              clearTimeout(heartbeat);
              resolve(false);
            };
          });
          if (timedOut && !closed) {
            controller.enqueue(encoder.encode(': heartbeat\n\n'));
            return;
          }
        }
      },
      cancel() {
        finish();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    },
  });
}

/** The size of an event's frame (its JSON dominates; characters, close enough to bytes for a bound). */
function approxBytes(e: AnyEnvelope): number {
  return 64 + e.type.length + jsonOf(e).length;
}
