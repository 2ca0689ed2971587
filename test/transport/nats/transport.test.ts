import { describe, expect, it } from 'vitest';
import { freePort } from '../../fixtures/nats-server.js';
import type { AnyEnvelope } from '../../../store/index.js';
import {
  filterSubject,
  NatsUnavailableError,
  parseSignalSubject,
  sessionEventSubject,
  sessionIdFromToken,
  sessionToken,
  signalSubject,
  systemEventSubject,
} from '../../../transport/nats/index.js';
import type { SessionSignal } from '../../../transport/types.js';
import { tempStore } from '../../helpers.js';
import { appendEvents, eventually, natsClient, natsServer, natsTransport, readStream } from './helpers.js';

describe('transport/nats - subjects', () => {
  it('subjects - dotted types become tokens; system events have their own family', () => {
    expect(sessionEventSubject('ses_1', 'tool.called')).toBe('loom.session.ses_1.event.tool.called');
    expect(systemEventSubject('model.added')).toBe('loom.system.event.model.added');
    expect(signalSubject('ses_1', 'wake')).toBe('loom.session.ses_1.wake');
    expect(parseSignalSubject('loom.session.ses_1.cancel')).toEqual({ sessionId: 'ses_1', kind: 'cancel' });
    expect(filterSubject({ sessionId: 'ses_1', types: ['tool.'] })).toBe('loom.session.ses_1.event.tool.>');
    expect(filterSubject({ sessionId: 'ses_1', types: ['text.delta'] })).toBe('loom.session.ses_1.event.text.delta');
    expect(filterSubject({ types: ['tool.'] })).toBeUndefined();
  });

  it('subjects - a session id that is not a subject token is encoded reversibly', () => {
    for (const id of ['ses_call.1', 'ses_a*b>c d', 'ses_~x', 'ses_ünï']) {
      const token = sessionToken(id);
      expect(token).toMatch(/^[A-Za-z0-9_~-]+$/);
      expect(sessionIdFromToken(token)).toBe(id);
    }
    expect(sessionToken('ses_0abc-DEF_1')).toBe('ses_0abc-DEF_1');
  });
});

describe('transport/nats - with a real nats-server', () => {
  it('signals - wake and cancel reach onSignal handlers on another connection', async () => {
    const server = await natsServer();
    const a = natsTransport(server.url);
    const b = natsTransport(server.url);
    const got: SessionSignal[] = [];
    a.onSignal((s) => got.push(s));
    await a.connection();
    await eventually(() => a.isConnected());
    // the subscription is made on connect; a round trip makes sure the server has it
    await (await a.connection()).flush();
    await b.wake('ses_1');
    await b.cancel('ses_call.1');
    await eventually(() => got.length === 2, 5_000, 'two signals');
    expect(got).toEqual([
      { kind: 'wake', sessionId: 'ses_1' },
      { kind: 'cancel', sessionId: 'ses_call.1' },
    ]);
  });

  it('events - published into LOOM_EVENTS with Nats-Msg-Id = gseq and the DESIGN §4 envelope', async () => {
    const server = await natsServer();
    const store = tempStore();
    const events = appendEvents(store, ['ses_a', 'ses_b'], 2);
    events.push(...store.append({ sessionId: null, type: 'model.added', data: { model: 'openai/x' } }));
    const t = natsTransport(server.url);
    await t.connection();
    const outcome = await t.publishAcked(events, { dbId: 'db1' });
    expect(outcome).toEqual({ acked: events.length, duplicates: 0 });
    const stream = await readStream(server.url);
    expect(stream.map((m) => m.msgId)).toEqual(events.map((e) => String(e.gseq)));
    expect(stream.map((m) => m.event)).toEqual(events);
    expect(stream[0]!.subject).toBe('loom.session.ses_a.event.session.created');
    expect(stream.at(-1)!.subject).toBe('loom.system.event.model.added');
    expect(await t.lastPublished()).toEqual({ gseq: events.at(-1)!.gseq, dbId: 'db1' });
  });

  it('events - publishing the same events again is de-duplicated by Nats-Msg-Id', async () => {
    const server = await natsServer();
    const store = tempStore();
    const events = appendEvents(store, ['ses_a'], 5);
    const t = natsTransport(server.url);
    await t.connection();
    await t.publishAcked(events);
    const again = await t.publishAcked(events.slice(2));
    expect(again).toEqual({ acked: events.length - 2, duplicates: events.length - 2 });
    expect((await readStream(server.url)).map((m) => m.event.gseq)).toEqual(events.map((e) => e.gseq));
  });

  it('events - a message whose predecessor is not the stream\'s last is refused (10070), so order survives a lost publish', async () => {
    const server = await natsServer();
    const store = tempStore();
    const events = appendEvents(store, ['ses_a'], 5); // gseq 1..6
    const t = natsTransport(server.url);
    await t.connection();
    await t.publishAcked(events.slice(0, 4));
    // As if the 5th had been lost on the wire: the 6th follows the 2nd (a duplicate) and expects it to be last.
    const out = await t.publishAcked([events[1]!, events[5]!]);
    expect(out.acked).toBe(1);
    expect(out.error).toMatchObject({ name: 'NatsPublishError', code: 10070 });
    expect((await readStream(server.url)).map((m) => m.event.gseq)).toEqual([1, 2, 3, 4]);
  });

  it('subscribe - another connection receives committed events through the stream, filtered', async () => {
    const server = await natsServer();
    const store = tempStore();
    const publisher = natsTransport(server.url);
    const subscriber = natsTransport(server.url);
    const mine: AnyEnvelope[] = [];
    const all: number[] = [];
    const raw: string[] = [];
    const off = await subscriber.subscribeReady({ sessionId: 'ses_a' }, (e) => mine.push(e));
    await subscriber.subscribeReady({}, (e) => all.push(e.gseq));
    const nc = await natsClient(server.url);
    nc.subscribe('loom.session.*.event.compaction.>', { callback: (_e, m) => void raw.push(m.subject) });
    await nc.flush();
    const events = appendEvents(store, ['ses_a', 'ses_b'], 3);
    await publisher.publishAcked(events);
    await eventually(() => all.length === events.length && mine.length === 4 && raw.length === 6, 5_000, 'deliveries');
    expect(all).toEqual(events.map((e) => e.gseq));
    expect(mine.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(raw.every((s) => /^loom\.session\.ses_[ab]\.event\.compaction\.requested$/.test(s))).toBe(true);
    off();
  });

  it('publish - a too large event goes out as a stub naming its size', async () => {
    const server = await natsServer();
    const store = tempStore();
    const [created] = appendEvents(store, ['ses_a'], 0);
    const big = { ...created!, data: { ...(created!.data as object), title: 'x'.repeat(2 * 1024 * 1024) } } as AnyEnvelope;
    const t = natsTransport(server.url);
    await t.connection();
    expect((await t.publishAcked([big])).acked).toBe(1);
    const [m] = await readStream(server.url);
    expect(m!.event).toMatchObject({ gseq: big.gseq, data: null, dataOmitted: { bytes: expect.any(Number) } });
  });

  it('no server - creating the transport does not throw; signals fail with NatsUnavailableError', async () => {
    const port = await freePort();
    const t = natsTransport(`nats://127.0.0.1:${port}`);
    expect(t.isConnected()).toBe(false);
    await expect(t.wake('ses_1')).rejects.toBeInstanceOf(NatsUnavailableError);
    const outcome = await t.publishAcked(appendEvents(tempStore(), ['ses_a'], 0));
    expect(outcome.acked).toBe(0);
    expect(outcome.error).toBeInstanceOf(NatsUnavailableError);
  });
});
