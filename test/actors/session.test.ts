import { describe, expect, it } from 'vitest';
import type { AnyEnvelope } from '../../store/index.js';
import { createHarness } from './harness.js';

const slowText = (text: string) => ({ text, delayMs: 40, chunkSize: 2 });
const userContents = (body: unknown) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'user').map((m) => m.content);
const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];

describe('session actor - the safe boundary', () => {
  it('turn ends with no tool calls and no steer: the activity settles completed', async () => {
    const h = await createHarness({ script: [{ text: 'hello there' }] });
    h.admit('steer', 'hi');
    await h.run();
    expect(h.types()).toEqual([
      'session.created', 'input.admitted', 'activity.opened', 'input.assigned', 'turn.started',
      'attempt.dispatched', 'input.consumed', 'text.done', 'turn.finished', 'activity.settled',
    ]);
    expect(of(h.events(), 'activity.settled')[0]!.data).toMatchObject({ status: 'completed', turns: 1 });
    expect(h.store.queries.conversation(h.sessionId).map((m) => m.role)).toEqual(['user', 'assistant']);
  });

  it('turn ends with no tool calls while a steer waits: the steer is assigned and a new turn starts', async () => {
    const h = await createHarness({ script: [slowText('a long first answer that takes a while'), { text: 'steered answer' }] });
    h.admit('steer', 'first');
    const run = h.run();
    await h.waitFor((e) => e.type === 'attempt.dispatched');
    h.admit('steer', 'and also this');
    await run;
    const events = h.events();
    expect(of(events, 'activity.opened')).toHaveLength(1);
    expect(of(events, 'activity.settled')).toHaveLength(1);
    expect(of(events, 'turn.started').map((e) => e.data.turn)).toEqual([1, 1]); // the counter restarts
    expect(userContents(h.server.requests[1]!.body)).toEqual(['first', 'and also this']);
  });

  it('turn ends with tool calls: all settlements are awaited, then every pending steer joins in admission order', async () => {
    const h = await createHarness({
      script: [{ toolCalls: [{ name: 'sleep', arguments: { ms: 300 } }] }, { text: 'done' }],
      config: { permission: { rules: [{ tool: 'sleep', action: 'allow' }] } },
    });
    h.admit('steer', 'go');
    const run = h.run();
    await h.waitFor((e) => e.type === 'tool.started');
    h.admit('steer', 'steer one');
    h.admit('steer', 'steer two');
    await run;
    const types = h.types();
    expect(types.indexOf('tool.settled')).toBeLessThan(types.lastIndexOf('input.assigned'));
    const second = h.server.requests[1]!.body as { messages: { role: string; content: string }[] };
    expect(second.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'user', 'user']);
    expect(userContents(second)).toEqual(['go', 'steer one', 'steer two']);
  });

  it('input while idle: all pending steers open one activity together, before older queued input', async () => {
    const h = await createHarness({ script: [{ text: 'both steers' }, { text: 'the queued one' }] });
    h.admit('queue', 'queued first');
    h.admit('steer', 's1');
    h.admit('steer', 's2');
    await h.run();
    const opened = of(h.events(), 'activity.opened');
    expect(opened).toHaveLength(2);
    expect(opened[0]!.data.inputIds).toHaveLength(2);
    expect(userContents(h.server.requests[0]!.body)).toEqual(['s1', 's2']);
    expect(userContents(h.server.requests[1]!.body)).toEqual(['s1', 's2', 'queued first']);
  });

  it('an activity that settles with queued inputs opens the next one at once, FIFO, one at a time', async () => {
    const h = await createHarness({ script: [{ text: 'one' }, { text: 'two' }, { text: 'three' }] });
    h.admit('queue', 'q1');
    h.admit('queue', 'q2');
    h.admit('queue', 'q3');
    await h.run();
    const opened = of(h.events(), 'activity.opened');
    expect(opened.map((e) => e.data.inputIds.length)).toEqual([1, 1, 1]);
    expect(h.server.requests.map((r) => userContents(r.body).at(-1))).toEqual(['q1', 'q2', 'q3']);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed', 'completed']);
  });

  it('cancel: settles cancelled, aborts the stream, keeps pending input pending and parks until a new input', async () => {
    const h = await createHarness({ script: [slowText('x'.repeat(400)), { text: 'after' }] });
    h.admit('steer', 'long task');
    const run = h.run();
    const dispatched = await h.waitFor((e) => e.type === 'text.delta');
    h.admit('queue', 'later');
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId: (dispatched.data as { activityId: string }).activityId } });
    h.coordinator.get(h.sessionId)!.catchUp();
    await run;
    const events = h.events();
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['cancelled']);
    expect(of(events, 'attempt.failed')[0]!.data.error.kind).toBe('cancelled');
    expect(h.store.inputs(h.sessionId, 'pending').map((i) => i.text)).toEqual(['later']);
    expect(h.coordinator.get(h.sessionId)!.context().parked).toBe(true);
    expect(h.server.requests).toHaveLength(1);
    // a new input un-parks: steers first, then the queued one
    h.admit('steer', 'now this');
    await h.run();
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['cancelled', 'completed', 'completed']);
  });

  it('a cancel naming another activity is ignored', async () => {
    const h = await createHarness({ script: [slowText('some answer here')] });
    h.admit('steer', 'x');
    const run = h.run();
    await h.waitFor((e) => e.type === 'attempt.dispatched');
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId: 'act_other' } });
    await run;
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('turn limit: the turn after the limit is never dispatched and the activity settles turn_limit', async () => {
    const call = { toolCalls: [{ name: 'read', arguments: { path: 'missing.txt' } }] };
    const h = await createHarness({ script: [call, call, call, call], config: { limits: { turnLimit: 2 } } });
    h.admit('steer', 'loop');
    await h.run();
    expect(h.server.requests).toHaveLength(2);
    expect(of(h.events(), 'turn.started')).toHaveLength(2);
    expect(of(h.events(), 'activity.settled')[0]!.data).toMatchObject({ status: 'turn_limit', turns: 2 });
  });

  it('calls beyond the per-turn tool-call limit settle at once as errors, and every call gets a result', async () => {
    const read = (path: string) => ({ name: 'read', arguments: { path } });
    const h = await createHarness({ script: [{ toolCalls: [read('a'), read('b'), read('c')] }, { text: 'ok' }], config: { limits: { toolCallsPerTurn: 2 } } });
    h.admit('steer', 'go');
    await h.run();
    const settled = of(h.events(), 'tool.settled');
    expect(settled).toHaveLength(3);
    expect(settled.filter((e) => e.data.output.includes('tool-call limit reached'))).toHaveLength(1);
    const second = h.server.requests[1]!.body as { messages: { role: string }[] };
    expect(second.messages.filter((m) => m.role === 'tool')).toHaveLength(3);
  });

  it('calls over the per-session concurrency bound wait queued and all of them run; none is dropped', async () => {
    const sleep = (ms: number) => ({ name: 'sleep', arguments: { ms } });
    const calls = [sleep(60), sleep(10), sleep(40), sleep(20), sleep(30), sleep(10)];
    const h = await createHarness({ script: [{ toolCalls: calls }, { text: 'ok' }], config: { limits: { toolConcurrency: 2 }, permission: { rules: [{ tool: 'sleep', action: 'allow' }] } } });
    h.admit('steer', 'go');
    await h.run();
    const events = h.events();
    const settled = of(events, 'tool.settled');
    expect(settled).toHaveLength(6);
    expect(settled.every((e) => e.data.status === 'ok')).toBe(true);
    // Walk the log in seq order: never more than two calls between tool.started and tool.settled.
    let running = 0;
    let peak = 0;
    for (const e of events) {
      if (e.type === 'tool.started') peak = Math.max(peak, ++running);
      if (e.type === 'tool.settled') running--;
    }
    expect(peak).toBe(2);
  });

  it('eager tool settlement: a call starts before its stream closes', async () => {
    const h = await createHarness({
      script: [{ toolCalls: [{ name: 'read', arguments: { path: 'x' } }], text: 'and a long tail of text after the call', delayMs: 30, chunkSize: 2 }, { text: 'ok' }],
    });
    h.admit('steer', 'go');
    await h.run();
    const events = h.events();
    const settled = of(events, 'tool.settled')[0]!;
    const finished = of(events, 'turn.finished')[0]!;
    // the scripted stream sends tool-call chunks after the text, so assert on start, not settlement order
    expect(of(events, 'tool.started')[0]!.seq).toBeLessThan(of(events, 'turn.finished')[1]!.seq);
    expect(settled.seq).toBeGreaterThan(0);
    expect(finished.data.toolCalls).toBe(1);
  });
});

describe('session actor - run, wake and joins', () => {
  it('run makes at least one provider attempt, even with no input', async () => {
    const h = await createHarness({ script: [{ text: 'hello' }] });
    h.store.append({ sessionId: h.sessionId, type: 'run.requested', data: { runId: 'run_1' } });
    await h.run();
    expect(h.server.requests).toHaveLength(1);
    expect(of(h.events(), 'activity.opened')[0]!.data.trigger).toBe('run');
  });

  it('wake calls the provider only when eligible input waits', async () => {
    const h = await createHarness({ script: [{ text: 'hello' }] });
    await h.run();
    h.coordinator.wake(h.sessionId);
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(h.server.requests).toHaveLength(0);
    h.admit('queue', 'now');
    h.coordinator.wake(h.sessionId);
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(h.server.requests).toHaveLength(1);
  });

  it('concurrent runs of one session join the same run', async () => {
    const h = await createHarness({ script: [slowText('joined')] });
    h.admit('steer', 'x');
    const actor = h.coordinator.own(h.sessionId)!;
    const a = h.coordinator.runUntilQuiet(h.sessionId);
    const b = h.coordinator.runUntilQuiet(h.sessionId);
    expect(a).toBe(b);
    expect(h.coordinator.own(h.sessionId)).toBe(actor);
    await a;
    expect(h.server.requests).toHaveLength(1);
  });

  it('an input admitted by another connection while the activity settles is not lost', async () => {
    const h = await createHarness({ script: [slowText('first'), { text: 'second' }] });
    const { Store } = await import('../../store/index.js');
    const other = Store.open(h.store.path);
    h.admit('steer', 'one');
    const run = h.run();
    await h.waitFor((e) => e.type === 'text.delta');
    other.admitInput(h.sessionId, { mode: 'queue', text: 'two' });
    other.close();
    await run;
    expect(h.server.requests).toHaveLength(2);
    expect(of(h.events(), 'activity.settled')).toHaveLength(2);
  });
});

describe('session actor - provider failures', () => {
  it('a retryable failure before any chunk is retried; the failed attempt is recorded', async () => {
    const h = await createHarness({ script: [{ status: 500, errorBody: 'boom' }, { text: 'recovered' }] });
    h.admit('steer', 'x');
    await h.run();
    const failed = of(h.events(), 'attempt.failed');
    expect(failed[0]!.data).toMatchObject({ retryable: true, receivedChunks: false });
    expect(of(h.events(), 'attempt.dispatched').map((e) => e.data.attempt)).toEqual([1, 2]);
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('a failure after chunks arrived is not retried: the parts are discarded and the activity fails', async () => {
    const h = await createHarness({ script: [{ text: 'partial answer', truncate: true }, { text: 'never' }] });
    h.admit('steer', 'x');
    await h.run();
    const failed = of(h.events(), 'attempt.failed')[0]!;
    expect(failed.data).toMatchObject({ receivedChunks: true });
    expect(failed.data.discardedParts.length).toBeGreaterThan(0);
    expect(h.server.requests).toHaveLength(1);
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('failed');
    expect(h.store.queries.conversation(h.sessionId).filter((m) => m.role === 'assistant')).toHaveLength(0);
    // the input was consumed by the dispatched request, so it is not released
    expect(h.store.inputs(h.sessionId, 'consumed')).toHaveLength(1);
  });

  it('an activity that fails before sending its input releases it once and parks: no reopening loop', async () => {
    const h = await createHarness({ script: [] });
    const sessionId = h.store.ids.next('ses');
    // No provider "nowhere" is configured: every attempt fails before anything is dispatched.
    h.store.append({ sessionId, type: 'session.created', data: { location: h.location, model: 'nowhere/model' } });
    h.store.admitInput(sessionId, { mode: 'steer', text: 'hello' });
    h.coordinator.own(sessionId);
    await h.coordinator.runUntilQuiet(sessionId);
    const events = h.store.read(sessionId, { after: 0 });
    expect(of(events, 'activity.opened')).toHaveLength(1);
    expect(of(events, 'activity.settled')[0]!.data.status).toBe('failed');
    expect(of(events, 'input.released')).toHaveLength(1);
    expect(h.store.inputs(sessionId).map((i) => i.status)).toEqual(['pending']);
    const actor = h.coordinator.get(sessionId)!;
    expect(actor.context().parked).toBe(true);
    // A new input un-parks it: both inputs open the next activity together (and fail the same way, once).
    h.store.admitInput(sessionId, { mode: 'steer', text: 'again' });
    actor.catchUp();
    await h.coordinator.runUntilQuiet(sessionId);
    const after = h.store.read(sessionId, { after: 0 });
    expect(of(after, 'activity.opened')).toHaveLength(2);
    expect(of(after, 'activity.opened')[1]!.data.inputIds).toHaveLength(2);
  });

  it('a non-retryable failure (401) settles the activity failed with the reason', async () => {
    const h = await createHarness({ script: [{ status: 401, errorBody: '{"error":{"message":"bad key"}}' }] });
    h.admit('steer', 'x');
    await h.run();
    const settled = of(h.events(), 'activity.settled')[0]!;
    expect(settled.data.status).toBe('failed');
    expect(settled.data.reason).toMatch(/auth/);
  });
});

describe('session actor - ownership and restore', () => {
  it('restoring an unsettled session comes back in recovering and runs nothing; abandon settles it', async () => {
    const h = await createHarness({ script: [slowText('y'.repeat(200))] });
    h.admit('steer', 'x');
    const actor = h.coordinator.own(h.sessionId)!;
    await h.waitFor((e) => e.type === 'text.delta');
    // simulate the owner dying: stop the actor without releasing, let the lease lapse
    actor.stop();
    h.store.db.prepare('UPDATE session_owner SET expires_at = 0').run();
    const { Coordinator } = await import('../../actors/coordinator.js');
    const second = new Coordinator({ store: h.store, deps: (h.coordinator as any).options.deps });
    const restored = second.own(h.sessionId)!;
    expect(restored.snapshot().value).toBe('recovering');
    await second.runUntilQuiet(h.sessionId);
    expect(h.server.requests).toHaveLength(1);
    const activityId = restored.context().activity!.id;
    h.store.append({ sessionId: h.sessionId, type: 'recovery.decided', data: { activityId, decision: 'abandon', reason: 'test' } });
    restored.catchUp();
    await second.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled')[0]!.data).toMatchObject({ status: 'abandoned', reason: 'test' });
    expect(restored.snapshot().value).toBe('idle');
    second.shutdown();
  });

  it('a second coordinator cannot own a session with a live owner', async () => {
    const h = await createHarness();
    h.coordinator.own(h.sessionId);
    const { Coordinator } = await import('../../actors/coordinator.js');
    const second = new Coordinator({ store: h.store, deps: (h.coordinator as any).options.deps });
    expect(second.own(h.sessionId)).toBeNull();
  });

  it('an owner whose lease was taken over fails its next append as stale and stops', async () => {
    const h = await createHarness({ script: [slowText('z'.repeat(200))] });
    h.admit('steer', 'x');
    const actor = h.coordinator.own(h.sessionId)!;
    await h.waitFor((e) => e.type === 'attempt.dispatched');
    h.store.db.prepare('UPDATE session_owner SET expires_at = 0').run();
    h.store.owners.acquire(h.sessionId, 'usurper', 60_000, Date.now());
    await actor.whenQuiet();
    expect((actor.failure as Error).name).toBe('StaleOwnerError');
  });
});
