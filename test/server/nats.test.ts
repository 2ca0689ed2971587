import { describe, expect, it } from 'vitest';
import { eventually, natsServer, readStream } from '../transport/nats/helpers.js';
import { startTestServer } from './harness.js';

describe('loom serve - with NATS', () => {
  it('serve with LOOM_NATS_URL - a session run over HTTP publishes every event to the stream once and in order', async () => {
    const nats = await natsServer();
    const t = await startTestServer({ script: [{ text: 'hello over nats' }], env: { LOOM_NATS_URL: nats.url } });
    const { session } = await t.client.createSession({ location: t.dir, model: 'openai/test', text: 'hi' });
    const sessionId = session.sessionId;
    await eventually(() => t.rt.store.queries.session(sessionId)?.lastActivityStatus === 'completed', 15_000, 'the session completes');
    const logged = t.rt.store.read(sessionId, { after: 0 }).filter((e) => e.type !== 'text.delta').map((e) => e.gseq);
    let published: number[] = [];
    await eventually(
      async () => {
        published = (await readStream(nats.url)).filter((m) => m.event.sessionId === sessionId && m.event.type !== 'text.delta').map((m) => m.event.gseq);
        return published.length >= logged.length;
      },
      15_000,
      'the outbox publishes the session',
    );
    expect(published).toEqual(logged);
  });
});
