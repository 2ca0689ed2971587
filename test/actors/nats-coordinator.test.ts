import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../actors/coordinator.js';
import { createProviderResolver } from '../../llm/resolve.js';
import { resolveConfig } from '../../services/config.js';
import { Store, type AnyEnvelope } from '../../store/index.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir, tempStore } from '../helpers.js';
import { eventually, natsServer, natsTransport } from '../transport/nats/helpers.js';

/**
 * A Coordinator on the NATS transport whose store never polls for other connections' commits: the
 * only way it can notice another process's request is the signal.
 */
async function ownerOverNats(script: ScriptedTurn[]) {
  const nats = await natsServer();
  const openai = await startScriptedOpenAIServer({ script });
  onCleanup(() => void openai.close());
  const store = tempStore();
  store.changes.subscribeExternal = () => () => {};
  const config = resolveConfig({ version: 2 });
  const tools = createDefaultRegistry();
  const home = tempDir();
  const transport = natsTransport(nats.url);
  const coordinator = new Coordinator({
    store,
    transport,
    deps: () => ({ config, home, tools, resolveProvider: createProviderResolver(config, { OPENAI_BASE_URL: openai.url }) }),
  });
  onCleanup(() => coordinator.shutdown());
  const sessionId = store.ids.next('ses');
  store.append({ sessionId, type: 'session.created', data: { location: tempDir(), model: 'openai/test' } });
  expect(coordinator.own(sessionId)).not.toBeNull();
  await coordinator.runUntilQuiet(sessionId);
  await (await transport.connection()).flush(); // the signal subscriptions are at the server
  // "Another process": its own connection to the database and to NATS.
  const other = Store.open(store.path);
  onCleanup(() => other.db.open && other.close());
  const requester = natsTransport(nats.url);
  await requester.connection();
  const events = (): AnyEnvelope[] => store.read(sessionId);
  return { store, other, requester, coordinator, sessionId, openai, events };
}

describe('actors/coordinator - on the NATS transport', () => {
  it('coordinator - a wake over NATS makes the owner run an input another process admitted', async () => {
    const h = await ownerOverNats([{ text: 'woken over NATS' }]);
    h.other.admitInput(h.sessionId, { mode: 'queue', text: 'from elsewhere' });
    await h.requester.wake(h.sessionId);
    await eventually(() => h.events().some((e) => e.type === 'activity.settled'), 10_000, 'the activity to settle');
    expect(h.openai.requests).toHaveLength(1);
    expect(h.events().find((e) => e.type === 'activity.settled')).toMatchObject({ data: { status: 'completed' } });
  });

  it('coordinator - a cancel over NATS aborts the owner\'s provider stream', async () => {
    const h = await ownerOverNats([{ text: 'x'.repeat(2_000), chunkSize: 2, delayMs: 10 }]);
    h.other.admitInput(h.sessionId, { mode: 'queue', text: 'talk for a long time' });
    await h.requester.wake(h.sessionId);
    await eventually(() => h.events().some((e) => e.type === 'attempt.dispatched'), 10_000, 'the dispatch');
    const activityId = h.other.queries.session(h.sessionId)!.activityId!;
    h.other.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId, reason: 'test' } });
    await h.requester.cancel(h.sessionId);
    await eventually(() => h.events().some((e) => e.type === 'activity.settled'), 10_000, 'the cancellation');
    expect(h.events().find((e) => e.type === 'activity.settled')).toMatchObject({ data: { status: 'cancelled' } });
  });
});
