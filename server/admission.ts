import type { InputRow, Store } from '../store/index.js';
import { ApiError } from './errors.js';

export interface AdmitRequest {
  text: string;
  mode?: 'steer' | 'queue';
  clientId?: string;
  source: string;
}

export interface Admission {
  input: InputRow;
  admitted: boolean;
  /** The double-texting policy applied (no mode given, session busy), else null. */
  policy: 'steer' | 'queue' | 'interrupt' | 'reject' | null;
}

/**
 * Admits an input over HTTP (DESIGN §3, "prompt while busy"). With a mode, the input is admitted
 * in that mode. Without one, an idle session gets `queue` (each input its own activity, in order) and a busy session its double-texting
 * policy: `steer` and `queue` admit in that mode, `interrupt` records a cancel of the current
 * activity and admits a steer (the cancel settles the activity, then the steer runs), `reject`
 * refuses with 409 naming `body.mode`. Idempotent by `clientId` like every admission.
 *
 * NOTE for the merge: the ops branch has the shared `store/admission.ts admitWithPolicy` (same
 * rules; `SessionBusyError` for reject, mapped to 409 `body.mode` in server/errors.ts). Once both
 * are merged this function should call it and keep only the mapping to the HTTP result.
 */
export function admitWithPolicy(store: Store, sessionId: string, request: AdmitRequest): Admission {
  return store.transaction(() => {
    const session = store.queries.session(sessionId);
    if (!session) throw new ApiError(404, 'not_found', `no session "${sessionId}"`, 'path.id');
    // A retry of an admitted clientId is not a new input: it returns the first admission, and no policy applies again.
    const existing = request.clientId === undefined ? undefined : store.inputs(sessionId).find((i) => i.clientId === request.clientId);
    if (existing) return { input: existing, admitted: false, policy: null };
    const busy = session.status !== 'idle';
    let mode: 'steer' | 'queue' = request.mode ?? 'queue';
    let policy: Admission['policy'] = null;
    if (request.mode === undefined && busy) {
      policy = session.doubleTexting;
      if (policy === 'reject') {
        throw new ApiError(409, 'busy', `session ${sessionId} is busy and its double-texting policy rejects new input; send mode "steer" or "queue"`, 'body.mode');
      }
      if (policy === 'interrupt' && session.activityId) {
        store.append({ sessionId, type: 'cancel.requested', data: { activityId: session.activityId, reason: 'interrupted by a new input (double-texting policy)' } });
      }
      mode = policy === 'queue' ? 'queue' : 'steer';
    }
    const { input, admitted } = store.admitInput(sessionId, { mode, text: request.text, clientId: request.clientId, source: request.source });
    return { input, admitted, policy };
  });
}
