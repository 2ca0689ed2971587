import { CHANGE_POLL_INTERVAL_MS, NATS_SIGNAL_WAIT_MS, NATS_TAIL_BUFFER_EVENTS_MAX, NATS_TAIL_FALLBACK_POLL_MS } from '../../core/limits.js';

/** How often the wait for the consumer looks whether the connection failed meanwhile. */
const NATS_TAIL_READY_POLL_MS = 20;
import type { Store } from '../../store/index.js';
import type { AnyEnvelope } from '../../store/schemas.js';
import type { NatsTransport } from './index.js';

export interface NatsTailOptions {
  signal?: AbortSignal;
  /** SQLite poll interval while NATS is connected (the fallback); while it is not, CHANGE_POLL_INTERVAL_MS. */
  fallbackPollMs?: number;
  /** How long to wait for the NATS consumer before reading history (the poll covers a slow start). */
  readyWaitMs?: number;
}

/**
 * Follows one session's log with events delivered through NATS at once (DESIGN §4 "Reading"):
 * it subscribes first, then reads history from SQLite, and yields strictly by `seq` — an event
 * from NATS is yielded only when it is the next one; anything else (a gap, a stub whose data was
 * too large for NATS, a consumer that missed events while reconnecting) is read from SQLite after
 * the cursor. So there is no gap and no duplicate, whichever path an event comes by.
 *
 * SQLite stays the fallback: its `data_version` is polled every CHANGE_POLL_INTERVAL_MS while NATS
 * is disconnected and every `fallbackPollMs` while it is connected (events committed by a process
 * that publishes to no NATS still arrive, later).
 */
export async function* natsTail(
  store: Store,
  transport: NatsTransport,
  filter: { sessionId: string; after?: number },
  options: NatsTailOptions = {},
): AsyncGenerator<AnyEnvelope> {
  const { sessionId } = filter;
  const fallbackMs = options.fallbackPollMs ?? NATS_TAIL_FALLBACK_POLL_MS;
  let cursor = filter.after ?? 0;
  let buffer: AnyEnvelope[] = [];
  let dirty = true;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  let ready!: () => void;
  const readyOnce = new Promise<void>((resolve) => (ready = resolve));
  const unsubscribe = transport.subscribe(
    { sessionId },
    (e) => {
      if (e.seq <= cursor) return;
      if (buffer.length >= NATS_TAIL_BUFFER_EVENTS_MAX) {
        buffer = []; // overflow: drop them, SQLite has them all
        dirty = true;
      } else buffer.push(e);
      poke();
    },
    { onReady: () => ready() },
  );

  // The SQLite fallback: a data_version poll, slow while NATS delivers.
  let lastVersion = -1;
  let lastPoll = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    if (transport.isConnected() && now - lastPoll < fallbackMs) return;
    lastPoll = now;
    if (!store.db.open) return;
    const v = store.db.pragma('data_version', { simple: true }) as number;
    if (v !== lastVersion) {
      lastVersion = v;
      dirty = true;
      poke();
    }
  }, CHANGE_POLL_INTERVAL_MS);
  options.signal?.addEventListener('abort', poke);

  try {
    // Wait (bounded) for the consumer, so events committed from here on come through NATS; not at
    // all when the server is known to be down (the poll covers it).
    let isReady = false;
    void readyOnce.then(() => (isReady = true));
    const deadline = performance.now() + (options.readyWaitMs ?? NATS_SIGNAL_WAIT_MS);
    while (!isReady && !options.signal?.aborted && performance.now() < deadline && (transport.isConnected() || transport.connecting())) {
      await Promise.race([readyOnce, sleep(NATS_TAIL_READY_POLL_MS, options.signal)]);
    }
    while (!options.signal?.aborted) {
      // Events from NATS, while each is the next one.
      while (buffer.length > 0 && !dirty) {
        const e = buffer[0]!;
        if (e.seq <= cursor) {
          buffer.shift();
          continue;
        }
        if (e.seq !== cursor + 1 || (e as { dataOmitted?: unknown }).dataOmitted !== undefined) {
          dirty = true; // a gap or a stub: SQLite has the real thing
          break;
        }
        buffer.shift();
        cursor = e.seq;
        yield e;
        if (options.signal?.aborted) return;
      }
      if (dirty) {
        dirty = false;
        const page = store.read(sessionId, { after: cursor });
        for (const e of page) {
          cursor = e.seq;
          yield e;
          if (options.signal?.aborted) return;
        }
        if (page.length > 0) dirty = true; // there may be more pages
        continue;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    clearInterval(timer);
    unsubscribe();
    options.signal?.removeEventListener('abort', poke);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
  });
}
