import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { sessionMachine, type SessionContext } from '../../machines/session.machine.js';
import {
  SMALL_INPUT,
  actionTypes,
  admitted,
  attemptFailed,
  backoffElapsed,
  cancelRequested,
  deliver,
  deliverAll,
  dispatched,
  ev,
  findAction,
  initial,
  providerTurnChildren,
  recordedBy,
  textDelta,
  toolCallChildren,
  toolCalled,
  toolSettled,
  turnFinished,
  type SessionSnapshot,
} from './harness.js';

/**
 * Behaviour of the pure session machine (DESIGN §3): each test computes transitions with xstate's
 * `transition`, checks the state and the decision actions returned, and delivers the events those
 * actions record (harness.ts mirrors actors/session.ts) to move on, as the runtime does.
 */

const run = (s: SessionSnapshot, runId = 'run1') => deliver(s, ev('run.requested', { runId }));
/** A run opened an activity and its first turn is streaming. */
const opened = (input = SMALL_INPUT) => run(initial(input)).snapshot;
const dispatch = (s: SessionSnapshot) => deliverAll(s, dispatched(s)).snapshot;
/** The first turn is streaming and its attempt dispatched. */
const streaming = (input = SMALL_INPUT) => dispatch(opened(input));
/** Delivers events one after another, each computed from the snapshot before it. */
function drive(s: SessionSnapshot, ...makers: ((s: SessionSnapshot) => Parameters<typeof deliver>[1])[]): SessionSnapshot {
  for (const make of makers) s = deliver(s, make(s)).snapshot;
  return s;
}
const withContext = (value: string, context: SessionContext) => sessionMachine.resolveState({ value, context });

describe('session machine', () => {
  it('session machine - starts idle with an empty inbox and nothing to do', () => {
    const [s, actions] = initialTransition(sessionMachine, SMALL_INPUT);
    expect(s.value).toBe('idle');
    expect(actions).toEqual([]);
    expect(s.context).toMatchObject({ steers: [], queued: [], parked: false, runRequested: false, activity: null, settledCount: 0, lastStatus: null });
  });

  it('session machine - an advisory wake with no eligible input starts nothing', () => {
    const [s, actions] = transition(sessionMachine, initial(), { type: 'WAKE' });
    expect(s.value).toBe('idle');
    expect(actionTypes(actions)).not.toContain('openActivity');
  });

  it('session machine - run while idle opens an activity whose first turn streams in one provider turn', () => {
    const [s, actions] = transition(sessionMachine, initial(), ev('run.requested', { runId: 'run1' }));
    expect(s.value).toBe('opening');
    expect(actionTypes(actions)).toEqual(['openActivity']);

    const { snapshot, steps } = run(initial());
    expect(steps.map((x) => x.event.type)).toEqual(['run.requested', 'activity.opened', 'turn.started']);
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(providerTurnChildren(snapshot)).toHaveLength(1);
    expect(snapshot.context.runRequested).toBe(false);
    expect(snapshot.context.activity).toMatchObject({ id: 'act1', trigger: 'run', turn: 1, turns: 1, attempt: 0, attemptId: null });
  });

  it('session machine - input while idle: all pending steers open one activity together, before queued input', () => {
    // Steers and a queued input wait while the session is parked after a cancel.
    let s = streaming();
    s = deliverAll(s, [admitted('s1'), admitted('q1'), admitted('s2'), cancelRequested('act1')]).snapshot;
    expect(s.value).toBe('idle');
    expect(s.context).toMatchObject({ parked: true, steers: ['s1', 's2'], queued: ['q1'] });

    const [next, actions] = transition(sessionMachine, s, { type: 'WAKE' });
    expect(next.value).toBe('opening');
    const open = findAction(actions, 'openActivity')!;
    expect(open.info.context).toMatchObject({ steers: ['s1', 's2'], queued: ['q1'] });

    const { snapshot, steps } = deliver(s, { type: 'WAKE' });
    expect(steps.find((x) => x.event.type === 'activity.opened')!.event).toMatchObject({ data: { trigger: 'input', inputIds: ['s1', 's2'] } });
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context.steers).toEqual([]);
    expect(snapshot.context.queued).toEqual(['q1']);
    expect(snapshot.context.activity!.unconsumed).toEqual(['s1', 's2']);
  });

  it('session machine - input while idle: without steers the oldest queued input opens the next activity, one at a time', () => {
    const idle = withContext('idle', { ...initial().context, queued: ['q1', 'q2'] });
    const { snapshot } = deliver(idle, { type: 'CHECK' });
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context.activity!.unconsumed).toEqual(['q1']);
    expect(snapshot.context.queued).toEqual(['q2']);

    // When it settles, the next queued input opens the next activity at once (FIFO).
    const done = drive(dispatch(snapshot), turnFinished);
    expect(done.value).toEqual({ providerTurn: 'streaming' });
    expect(done.context).toMatchObject({ settledCount: 1, lastStatus: 'completed', queued: [] });
    expect(done.context.activity).toMatchObject({ id: 'act2', unconsumed: ['q2'] });
  });

  it('session machine - a parked session opens nothing on CHECK; WAKE, input and run un-park it', () => {
    let s = streaming();
    s = deliverAll(s, [admitted('s1'), cancelRequested('act1')]).snapshot;
    expect(s.context.parked).toBe(true);
    expect(deliver(s, { type: 'CHECK' }).snapshot.value).toBe('idle');

    for (const nudge of [{ type: 'WAKE' } as const, admitted('s2'), ev('run.requested', { runId: 'run2' })]) {
      const after = deliver(s, nudge).snapshot;
      expect(after.value, nudge.type).toEqual({ providerTurn: 'streaming' });
      expect(after.context.parked).toBe(false);
      expect(after.context.activity!.unconsumed[0]).toBe('s1');
    }
  });

  it('session machine - input admitted between a cancel request and its settlement un-parks: the interrupt runs next', () => {
    const s = streaming();
    // The cancel and the new input are committed together (an `interrupt` double-text), so the
    // machine sees the input before the settlement the cancel records.
    const [cancelling, actions] = transition(sessionMachine, s, cancelRequested('act1'));
    expect(cancelling.value).toBe('cancelling');
    expect(cancelling.context.parked).toBe(true);
    const [withInput] = transition(sessionMachine, cancelling, admitted('s9'));
    expect(withInput.context.parked).toBe(false);
    const { snapshot } = deliverAll(withInput, recordedBy(actions, s, true));
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context).toMatchObject({ lastStatus: 'cancelled', settledCount: 1, parked: false });
    expect(snapshot.context.activity!.unconsumed).toEqual(['s9']);
  });

  it('session machine - the steer-coalescing boundary assigns every pending steer and restarts the turn counter', () => {
    let s = deliverAll(streaming(), [admitted('s1'), admitted('q1'), admitted('s2')]).snapshot;
    const finished = turnFinished(s);
    const [next, actions] = transition(sessionMachine, s, finished);
    expect(next.value).toBe('continuing');
    expect(actionTypes(actions)).toContain('assignSteers');
    expect(actionTypes(actions)).not.toContain('settleActivity');
    expect(findAction(actions, 'assignSteers')!.info.context).toMatchObject({ steers: ['s1', 's2'] });

    const { snapshot, steps } = deliver(s, finished);
    expect(steps.slice(1).map((x) => x.event.type)).toEqual(['input.assigned', 'input.assigned', 'turn.started']);
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context.steers).toEqual([]);
    expect(snapshot.context.queued).toEqual(['q1']); // queued input waits for the activity to settle
    expect(snapshot.context.activity).toMatchObject({ turn: 1, turns: 2, unconsumed: ['s1', 's2'] });
  });

  it('session machine - a turn without tool calls and no pending steer settles the activity as completed', () => {
    const s = deliver(streaming(), textDelta(streaming())).snapshot;
    const [next, actions] = transition(sessionMachine, s, turnFinished(s));
    expect(next.value).toBe('settling');
    expect(findAction(actions, 'settleActivity')!.params).toEqual({ status: 'completed' });
    expect(actionTypes(actions)).not.toContain('assignSteers');
    expect(actionTypes(actions)).not.toContain('startTurn');

    const { snapshot } = deliver(s, turnFinished(s));
    expect(snapshot.value).toBe('idle');
    expect(snapshot.context).toMatchObject({ activity: null, lastStatus: 'completed', settledCount: 1 });
    expect(snapshot.children).toEqual({});
  });

  it('session machine - a turn with tool calls waits for every settlement, then starts the next turn with the results', () => {
    let s = drive(streaming(), toolCalled);
    const callId = Object.keys(s.context.activity!.calls)[0]!;
    const [waiting, actions] = transition(sessionMachine, s, turnFinished(s));
    expect(waiting.value).toBe('awaitingTools');
    expect(waiting.context.activity!.toolResultsPending).toBe(true);
    expect(actionTypes(actions)).toEqual(['xstate.stopChild']); // no decision yet: the provider turn child is stopped
    expect(providerTurnChildren(waiting)).toEqual([]);

    s = deliver(s, turnFinished(s)).snapshot;
    const [next, settleActions] = transition(sessionMachine, s, toolSettled(callId));
    expect(next.value).toBe('continuing');
    expect(actionTypes(settleActions)).toContain('startTurn');
    const { snapshot } = deliver(s, toolSettled(callId));
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context.activity).toMatchObject({ turn: 2, turns: 2, calls: {}, toolResultsPending: false });
  });

  it('session machine - eager tool settlement: a call settled before the turn finishes is not awaited again', () => {
    let s = drive(streaming(), toolCalled);
    const callId = Object.keys(s.context.activity!.calls)[0]!;
    expect(toolCallChildren(s)).toEqual([callId]); // the child starts at once, during the stream
    s = deliver(s, toolSettled(callId)).snapshot;
    expect(s.value).toEqual({ providerTurn: 'streaming' });
    const [, actions] = transition(sessionMachine, s, turnFinished(s));
    expect(actionTypes(actions)).toContain('startTurn');
    expect(deliver(s, turnFinished(s)).snapshot.context.activity!.turn).toBe(2);
  });

  it('session machine - at the turn limit with tool results the activity settles as turn_limit and no further turn starts', () => {
    // turnLimit 2: turn 1 and turn 2 both end with a tool call.
    let s = streaming();
    for (let turn = 1; turn <= 2; turn++) {
      expect(s.context.activity!.turn).toBe(turn);
      s = drive(s, toolCalled, turnFinished);
      const callId = Object.keys(s.context.activity!.calls)[0]!;
      if (turn === 1) {
        s = dispatch(deliver(s, toolSettled(callId)).snapshot);
        continue;
      }
      const [next, actions] = transition(sessionMachine, s, toolSettled(callId));
      expect(next.value).toBe('settling');
      expect(findAction(actions, 'settleActivity')!.params).toEqual({ status: 'turn_limit', reason: 'turn limit reached' });
      expect(actionTypes(actions)).not.toContain('startTurn');
      const { snapshot, steps } = deliver(s, toolSettled(callId));
      expect(steps.some((x) => x.event.type === 'turn.started')).toBe(false);
      expect(snapshot.value).toBe('idle');
      expect(snapshot.context).toMatchObject({ lastStatus: 'turn_limit', settledCount: 1, activity: null });
    }
  });

  it('session machine - CONFIGURE (a changed config) replaces the limits in every state, starts nothing, and the next boundary uses them', () => {
    let s = streaming({ ...SMALL_INPUT, turnLimit: 5 });
    const { sessionId: _, ...limits } = { ...SMALL_INPUT, turnLimit: 1, toolCallsPerTurn: 7 };
    const [configured, actions] = transition(sessionMachine, s, { type: 'CONFIGURE', limits });
    expect(actions).toEqual([]);
    expect(configured.value).toEqual(s.value);
    expect(configured.context).toMatchObject({ turnLimit: 1, toolCallsPerTurn: 7, activity: s.context.activity });
    // Turn 1 ends with a tool call: under the old limit (5) a second turn would start; under the new one (1) it settles.
    s = drive(configured, toolCalled, turnFinished);
    const [, settle] = transition(sessionMachine, s, toolSettled(Object.keys(s.context.activity!.calls)[0]!));
    expect(findAction(settle, 'settleActivity')!.params).toEqual({ status: 'turn_limit', reason: 'turn limit reached' });
    expect(transition(sessionMachine, initial(), { type: 'CONFIGURE', limits })[0].value).toBe('idle');
  });

  it('session machine - a steer pending at the turn limit is assigned and the turn counter restarts', () => {
    let s = streaming();
    s = drive(s, toolCalled, turnFinished);
    s = dispatch(deliver(s, toolSettled(Object.keys(s.context.activity!.calls)[0]!)).snapshot);
    s = drive(s, toolCalled, turnFinished, () => admitted('s1'));
    expect(s.context.activity!.turn).toBe(2);
    const callId = Object.keys(s.context.activity!.calls)[0]!;
    const [, actions] = transition(sessionMachine, s, toolSettled(callId));
    expect(actionTypes(actions)).toContain('assignSteers');
    const { snapshot } = deliver(s, toolSettled(callId));
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context.activity).toMatchObject({ turn: 1, turns: 3, unconsumed: ['s1'] });
  });

  it('session machine - a turn limit with pending queued input settles, then the input opens the next activity', () => {
    let s = streaming();
    s = drive(s, toolCalled, turnFinished);
    s = dispatch(deliver(s, toolSettled(Object.keys(s.context.activity!.calls)[0]!)).snapshot);
    s = drive(s, () => admitted('q1'), toolCalled, turnFinished);
    const { snapshot, steps } = deliver(s, toolSettled(Object.keys(s.context.activity!.calls)[0]!));
    expect(steps.find((x) => x.event.type === 'activity.settled')!.event).toMatchObject({ data: { status: 'turn_limit' } });
    expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
    expect(snapshot.context.activity).toMatchObject({ id: 'act2', unconsumed: ['q1'] });
  });

  it('session machine - cancel settles the activity as cancelled and parks with pending input still pending', () => {
    let s = deliverAll(streaming(), [admitted('s1'), admitted('q1')]).snapshot;
    s = drive(s, toolCalled);
    const callId = Object.keys(s.context.activity!.calls)[0]!;
    const [next, actions] = transition(sessionMachine, s, cancelRequested('act1'));
    expect(next.value).toBe('cancelling');
    expect(actionTypes(actions)).toEqual(expect.arrayContaining(['interruptCalls', 'xstate.stopChild', 'settleActivity']));
    expect(findAction(actions, 'settleActivity')!.params).toEqual({ status: 'cancelled', reason: 'cancel requested' });
    expect(providerTurnChildren(next)).toEqual([]); // the provider request is aborted
    expect(toolCallChildren(next)).toEqual([]); // tool children are stopped

    const { snapshot, steps } = deliver(s, cancelRequested('act1'));
    const settled = steps.filter((x) => x.event.type === 'tool.settled').map((x) => x.event);
    expect(settled).toMatchObject([{ data: { callId, status: 'interrupted' } }]);
    expect(steps.filter((x) => x.event.type === 'activity.settled')).toHaveLength(1);
    expect(snapshot.value).toBe('idle');
    expect(snapshot.context).toMatchObject({ parked: true, activity: null, lastStatus: 'cancelled', settledCount: 1, steers: ['s1'], queued: ['q1'] });
  });

  it('session machine - cancel while awaiting tools interrupts running and queued calls', () => {
    let s = drive(streaming(), toolCalled, toolCalled, turnFinished);
    expect(s.value).toBe('awaitingTools');
    const { snapshot, steps } = deliver(s, cancelRequested('act1'));
    const interrupted = steps.filter((x) => x.event.type === 'tool.settled').map((x) => (x.event as { data: { callId: string; status: string } }).data);
    expect(interrupted).toEqual([
      { callId: 'act1-t1-c1', status: 'interrupted', output: expect.any(String) },
      { callId: 'act1-t1-c2', status: 'interrupted', output: expect.any(String) },
    ]);
    expect(snapshot.context).toMatchObject({ parked: true, lastStatus: 'cancelled' });
    expect(snapshot.children).toEqual({});
  });

  it('session machine - a cancel naming another activity (or only a job) is ignored', () => {
    const s = streaming();
    for (const cancel of [cancelRequested('act0'), ev('cancel.requested', { jobId: 'job1' })]) {
      const [next, actions] = transition(sessionMachine, s, cancel);
      expect(next.value).toEqual({ providerTurn: 'streaming' });
      expect(actions).toEqual([]);
    }
    const idle = deliver(s, turnFinished(s)).snapshot;
    const [after] = transition(sessionMachine, idle, cancelRequested('act1'));
    expect(after.value).toBe('idle');
    expect(after.context.parked).toBe(false);
  });

  it('session machine - a retryable failure without chunks backs off, then a new provider turn dispatches the next attempt', () => {
    const s = streaming();
    const [retrying, actions] = transition(sessionMachine, s, attemptFailed(s, { retryable: true }));
    expect(retrying.value).toEqual({ providerTurn: 'retrying' });
    expect(actionTypes(actions)).toEqual(['xstate.stopChild', 'scheduleRetry']);
    expect(findAction(actions, 'scheduleRetry')!.params).toEqual({ failedAttemptId: 'act1-t1-a1', failedAttempt: 1, reason: 'rate_limited: scripted failure' });
    expect(providerTurnChildren(retrying)).toEqual([]);
    // The runtime records the delay it drew; the backoff waits exactly that.
    const backoff = deliver(s, attemptFailed(s, { retryable: true })).snapshot;
    expect(backoff.value).toEqual({ providerTurn: 'backoff' });
    expect(backoff.context.activity!.retryDelayMs).toBe(SMALL_INPUT.attemptBackoffMs);

    const [again] = transition(sessionMachine, backoff, backoffElapsed());
    expect(again.value).toEqual({ providerTurn: 'streaming' });
    expect(providerTurnChildren(again)).toHaveLength(1);
    const second = dispatch(again);
    expect(second.context.activity).toMatchObject({ attempt: 2, attemptId: 'act1-t1-a2', receivedChunks: false, turn: 1 });
  });

  it('session machine - the backoff waits the delay recorded by attempt.retrying, whatever it is', () => {
    const s = deliver(streaming(), attemptFailed(streaming(), { retryable: true })).snapshot;
    const [retrying] = transition(sessionMachine, streaming(), attemptFailed(streaming(), { retryable: true }));
    const recorded = ev('attempt.retrying', { activityId: 'act1', failedAttemptId: 'act1-t1-a1', nextAttempt: 2, delayMs: 137, reason: 'x' });
    const [backoff] = transition(sessionMachine, retrying, recorded);
    expect(backoff.value).toEqual({ providerTurn: 'backoff' });
    expect(backoff.context.activity!.retryDelayMs).toBe(137);
    // A retry event of another activity does not move it.
    const [still] = transition(sessionMachine, retrying, ev('attempt.retrying', { activityId: 'act0', failedAttemptId: 'x', nextAttempt: 2, delayMs: 1, reason: 'x' }));
    expect(still.value).toEqual({ providerTurn: 'retrying' });
    expect(s.value).toEqual({ providerTurn: 'backoff' });
  });

  it('session machine - a log without attempt.retrying (older Loom) still replays: the next dispatch ends the retry', () => {
    const s = streaming();
    const [retrying] = transition(sessionMachine, s, attemptFailed(s, { retryable: true }));
    const [next] = transition(sessionMachine, retrying, dispatched(retrying)[0]!);
    expect(next.value).toEqual({ providerTurn: 'streaming' });
    expect(next.context.activity).toMatchObject({ attempt: 2, attemptId: 'act1-t1-a2' });
  });

  it('session machine - each retry is scheduled with the failed attempt number and the retry-after', () => {
    const input = { ...SMALL_INPUT, attemptRetriesMax: 5 };
    let s = streaming(input);
    const scheduled: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const [, actions] = transition(sessionMachine, s, attemptFailed(s, { retryable: true, retryAfterMs: i === 2 ? 2_000 : undefined }));
      scheduled.push(findAction(actions, 'scheduleRetry')!.params);
      s = deliver(s, attemptFailed(s, { retryable: true, retryAfterMs: i === 2 ? 2_000 : undefined })).snapshot;
      s = dispatch(deliver(s, backoffElapsed()).snapshot);
    }
    expect(scheduled).toMatchObject([{ failedAttempt: 1 }, { failedAttempt: 2 }, { failedAttempt: 3, retryAfterMs: 2_000 }]);
  });

  it('session machine - a retry-after longer than attemptRetryAfterMaxMs fails the activity at once, naming the wait', () => {
    const s = streaming();
    const [next, actions] = transition(sessionMachine, s, attemptFailed(s, { retryable: true, retryAfterMs: 3_600_000 }));
    expect(next.value).toBe('settling');
    expect(actionTypes(actions)).not.toContain('scheduleRetry');
    expect(findAction(actions, 'settleActivity')!.params).toEqual({
      status: 'failed',
      reason: 'rate_limited: scripted failure (not retried: the provider asked to wait 3600 s, longer than the 5 s a run waits)',
    });
  });

  it('session machine - a retryable failure after chunks settles the activity as failed', () => {
    const s = deliver(streaming(), textDelta(streaming())).snapshot;
    expect(s.context.activity!.receivedChunks).toBe(true);
    const [next, actions] = transition(sessionMachine, s, attemptFailed(s, { retryable: true }));
    expect(next.value).toBe('settling');
    expect(findAction(actions, 'settleActivity')!.params).toEqual({ status: 'failed', reason: 'rate_limited: scripted failure (not retried: the attempt had already streamed output)' });
    const { snapshot } = deliver(s, attemptFailed(s, { retryable: true }));
    expect(snapshot.context).toMatchObject({ lastStatus: 'failed', settledCount: 1, parked: false });
  });

  it('session machine - a failure that is not retryable settles as failed at once', () => {
    const s = streaming();
    const [next, actions] = transition(sessionMachine, s, attemptFailed(s, { retryable: false }));
    expect(next.value).toBe('settling');
    expect(findAction(actions, 'settleActivity')!.params).toMatchObject({ status: 'failed' });
  });

  it('session machine - retries stop after attemptRetriesMax and the activity fails', () => {
    let s = streaming(); // attemptRetriesMax 1: attempt 1 may be retried, attempt 2 may not
    s = dispatch(deliver(deliver(s, attemptFailed(s, { retryable: true })).snapshot, backoffElapsed()).snapshot);
    expect(s.context.activity!.attempt).toBe(2);
    const [next, actions] = transition(sessionMachine, s, attemptFailed(s, { retryable: true }));
    expect(next.value).toBe('settling');
    expect(findAction(actions, 'settleActivity')!.params).toEqual({
      status: 'failed',
      reason: 'rate_limited: scripted failure (gave up after 2 attempts: the initial one and 1 retries)',
    });
  });

  it('session machine - a failure of an attempt that is not the current one is ignored', () => {
    let s = streaming();
    const stale = attemptFailed(s, { retryable: false });
    s = dispatch(deliver(deliver(s, attemptFailed(s, { retryable: true })).snapshot, backoffElapsed()).snapshot);
    const [next, actions] = transition(sessionMachine, s, stale);
    expect(next.value).toEqual({ providerTurn: 'streaming' });
    expect(actions).toEqual([]);
  });

  it('session machine - a tool call beyond toolCallsPerTurn is refused with an error result and gets no child', () => {
    let s = drive(streaming(), toolCalled, toolCalled); // toolCallsPerTurn 2
    const third = toolCalled(s);
    const [next, actions] = transition(sessionMachine, s, third);
    expect(actionTypes(actions)).toEqual(['refuseToolCall']);
    expect(findAction(actions, 'refuseToolCall')!.params).toEqual({ callId: 'act1-t1-c3' });
    expect(toolCallChildren(next)).toEqual(['act1-t1-c1', 'act1-t1-c2']);

    const { snapshot, steps } = deliver(s, third);
    expect(steps[1]!.event).toMatchObject({ type: 'tool.settled', data: { callId: 'act1-t1-c3', status: 'error', output: expect.stringContaining('tool-call limit reached') } });
    expect(snapshot.context.activity!.calls['act1-t1-c3']!.state).toBe('settled');
  });

  it('session machine - a call beyond toolConcurrency is spawned queued and started when a running call settles', () => {
    let s = drive(streaming(), toolCalled);
    const [second, actions] = transition(sessionMachine, s, toolCalled(s));
    const spawn = findAction(actions, 'xstate.spawnChild')!;
    expect(spawn.params).toMatchObject({ id: 'act1-t1-c2', src: 'toolCall', input: { startNow: false, callId: 'act1-t1-c2' } });
    expect(second.context.activity).toMatchObject({ calls: { 'act1-t1-c1': { state: 'running' }, 'act1-t1-c2': { state: 'queued' } }, waiting: ['act1-t1-c2'] });

    s = deliver(second, turnFinished(second)).snapshot;
    const [next, settleActions] = transition(sessionMachine, s, toolSettled('act1-t1-c1'));
    expect(next.value).toBe('awaitingTools');
    const send = findAction(settleActions, 'xstate.sendTo')!;
    expect(send.params).toMatchObject({ targetId: 'act1-t1-c2', event: { type: 'START' } });
    expect(next.context.activity).toMatchObject({ calls: { 'act1-t1-c2': { state: 'running' } }, waiting: [] });
  });

  it('session machine - each tool call gets its own timeout, or the default', () => {
    const s = streaming();
    const [, bashActions] = transition(sessionMachine, s, toolCalled(s, 'bash'));
    const [, readActions] = transition(sessionMachine, s, toolCalled(s, 'read'));
    expect(findAction(bashActions, 'xstate.spawnChild')!.params).toMatchObject({ input: { timeoutMs: 5_000, startNow: true } });
    expect(findAction(readActions, 'xstate.spawnChild')!.params).toMatchObject({ input: { timeoutMs: 1_000 } });
  });

  it('session machine - one turn at a time: a second turn.started is not accepted while a turn is in flight', () => {
    const s = streaming();
    for (const from of [s, drive(s, toolCalled, turnFinished)]) {
      const [next, actions] = transition(sessionMachine, from, ev('turn.started', { activityId: 'act1', turnId: 'act1-t9', turn: 1 }));
      expect(next.value).toEqual(from.value);
      expect(next.context).toEqual(from.context);
      expect(actions).toEqual([]);
      expect(providerTurnChildren(next).length).toBeLessThanOrEqual(1);
    }
  });

  it('session machine - an admitted input is tracked in every state and a cancelled input leaves the inbox', () => {
    let s = streaming();
    s = deliverAll(s, [admitted('s1'), admitted('q1'), admitted('q2'), ev('input.cancelled', { inputId: 'q1' }), ev('input.cancelled', { inputId: 's1' })]).snapshot;
    expect(s.value).toEqual({ providerTurn: 'streaming' });
    expect(s.context).toMatchObject({ steers: [], queued: ['q2'] });
  });

  it('session machine - a settled activity releases inputs it never dispatched back to the front of their list', () => {
    // The queued input q1 opens act1; act1 is cancelled before any attempt was dispatched.
    const idle = withContext('idle', { ...initial().context, queued: ['q1', 'q2'] });
    let s = deliver(idle, { type: 'CHECK' }).snapshot;
    expect(s.context.activity!.unconsumed).toEqual(['q1']);
    const { snapshot, steps } = deliver(s, cancelRequested('act1'));
    expect(steps.map((x) => x.event.type)).toEqual(['cancel.requested', 'input.released', 'activity.settled']);
    expect(snapshot.context.queued).toEqual(['q1', 'q2']);
    // Once dispatched, inputs are consumed and no longer released.
    s = dispatch(deliver(idle, { type: 'CHECK' }).snapshot);
    expect(s.context.activity!.unconsumed).toEqual([]);
    expect(deliver(s, cancelRequested('act1')).snapshot.context.queued).toEqual(['q2']);
  });

  it('session machine - a run requested while busy opens one more activity after the current one settles', () => {
    let s = deliver(streaming(), ev('run.requested', { runId: 'run2' })).snapshot;
    expect(s.context.runRequested).toBe(true);
    s = deliver(s, turnFinished(s)).snapshot;
    expect(s.context).toMatchObject({ settledCount: 1, runRequested: false });
    expect(s.context.activity).toMatchObject({ id: 'act2', trigger: 'run' });
  });

  describe('budgets', () => {
    const finished = (s: SessionSnapshot, tokens: { in: number; out: number }, costUsd?: number) => {
      const e = turnFinished(s) as Extract<ReturnType<typeof turnFinished>, { type: 'turn.finished' }>;
      return { ...e, data: { ...e.data, usage: { inputTokens: tokens.in, outputTokens: tokens.out }, ...(costUsd === undefined ? {} : { costUsd }) } } as typeof e;
    };
    const admit = (inputId: string, budget?: object) => ev('input.admitted', { inputId, mode: 'steer', text: inputId, ...(budget ? { budget } : {}) } as never);
    const streamingAfter = (...events: Parameters<typeof deliver>[1][]) => dispatch(deliverAll(initial(), events).snapshot);

    it('session machine - a finished turn counts its tokens and cost into the activity and the session', () => {
      let s = streamingAfter(admit('s1'));
      s = deliver(s, finished(s, { in: 100, out: 20 }, 0.5)).snapshot;
      expect(s.context.usage).toEqual({ inputTokens: 100, outputTokens: 20, costUsd: 0.5 });
      const settled = s.context.lastStatus;
      expect(settled).toBe('completed');
      // A second activity adds to the session's totals; an unpriced turn adds no cost.
      s = dispatch(deliver(s, admit('s2')).snapshot);
      expect(s.context.activity!.usage).toEqual({ inputTokens: 0, outputTokens: 0 });
      s = deliver(s, finished(s, { in: 10, out: 1 })).snapshot;
      expect(s.context.usage).toEqual({ inputTokens: 110, outputTokens: 21, costUsd: 0.5 });
    });

    it('session machine - the activity settles budget_exceeded when a turn uses up its token budget; the settlement carries its usage', () => {
      const s = streamingAfter(admit('s1', { activity: { tokens: 100 } }));
      expect(s.context.activity!.budget).toEqual({ tokens: 100 });
      const { snapshot, steps } = deliver(s, finished(s, { in: 90, out: 10 }));
      expect(snapshot.context.lastStatus).toBe('budget_exceeded');
      const settled = steps.flatMap((x) => x.recorded).find((e) => e.type === 'activity.settled')!;
      expect(settled.data).toMatchObject({ status: 'budget_exceeded', reason: 'activity token budget of 100 used up (100 tokens)', usage: { inputTokens: 100 - 10, outputTokens: 10 } });
      // Under the budget the turn goes on as usual.
      const under = deliver(s, finished(s, { in: 90, out: 9 })).snapshot;
      expect(under.context.lastStatus).toBe('completed');
    });

    it('session machine - a turn over budget with tool calls interrupts them instead of awaiting them', () => {
      let s = streamingAfter(admit('s1', { activity: { tokens: 10 } }));
      s = drive(s, toolCalled);
      expect(toolCallChildren(s)).toHaveLength(1);
      const [next, actions] = transition(sessionMachine, s, finished(s, { in: 50, out: 5 }));
      expect(next.value).toBe('settling');
      expect(actionTypes(actions)).toEqual(expect.arrayContaining(['interruptCalls', 'settleActivity']));
      expect(toolCallChildren(next)).toEqual([]);
      const { steps } = deliver(s, finished(s, { in: 50, out: 5 }));
      expect(steps.flatMap((x) => x.recorded).map((e) => e.type)).toEqual(['tool.settled', 'activity.settled']);
    });

    it('session machine - the tightest activity budget of the inputs an activity takes applies, steers included', () => {
      let s = streamingAfter(admit('s1', { activity: { tokens: 1_000, costUsd: 5 } }));
      expect(s.context.activity!.budget).toEqual({ tokens: 1_000, costUsd: 5 });
      // Steers joining at the boundary tighten it, each in its own dimension.
      s = deliverAll(s, [admit('s2', { activity: { tokens: 500 } }), admit('s3', { activity: { costUsd: 1 } })]).snapshot;
      expect(s.context.inputBudgets).toEqual({ s2: { tokens: 500 }, s3: { costUsd: 1 } });
      s = drive(s, toolCalled);
      s = deliver(s, finished(s, { in: 10, out: 1 }, 0.01)).snapshot;
      s = deliver(s, toolSettled(Object.keys(s.context.activity!.calls)[0]!)).snapshot;
      expect(s.context.activity!.budget).toEqual({ tokens: 500, costUsd: 1 });
      expect(s.context.activity!.unconsumed).toEqual(['s2', 's3']);
      // Consumed by the next dispatch: their budgets now live in the activity only.
      s = dispatch(s);
      expect(s.context.inputBudgets).toEqual({});
    });

    it('session machine - a run request carries the budget of the activity it opens', () => {
      const s = deliver(initial(), ev('run.requested', { runId: 'r1', budget: { activity: { tokens: 42 } } })).snapshot;
      expect(s.context.activity!.budget).toEqual({ tokens: 42 });
      expect(s.context.runBudget).toBeNull();
    });

    it('session machine - a priced turn that reaches the cost budget settles budget_exceeded; an unpriced one fails naming why', () => {
      const s = streamingAfter(admit('s1', { activity: { costUsd: 0.1 } }));
      const [over, overActions] = transition(sessionMachine, s, finished(s, { in: 1, out: 1 }, 0.25));
      expect(over.value).toBe('settling');
      expect(findAction(overActions, 'settleActivity')!.params).toEqual({ status: 'budget_exceeded', reason: 'activity cost budget of $0.1 used up ($0.2500)' });
      const [unpriced, actions] = transition(sessionMachine, s, finished(s, { in: 1, out: 1 }));
      expect(unpriced.value).toBe('settling');
      expect(findAction(actions, 'settleActivity')!.params).toMatchObject({ status: 'failed', reason: expect.stringContaining('cannot be checked: no price is known') });
    });

    it('session machine - the session budget is the last one recorded, counts every activity, and stops new activities before any request', () => {
      let s = streamingAfter(admit('s1', { session: { tokens: 1_000 } }));
      s = deliver(s, finished(s, { in: 400, out: 100 })).snapshot;
      expect(s.context.lastStatus).toBe('completed');
      // A later request lowers it; the next turn takes the session to 1 000 tokens: exceeded.
      s = dispatch(deliver(s, admit('s2', { session: { tokens: 900 } })).snapshot);
      expect(s.context.sessionBudget).toEqual({ tokens: 900 });
      const end = deliver(s, finished(s, { in: 300, out: 100 }));
      expect(end.steps.flatMap((x) => x.recorded).find((e) => e.type === 'activity.settled')!.data).toMatchObject({
        status: 'budget_exceeded',
        reason: 'session token budget of 900 used up (900 tokens)',
      });
      // A new input opens an activity that settles at once: no turn is dispatched, the input is released, the session parks.
      const next = deliver(end.snapshot, admit('s3'));
      const recorded = next.steps.flatMap((x) => x.recorded).map((e) => e.type);
      expect(recorded).toEqual(['activity.opened', 'input.assigned', 'turn.started', 'input.released', 'activity.settled']);
      expect(next.snapshot.value).toBe('idle');
      expect(next.snapshot.context).toMatchObject({ parked: true, lastStatus: 'budget_exceeded', steers: ['s3'] });
      expect(providerTurnChildren(next.snapshot)).toEqual([]);
      // A request that raises the session budget un-parks and runs.
      const raised = deliver(next.snapshot, admit('s4', { session: { tokens: 10_000 } })).snapshot;
      expect(raised.value).toEqual({ providerTurn: 'streaming' });
      expect(raised.context.activity!.unconsumed).toEqual(['s3', 's4']);
    });

    it('session machine - an input without a budget leaves the session budget as it was', () => {
      const s = deliverAll(initial(), [admit('s1', { session: { costUsd: 2 } }), admit('s2')]).snapshot;
      expect(s.context.sessionBudget).toEqual({ costUsd: 2 });
    });
  });

  describe('recovering', () => {
    /** An activity restored after process loss: its second call still queued, nothing running. */
    const restored = () => {
      const s = drive(streaming(), toolCalled, turnFinished);
      return withContext('recovering', s.context);
    };

    it('session machine - recovering starts nothing until a decision is recorded', () => {
      const r = restored();
      expect(r.children).toEqual({});
      const [next, actions] = transition(sessionMachine, r, { type: 'CHECK' });
      expect(next.value).toBe('recovering');
      expect(actions).toEqual([]);
    });

    it('session machine - an abandon decision interrupts open calls, settles as abandoned and parks', () => {
      const r = restored();
      const decision = ev('recovery.decided', { activityId: 'act1', decision: 'abandon', reason: 'operator' });
      const [next, actions] = transition(sessionMachine, r, decision);
      expect(next.value).toBe('settling');
      expect(actionTypes(actions)).toEqual(['interruptCalls', 'settleActivity']);
      expect(findAction(actions, 'settleActivity')!.params).toEqual({ status: 'abandoned', reason: 'operator' });
      const { snapshot } = deliver(r, decision);
      expect(snapshot.value).toBe('idle');
      expect(snapshot.context).toMatchObject({ parked: true, lastStatus: 'abandoned', settledCount: 1, activity: null });
    });

    it('session machine - a retry decision interrupts open calls and retries the same turn in a new provider turn', () => {
      const r = restored();
      const decision = ev('recovery.decided', { activityId: 'act1', decision: 'retry' });
      const [next, actions] = transition(sessionMachine, r, decision);
      expect(next.value).toBe('continuing');
      expect(actionTypes(actions)).toEqual(['interruptCalls', 'retryTurn']);
      const { snapshot, steps } = deliver(r, decision);
      expect(steps.filter((x) => x.event.type === 'tool.settled')).toHaveLength(1);
      expect(snapshot.value).toEqual({ providerTurn: 'streaming' });
      expect(providerTurnChildren(snapshot)).toHaveLength(1);
      expect(snapshot.context.activity).toMatchObject({ turn: 1, calls: {} });
    });

    it('session machine - a continue decision after the stream finished gives unsettled calls their children again, within the concurrency bound', () => {
      const s = drive(streaming(), toolCalled, toolCalled, turnFinished); // c1 running, c2 queued
      const r = withContext('recovering', s.context);
      const decision = ev('recovery.decided', { activityId: 'act1', decision: 'continue', automatic: true });
      const [next, actions] = transition(sessionMachine, r, decision);
      expect(next.value).toBe('awaitingTools');
      const spawns = actions.filter((x) => x.type === 'xstate.spawnChild').map((x) => (x.params as unknown as { input: Record<string, unknown> }).input);
      expect(spawns).toMatchObject([
        { callId: 'act1-t1-c1', startNow: true, resumed: true },
        { callId: 'act1-t1-c2', startNow: false, resumed: true },
      ]);
      expect(next.context.activity).toMatchObject({ waiting: ['act1-t1-c2'], toolResultsPending: true });
      expect(toolCallChildren(next)).toEqual(['act1-t1-c1', 'act1-t1-c2']);
      // The results then go back to the model in the next turn.
      const after = deliverAll(next, [toolSettled('act1-t1-c1'), toolSettled('act1-t1-c2')]).snapshot;
      expect(after.value).toEqual({ providerTurn: 'streaming' });
      expect(after.context.activity).toMatchObject({ turn: 2 });
    });

    it('session machine - a cancel while recovering settles as cancelled; one naming another activity is ignored', () => {
      const r = restored();
      const [next, actions] = transition(sessionMachine, r, cancelRequested('act9'));
      expect(next.value).toBe('recovering');
      expect(actions).toEqual([]);
      const { snapshot } = deliver(r, cancelRequested('act1'));
      expect(snapshot.context).toMatchObject({ parked: true, lastStatus: 'cancelled', settledCount: 1 });
    });
  });

  describe('regressions (bugs found by these tests, now fixed)', () => {
    // BUG 1: a refused call (beyond toolCallsPerTurn) is marked `running` but holds no concurrency
    // slot; its `tool.settled` still frees "a slot" and STARTs the oldest waiting call, so two calls
    // run with toolConcurrency 1. settleToolCall should only start a waiting call when the settled
    // call held a slot (was running with a child), or refused calls should not be marked running.
    it('session machine - settling a refused call does not start a waiting call beyond toolConcurrency', () => {
      const s = drive(streaming(), toolCalled, toolCalled); // c1 running, c2 queued (concurrency 1)
      const { snapshot, steps } = deliver(s, toolCalled(s)); // c3 refused, its error recorded at once
      expect(steps.flatMap((x) => actionTypes(x.actions))).not.toContain('xstate.sendTo');
      expect(snapshot.context.activity!.calls['act1-t1-c2']!.state).toBe('queued');
      const running = Object.values(snapshot.context.activity!.calls).filter((c) => c.state === 'running');
      expect(running.length).toBeLessThanOrEqual(SMALL_INPUT.toolConcurrency);
    });

    // BUG 2: children are never restored in `recovering`, but its `tool.settled` handler runs
    // settleToolCall, which sends START to the oldest waiting call by id. With a waiting call,
    // the transition throws "Unable to send event to actor '<callId>' from machine 'session'" (a
    // live actor goes to status 'error').
    it('session machine - a tool settlement while recovering with a waiting call does not throw', () => {
      const r = sessionMachine.resolveState({ value: 'recovering', context: drive(streaming(), toolCalled, toolCalled, turnFinished).context });
      expect(() => transition(sessionMachine, r, toolSettled('act1-t1-c1'))).not.toThrow();
    });

    // BUG 3: `recovery.decided` is a request checked against state (DESIGN §4), and the
    // isCurrentActivity guard even reads its activityId, but the `recovering` transitions guard
    // only on the decision: a decision naming another (older) activity abandons or retries the
    // current one.
    it('session machine - a recovery decision naming another activity is ignored', () => {
      const r = sessionMachine.resolveState({ value: 'recovering', context: drive(streaming(), toolCalled, turnFinished).context });
      for (const decision of ['abandon', 'retry'] as const) {
        const [next, actions] = transition(sessionMachine, r, ev('recovery.decided', { activityId: 'act0', decision }));
        expect(next.value).toBe('recovering');
        expect(actions).toEqual([]);
      }
    });

    // BUG 5: `continue` (resume a turn whose stream finished) is accepted whatever was left in
    // flight. Restored from providerTurn.streaming (an attempt dispatched, chunks received, no
    // turn.finished), a recorded `continue` goes to awaitingTools, finds no calls, passes the
    // boundary with no tool results and settles the activity `completed` although the model never
    // finished its answer. Requests are checked against state (DESIGN §4): it should be ignored
    // unless the turn had finished (activity.toolResultsPending).
    it('session machine - a continue decision is ignored when the stream had not finished', () => {
      const s = drive(streaming(), textDelta);
      const r = sessionMachine.resolveState({ value: 'recovering', context: s.context });
      const [next, actions] = transition(sessionMachine, r, ev('recovery.decided', { activityId: 'act1', decision: 'continue' }));
      expect(next.value).toBe('recovering');
      expect(actionTypes(actions)).not.toContain('settleActivity');
    });

    // BUG 4 (runtime/machine contract): runProviderTurn mints an attemptId before it dispatches; if
    // resolving the provider or building the request throws, it records attempt.failed with that
    // never-dispatched attemptId. The machine's isCurrentAttempt guard compares it with
    // activity.attemptId (null for a first attempt, the previous attempt's id after a retry), so
    // the failure is ignored and the session stays in providerTurn.streaming with a finished
    // provider child: the activity never settles.
    it('session machine - a failure recorded before the attempt was dispatched settles the activity', () => {
      const s = opened();
      const failure = ev('attempt.failed', {
        activityId: 'act1',
        attemptId: 'act1-t1-a1',
        error: { kind: 'ConfigError', message: 'unknown model' },
        retryable: false,
        receivedChunks: false,
        discardedParts: [],
      });
      const [next, actions] = transition(sessionMachine, s, failure);
      expect(next.value).toBe('settling');
      expect(findAction(actions, 'settleActivity')?.params).toMatchObject({ status: 'failed' });
    });
  });
});
