import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../llm/modelInfo.js';
import { LoomApiError, type Envelope } from '../../sdk/index.js';
import { startTestServer } from './harness.js';

/**
 * Budgets over HTTP: `budget` in the input, run and create bodies is laid over the config's
 * `budget` and recorded with the request; a cost budget the server cannot price is a 400 naming
 * the field; usage (tokens, cost) and the budgets in force show in the session and its state.
 */

const MODEL = 'openai/gpt-4o-mini';
const priced: ModelInfo = { id: MODEL, provider: 'openai', capabilities: { toolCalling: true, reasoning: false }, limits: {}, cost: { input: 1, output: 4 }, source: 'config' };
const catalog = (ref: string) => (ref === MODEL ? priced : undefined);
const answer = (prompt: number, completion: number) => ({ text: 'fine', usage: { prompt_tokens: prompt, completion_tokens: completion } });

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function apiError(p: Promise<unknown>): Promise<LoomApiError> {
  const e = await p.then(() => undefined, (error: unknown) => error);
  if (e instanceof LoomApiError) return e;
  throw new Error(`expected an API error, got ${String(e)}`);
}

const settledOf = (events: Envelope[]) => events.filter((e) => e.type === 'activity.settled');

describe('server budgets', () => {
  it('inputs - a budget in the body is recorded with the input and settles the activity budget_exceeded; usage shows in the session and state', async () => {
    const { client, dir } = await startTestServer({ script: [answer(800, 300)], modelInfo: catalog });
    const { session } = await client.createSession({ location: dir });
    const id = session.sessionId;
    await client.prompt(id, { text: 'spend', budget: { activity: { tokens: 1_000 }, session: { costUsd: 5 } } });
    const page = await until(() => client.eventsPage(id), (p) => settledOf(p.events).length > 0);
    expect(page.events.find((e) => e.type === 'input.admitted')!.data.budget).toEqual({ activity: { tokens: 1_000 }, session: { costUsd: 5 } });
    // 800 × $1 + 300 × $4 per million = $0.002
    expect(page.events.find((e) => e.type === 'turn.finished')!.data.costUsd).toBeCloseTo(0.002, 10);
    expect(settledOf(page.events)[0]!.data).toMatchObject({ status: 'budget_exceeded', reason: 'activity token budget of 1000 used up (1100 tokens)' });
    const s = await client.getSession(id);
    expect(s).toMatchObject({ inputTokens: 800, outputTokens: 300, lastActivityStatus: 'budget_exceeded' });
    expect(s.costUsd).toBeCloseTo(0.002, 10);
    const state = await client.getSessionState(id);
    expect(state.usage).toMatchObject({ inputTokens: 800, outputTokens: 300, budget: { costUsd: 5 } });
  });

  it('run - a budget in the run body caps the activity it opens', async () => {
    const { client, dir } = await startTestServer({ script: [answer(50, 50)] });
    const { session } = await client.createSession({ location: dir });
    await client.run(session.sessionId, { budget: { activity: { tokens: 10 } } });
    const page = await until(() => client.eventsPage(session.sessionId), (p) => settledOf(p.events).length > 0);
    expect(page.events.find((e) => e.type === 'run.requested')!.data.budget).toEqual({ activity: { tokens: 10 } });
    expect(settledOf(page.events)[0]!.data.status).toBe('budget_exceeded');
  });

  it('a cost budget for a model without a price is refused with 400 naming the field and the model; nothing is admitted', async () => {
    const { client, dir } = await startTestServer({ modelInfo: () => undefined });
    const { session } = await client.createSession({ location: dir });
    const e = await apiError(client.prompt(session.sessionId, { text: 'x', budget: { activity: { costUsd: 1 } } }));
    expect(e).toMatchObject({ status: 400, code: 'budget_price_unknown', field: 'body.budget.activity.costUsd' });
    expect(e.message).toContain(`model ${MODEL}`);
    expect(await apiError(client.run(session.sessionId, { budget: { session: { costUsd: 1 } } }))).toMatchObject({ status: 400, field: 'body.budget.session.costUsd' });
    expect(await apiError(client.createSession({ location: dir, text: 'x', budget: { activity: { costUsd: 1 } } }))).toMatchObject({ status: 400, field: 'body.budget.activity.costUsd' });
    expect((await client.eventsPage(session.sessionId)).events.map((x) => x.type)).toEqual(['session.created']);
    expect((await client.listSessions()).sessions).toHaveLength(1);
  });

  it('a malformed budget is a 400 naming the field', async () => {
    const { client, dir } = await startTestServer();
    const { session } = await client.createSession({ location: dir });
    expect(await apiError(client.prompt(session.sessionId, { text: 'x', budget: { activity: {} } }))).toMatchObject({ status: 400, field: 'body.budget.activity' });
    expect(await apiError(client.prompt(session.sessionId, { text: 'x', budget: { activity: { tokens: 0 } } }))).toMatchObject({ status: 400, field: 'body.budget.activity.tokens' });
    expect(await apiError(client.prompt(session.sessionId, { text: 'x', budget: { weekly: { tokens: 1 } } as never }))).toMatchObject({ status: 400, field: 'body.budget.weekly' });
    expect(await apiError(client.createSession({ location: dir, budget: { activity: { tokens: 5 } } }))).toMatchObject({ status: 400, field: 'body.budget' });
  });

  it('the config budget applies to HTTP admissions, the body overriding it one limit at a time', async () => {
    const { client, dir, home } = await startTestServer({ script: [answer(10, 10)] });
    writeFileSync(join(home, 'config.jsonc'), '{ "version": 1, "budget": { "activity": { "tokens": 100000 }, "session": { "tokens": 500 } } }');
    const { session } = await client.createSession({ location: dir, text: 'x', budget: { activity: { tokens: 7 } } });
    const page = await until(() => client.eventsPage(session.sessionId), (p) => settledOf(p.events).length > 0);
    expect(page.events.find((e) => e.type === 'input.admitted')!.data.budget).toEqual({ activity: { tokens: 7 }, session: { tokens: 500 } });
    expect(settledOf(page.events)[0]!.data.status).toBe('budget_exceeded');
  });
});
