import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../../fixtures/nats-server.js';
import type { AnyEnvelope, Store } from '../../../store/index.js';
import { createNatsTransport, decodeEnvelope, EVENTS_STREAM, type NatsTransport, type NatsTransportOptions } from '../../../transport/nats/index.js';
import { onCleanup } from '../../helpers.js';

/** A fresh nats-server (its own port and store dir) for this test, stopped after it. */
export function natsServer(): Promise<NatsServer> {
  return startNatsServer({ onCleanup });
}

/** A NATS transport closed after the test. */
export function natsTransport(url: string, options: Omit<NatsTransportOptions, 'url'> = {}): NatsTransport {
  const t = createNatsTransport({ url, ...options });
  onCleanup(() => void t.close());
  return t;
}

/** A plain client connection, closed after the test. */
export async function natsClient(url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url });
  onCleanup(() => void nc.close());
  return nc;
}

/** Every message in LOOM_EVENTS, in stream order, decoded, with its Nats-Msg-Id and subject. */
export async function readStream(url: string): Promise<{ subject: string; msgId: string; event: AnyEnvelope }[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(EVENTS_STREAM);
    const out: { subject: string; msgId: string; event: AnyEnvelope }[] = [];
    if (info.state.messages === 0) return out;
    const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM);
    const messages = await consumer.fetch({ max_messages: info.state.messages, expires: 2_000 });
    for await (const m of messages) {
      out.push({ subject: m.subject, msgId: m.headers?.get('Nats-Msg-Id') ?? '', event: decodeEnvelope(m.data)! });
      if (out.length === info.state.messages) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Creates `sessions` sessions and `perSession` request events in each (round robin), returning every envelope. */
export function appendEvents(store: Store, sessions: string[], perSession: number): AnyEnvelope[] {
  const out: AnyEnvelope[] = [];
  for (const s of sessions) {
    if (!store.queries.session(s)) out.push(...store.append({ sessionId: s, type: 'session.created', data: { location: '/work/p', model: 'openai/test' } }));
  }
  for (let i = 0; i < perSession; i++) {
    for (const s of sessions) out.push(...store.append({ sessionId: s, type: 'compaction.requested', data: {} }));
  }
  return out;
}

/** Polls `check` until it returns true (or throws after `timeoutMs`). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
