import { describe, expect, it } from 'vitest';
import { LoomApiError } from '../../sdk/index.js';
import { isSummaryRequest } from '../fixtures/scripted-routes.js';
import { startTestServer } from './harness.js';

async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in ${ms} ms: ${JSON.stringify(v)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function apiError(p: Promise<unknown>): Promise<LoomApiError> {
  try {
    await p;
  } catch (error) {
    if (error instanceof LoomApiError) return error;
    throw error;
  }
  throw new Error('expected an API error');
}

describe('HTTP - agents and compaction', () => {
  it('an unknown agent in a session, input or run body is 400 naming body.agent and the defined agents; nothing is recorded', async () => {
    const { client, dir } = await startTestServer();
    const refused = await apiError(client.createSession({ location: dir, agent: 'nope', text: 'hi' }));
    expect(refused).toMatchObject({ status: 400, field: 'body.agent' });
    expect(refused.message).toContain('unknown agent "nope": the agents defined are build, plan');
    expect((await client.listSessions()).sessions).toHaveLength(0);
    const { session } = await client.createSession({ location: dir });
    expect(await apiError(client.prompt(session.sessionId, { text: 'hi', agent: 'nope' }))).toMatchObject({ status: 400, field: 'body.agent' });
    expect(await apiError(client.run(session.sessionId, { agent: 'nope' }))).toMatchObject({ status: 400, field: 'body.agent' });
    expect((await client.eventsPage(session.sessionId)).events.map((e) => e.type)).toEqual(['session.created']);
  });

  it('the agent of a session, an input and a run is recorded and applied to the activity it opens', async () => {
    const { client, dir, provider } = await startTestServer({ respond: () => ({ text: 'ok' }) });
    const { session } = await client.createSession({ location: dir, agent: 'plan', text: 'look around' });
    expect(session.agent).toBe('plan');
    const id = session.sessionId;
    await until(() => client.eventsPage(id), (p) => p.events.some((e) => e.type === 'activity.settled'));
    await client.prompt(id, { text: 'now build', agent: 'build', mode: 'queue' });
    await until(() => client.eventsPage(id), (p) => p.events.filter((e) => e.type === 'activity.settled').length === 2);
    await client.run(id, { agent: 'plan' });
    const page = await until(() => client.eventsPage(id), (p) => p.events.filter((e) => e.type === 'activity.settled').length === 3);
    expect(page.events.filter((e) => e.type === 'activity.opened').map((e) => e.data.agent)).toEqual(['plan', 'build', 'plan']);
    const tools = provider.requests.map((r) => ((r.body as { tools?: { function: { name: string } }[] }).tools ?? []).map((t) => t.function.name));
    expect(tools.map((t) => t.includes('write'))).toEqual([false, true, false]);
  });

  it('POST /sessions/:id/compact records compaction.requested; the session compacts and reports it in its events', async () => {
    const { client, dir, provider } = await startTestServer({ respond: (r) => (isSummaryRequest(r.body) ? { text: 'SUMMARY over HTTP' } : { text: 'answer' }) });
    const { session } = await client.createSession({ location: dir, text: 'first question' });
    const id = session.sessionId;
    await until(() => client.eventsPage(id), (p) => p.events.some((e) => e.type === 'activity.settled'));
    await client.prompt(id, { text: 'second question' });
    await until(() => client.eventsPage(id), (p) => p.events.filter((e) => e.type === 'activity.settled').length === 2);
    const accepted = await client.compact(id, { reason: 'from a dashboard' });
    const page = await until(() => client.eventsPage(id), (p) => p.events.some((e) => e.type === 'compaction.finished' || e.type === 'compaction.failed'));
    expect(page.events.find((e) => e.seq === accepted.seq)).toMatchObject({ type: 'compaction.requested', data: { reason: 'from a dashboard' } });
    expect(page.events.find((e) => e.type === 'compaction.finished')!.data.summary).toBe('SUMMARY over HTTP');
    expect(provider.requests.filter((r) => isSummaryRequest(r.body))).toHaveLength(1);
  });
});
