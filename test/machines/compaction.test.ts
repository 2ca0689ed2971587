import { describe, expect, it } from 'vitest';
import { transition } from 'xstate';
import { COMPACTION_RESTARTS_MAX } from '../../core/limits.js';
import { sessionMachine, type SessionInput } from '../../machines/session.machine.js';
import {
  SMALL_INPUT,
  actionTypes,
  admitted,
  cancelRequested,
  deliver,
  deliverAll,
  dispatched,
  ev,
  initial,
  toolCalled,
  toolSettled,
  type SessionSnapshot,
} from './harness.js';

/**
 * The `compacting` state of the pure session machine (context management, DESIGN §3): when it is
 * entered, what its decision actions record, where it returns, and that inputs admitted meanwhile
 * wait for it. The harness records for each decision action what actors/session.ts records.
 */

/** A 1 000-token window compacting at half of it, keeping one turn verbatim; turnLimit high enough to continue. */
const INPUT: SessionInput = { ...SMALL_INPUT, turnLimit: 10, compactionSettings: { auto: true, threshold: 0.5, windowTokens: 1_000, keepRecentTurns: 1 } };

const finishedWith = (s: SessionSnapshot, inputTokens: number, toolCalls: number) => {
  const a = s.context.activity!;
  return ev('turn.finished', { activityId: a.id, turnId: a.turnId!, attemptId: a.attemptId!, finishReason: toolCalls > 0 ? 'tool_calls' : 'stop', usage: { inputTokens, outputTokens: 10 }, toolCalls });
};
/** One turn that calls a tool and reports `inputTokens`: dispatched, called, finished, settled. */
function toolTurn(s: SessionSnapshot, inputTokens: number): SessionSnapshot {
  s = deliverAll(s, dispatched(s)).snapshot;
  const called = toolCalled(s);
  s = deliver(s, called).snapshot;
  s = deliver(s, finishedWith(s, inputTokens, 1)).snapshot;
  return deliver(s, toolSettled((called as { data: { callId: string } }).data.callId)).snapshot;
}
const started = (s: SessionSnapshot) => deliver(s, ev('input.admitted', { inputId: 's1', mode: 'steer', text: 'go' })).snapshot;
const finish = (s: SessionSnapshot, seq = 50, keptTurns = 1) =>
  deliver(
    s,
    ev('compaction.finished', { compactionId: s.context.compaction.current!.id, summary: 'SUMMARY', throughSeq: 10, coveredMessages: 3, keptTurns, estimatedTokens: 100, model: 'openai/x' }, seq),
  );
const overflowFailure = (s: SessionSnapshot) => {
  const a = s.context.activity!;
  return ev('attempt.failed', {
    activityId: a.id,
    attemptId: a.attemptId!,
    error: { kind: 'context_overflow', message: 'prompt is too long', status: 400 },
    retryable: false,
    receivedChunks: false,
    discardedParts: [],
  });
};

describe('session machine - compacting', () => {
  it('idle: a compaction.requested starts a compaction (recorded with reason requested); its finish returns to idle and points at the summary', () => {
    const [s, actions] = transition(sessionMachine, initial(INPUT), ev('compaction.requested', { reason: 'loom compact' }));
    expect(s.value).toEqual({ compacting: 'summarising' });
    expect(actionTypes(actions)).toContain('startCompaction');
    const { snapshot, steps } = deliver(initial(INPUT), ev('compaction.requested', {}));
    expect(steps.map((x) => x.event.type)).toEqual(['compaction.requested', 'compaction.started']);
    expect(snapshot.context.compaction).toMatchObject({ requested: false, current: { reason: 'requested', restarts: 0 } });
    const after = finish(snapshot, 42).snapshot;
    expect(after.value).toBe('idle');
    expect(after.context.compaction).toMatchObject({ current: null, summarySeq: 42, estimate: 100, turns: 1, held: true });
  });

  it('at the safe boundary, when the next turn\'s request nears the window: compact first, then continue; inputs admitted meanwhile are assigned after it', () => {
    let s = started(initial(INPUT));
    s = toolTurn(s, 100);
    expect(s.value).toEqual({ providerTurn: 'streaming' });
    s = toolTurn(s, 600); // 610 tokens ≥ 0.5 × 1 000, two turns > one kept: due
    expect(s.value).toEqual({ compacting: 'summarising' });
    expect(s.context.compaction.current).toMatchObject({ reason: 'auto' });
    expect(s.context.activity!.turns).toBe(2);

    const steer = deliver(s, admitted('s9'));
    expect(steer.snapshot.value).toEqual({ compacting: 'summarising' });
    expect(steer.steps.map((x) => x.event.type)).toEqual(['input.admitted']); // nothing assigned while compacting
    const { snapshot, steps } = finish(steer.snapshot);
    expect(steps.map((x) => x.event.type)).toEqual(['compaction.finished', 'input.assigned', 'turn.started']);
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context.activity!.unconsumed).toEqual(['s9']);
  });

  it('no automatic compaction while under the threshold, with no more turns than are kept, right after one (held), or with no settings', () => {
    let s = started(initial(INPUT));
    s = toolTurn(s, 900); // over the threshold, but the only turn is the one kept
    expect(s.value).toEqual({ providerTurn: 'streaming' });
    s = toolTurn(s, 100); // two turns, under the threshold
    expect(s.value).toEqual({ providerTurn: 'streaming' });
    let plain = started(initial(SMALL_INPUT));
    plain = toolTurn(plain, 100_000);
    expect(plain.value).toEqual({ providerTurn: 'streaming' });
    // After a compaction that left the estimate high, the next boundary does not compact again until a turn finishes.
    s = toolTurn(s, 800);
    expect(s.value).toEqual({ compacting: 'summarising' });
    const held = deliver(s, ev('compaction.failed', { compactionId: s.context.compaction.current!.id, kind: 'provider_server', reason: 'HTTP 500' }));
    expect(held.snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(held.snapshot.context.compaction.held).toBe(true);
  });

  it('a context overflow compacts once and retries the turn; a second overflow before any turn finishes settles the activity failed, saying so', () => {
    let s = started(initial(INPUT));
    s = deliverAll(s, dispatched(s)).snapshot;
    let r = deliver(s, overflowFailure(s));
    expect(r.snapshot.value).toEqual({ compacting: 'summarising' });
    expect(r.snapshot.context.compaction.current).toMatchObject({ reason: 'overflow' });
    r = finish(r.snapshot, 30, 0);
    // (the harness's retryTurn also marks the failed attempt lost; the runtime skips an attempt already discarded)
    expect(r.steps[0]!.event.type).toBe('compaction.finished');
    expect(r.steps.at(-1)!.event).toMatchObject({ type: 'turn.started', data: { turn: 1 } });
    expect(r.snapshot.value).toEqual({ providerTurn: 'streaming' });
    s = deliverAll(r.snapshot, dispatched(r.snapshot)).snapshot;
    const second = deliver(s, overflowFailure(s));
    expect(second.snapshot.value).toBe('idle');
    const settled = second.steps.find((x) => x.event.type === 'activity.settled')!.event as { data: { status: string; reason: string } };
    expect(settled.data.status).toBe('failed');
    expect(settled.data.reason).toContain('still too long for the model\'s context window after compacting it');
    expect(second.steps.filter((x) => x.event.type === 'compaction.started')).toHaveLength(0);
  });

  it('an overflow whose compaction fails settles the activity failed, naming the compaction failure', () => {
    let s = started(initial(INPUT));
    s = deliverAll(s, dispatched(s)).snapshot;
    s = deliver(s, overflowFailure(s)).snapshot;
    const r = deliver(s, ev('compaction.failed', { compactionId: s.context.compaction.current!.id, kind: 'nothing_to_compact', reason: 'nothing to compact' }));
    expect(r.snapshot.value).toBe('idle');
    expect(r.snapshot.context.lastStatus).toBe('failed');
  });

  it('a cancel while compacting records the compaction failed (cancelled) and settles the activity cancelled', () => {
    let s = started(initial(INPUT));
    s = toolTurn(s, 100);
    s = toolTurn(s, 700);
    expect(s.value).toEqual({ compacting: 'summarising' });
    const r = deliver(s, cancelRequested(s.context.activity!.id));
    expect(r.steps.map((x) => x.event.type)).toEqual(['cancel.requested', 'compaction.failed', 'activity.settled']);
    expect(r.snapshot.value).toBe('idle');
    expect(r.snapshot.context.compaction.current).toBeNull();
    expect(r.snapshot.context.lastStatus).toBe('cancelled');
  });

  it(`restored mid-compaction (restoring): CHECK restarts it, recorded with restarts + 1; past COMPACTION_RESTARTS_MAX (${COMPACTION_RESTARTS_MAX}) it is recorded failed (crash loop)`, () => {
    const live = deliver(initial(INPUT), ev('compaction.requested', {})).snapshot;
    let s = sessionMachine.resolveState({ value: { compacting: 'restoring' }, context: live.context });
    for (let restart = 1; restart <= COMPACTION_RESTARTS_MAX; restart++) {
      const r = deliver(s, { type: 'CHECK' });
      expect(r.snapshot.value).toEqual({ compacting: 'summarising' });
      expect(r.snapshot.context.compaction.current!.restarts).toBe(restart);
      s = sessionMachine.resolveState({ value: { compacting: 'restoring' }, context: r.snapshot.context });
    }
    const r = deliver(s, { type: 'CHECK' });
    expect(r.steps.map((x) => x.event.type)).toEqual(['CHECK', 'compaction.failed']);
    expect((r.steps[1]!.event as { data: { kind: string } }).data.kind).toBe('crash_loop');
    expect(r.snapshot.value).toBe('idle');
  });

  it('a compaction.requested during a compaction is served by it (no second one)', () => {
    const s = deliver(initial(INPUT), ev('compaction.requested', {})).snapshot;
    const r = deliver(s, ev('compaction.requested', {}));
    expect(r.snapshot.context.compaction.requested).toBe(false);
    expect(finish(r.snapshot).snapshot.value).toBe('idle');
  });
});
