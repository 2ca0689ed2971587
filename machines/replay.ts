import { initialTransition, transition } from 'xstate';
import type { AnyEnvelope } from '../store/schemas.js';
import { sessionMachine, type SessionEvent, type SessionInput } from './session.machine.js';

/** A recorded log and the machine disagree at `seq`. */
export class HistoryDivergenceError extends Error {
  override name = 'HistoryDivergenceError';
  constructor(readonly seq: number, detail: string) {
    super(`history diverged at seq ${seq}: ${detail}`);
  }
}

/** The recorded events each decision action must be carried out by (Temporal's command check). */
const DECISION_EVENTS: Record<string, AnyEnvelope['type'][]> = {
  openActivity: ['activity.opened', 'turn.started'],
  startTurn: ['turn.started'],
  assignSteers: ['turn.started'],
  retryTurn: ['turn.started'],
  settleActivity: ['activity.settled'],
  startCompaction: ['compaction.started'],
};

/**
 * Events that only ever appear because the machine decided them. A `compaction.started` with
 * `restarts > 0` is a restore's restart (decided on CHECK, which is not in the log), like
 * `recovery.detected`: not checked.
 */
const DECIDED_TYPES = new Set<AnyEnvelope['type']>(['activity.opened', 'turn.started', 'activity.settled', 'compaction.started']);
const isDecided = (e: AnyEnvelope) => DECIDED_TYPES.has(e.type) && !(e.type === 'compaction.started' && (e.data.restarts ?? 0) > 0);

/**
 * Replays a session's log through the pure machine and checks that every decided event in the log
 * (`activity.opened`, `turn.started`, `activity.settled`, `compaction.started`) was decided by the machine at that point
 * (and with the same status), and every decision the machine made was carried out by the log.
 * Throws HistoryDivergenceError naming the first seq where they disagree. `complete: false`
 * accepts a log that ends with a decision not yet recorded (a process died right there).
 */
export function replayHistory(events: AnyEnvelope[], input: SessionInput, options: { complete?: boolean } = {}) {
  let [snapshot] = initialTransition(sessionMachine, input);
  const pending: { type: AnyEnvelope['type']; status?: string; decidedAt: number; action: string }[] = [];
  for (const e of events) {
    if (isDecided(e)) {
      const i = pending.findIndex((p) => p.type === e.type);
      if (i < 0) throw new HistoryDivergenceError(e.seq, `the log has ${e.type} but the machine decided no such step here (in ${JSON.stringify(snapshot.value)})`);
      const want = pending[i]!;
      const status = e.type === 'activity.settled' ? (e.data as { status: string }).status : undefined;
      if (want.status !== undefined && status !== want.status) {
        throw new HistoryDivergenceError(e.seq, `the log settles ${status} but the machine decided ${want.status} at seq ${want.decidedAt}`);
      }
      pending.splice(i, 1);
    }
    const [next, actions] = transition(sessionMachine, snapshot, e as SessionEvent);
    snapshot = next;
    for (const a of actions) {
      const status = a.type === 'settleActivity' ? (a.params as { status: string }).status : undefined;
      for (const type of DECISION_EVENTS[a.type] ?? []) pending.push({ type, status, decidedAt: e.seq, action: a.type });
    }
  }
  if (options.complete !== false && pending.length > 0) {
    const p = pending[0]!;
    throw new HistoryDivergenceError(p.decidedAt, `the machine decided ${p.action} here but the log never records ${p.type}`);
  }
  return snapshot;
}
