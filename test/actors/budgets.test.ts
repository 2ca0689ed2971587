import { describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../llm/modelInfo.js';
import { Store, type AnyEnvelope } from '../../store/index.js';
import { createHarness } from './harness.js';

/**
 * Usage and budgets (README "Budgets and usage"): every finished turn carries its tokens and, when
 * the model catalog has a price, its cost; activities settle with their totals; the sessions and
 * activities projections sum them; budgets recorded with inputs and run requests settle an activity
 * `budget_exceeded` in whichever process owns the session.
 */

const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];

/** $2 per million input tokens, $8 per million output tokens, $0.5 per million cached input tokens. */
const priced: ModelInfo = {
  id: 'openai/test',
  provider: 'openai',
  capabilities: { toolCalling: true, reasoning: false },
  limits: {},
  cost: { input: 2, output: 8, cacheRead: 0.5 },
  source: 'config',
};
const catalog = (ref: string) => (ref === priced.id ? priced : undefined);

const answer = (prompt: number, completion: number, text = 'ok') => ({ text, usage: { prompt_tokens: prompt, completion_tokens: completion } });

describe('session actor - usage', () => {
  it('a finished turn carries its cost from the catalog price; the activity settles with its totals; the projections sum them', async () => {
    const h = await createHarness({
      script: [{ toolCalls: [{ name: 'read', arguments: { path: 'nothing-here.txt' } }], usage: { prompt_tokens: 1_000, completion_tokens: 500, cached_tokens: 400 } }, answer(2_000, 100)],
      modelInfo: catalog,
    });
    h.admit('steer', 'x');
    await h.run();
    const turns = of(h.events(), 'turn.finished');
    // 600 uncached × $2 + 400 cached × $0.5 + 500 output × $8, per million; then 2 000 × $2 + 100 × $8.
    expect(turns.map((e) => e.data.costUsd)).toEqual([0.0054, 0.0048].map((x) => expect.closeTo(x, 10)));
    const settled = of(h.events(), 'activity.settled')[0]!;
    expect(settled.data.usage).toEqual({ inputTokens: 3_000, outputTokens: 600, costUsd: expect.closeTo(0.0102, 10) });
    const session = h.store.queries.session(h.sessionId)!;
    expect(session).toMatchObject({ inputTokens: 3_000, outputTokens: 600, turns: 2 });
    expect(session.costUsd).toBeCloseTo(0.0102, 10);
    expect(h.store.queries.activity(settled.data.activityId)).toMatchObject({ inputTokens: 3_000, outputTokens: 600, costUsd: expect.closeTo(0.0102, 10) });
  });

  it('without a price, turns carry tokens only and the cost stays unknown (null), not zero', async () => {
    const h = await createHarness({ script: [answer(10, 5)] });
    h.admit('steer', 'x');
    await h.run();
    expect(of(h.events(), 'turn.finished')[0]!.data.costUsd).toBeUndefined();
    expect(of(h.events(), 'activity.settled')[0]!.data.usage).toEqual({ inputTokens: 10, outputTokens: 5 });
    expect(h.store.queries.session(h.sessionId)!.costUsd).toBeNull();
  });
});

describe('session actor - budgets', () => {
  it('a turn that uses up the activity token budget settles budget_exceeded; its unsettled tool calls are interrupted and nothing more is sent', async () => {
    const h = await createHarness({
      script: [{ toolCalls: [{ name: 'sleep', arguments: { ms: 5_000 } }], usage: { prompt_tokens: 900, completion_tokens: 200 } }, answer(10, 1, 'never')],
      config: { permission: { rules: [{ tool: 'sleep', action: 'allow' }] } },
    });
    h.store.admitInput(h.sessionId, { mode: 'steer', text: 'x', budget: { activity: { tokens: 1_000 } } });
    await h.run();
    const settled = of(h.events(), 'activity.settled')[0]!;
    expect(settled.data).toMatchObject({ status: 'budget_exceeded', reason: 'activity token budget of 1000 used up (1100 tokens)', usage: { inputTokens: 900, outputTokens: 200 } });
    expect(of(h.events(), 'tool.settled').map((e) => e.data.status)).toEqual(['interrupted']);
    expect(h.server.requests).toHaveLength(1);
    expect(h.store.queries.conversation(h.sessionId).flatMap((m) => m.toolCalls).map((c) => c.status)).toEqual(['interrupted']);
  });

  it('under its budget an activity runs as usual; the budget applies per activity', async () => {
    const h = await createHarness({ script: [answer(400, 100), answer(400, 100)] });
    h.store.admitInput(h.sessionId, { mode: 'queue', text: 'one', budget: { activity: { tokens: 600 } } });
    h.store.admitInput(h.sessionId, { mode: 'queue', text: 'two', budget: { activity: { tokens: 600 } } });
    await h.run();
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
  });

  it('a priced turn that reaches the cost budget settles budget_exceeded', async () => {
    const h = await createHarness({ script: [answer(100_000, 10_000)], modelInfo: catalog });
    h.store.admitInput(h.sessionId, { mode: 'steer', text: 'x', budget: { activity: { costUsd: 0.25 } } });
    await h.run();
    // 100 000 × $2 + 10 000 × $8 per million = $0.28
    expect(of(h.events(), 'activity.settled')[0]!.data).toMatchObject({ status: 'budget_exceeded', reason: 'activity cost budget of $0.25 used up ($0.2800)' });
  });

  it('a cost budget whose model lost its price cannot be checked: the activity fails saying so, it is never ignored', async () => {
    const h = await createHarness({ script: [answer(10, 5), answer(10, 5)] });
    h.store.admitInput(h.sessionId, { mode: 'steer', text: 'x', budget: { activity: { costUsd: 1 } } });
    await h.run();
    const settled = of(h.events(), 'activity.settled')[0]!;
    expect(settled.data.status).toBe('failed');
    expect(settled.data.reason).toBe("activity cost budget of $1 cannot be checked: no price is known for this session's model");
    expect(h.server.requests).toHaveLength(1);
  });

  it('the session budget counts every activity: once used up, the next activity settles before any request and the session parks', async () => {
    const h = await createHarness({ script: [answer(100, 50), answer(200, 50), answer(1, 1, 'never')] });
    h.store.admitInput(h.sessionId, { mode: 'queue', text: 'one', budget: { session: { tokens: 400 } } });
    await h.run();
    h.store.admitInput(h.sessionId, { mode: 'queue', text: 'two' });
    await h.run();
    let settled = of(h.events(), 'activity.settled');
    expect(settled.map((e) => e.data.status)).toEqual(['completed', 'budget_exceeded']);
    expect(settled[1]!.data.reason).toBe('session token budget of 400 used up (400 tokens)');
    const three = h.admit('queue', 'three');
    await h.run();
    settled = of(h.events(), 'activity.settled');
    expect(settled[2]!.data).toMatchObject({ status: 'budget_exceeded', reason: 'session token budget of 400 used up (400 tokens)', turns: 1 });
    expect(h.server.requests).toHaveLength(2);
    expect(h.store.input(three)!.status).toBe('pending'); // released, not lost
    expect(h.coordinator.get(h.sessionId)!.context().parked).toBe(true);
    expect(h.store.queries.session(h.sessionId)).toMatchObject({ inputTokens: 300, outputTokens: 100, lastActivityStatus: 'budget_exceeded' });
  });

  it('a budget recorded by another process with its input is enforced by the owner; so is a run request\'s', async () => {
    const h = await createHarness({ script: [answer(50, 60), answer(50, 60)] });
    const other = Store.open(h.store.path);
    other.admitInput(h.sessionId, { mode: 'steer', text: 'from elsewhere', budget: { activity: { tokens: 100 } } });
    other.close();
    await h.run();
    h.store.append({ sessionId: h.sessionId, type: 'run.requested', data: { runId: 'run_1', budget: { activity: { tokens: 50 } } } });
    await h.run();
    expect(of(h.events(), 'activity.settled').map((e) => [e.data.status, e.data.reason])).toEqual([
      ['budget_exceeded', 'activity token budget of 100 used up (110 tokens)'],
      ['budget_exceeded', 'activity token budget of 50 used up (110 tokens)'],
    ]);
  });

  it('a snapshot of the previous machine version (no usage or budgets in it) is discarded and the state rebuilt from the log', async () => {
    const h = await createHarness({ script: [answer(100, 20), answer(300, 30)] });
    h.store.admitInput(h.sessionId, { mode: 'queue', text: 'one', budget: { session: { tokens: 400 } } });
    await h.run();
    // What Loom wrote before budgets existed: session@2, a context without usage, budgets or input budgets.
    const old = h.store.getSnapshot(h.sessionId)!;
    const { usage: _u, sessionBudget: _b, inputBudgets: _i, runBudget: _r, ...oldContext } = old.context as Record<string, unknown>;
    h.store.db.prepare('UPDATE snapshots SET machine_version = ?, context = ? WHERE session_id = ?').run('session@2', JSON.stringify(oldContext), h.sessionId);
    h.crash();
    const { coordinator, actor } = h.restart();
    expect(actor.context()).toMatchObject({ usage: { inputTokens: 100, outputTokens: 20 }, sessionBudget: { tokens: 400 } });
    // The rebuilt totals go on counting: the next turn reaches the session budget.
    h.admit('queue', 'two');
    actor.catchUp();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'budget_exceeded']);
    expect(h.store.getSnapshot(h.sessionId)!.machineVersion).toBe('session@3');
  });

  it('a budget that does not fit its schema is refused at admission and nothing is stored', () => {
    return createHarness().then((h) => {
      expect(() => h.store.admitInput(h.sessionId, { mode: 'steer', text: 'x', budget: { activity: {} } })).toThrow(/budget\.activity.*sets neither tokens nor costUsd/);
      expect(() => h.store.admitInput(h.sessionId, { mode: 'steer', text: 'x', budget: { activity: { tokens: -1 } } })).toThrow(/budget\.activity\.tokens/);
      expect(h.store.inputs(h.sessionId)).toEqual([]);
    });
  });
});
