import { describe, expect, it } from 'vitest';
import { startOutbox } from '../../../actors/outbox.js';
import { Store, type AnyEnvelope } from '../../../store/index.js';
import { natsTail } from '../../../transport/nats/tail.js';
import { onCleanup, tempStore } from '../../helpers.js';
import { appendEvents, eventually, natsServer, natsTransport } from './helpers.js';

/** Collects a tail's events in the background until the test ends. */
function collect(gen: AsyncGenerator<AnyEnvelope>, ac: AbortController): AnyEnvelope[] {
  const got: AnyEnvelope[] = [];
  void (async () => {
    for await (const e of gen) got.push(e);
  })();
  onCleanup(() => ac.abort());
  return got;
}

describe('transport/nats - tail', () => {
  it('natsTail - history from SQLite, then new events from another process through NATS at once (the SQLite poll is an hour away)', async () => {
    const server = await natsServer();
    const reader = tempStore();
    appendEvents(reader, ['ses_a'], 3); // seq 1..4: history
    // The writer: another connection to the same file, publishing through its own outbox.
    const writer = Store.open(reader.path);
    onCleanup(() => writer.db.open && writer.close());
    const outbox = startOutbox({ store: writer, sink: natsTransport(server.url) });
    onCleanup(() => void outbox.stop({ drainMs: 0 }));
    expect(await outbox.whenCaughtUp(10_000)).toBe(true);

    const ac = new AbortController();
    const transport = natsTransport(server.url);
    await transport.connection();
    const got = collect(natsTail(reader, transport, { sessionId: 'ses_a', after: 1 }, { signal: ac.signal, fallbackPollMs: 3_600_000, readyWaitMs: 5_000 }), ac);
    await eventually(() => got.length === 3, 5_000, 'history');
    appendEvents(writer, ['ses_a', 'ses_b'], 20);
    await eventually(() => got.length === 23, 5_000, 'live events through NATS');
    expect(got.map((e) => e.seq)).toEqual(Array.from({ length: 23 }, (_, i) => i + 2));
    expect(got.every((e) => e.sessionId === 'ses_a')).toBe(true);
  });

  it('natsTail - with NATS down it falls back to polling SQLite, and takes NATS again after a restart: no gap, no duplicate', async () => {
    const server = await natsServer();
    const reader = tempStore();
    const writer = Store.open(reader.path);
    onCleanup(() => writer.db.open && writer.close());
    const outbox = startOutbox({ store: writer, sink: natsTransport(server.url), backoffMaxMs: 200 });
    onCleanup(() => void outbox.stop({ drainMs: 0 }));
    appendEvents(writer, ['ses_a'], 2);
    const ac = new AbortController();
    const transport = natsTransport(server.url);
    await transport.connection();
    const got = collect(natsTail(reader, transport, { sessionId: 'ses_a' }, { signal: ac.signal, readyWaitMs: 5_000 }), ac);
    await eventually(() => got.length === 3, 5_000, 'history');
    await server.stop();
    await eventually(() => !transport.isConnected(), 5_000, 'the disconnect');
    appendEvents(writer, ['ses_a'], 10);
    await eventually(() => got.length === 13, 5_000, 'events by polling while NATS is down');
    await server.restart();
    appendEvents(writer, ['ses_a'], 10);
    await eventually(() => got.length === 23, 10_000, 'events after the restart');
    expect(got.map((e) => e.seq)).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
  });
});
