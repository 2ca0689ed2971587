import type { AppendRequest } from '../../store/index.js';
import { EXIT, UsageError } from '../exit.js';
import { driveSession } from '../drive.js';
import { openRuntime, type PermissionMode } from '../runtime.js';
import { requireSession } from './session.js';

/**
 * Commands from a process that may not own the session (DESIGN §4): record the request; if no live
 * owner holds the session, take the lease and act on it here.
 */
async function requestAndAct(
  idArg: string,
  request: (sessionId: string, activityId: string | null) => AppendRequest,
  permission?: PermissionMode,
): Promise<number> {
  const rt = await openRuntime({ permission });
  try {
    const session = requireSession(rt.store, idArg);
    await rt.configFor(session.location);
    const after = session.lastSeq;
    rt.store.append(request(session.sessionId, session.activityId));
    const code = await driveSession(rt, session.sessionId, { after });
    if (code === null) process.stderr.write(`recorded; the live owner of ${session.sessionId} will act on it\n`);
    return code ?? EXIT.ok;
  } finally {
    rt.close();
  }
}

/** `loom cancel`: cancels the current activity (its owner aborts within one polling interval). */
export async function cancelCommand(idArg: string): Promise<number> {
  return requestAndAct(idArg, (sessionId, activityId) => {
    if (!activityId) throw new UsageError(`session ${sessionId} has no activity to cancel`);
    return { sessionId, type: 'cancel.requested', data: { activityId, reason: 'loom cancel' } };
  });
}

/** `loom recover --retry|--abandon`: records the decision for an unsettled activity. */
export async function recoverCommand(
  idArg: string,
  opts: { abandon?: boolean; retry?: boolean; reason?: string; permission?: PermissionMode },
): Promise<number> {
  if (Boolean(opts.abandon) === Boolean(opts.retry)) throw new UsageError('recover needs exactly one of --retry and --abandon');
  return requestAndAct(
    idArg,
    (sessionId, activityId) => {
      if (!activityId) throw new UsageError(`session ${sessionId} has no unsettled activity to recover`);
      return { sessionId, type: 'recovery.decided', data: { activityId, decision: opts.retry ? 'retry' : 'abandon', reason: opts.reason } };
    },
    opts.permission,
  );
}
