import { describe, expect, expectTypeOf, it } from 'vitest';
import { startTestServer } from '../server/harness.js';
import { createLoomClient, LoomApiError, LoomConnectionError, type Envelope, type Session } from '../../sdk/index.js';

describe('sdk client', () => {
  it('types - request and response types come from the server contract', () => {
    expectTypeOf<Session['status']>().toEqualTypeOf<'idle' | 'active' | 'recovering'>();
    type PromptBody = Parameters<ReturnType<typeof createLoomClient>['prompt']>[1];
    expectTypeOf<Omit<PromptBody, 'budget'>>().toEqualTypeOf<{ text: string; mode?: 'steer' | 'queue' | undefined; clientId?: string | undefined; agent?: string | undefined }>();
    type Limit = { tokens?: number | undefined; costUsd?: number | undefined };
    expectTypeOf<PromptBody['budget']>().toEqualTypeOf<{ activity?: Limit | undefined; session?: Limit | undefined } | undefined>();
    expectTypeOf<NonNullable<Parameters<ReturnType<typeof createLoomClient>['run']>[1]>['budget']>().toEqualTypeOf<PromptBody['budget']>();
    expectTypeOf<Envelope['seq']>().toEqualTypeOf<number>();
    expectTypeOf<Awaited<ReturnType<ReturnType<typeof createLoomClient>['eventsPage']>>['events']>().toEqualTypeOf<Envelope[]>();
  });

  it('errors - a 4xx is a LoomApiError with the field; an unreachable server is a LoomConnectionError', async () => {
    const { client, url } = await startTestServer();
    const err = await client.prompt('ses_missing', { text: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoomApiError);
    expect(err).toMatchObject({ status: 404, code: 'not_found', field: 'path.id' });
    const wrong = createLoomClient({ baseUrl: url, token: 'wrong-token-000000000000' });
    expect(await wrong.listSessions().catch((e: unknown) => e)).toMatchObject({ status: 401, field: 'header.authorization' });
    const closed = createLoomClient({ baseUrl: 'http://127.0.0.1:9', token: 'x'.repeat(20) });
    expect(await closed.health().catch((e: unknown) => e)).toBeInstanceOf(LoomConnectionError);
    expect(await client.cookie()).toMatch(/^loom_session=.*HttpOnly/);
  });

  it('events - the iterator follows a run and resumes by itself after the server cuts it as a slow consumer', async () => {
    const { client, dir, rt } = await startTestServer({ sse: { bufferEventsMax: 20, bufferBytesMax: 256 * 1024 } });
    const { session } = await client.createSession({ location: dir });
    const id = session.sessionId;
    const total = 300;
    const big = 'y'.repeat(32 * 1024);
    const ac = new AbortController();
    const seqs: number[] = [];
    const reconnects: number[] = [];
    const it = client.events({ sessionId: id, signal: ac.signal, onReconnect: (c) => reconnects.push(c) })[Symbol.asyncIterator]();
    seqs.push((await it.next()).value!.seq); // session.created: connected
    // Not reading while the events are written: the connection's buffer overflows and is cut.
    for (let i = 0; i < total; i++) {
      rt.store.append({ sessionId: id, type: 'compaction.requested', data: { reason: `${i} ${big}` } });
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    while (seqs.length < total + 1) {
      const r = await it.next();
      if (r.done) break;
      seqs.push(r.value.seq);
    }
    ac.abort();
    await it.return?.(undefined);
    expect(seqs).toEqual(Array.from({ length: total + 1 }, (_, i) => i + 1));
    expect(reconnects.length).toBeGreaterThanOrEqual(1);
    expect(reconnects[0]).toBeGreaterThan(1);
  });

  it('events - the global iterator starts after a gseq and ends when its signal aborts', async () => {
    const { client, dir } = await startTestServer();
    const a = await client.createSession({ location: dir });
    const b = await client.createSession({ location: dir });
    // The system log (providers loaded, their models) shares the gseq sequence: start after a's first event.
    const aGseq = (await client.eventsPage(a.session.sessionId)).events[0]!.gseq;
    const bGseq = (await client.eventsPage(b.session.sessionId)).events[0]!.gseq;
    const ac = new AbortController();
    const got: Envelope[] = [];
    for await (const e of client.events({ after: aGseq, signal: ac.signal })) {
      got.push(e);
      ac.abort();
    }
    expect(got.map((e) => [e.gseq, e.sessionId])).toEqual([[bGseq, b.session.sessionId]]);
    expect(a.session.sessionId).not.toBe(b.session.sessionId);
  });
});
