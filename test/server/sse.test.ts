import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIST } from '../helpers.js';
import { authed, openSse, startTestServer } from './harness.js';

const contiguous = (seqs: number[], from = 1) => seqs.every((s, i) => s === from + i);

describe('SSE event streams', () => {
  it('session stream - every event of a run in seq order, each frame id its seq and its event its type', async () => {
    const { client, dir, url } = await startTestServer({ script: [{ text: 'streamed answer' }] });
    const { session } = await client.createSession({ location: dir, text: 'hi' });
    const sse = await openSse(`${url}/sessions/${session.sessionId}/events/stream`);
    expect(sse.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await sse.until(() => sse.frames.some((f) => f.event === 'activity.settled'));
    const envs = sse.envelopes();
    expect(contiguous(envs.map((e) => e.seq))).toBe(true);
    expect(sse.frames.map((f) => f.id)).toEqual(envs.map((e) => String(e.seq)));
    expect(sse.frames.map((f) => f.event)).toEqual(envs.map((e) => e.type));
    expect(envs.every((e) => e.sessionId === session.sessionId)).toBe(true);
  });

  it('session stream - a reconnect with Last-Event-ID in the middle of a run resumes with no gap and no duplicate', async () => {
    const { client, dir, url } = await startTestServer({ script: [{ text: 'a'.repeat(120), delayMs: 15, chunkSize: 1 }] });
    const { session } = await client.createSession({ location: dir, text: 'go slowly' });
    const path = `${url}/sessions/${session.sessionId}/events/stream`;
    const first = await openSse(path);
    await first.until(() => first.frames.filter((f) => f.event === 'text.delta').length >= 2);
    await first.close();
    const lastId = first.frames[first.frames.length - 1]!.id!;
    expect(first.frames.some((f) => f.event === 'activity.settled')).toBe(false); // cut mid-run
    const second = await openSse(path, { 'last-event-id': lastId });
    await second.until(() => second.frames.some((f) => f.event === 'activity.settled'));
    const seqs = [...first.envelopes(), ...second.envelopes()].map((e) => e.seq);
    expect(second.envelopes()[0]!.seq).toBe(Number(lastId) + 1);
    expect(contiguous(seqs)).toBe(true);
    expect(second.envelopes().some((e) => e.type === 'text.delta')).toBe(true); // events after the reconnect too
    // `?after=` resumes the same way; Last-Event-ID wins over it.
    const third = await openSse(`${path}?after=0`, { 'last-event-id': lastId });
    await third.until(() => third.frames.length > 0);
    expect(third.envelopes()[0]!.seq).toBe(Number(lastId) + 1);
    const fourth = await openSse(`${path}?after=${lastId}`);
    await fourth.until(() => fourth.frames.length > 0);
    expect(fourth.envelopes()[0]!.seq).toBe(Number(lastId) + 1);
  });

  it('global stream - events of every session in gseq order, cursor = gseq, and events committed by another process arrive', async () => {
    const { client, dir, url, home } = await startTestServer();
    const a = (await client.createSession({ location: dir })).session.sessionId;
    const sse = await openSse(`${url}/events/stream?after=0`);
    await sse.until(() => sse.frames.length >= 1);
    const b = (await client.createSession({ location: dir })).session.sessionId;
    // Another process appends to session a (request events through its own store connection).
    const child = spawn(process.execPath, [join(DIST, 'test/fixtures/store-child.js'), 'append', join(home, 'loom.db'), a, '5'], {
      env: { ...process.env, LOOM_CHILD_NO_WAIT: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await once(child, 'exit');
    await sse.until(() => sse.envelopes().filter((e) => e.type === 'compaction.requested').length === 5);
    const envs = sse.envelopes();
    expect(envs.map((e) => e.gseq)).toEqual(envs.map((_, i) => i + 1));
    expect(sse.frames.map((f) => Number(f.id))).toEqual(envs.map((e) => e.gseq));
    expect(new Set(envs.filter((e) => e.sessionId !== null).map((e) => e.sessionId))).toEqual(new Set([a, b]));
    // The global stream carries the system log too: the server's providers loaded before the first session.
    expect(envs.filter((e) => e.sessionId === null).map((e) => e.type)).toContain('provider.loaded');
    expect(envs.filter((e) => e.type === 'compaction.requested').every((e) => e.sessionId === a && /^child \d+ #\d$/.test(e.data.reason))).toBe(true);
  });

  it('heartbeat - an idle stream gets a comment every heartbeat interval', async () => {
    const { url, client } = await startTestServer({ sse: { heartbeatMs: 50 } });
    await client.models(); // the providers have loaded (their system events are history)
    const { gseq } = (await (await authed(`${url}/events/info`)).json()) as { gseq: number };
    const sse = await openSse(`${url}/events/stream?after=${gseq}`);
    await sse.until(() => sse.comments.filter((c) => c.includes('heartbeat')).length >= 2);
    expect(sse.frames).toEqual([]);
  });

  it('slow consumer - past its buffer the connection is closed cleanly, and resuming from its cursor loses nothing', async () => {
    const { client, dir, url, rt } = await startTestServer({ sse: { bufferEventsMax: 40, bufferBytesMax: 1024 * 1024 } });
    const { session } = await client.createSession({ location: dir });
    const id = session.sessionId;
    const path = `${url}/sessions/${id}/events/stream`;
    const slow = await openSse(path);
    await slow.until(() => slow.frames.length === 1); // session.created
    slow.pause(); // stops reading: the socket fills, then the connection's queue
    const big = 'x'.repeat(64 * 1024);
    const total = 400;
    for (let i = 0; i < total; i++) {
      rt.store.append({ sessionId: id, type: 'compaction.requested', data: { reason: `${i} ${big}` } });
      if (i % 20 === 0) await new Promise((r) => setImmediate(r)); // let the hub fan out as events commit
    }
    slow.resume();
    await slow.until(() => slow.ended, 30_000);
    expect(slow.comments.some((c) => /slow consumer: closed after \d+/.test(c))).toBe(true);
    const got = slow.envelopes().map((e) => e.seq);
    expect(got.length).toBeLessThan(total + 1);
    expect(contiguous(got)).toBe(true);
    const resumed = await openSse(path, { 'last-event-id': String(got[got.length - 1]) });
    await resumed.until(() => resumed.frames.length > 0 && Number(resumed.frames[resumed.frames.length - 1]!.id) === total + 1, 30_000);
    expect(contiguous([...got, ...resumed.envelopes().map((e) => e.seq)])).toBe(true);
    // The server let go of the slow connection's subscription.
    await resumed.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(rt.hub.size).toBe(0);
  });
});
