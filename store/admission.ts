import { SessionNotFoundError, StoreError } from './errors.js';
import type { InputAttachment, RequestBudget } from './schemas.js';
import type { InputRow, Store } from './store.js';

/**
 * Double-texting (DESIGN §3, last row of the safe-boundary table): what an input sent with no mode
 * does while the session is busy. The policy is the session's (`session.created.doubleTexting`,
 * default `steer`):
 * - `steer`: the input joins the current activity at its next safe boundary;
 * - `queue`: it waits for the current activity to settle, then runs (FIFO);
 * - `interrupt`: the current activity is cancelled and the input runs next (the cancel request and
 *   the input are committed in one transaction, cancel first, so the owner settles the activity
 *   `cancelled` and then opens a new one with the input);
 * - `reject`: the input is refused (`SessionBusyError`) and nothing is stored.
 */
export type DoubleTextingPolicy = 'steer' | 'queue' | 'interrupt' | 'reject';

export const DOUBLE_TEXTING_POLICIES: readonly DoubleTextingPolicy[] = ['steer', 'queue', 'interrupt', 'reject'];

export interface AdmitWithPolicyRequest {
  text: string;
  /** An explicit mode bypasses the policy. */
  mode?: 'steer' | 'queue';
  /** Idempotency key: a second admission with the same id returns the first and applies nothing. */
  clientId?: string;
  /** Who sent it (`cli`, `http`, …), recorded with the input. */
  source?: string;
  attachments?: InputAttachment[];
  /** Budgets to record with the input (services/budget.ts `requestBudgetFor`). */
  budget?: RequestBudget;
  /** The agent profile the activity it opens runs with (the caller checks that it exists). */
  agent?: string;
}

export interface Admission {
  input: InputRow;
  /** False when `clientId` named an input admitted before (nothing was recorded now). */
  admitted: boolean;
  /** The mode the input was admitted with. */
  mode: 'steer' | 'queue';
  /** Whether the session was busy (an activity open, or recovering) at admission. */
  busy: boolean;
  /** The policy that chose the mode, or null when the mode was given or the session was idle. */
  policy: DoubleTextingPolicy | null;
  /** The activity a cancel was requested for (`interrupt`), else null. */
  interrupted: string | null;
}

/** The session is busy and its double-texting policy is `reject`; nothing was stored. */
export class SessionBusyError extends StoreError {
  override name = 'SessionBusyError';
  constructor(readonly sessionId: string, readonly activityId: string | null, readonly status: string) {
    super(
      `session ${sessionId} is busy (${status}${activityId ? `, activity ${activityId}` : ''}) and its double-texting policy is reject: ` +
        'the input was not admitted; send it with an explicit mode (steer or queue), or wait until the session is idle',
    );
  }
}

/**
 * Admits an input the way every surface does (CLI `prompt`, HTTP `POST /sessions/:id/inputs`):
 * an explicit `mode` is used as given; with none, an idle session gets `queue` (each input its own
 * activity, in order) and a busy one applies its double-texting policy. One IMMEDIATE transaction:
 * the busy check, the cancel an `interrupt` records and the admission see the same state, and a
 * `reject` writes nothing. Any process may call it (every event it records is a request).
 *
 * Throws SessionNotFoundError, SessionBusyError (reject), and the inbox's LimitExceededError.
 */
export function admitWithPolicy(store: Store, sessionId: string, request: AdmitWithPolicyRequest): Admission {
  return store.transaction(() => {
    const session = store.queries.session(sessionId);
    if (!session) throw new SessionNotFoundError(sessionId);
    if (request.clientId !== undefined) {
      const row = store.db.prepare('SELECT input_id FROM session_input WHERE session_id = ? AND client_id = ?').get(sessionId, request.clientId) as { input_id: string } | undefined;
      const earlier = row && store.input(row.input_id);
      if (earlier) return { input: earlier, admitted: false, mode: earlier.mode, busy: session.status !== 'idle', policy: null, interrupted: null };
    }
    const busy = session.status !== 'idle';
    let mode: 'steer' | 'queue' = request.mode ?? 'queue';
    let policy: DoubleTextingPolicy | null = null;
    let interrupted: string | null = null;
    if (request.mode === undefined && busy) {
      policy = session.doubleTexting ?? 'steer';
      if (policy === 'reject') throw new SessionBusyError(sessionId, session.activityId, session.status);
      if (policy === 'interrupt' && session.activityId) {
        store.append({ sessionId, type: 'cancel.requested', data: { activityId: session.activityId, reason: 'interrupted by a new input (double-texting policy interrupt)' } });
        interrupted = session.activityId;
      }
      mode = policy === 'queue' ? 'queue' : 'steer';
    }
    const { input, admitted } = store.admitInput(sessionId, {
      mode,
      text: request.text,
      ...(request.clientId === undefined ? {} : { clientId: request.clientId }),
      ...(request.source === undefined ? {} : { source: request.source }),
      ...(request.attachments === undefined ? {} : { attachments: request.attachments }),
      ...(request.budget === undefined ? {} : { budget: request.budget }),
      ...(request.agent === undefined ? {} : { agent: request.agent }),
    });
    return { input, admitted, mode, busy, policy, interrupted };
  });
}

/** Parses a policy name from a flag or a request body; undefined when it is not one. */
export function parseDoubleTexting(value: string): DoubleTextingPolicy | undefined {
  return (DOUBLE_TEXTING_POLICIES as readonly string[]).includes(value) ? (value as DoubleTextingPolicy) : undefined;
}
