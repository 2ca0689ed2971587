import { initialTransition, transition, type ExecutableActionObject, type SnapshotFrom } from 'xstate';
import { sessionMachine, type SessionEvent, type SessionInput } from '../../machines/session.machine.js';
import { eventDefinitions, type ActivityStatus, type EventData, type EventType } from '../../store/schemas.js';

/**
 * A pure stand-in for the session runtime (actors/session.ts), for machine tests.
 *
 * The machine's decision actions do not move it: the runtime records the events they stand for
 * and those recorded events do. `recordedBy` mirrors what actors/session.ts records for each
 * decision action (same order, same data), with deterministic ids derived from the context, so a
 * test can compute a transition with xstate's pure `transition`, collect the recorded events, and
 * deliver them one by one, as the runtime does inside one transaction.
 */

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;

export const SESSION_ID = 'ses_test';
export const AT = '2025-01-01T00:00:00.000Z';

/** Small limits so that every limit is reachable in a few steps. */
export const SMALL_INPUT: SessionInput = {
  sessionId: SESSION_ID,
  turnLimit: 2,
  toolCallsPerTurn: 2,
  toolConcurrency: 1,
  attemptRetriesMax: 1,
  attemptBackoffMs: 100,
  attemptBackoffMaxMs: 1_000,
  attemptRetryAfterMaxMs: 5_000,
  toolTimeoutsMs: { bash: 5_000 },
  toolTimeoutDefaultMs: 1_000,
  idempotentTools: ['read'],
};

/** The delayed event of `providerTurn.backoff` (XState does not persist `after` delays; the runtime's timer sends it). */
export const BACKOFF_ELAPSED = 'xstate.after.retryBackoff.session.providerTurn.backoff';

/** A log envelope of `type` (seq and gseq are not read by the machine). */
export function ev<T extends EventType>(type: T, data: EventData<T>, seq = 0): SessionEvent {
  return { sessionId: SESSION_ID, seq, gseq: seq, type, version: eventDefinitions[type].version, at: AT, data } as SessionEvent;
}

export const backoffElapsed = (): SessionEvent => ({ type: BACKOFF_ELAPSED }) as unknown as SessionEvent;

/** Input ids carry their mode (`s…` steer, `q…` queue), as the store's inbox row would. */
export const modeOf = (inputId: string): 'steer' | 'queue' => (inputId.startsWith('q') ? 'queue' : 'steer');

export const admitted = (inputId: string): SessionEvent => ev('input.admitted', { inputId, mode: modeOf(inputId), text: `text of ${inputId}` });

export const turnIdOf = (activityId: string, turns: number) => `${activityId}-t${turns}`;
export const attemptIdOf = (turnId: string, attempt: number) => `${turnId}-a${attempt}`;

/** Whether `snapshot` has an invoked provider turn (the only non-tool-call child). */
export function providerTurnChildren(snapshot: SessionSnapshot): string[] {
  return Object.entries(snapshot.children as Record<string, { src?: unknown }>)
    .filter(([, ref]) => ref?.src === 'providerTurn')
    .map(([id]) => id);
}

export function toolCallChildren(snapshot: SessionSnapshot): string[] {
  return Object.entries(snapshot.children as Record<string, { src?: unknown }>)
    .filter(([, ref]) => ref?.src === 'toolCall')
    .map(([id]) => id);
}

export const actionTypes = (actions: ExecutableActionObject[]) => actions.map((a) => a.type);
export const findAction = (actions: ExecutableActionObject[], type: string) => actions.find((a) => a.type === type);

/**
 * The events the runtime records for the decision actions of one transition, in order
 * (actors/session.ts `provideMachine`). `before` is the snapshot the transition started from:
 * a cancel or abandon records `attempt.failed` for an attempt that was still streaming.
 */
export function recordedBy(actions: ExecutableActionObject[], before: SessionSnapshot, providerOpen: boolean): SessionEvent[] {
  const out: SessionEvent[] = [];
  for (const action of actions) {
    const context = action.info.context as SessionSnapshot['context'];
    const a = context.activity;
    switch (action.type) {
      case 'openActivity': {
        const activityId = `act${context.settledCount + 1}`;
        const inputs = context.steers.length > 0 ? context.steers : context.queued.slice(0, 1);
        out.push(
          ev('activity.opened', { activityId, trigger: inputs.length > 0 ? 'input' : 'run', inputIds: inputs, turnLimit: context.turnLimit }),
          ...inputs.map((inputId) => ev('input.assigned', { inputId, activityId })),
          ev('turn.started', { activityId, turnId: turnIdOf(activityId, 1), turn: 1 }),
        );
        break;
      }
      case 'assignSteers':
        out.push(
          ...context.steers.map((inputId) => ev('input.assigned', { inputId, activityId: a!.id })),
          ev('turn.started', { activityId: a!.id, turnId: turnIdOf(a!.id, a!.turns + 1), turn: 1 }),
        );
        break;
      case 'startTurn':
        out.push(ev('turn.started', { activityId: a!.id, turnId: turnIdOf(a!.id, a!.turns + 1), turn: a!.turn + 1 }));
        break;
      case 'retryTurn':
        // The runtime first marks the lost attempt failed (it skips one its projection already
        // shows discarded); the machine ignores attempt.failed in `continuing` either way.
        if (a!.attemptId) {
          out.push(
            ev('attempt.failed', {
              activityId: a!.id,
              attemptId: a!.attemptId,
              error: { kind: 'lost', message: 'the process was lost while this attempt was in flight' },
              retryable: false,
              receivedChunks: a!.receivedChunks,
              discardedParts: [],
            }),
          );
        }
        out.push(ev('turn.started', { activityId: a!.id, turnId: turnIdOf(a!.id, a!.turns + 1), turn: Math.max(1, a!.turn) }));
        break;
      case 'settleActivity': {
        const params = action.params as { status: ActivityStatus; reason?: string };
        const attemptInFlight = providerOpen && before.matches({ providerTurn: 'streaming' }) && a?.attemptId;
        if (attemptInFlight && (params.status === 'cancelled' || params.status === 'abandoned')) {
          out.push(
            ev('attempt.failed', {
              activityId: a!.id,
              attemptId: a!.attemptId!,
              error: { kind: params.status, message: `the attempt was stopped: activity ${params.status}` },
              retryable: false,
              receivedChunks: a!.receivedChunks,
              discardedParts: [],
            }),
          );
        }
        out.push(
          ...a!.unconsumed.map((inputId) => ev('input.released', { inputId, activityId: a!.id, reason: `activity ${params.status}`, mode: modeOf(inputId) })),
          ev('activity.settled', { activityId: a!.id, status: params.status, reason: params.reason, turns: a!.turns, usage: a!.usage }),
        );
        break;
      }
      case 'scheduleRetry': {
        // The runtime draws a jittered delay; here the upper bound (no jitter), so tests are exact.
        const p = action.params as { failedAttemptId: string; failedAttempt: number; reason: string; retryAfterMs?: number };
        const exponential = Math.min(context.attemptBackoffMs * 2 ** (p.failedAttempt - 1), context.attemptBackoffMaxMs);
        out.push(
          ev('attempt.retrying', {
            activityId: a!.id,
            failedAttemptId: p.failedAttemptId,
            nextAttempt: p.failedAttempt + 1,
            delayMs: Math.max(exponential, p.retryAfterMs ?? 0),
            reason: p.reason,
            ...(p.retryAfterMs === undefined ? {} : { retryAfterMs: p.retryAfterMs }),
          }),
        );
        break;
      }
      case 'interruptCalls':
        for (const [callId, call] of Object.entries(a?.calls ?? {})) {
          if (call.state !== 'settled') out.push(ev('tool.settled', { callId, status: 'interrupted', output: 'The tool call was interrupted before it finished.' }));
        }
        break;
      // ---- compaction (actors/session.ts startCompaction, restartCompaction, failCompaction) ----
      case 'startCompaction': {
        const { reason } = action.params as { reason: 'auto' | 'requested' | 'overflow' };
        out.push(ev('compaction.started', { compactionId: `cmp${context.settledCount}-${context.compaction.turns}`, reason, ...(a ? { activityId: a.id } : {}), restarts: 0 }));
        break;
      }
      case 'restartCompaction': {
        const current = context.compaction.current!;
        out.push(ev('compaction.started', { compactionId: current.id, reason: current.reason, ...(a ? { activityId: a.id } : {}), restarts: current.restarts + 1 }));
        break;
      }
      case 'failCompaction': {
        const params = action.params as { kind: string; reason: string };
        if (context.compaction.current) out.push(ev('compaction.failed', { compactionId: context.compaction.current.id, kind: params.kind, reason: params.reason }));
        break;
      }
      case 'refuseToolCall': {
        const { callId } = action.params as { callId: string };
        out.push(ev('tool.settled', { callId, status: 'error', output: `tool-call limit reached: at most ${context.toolCallsPerTurn} calls per turn` }));
        break;
      }
      default:
        break; // built-in actions (spawn, send, stop) and assigns record nothing
    }
  }
  return out;
}

/** One delivered event: the snapshot before and after, the actions the transition returned. */
export interface Step {
  event: SessionEvent;
  before: SessionSnapshot;
  after: SessionSnapshot;
  actions: ExecutableActionObject[];
  recorded: SessionEvent[];
}

/**
 * Delivers `event`, then every event the decision actions record (and those their transitions
 * record in turn), first in first out, as the runtime's mailbox does within one transaction.
 * `providerOpen` says whether the provider attempt was dispatched and still streaming.
 */
export function deliver(
  snapshot: SessionSnapshot,
  event: SessionEvent,
  providerOpen = false,
  maxSteps = 100,
): { snapshot: SessionSnapshot; steps: Step[]; providerOpen: boolean } {
  const steps: Step[] = [];
  const queue: SessionEvent[] = [event];
  let current = snapshot;
  while (queue.length > 0) {
    if (steps.length >= maxSteps) throw new Error(`deliver: more than ${maxSteps} recorded events (a decision loop?)`);
    const next = queue.shift()!;
    const [after, actions] = transition(sessionMachine, current, next);
    const recorded = recordedBy(actions, current, providerOpen);
    steps.push({ event: next, before: current, after, actions, recorded });
    queue.push(...recorded);
    providerOpen = nextProviderOpen(providerOpen, current, next, after);
    current = after;
  }
  return { snapshot: current, steps, providerOpen };
}

/** The provider attempt is open from its `attempt.dispatched` until it finishes, fails or its state is left. */
export function nextProviderOpen(open: boolean, before: SessionSnapshot, event: SessionEvent, after: SessionSnapshot): boolean {
  if (!after.matches({ providerTurn: 'streaming' })) return false;
  if (event.type === 'attempt.dispatched') return true;
  if (event.type === 'turn.finished') return false;
  if (event.type === 'attempt.failed' && event.data.attemptId === before.context.activity?.attemptId) return false;
  return open;
}

/** Delivers several events in order (each with its recorded follow-ups). */
export function deliverAll(snapshot: SessionSnapshot, events: SessionEvent[], providerOpen = false): { snapshot: SessionSnapshot; steps: Step[]; providerOpen: boolean } {
  const steps: Step[] = [];
  let current = snapshot;
  for (const e of events) {
    const r = deliver(current, e, providerOpen);
    current = r.snapshot;
    providerOpen = r.providerOpen;
    steps.push(...r.steps);
  }
  return { snapshot: current, steps, providerOpen };
}

export function initial(input: SessionInput = SMALL_INPUT): SessionSnapshot {
  return initialTransition(sessionMachine, input)[0];
}

/** What the provider-turn actor records when it dispatches the current turn's next attempt. */
export function dispatched(snapshot: SessionSnapshot): SessionEvent[] {
  const a = snapshot.context.activity!;
  const attempt = a.attempt + 1;
  const attemptId = attemptIdOf(a.turnId!, attempt);
  return [
    ev('attempt.dispatched', { activityId: a.id, turnId: a.turnId!, attemptId, attempt, model: 'openai/scripted-model', inputIds: a.unconsumed }),
    ...a.unconsumed.map((inputId) => ev('input.consumed', { inputId, activityId: a.id, attemptId })),
  ];
}

export function textDelta(snapshot: SessionSnapshot, delta = 'hello'): SessionEvent {
  const a = snapshot.context.activity!;
  return ev('text.delta', { activityId: a.id, attemptId: a.attemptId!, partId: `${a.attemptId}-p1`, delta });
}

export function toolCalled(snapshot: SessionSnapshot, tool = 'read'): SessionEvent {
  const a = snapshot.context.activity!;
  const callId = `${a.turnId}-c${Object.keys(a.calls).length + 1}`;
  return ev('tool.called', { activityId: a.id, attemptId: a.attemptId!, callId, providerCallId: `p-${callId}`, tool, input: '{"path":"README.md"}' });
}

export function toolSettled(callId: string, status: 'ok' | 'error' | 'denied' | 'interrupted' = 'ok'): SessionEvent {
  return ev('tool.settled', { callId, status, output: `${status} output of ${callId}` });
}

export function turnFinished(snapshot: SessionSnapshot): SessionEvent {
  const a = snapshot.context.activity!;
  const toolCalls = Object.keys(a.calls).length;
  return ev('turn.finished', {
    activityId: a.id,
    turnId: a.turnId!,
    attemptId: a.attemptId!,
    finishReason: toolCalls > 0 ? 'tool_calls' : 'stop',
    usage: { inputTokens: 10, outputTokens: 5 },
    toolCalls,
  });
}

export function attemptFailed(snapshot: SessionSnapshot, options: { retryable: boolean; receivedChunks?: boolean; retryAfterMs?: number }): SessionEvent {
  const a = snapshot.context.activity!;
  return ev('attempt.failed', {
    activityId: a.id,
    attemptId: a.attemptId!,
    error: { kind: options.retryable ? 'rate_limited' : 'bad_request', message: 'scripted failure', status: options.retryable ? 429 : 400, retryAfterMs: options.retryAfterMs },
    retryable: options.retryable,
    receivedChunks: options.receivedChunks ?? a.receivedChunks,
    discardedParts: [],
  });
}

export const cancelRequested = (activityId: string): SessionEvent => ev('cancel.requested', { activityId, reason: 'test cancel' });
