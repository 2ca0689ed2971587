import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import { headers, nanos, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  NATS_HEADERS_RESERVE_BYTES,
  NATS_REQUEST_TIMEOUT_MS,
  NATS_SIGNAL_WAIT_MS,
  NATS_STREAM_DUPLICATE_WINDOW_MS,
  NATS_STREAM_MAX_AGE_MS,
  NATS_STREAM_MAX_BYTES,
  NATS_SUBSCRIBE_BACKOFF_MAX_MS,
  NATS_SUBSCRIBE_BACKOFF_MIN_MS,
  NATS_SUBSCRIBE_PENDING_MAX,
  NATS_CONSUMER_EXPIRES_MS,
  OUTBOX_INFLIGHT_MAX,
  TRANSPORT_SUBSCRIBERS_MAX,
} from '../../core/limits.js';
import type { AnyEnvelope } from '../../store/schemas.js';
import { matchesFilter, type EventFilter, type SessionSignal, type Transport } from '../types.js';
import { NatsConnector } from './connection.js';
import { decodeEnvelope, encodeEnvelope } from './envelope.js';
import { describe, isClosedError, isStreamNotFound, jetStreamCode, NatsPublishError, NatsTransportClosedError, NatsUnavailableError } from './errors.js';
import {
  CANCEL_WILDCARD,
  DB_HEADER,
  eventSubject,
  EVENTS_STREAM,
  EVENTS_STREAM_SUBJECTS,
  filterSubject,
  OUTBOX_NUDGE_SUBJECT,
  parseSignalSubject,
  signalSubject,
  WAKE_WILDCARD,
} from './subjects.js';

export * from './errors.js';
export * from './subjects.js';
export { decodeEnvelope, encodeEnvelope, WireEnvelope } from './envelope.js';
export { NatsConnector } from './connection.js';
export { createOwnerMirror, ownerKey, type MirroredOwner, type OwnerMirror, type OwnerMirrorOptions } from './owners.js';

/** Bounds of the LOOM_EVENTS stream, used when this transport creates it. */
export interface EventStreamLimits {
  maxAgeMs: number;
  maxBytes: number;
  duplicateWindowMs: number;
}

export interface NatsTransportOptions {
  /** Server URL (`nats://host:port`); the transport opens and owns its connection. */
  url?: string;
  /** An open connection to use instead (not closed by `close`). */
  connection?: NatsConnection;
  /** Connection name shown by the server (`loom`, `loom worker 1234`…). */
  name?: string;
  /** Limits of the LOOM_EVENTS stream when it is created here (an existing stream is left as it is). */
  stream?: Partial<EventStreamLimits>;
  /** Timeout of each JetStream publish ack and API request. */
  requestTimeoutMs?: number;
  /** Outbox publishes in flight at once (unacknowledged). */
  inflightMax?: number;
}

/** What one `publishAcked` call achieved: the first `acked` events are stored in the stream (or were already). */
export interface PublishOutcome {
  acked: number;
  duplicates: number;
  /** Why it stopped before the end (the events from index `acked` on must be published again). */
  error?: unknown;
}

/**
 * The NATS transport (DESIGN §6). Signals are core NATS; events reach subscribers through the
 * JetStream stream LOOM_EVENTS, into which only the outbox publisher (actors/outbox.ts) writes,
 * from SQLite, with `Nats-Msg-Id` = gseq. So `publish(event)`, called by the coordinator for every
 * committed event, does not publish from memory: it nudges the outbox (in this process, or over
 * `loom.outbox.nudge` the process holding the outbox lease), which publishes everything committed
 * in gseq order.
 */
export interface NatsTransport extends Transport {
  readonly url: string;
  /** True while connected to the server. */
  isConnected(): boolean;
  /** True while the first connection attempt is under way (neither connected nor failed yet). */
  connecting(): boolean;
  /** Called with nothing on the first connection and every reconnection; returns the unsubscribe function. */
  onConnect(handler: () => void): () => void;
  /** The connection, waiting at most `waitMs` for the first one (NatsUnavailableError otherwise). */
  connection(waitMs?: number): Promise<NatsConnection>;
  /**
   * Receives events from the stream (an ordered consumer, from the moment it exists: events
   * published before are not replayed — read those from SQLite). The consumer is made in the
   * background and made again after failures; `onReady` is called once it first exists.
   */
  subscribe(filter: EventFilter, handler: (event: AnyEnvelope) => void, options?: { onReady?: () => void }): () => void;
  /** Like `subscribe`, resolving once the consumer exists (events committed after that are delivered). */
  subscribeReady(filter: EventFilter, handler: (event: AnyEnvelope) => void, options?: { waitMs?: number }): Promise<() => void>;
  /**
   * Publishes committed events into the stream in order and waits for their acks, at most
   * `inflightMax` unacknowledged at once. The first event is sent without an expectation; every
   * later one carries `Nats-Expected-Last-Msg-Id` = the gseq before it, so a message lost in a
   * reconnect can never be overtaken by the next one. For the outbox only.
   */
  publishAcked(events: AnyEnvelope[], options?: { dbId?: string }): Promise<PublishOutcome>;
  /** The gseq and database id of the stream's last message, or null (empty stream, or not ours). */
  lastPublished(): Promise<{ gseq: number; dbId: string | null } | null>;
  /**
   * Registers the outbox of this process: `handler` is called when events may be waiting (a local
   * `publish`, or a nudge from another process) and returns whether it holds the outbox lease.
   */
  onNudge(handler: () => boolean): () => void;
}

interface EventSub {
  filter: EventFilter;
  handler: (event: AnyEnvelope) => void;
  stop(): void;
}

/** Creates the NATS transport; it connects in the background (see NatsConnector). */
export function createNatsTransport(options: NatsTransportOptions): NatsTransport {
  if (!options.url && !options.connection) throw new Error('createNatsTransport needs a url or a connection');
  const url = options.url ?? options.connection!.getServer();
  const connector = new NatsConnector(url, { connection: options.connection, name: options.name });
  const requestTimeoutMs = options.requestTimeoutMs ?? NATS_REQUEST_TIMEOUT_MS;
  const inflightMax = Math.max(1, options.inflightMax ?? OUTBOX_INFLIGHT_MAX);
  const limits: EventStreamLimits = {
    maxAgeMs: options.stream?.maxAgeMs ?? NATS_STREAM_MAX_AGE_MS,
    maxBytes: options.stream?.maxBytes ?? NATS_STREAM_MAX_BYTES,
    duplicateWindowMs: options.stream?.duplicateWindowMs ?? NATS_STREAM_DUPLICATE_WINDOW_MS,
  };
  const signalHandlers = new Set<(s: SessionSignal) => void>();
  const nudgeHandlers = new Set<() => boolean>();
  const eventSubs = new Set<EventSub>();
  let closed = false;
  let streamReady: { nc: NatsConnection; ready: Promise<void> } | undefined;
  let signalSubs: { nc: NatsConnection; subs: Subscription[] } | undefined;
  let nudgeSub: { nc: NatsConnection; sub: Subscription } | undefined;
  let nudgeQueued = false;

  const guard = (fn: () => void) => {
    try {
      fn();
    } catch {
      // one handler's failure is not the transport's
    }
  };

  /**
   * A request's result, or NatsUnavailableError as soon as the connection drops: a request sent to
   * a server that died is never answered, and waiting out its timeout would stall the caller.
   */
  const untilDisconnected = async <T>(work: Promise<T>): Promise<T> => {
    const lost = connector.whenDisconnected();
    try {
      return await Promise.race([
        work,
        lost.promise.then((): never => {
          throw new NatsUnavailableError(url, 0, 'disconnected while waiting for an answer');
        }),
      ]);
    } finally {
      lost.cancel();
    }
  };

  /** Creates LOOM_EVENTS when missing (once per connection; again after a failure). */
  const ensureStream = (nc: NatsConnection): Promise<void> => {
    if (streamReady?.nc === nc) return streamReady.ready;
    const ready = untilDisconnected((async () => {
      const jsm = await jetstreamManager(nc, { timeout: requestTimeoutMs });
      try {
        await jsm.streams.info(EVENTS_STREAM);
      } catch (error) {
        if (!isStreamNotFound(error)) throw error;
        await jsm.streams.add({
          name: EVENTS_STREAM,
          subjects: EVENTS_STREAM_SUBJECTS,
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          discard: DiscardPolicy.Old,
          max_age: nanos(limits.maxAgeMs),
          max_bytes: limits.maxBytes,
          duplicate_window: nanos(limits.duplicateWindowMs),
        });
      }
    })());
    streamReady = { nc, ready };
    ready.catch(() => {
      if (streamReady?.ready === ready) streamReady = undefined;
    });
    return ready;
  };

  const bounded = <T>(set: Set<T>, item: T) => {
    if (set.size >= TRANSPORT_SUBSCRIBERS_MAX) throw new Error(`too many transport subscribers (limit TRANSPORT_SUBSCRIBERS_MAX = ${TRANSPORT_SUBSCRIBERS_MAX})`);
    set.add(item);
  };

  // Core subscriptions (signals, nudges) are made once per connection; nats.js keeps them across reconnects.
  const subscribeCore = (nc: NatsConnection) => {
    if (signalHandlers.size > 0 && signalSubs?.nc !== nc) {
      const callback = (_err: Error | null, msg: { subject: string }) => {
        const parsed = parseSignalSubject(msg.subject);
        if (!parsed) return;
        for (const h of [...signalHandlers]) guard(() => h(parsed));
      };
      signalSubs = { nc, subs: [nc.subscribe(WAKE_WILDCARD, { callback }), nc.subscribe(CANCEL_WILDCARD, { callback })] };
    }
    if (nudgeHandlers.size > 0 && nudgeSub?.nc !== nc) {
      nudgeSub = { nc, sub: nc.subscribe(OUTBOX_NUDGE_SUBJECT, { callback: () => void localNudge() }) };
    }
  };
  const offConnect = connector.onConnect(subscribeCore);

  /** Tells this process's outbox; true when it holds the lease (so no one else need be told). */
  const localNudge = (): boolean => {
    let holder = false;
    for (const h of [...nudgeHandlers]) guard(() => void (holder = h() || holder));
    return holder;
  };

  const sendSignal = async (sessionId: string, kind: 'wake' | 'cancel') => {
    const nc = await connector.connection(NATS_SIGNAL_WAIT_MS);
    try {
      nc.publish(signalSubject(sessionId, kind));
    } catch (error) {
      if (isClosedError(error)) throw new NatsTransportClosedError(url);
      throw error;
    }
  };

  const startEventSub = (filter: EventFilter, handler: (e: AnyEnvelope) => void, onReady: (error?: unknown) => void): EventSub => {
    let stopped = false;
    let messages: ConsumerMessages | undefined;
    let lastStreamSeq = 0;
    let readyCalled = false;
    const ready = (error?: unknown) => {
      if (readyCalled) return;
      readyCalled = true;
      onReady(error);
    };
    const sub: EventSub = {
      filter,
      handler,
      stop() {
        stopped = true;
        void messages?.close();
        ready(new NatsTransportClosedError(url));
      },
    };
    const subject = filterSubject(filter);
    void (async () => {
      let backoff = NATS_SUBSCRIBE_BACKOFF_MIN_MS;
      while (!stopped && !closed) {
        try {
          const nc = await connector.connection(NATS_SUBSCRIBE_BACKOFF_MAX_MS);
          await ensureStream(nc);
          const js = jetstream(nc, { timeout: requestTimeoutMs });
          // An ordered consumer: ephemeral, in stream order, re-created by nats.js after a
          // reconnect from the last sequence it delivered. Resumed here the same way if it ends.
          const consumer = await js.consumers.get(EVENTS_STREAM, {
            ...(subject ? { filter_subjects: subject } : {}),
            ...(lastStreamSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastStreamSeq + 1 } : { deliver_policy: DeliverPolicy.New }),
          });
          if (stopped) return;
          messages = await consumer.consume({ max_messages: NATS_SUBSCRIBE_PENDING_MAX, expires: NATS_CONSUMER_EXPIRES_MS });
          ready();
          backoff = NATS_SUBSCRIBE_BACKOFF_MIN_MS;
          for await (const m of messages) {
            lastStreamSeq = m.seq;
            const event = decodeEnvelope(m.data);
            if (event && matchesFilter(filter, event)) guard(() => handler(event));
            if (stopped) break;
          }
        } catch (error) {
          if (error instanceof NatsTransportClosedError) return;
          // not connected yet, or the consumer could not be made: try again
        }
        if (stopped || closed) return;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, NATS_SUBSCRIBE_BACKOFF_MAX_MS);
      }
    })();
    return sub;
  };

  const transport: NatsTransport = {
    url,
    isConnected: () => connector.isConnected(),
    onConnect: (handler) => connector.onConnect(() => handler()),
    connecting: () => connector.isConnecting(),
    connection: (waitMs = NATS_SIGNAL_WAIT_MS) => connector.connection(waitMs),

    wake: (sessionId) => sendSignal(sessionId, 'wake'),
    cancel: (sessionId) => sendSignal(sessionId, 'cancel'),

    async publish() {
      // Coalesced: the coordinator calls this once per committed event.
      if (nudgeQueued) return;
      nudgeQueued = true;
      queueMicrotask(() => {
        nudgeQueued = false;
        if (localNudge()) return;
        const nc = connector.current();
        if (nc && !nc.isClosed()) guard(() => nc.publish(OUTBOX_NUDGE_SUBJECT));
      });
    },

    subscribe(filter, handler, opts = {}) {
      const sub = startEventSub(filter, handler, (error) => {
        if (error === undefined) opts.onReady?.();
      });
      bounded(eventSubs, sub);
      return () => {
        sub.stop();
        eventSubs.delete(sub);
      };
    },

    subscribeReady(filter, handler, opts = {}) {
      return new Promise((resolve, reject) => {
        let sub: EventSub | undefined;
        const timer = setTimeout(() => {
          reject(new NatsUnavailableError(url, opts.waitMs ?? NATS_REQUEST_TIMEOUT_MS, 'no event consumer could be made'));
          if (sub) eventSubs.delete(sub);
          sub?.stop();
        }, opts.waitMs ?? NATS_REQUEST_TIMEOUT_MS);
        timer.unref();
        sub = startEventSub(filter, handler, (error) => {
          clearTimeout(timer);
          if (error) return reject(error);
          resolve(() => {
            sub!.stop();
            eventSubs.delete(sub!);
          });
        });
        bounded(eventSubs, sub);
      });
    },

    onSignal(handler) {
      bounded(signalHandlers, handler);
      const nc = connector.current();
      if (nc) subscribeCore(nc);
      return () => {
        signalHandlers.delete(handler);
        if (signalHandlers.size === 0 && signalSubs) {
          for (const s of signalSubs.subs) guard(() => s.unsubscribe());
          signalSubs = undefined;
        }
      };
    },

    onNudge(handler) {
      bounded(nudgeHandlers, handler);
      const nc = connector.current();
      if (nc) subscribeCore(nc);
      return () => {
        nudgeHandlers.delete(handler);
        if (nudgeHandlers.size === 0 && nudgeSub) {
          guard(() => nudgeSub!.sub.unsubscribe());
          nudgeSub = undefined;
        }
      };
    },

    async publishAcked(events, opts = {}) {
      if (events.length === 0) return { acked: 0, duplicates: 0 };
      let nc: NatsConnection;
      try {
        nc = await connector.connection(0);
        if (!connector.isConnected()) throw new NatsPublishError(eventSubject(events[0]!), events[0]!.gseq, undefined, 'not connected (reconnecting)');
        await ensureStream(nc);
      } catch (error) {
        return { acked: 0, duplicates: 0, error };
      }
      const js = jetstream(nc, { timeout: requestTimeoutMs });
      const maxBytes = (nc.info?.max_payload ?? 1024 * 1024) - NATS_HEADERS_RESERVE_BYTES;
      let acked = 0;
      let duplicates = 0;
      for (let start = 0; start < events.length; start += inflightMax) {
        const chunk = events.slice(start, start + inflightMax);
        const sent = chunk.map((e, i) => {
          const index = start + i;
          const h = headers();
          if (opts.dbId) h.set(DB_HEADER, opts.dbId);
          const previous = index > 0 ? events[index - 1]!.gseq : undefined;
          return publishOne(js, e, encodeEnvelope(e, maxBytes), {
            msgID: String(e.gseq),
            headers: h,
            timeout: requestTimeoutMs,
            ...(previous !== undefined ? { expect: { lastMsgID: String(previous) } } : {}),
          });
        });
        // Acks in order; a disconnect ends the wait (what was not acknowledged is sent again later).
        const results: (PromiseSettledResult<{ duplicate: boolean }> | undefined)[] = new Array(sent.length);
        sent.forEach((p, i) => p.then((value) => (results[i] = { status: 'fulfilled', value }), (reason) => (results[i] = { status: 'rejected', reason })));
        const lost = connector.whenDisconnected();
        await Promise.race([Promise.allSettled(sent), lost.promise]);
        lost.cancel();
        for (let i = 0; i < results.length; i++) {
          const r = results[i];
          if (r === undefined || r.status === 'rejected') {
            streamReady = undefined; // a deleted stream is made again on the next try
            const error = r?.reason ?? new NatsPublishError(eventSubject(chunk[i]!), chunk[i]!.gseq, undefined, 'disconnected before the ack');
            return { acked, duplicates, error };
          }
          acked++;
          if (r.value.duplicate) duplicates++;
        }
      }
      return { acked, duplicates };
    },

    async lastPublished() {
      const nc = await connector.connection(0);
      await ensureStream(nc);
      return untilDisconnected(
        (async () => {
          const jsm = await jetstreamManager(nc, { timeout: requestTimeoutMs });
          const info = await jsm.streams.info(EVENTS_STREAM);
          if (info.state.last_seq === 0 || info.state.messages === 0) return null;
          try {
            const m = await jsm.streams.getMessage(EVENTS_STREAM, { seq: info.state.last_seq });
            if (!m) return null;
            const id = Number(m.header.get('Nats-Msg-Id'));
            if (!Number.isSafeInteger(id) || id <= 0) return null;
            return { gseq: id, dbId: m.header.get(DB_HEADER) || null };
          } catch (error) {
            if (connector.isConnected()) return null; // the last message was removed between the two calls
            throw error;
          }
        })(),
      );
    },

    async close() {
      if (closed) return;
      closed = true;
      offConnect();
      for (const s of [...eventSubs]) s.stop();
      eventSubs.clear();
      signalHandlers.clear();
      nudgeHandlers.clear();
      await connector.close();
    },
  };
  return transport;
}

async function publishOne(
  js: JetStreamClient,
  event: AnyEnvelope,
  payload: Uint8Array,
  opts: Parameters<JetStreamClient['publish']>[2],
): Promise<{ duplicate: boolean }> {
  const subject = eventSubject(event);
  try {
    const ack = await js.publish(subject, payload, opts);
    return { duplicate: ack.duplicate };
  } catch (error) {
    throw new NatsPublishError(subject, event.gseq, jetStreamCode(error), describe(error));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
