import { describe, expect, it } from 'vitest';
import { startOutbox, type OutboxPublisher } from '../../actors/outbox.js';
import { createManualClock } from '../../core/clock.js';
import { OutboxCursors, Store, type AnyEnvelope } from '../../store/index.js';
import { onCleanup, tempStore } from '../helpers.js';
import { appendEvents, eventually, natsServer, natsTransport, readStream } from '../transport/nats/helpers.js';

function outbox(...args: Parameters<typeof startOutbox>): OutboxPublisher {
  const o = startOutbox(...args);
  onCleanup(() => void o.stop({ drainMs: 0 }));
  return o;
}

/** Stream order must be gseq order, each gseq once, and exactly the log. */
function expectExactlyTheLog(stream: { msgId: string; event: AnyEnvelope }[], log: AnyEnvelope[]): void {
  expect(stream.map((m) => m.event.gseq)).toEqual(log.map((e) => e.gseq));
  expect(stream.map((m) => m.msgId)).toEqual(log.map((e) => String(e.gseq)));
  expect(stream.map((m) => m.event)).toEqual(log);
}

function wholeLog(store: Store): AnyEnvelope[] {
  const out: AnyEnvelope[] = [];
  for (let page = store.readAll(); page.length > 0; page = store.readAll({ afterGseq: out.at(-1)!.gseq })) out.push(...page);
  return out;
}

describe('actors/outbox - cursor table', () => {
  it('cursors - the lease is exclusive until it expires; the cursor moves only forward, only under the current lease', () => {
    const clock = createManualClock();
    const store = tempStore({ clock });
    const c = new OutboxCursors(store.db);
    const a = c.acquire('nats', 'a', 1_000, clock.now())!;
    expect(a).toMatchObject({ epoch: 1, gseq: 0 });
    expect(c.acquire('nats', 'b', 1_000, clock.now())).toBeNull();
    expect(c.advance(a, 5, clock.now())).toBe(true);
    expect(c.advance(a, 3, clock.now())).toBe(true); // already past: unchanged, not an error
    expect(c.state('nats', clock.now()).gseq).toBe(5);
    clock.advance(1_001);
    const b = c.acquire('nats', 'b', 1_000, clock.now())!;
    expect(b).toMatchObject({ epoch: 2, gseq: 5 });
    expect(c.advance(a, 9, clock.now())).toBe(false); // a's epoch is stale
    expect(c.renew(a, 1_000, clock.now())).toBe(false);
    expect(c.state('nats', clock.now())).toMatchObject({ gseq: 5, ownerId: 'b', epoch: 2, live: true });
    expect(c.release(b, clock.now())).toBe(true);
    expect(c.acquire('nats', 'a', 1_000, clock.now())).toMatchObject({ epoch: 3 });
  });
});

describe('actors/outbox - with a real nats-server', () => {
  it('outbox - publishes every committed event exactly once, in gseq order, and advances the cursor after the acks', async () => {
    const server = await natsServer();
    const store = tempStore();
    appendEvents(store, ['ses_a', 'ses_b'], 3); // history from before the publisher started
    const transport = natsTransport(server.url);
    const o = outbox({ store, sink: transport, pageEvents: 7 });
    appendEvents(store, ['ses_a', 'ses_b', 'ses_c'], 40);
    store.append({ sessionId: null, type: 'model.added', data: { model: 'openai/x' } });
    expect(await o.whenCaughtUp(10_000)).toBe(true);
    const log = wholeLog(store);
    expectExactlyTheLog(await readStream(server.url), log);
    expect(new OutboxCursors(store.db).state('nats', store.clock.now()).gseq).toBe(log.at(-1)!.gseq);
    expect(o.status()).toMatchObject({ holder: true, published: log.length });
  });

  it('outbox - a NATS outage loses nothing: events appended while the server is down arrive once and in order after it restarts', async () => {
    const server = await natsServer();
    const store = tempStore();
    const transport = natsTransport(server.url);
    const errors: unknown[] = [];
    const o = outbox({ store, sink: transport, backoffMaxMs: 200, onError: (e) => errors.push(e) });
    appendEvents(store, ['ses_a'], 10);
    expect(await o.whenCaughtUp(10_000)).toBe(true);
    await server.stop();
    appendEvents(store, ['ses_a', 'ses_b'], 25);
    expect(await o.whenCaughtUp(500)).toBe(false);
    await eventually(() => errors.length > 0, 5_000, 'a publish failure while the server is down');
    await server.restart();
    appendEvents(store, ['ses_b'], 5);
    expect(await o.whenCaughtUp(20_000)).toBe(true);
    expectExactlyTheLog(await readStream(server.url), wholeLog(store));
  });

  it('outbox - a server killed (SIGKILL) mid-stream: the stream still holds every event once, in order', async () => {
    const server = await natsServer();
    const store = tempStore();
    const transport = natsTransport(server.url);
    const o = outbox({ store, sink: transport, pageEvents: 16, backoffMaxMs: 200 });
    const writer = (async () => {
      for (let i = 0; i < 30; i++) {
        appendEvents(store, ['ses_a', 'ses_b'], 5);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await eventually(() => o.status().published > 0, 10_000, 'the first acks');
    await server.kill();
    const before = o.status().published;
    await new Promise((r) => setTimeout(r, 100));
    await server.restart();
    await writer;
    expect(await o.whenCaughtUp(20_000)).toBe(true);
    expect(before).toBeLessThan(store.maxGseq()); // the kill came mid-stream
    expectExactlyTheLog(await readStream(server.url), wholeLog(store));
  });

  it('outbox - two publishers on one database: only the lease holder publishes; the other takes over when it stops', async () => {
    const server = await natsServer();
    const store = tempStore();
    const other = Store.open(store.path);
    onCleanup(() => other.db.open && other.close());
    const a = outbox({ store, sink: natsTransport(server.url) });
    const b = outbox({ store: other, sink: natsTransport(server.url) });
    appendEvents(store, ['ses_a'], 20);
    appendEvents(other, ['ses_b'], 20);
    await eventually(() => a.status().holder || b.status().holder, 5_000, 'a holder');
    const [holder, waiting] = a.status().holder ? [a, b] : [b, a];
    expect(await holder.whenCaughtUp(10_000)).toBe(true);
    expect(waiting.status()).toMatchObject({ holder: false, published: 0 });
    await holder.stop();
    appendEvents(store, ['ses_c'], 5);
    // The waiting one notices the released lease at its next look (a commit, a nudge or its renew tick).
    expect(await waiting.whenCaughtUp(10_000)).toBe(true);
    expect(waiting.status().holder).toBe(true);
    expectExactlyTheLog(await readStream(server.url), wholeLog(store));
  });

  it('outbox - after a crash between the ack and the cursor update, the next holder skips what the stream has (no duplicate)', async () => {
    const server = await natsServer();
    const store = tempStore();
    const events = appendEvents(store, ['ses_a'], 9);
    // The "crashed" publisher: it published the first 6 under this database's id and never moved the cursor.
    const dbId = new OutboxCursors(store.db).state('nats', store.clock.now()).dbId;
    const crashed = natsTransport(server.url);
    await crashed.connection();
    expect((await crashed.publishAcked(events.slice(0, 6), { dbId })).acked).toBe(6);
    const o = outbox({ store, sink: natsTransport(server.url) });
    expect(await o.whenCaughtUp(10_000)).toBe(true);
    expect(o.status().published).toBe(events.length - 6);
    expectExactlyTheLog(await readStream(server.url), events);
  });

  it('outbox - stop publishes what was committed before releasing the lease', async () => {
    const server = await natsServer();
    const store = tempStore();
    const o = startOutbox({ store, sink: natsTransport(server.url) });
    appendEvents(store, ['ses_a'], 50);
    await o.stop();
    expect(new OutboxCursors(store.db).state('nats', store.clock.now())).toMatchObject({ gseq: store.maxGseq(), ownerId: null });
    expect((await readStream(server.url)).length).toBe(store.maxGseq());
  });
});
