import { describe, expect, it } from 'vitest';
import type { AnyEnvelope } from '../../store/index.js';
import { createHarness } from './harness.js';

const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];
const slow = (text: string) => ({ text, delayMs: 40, chunkSize: 2 });
const allow = { permission: { rules: [{ tool: 'sleep', action: 'allow' as const }, { tool: 'slow_read', action: 'allow' as const }] } };

describe('recovery - classification on restore', () => {
  it('an attempt dispatched with no outcome is ambiguous: recovering, recovery.detected names it, nothing is sent', async () => {
    const h = await createHarness({ script: [slow('x'.repeat(200)), { text: 'retried' }] });
    h.admit('steer', 'go');
    h.coordinator.own(h.sessionId);
    await h.waitFor((e) => e.type === 'text.delta');
    h.crash();
    const { coordinator, actor } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(actor.snapshot().value).toBe('recovering');
    const detected = of(h.events(), 'recovery.detected')[0]!;
    expect(detected.data).toMatchObject({ classification: 'ambiguous', restarts: 1 });
    expect(detected.data.reason).toMatch(/dispatched and has no outcome/);
    expect(h.store.queries.session(h.sessionId)!.status).toBe('recovering');
    expect(h.server.requests).toHaveLength(1);
    // retry: the lost attempt is discarded and the turn is sent again
    h.store.append({ sessionId: h.sessionId, type: 'recovery.decided', data: { activityId: detected.data.activityId, decision: 'retry' } });
    actor.catchUp();
    await coordinator.runUntilQuiet(h.sessionId);
    const events = h.events();
    expect(of(events, 'attempt.failed')[0]!.data.error.kind).toBe('lost');
    expect(of(events, 'activity.settled')[0]!.data.status).toBe('completed');
    const assistant = h.store.queries.conversation(h.sessionId).filter((m) => m.role === 'assistant');
    expect(assistant.map((m) => m.parts.map((p) => p.text).join(''))).toEqual(['retried']);
  });

  it('an idempotent provider is retried automatically within the retry budget', async () => {
    const h = await createHarness({ script: [slow('y'.repeat(200)), { text: 'auto' }], config: { providers: { openai: { idempotent: true } } } });
    h.admit('steer', 'go');
    h.coordinator.own(h.sessionId);
    await h.waitFor((e) => e.type === 'text.delta');
    h.crash();
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    const decided = of(h.events(), 'recovery.decided')[0]!;
    expect(decided.data).toMatchObject({ decision: 'retry', automatic: true });
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('nothing in flight (turn started, nothing dispatched) continues automatically', async () => {
    const h = await createHarness({ script: [{ text: 'fine' }] });
    h.admit('steer', 'go');
    const actor = h.coordinator.own(h.sessionId)!;
    // drain stops the turn before its dispatch barrier: a safe point
    await actor.drain();
    h.crash();
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'recovery.detected')[0]!.data.classification).toBe('safe');
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
    expect(h.server.requests).toHaveLength(1);
  });

  it('a finished turn with unsettled calls continues: idempotent calls run again, others settle interrupted', async () => {
    const h = await createHarness({
      script: [{ toolCalls: [{ name: 'sleep', arguments: { ms: 5_000 } }, { name: 'slow_read', arguments: { ms: 5_000 } }] }, { text: 'told' }],
      config: allow,
    });
    h.admit('steer', 'go');
    h.coordinator.own(h.sessionId);
    await h.waitFor((e) => e.type === 'turn.finished');
    await new Promise((r) => setTimeout(r, 100));
    h.crash();
    // make the re-run quick: the idempotent call runs again with its recorded arguments
    h.store.db.prepare(`UPDATE tool_calls SET input = '{"ms":10}' WHERE tool = 'slow_read'`).run();
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    const events = h.events();
    expect(of(events, 'recovery.detected')[0]!.data.classification).toBe('tools');
    expect(of(events, 'recovery.decided')[0]!.data).toMatchObject({ decision: 'continue', automatic: true });
    const settled = of(events, 'tool.settled');
    const byTool = Object.fromEntries(h.store.queries.toolCalls(h.sessionId).map((c) => [c.tool, c.status]));
    expect(byTool).toEqual({ sleep: 'interrupted', slow_read: 'ok' });
    expect(settled).toHaveLength(2);
    const toolMessages = (h.server.requests[1]!.body as { messages: { role: string; content: string }[] }).messages.filter((m) => m.role === 'tool');
    expect(toolMessages[0]!.content).toMatch(/not run again because it is not idempotent/);
    expect(of(events, 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('a crash loop stops: past restartsMax the activity settles failed', async () => {
    const h = await createHarness({ script: [slow('z'.repeat(400))], config: { recovery: { restartsMax: 2 } } });
    h.admit('steer', 'go');
    h.coordinator.own(h.sessionId);
    await h.waitFor((e) => e.type === 'text.delta');
    for (let i = 0; i < 3; i++) {
      h.crash();
      const { coordinator } = h.restart();
      await coordinator.runUntilQuiet(h.sessionId);
      coordinator.get(h.sessionId)?.stop();
      h.store.db.prepare('UPDATE session_owner SET expires_at = 0').run();
      // a restored-but-undecided session does not count again: make each restart a new loss
      h.store.db.prepare(`UPDATE snapshots SET value = '{"providerTurn":"streaming"}'`).run();
    }
    const settled = of(h.events(), 'activity.settled');
    expect(settled[0]!.data).toMatchObject({ status: 'failed', reason: expect.stringMatching(/crash loop/) });
    expect(of(h.events(), 'recovery.detected').at(-1)!.data.classification).toBe('crash_loop');
  });

  it('with autoResume off, a safe continuation waits; abandon returns its never-dispatched input to pending exactly once', async () => {
    const h = await createHarness({ script: [{ text: 'later' }], config: { recovery: { autoResume: false } } });
    const inputId = h.admit('steer', 'go');
    const actor = h.coordinator.own(h.sessionId)!;
    await actor.drain();
    h.crash();
    const { coordinator, actor: restored } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(restored.snapshot().value).toBe('recovering');
    expect(of(h.events(), 'recovery.decided')).toHaveLength(0);
    expect(h.store.input(inputId)!.status).toBe('assigned');
    const activityId = restored.context().activity!.id;
    h.store.append({ sessionId: h.sessionId, type: 'recovery.decided', data: { activityId, decision: 'abandon' } });
    restored.catchUp();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'input.released').map((e) => e.data.inputId)).toEqual([inputId]);
    expect(h.store.input(inputId)!.status).toBe('pending');
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('abandoned');
    expect(h.server.requests).toHaveLength(0);
  });
});
