import { discoverUnsettled } from '../../actors/discovery.js';
import { ownerProcessGone } from '../../core/liveness.js';
import { stateName } from '../../machines/stateName.js';
import { MCP_STARTUP_WAIT_MS } from '../../core/limits.js';
import type { AnyEnvelope, AppendRequest } from '../../store/index.js';
import { EXIT, UsageError } from '../exit.js';
import { driveSession } from '../drive.js';
import { openRuntime, type CliRuntime, type PermissionMode } from '../runtime.js';
import { requireSession } from './session.js';

/**
 * Commands from a process that may not own the session (DESIGN §4): record the request; if no live
 * owner holds the session, take the lease and act on it here.
 */
async function requestAndAct(
  idArg: string,
  request: (sessionId: string, activityId: string | null) => AppendRequest,
  permission?: PermissionMode,
  json?: boolean,
  /** The exit code once this process has acted (it owned the session and ran it until quiet), from what was recorded after `after`. */
  outcome?: (rt: CliRuntime, sessionId: string, after: number, code: number) => number,
  tools = true,
): Promise<number> {
  const rt = await openRuntime({ permission });
  try {
    const session = requireSession(rt.store, idArg);
    await rt.configFor(session.location);
    const owner = rt.store.owners.get(session.sessionId, rt.store.clock.now());
    const heldElsewhere = owner?.live === true && !ownerProcessGone(owner.ownerId);
    const after = session.lastSeq;
    const [recorded] = rt.store.append(request(session.sessionId, session.activityId));
    await rt.signal(recorded!.type === 'cancel.requested' ? 'cancel' : 'wake', session.sessionId);
    if (heldElsewhere) {
      // The live owner acts on it (at once when signalled over NATS, else within a poll) and may
      // release the session right after: what it does then is its run's output, not this command's.
      process.stderr.write(`recorded; the live owner of ${session.sessionId} will act on it\n`);
      return EXIT.ok;
    }
    const code = await driveSession(rt, session.sessionId, { after, json, mcp: tools });
    if (code === null) process.stderr.write(`recorded; the live owner of ${session.sessionId} will act on it\n`);
    if (code === null) return EXIT.ok;
    return outcome ? outcome(rt, session.sessionId, after, code) : code;
  } finally {
    rt.close();
  }
}

/** `loom cancel`: cancels the current activity (its owner aborts within one polling interval, or at once over NATS). */
export async function cancelCommand(idArg: string, opts: { json?: boolean } = {}): Promise<number> {
  return requestAndAct(
    idArg,
    (sessionId, activityId) => {
      if (!activityId) throw new UsageError(`session ${sessionId} has no activity to cancel`);
      return { sessionId, type: 'cancel.requested', data: { activityId, reason: 'loom cancel' } };
    },
    undefined,
    opts.json,
    undefined,
    false, // cancelling runs no tool: no need to wait for MCP servers
  );
}

/**
 * `loom compact`: records `compaction.requested`; the owner compacts at its next safe point (idle,
 * or the boundary before its next turn). With no live owner this process takes the session and
 * does it, then reports the outcome: 0 when a summary was written, 1 when the compaction failed.
 */
export async function compactCommand(idArg: string, opts: { reason?: string; json?: boolean; permission?: PermissionMode } = {}): Promise<number> {
  return requestAndAct(
    idArg,
    (sessionId) => ({ sessionId, type: 'compaction.requested', data: { reason: opts.reason ?? 'loom compact' } }),
    opts.permission ?? 'ask',
    opts.json,
    (rt, sessionId, after, code) => {
      const outcome = lastCompactionOutcome(rt, sessionId, after);
      if (!outcome) {
        process.stderr.write(`recorded; session ${sessionId} compacts at its next safe point\n`);
        return code;
      }
      if (outcome.type === 'compaction.finished') {
        const d = outcome.data;
        process.stderr.write(`compacted ${sessionId}: ${d.coveredMessages} message(s) summarised (through seq ${d.throughSeq}), ${d.keptTurns} recent turn(s) kept; about ${d.estimatedTokens} tokens now\n`);
        return code;
      }
      process.stderr.write(`loom: compaction of ${sessionId} failed (${outcome.data.kind}): ${outcome.data.reason}\n`);
      return outcome.data.kind === 'nothing_to_compact' ? code : EXIT.failed;
    },
  );
}

/** The last compaction outcome recorded after `after`, if any. */
function lastCompactionOutcome(rt: CliRuntime, sessionId: string, after: number) {
  let last: Extract<AnyEnvelope, { type: 'compaction.finished' | 'compaction.failed' }> | undefined;
  for (let page = rt.store.read(sessionId, { after }); page.length > 0; page = rt.store.read(sessionId, { after: page.at(-1)!.seq })) {
    for (const e of page) if (e.type === 'compaction.finished' || e.type === 'compaction.failed') last = e;
  }
  return last;
}

/** `loom recover --retry|--abandon`: records the decision for an unsettled activity. */
export async function recoverCommand(
  idArg: string | undefined,
  opts: { abandon?: boolean; retry?: boolean; scan?: boolean; reason?: string; permission?: PermissionMode; json?: boolean },
): Promise<number> {
  if (opts.scan) {
    if (idArg !== undefined || opts.abandon || opts.retry) throw new UsageError('recover --scan takes no session id and no decision');
    return scanCommand(opts.permission ?? 'ask', opts.json);
  }
  if (idArg === undefined) throw new UsageError('recover needs a session id (or --scan)');
  if (Boolean(opts.abandon) === Boolean(opts.retry)) throw new UsageError('recover needs exactly one of --retry and --abandon');
  return requestAndAct(
    idArg,
    (sessionId, activityId) => {
      if (!activityId) throw new UsageError(`session ${sessionId} has no unsettled activity to recover`);
      return { sessionId, type: 'recovery.decided', data: { activityId, decision: opts.retry ? 'retry' : 'abandon', reason: opts.reason } };
    },
    // Recovery must not answer asks a stopped run left for a person: without a TTY they stay pending.
    opts.permission ?? 'ask',
    opts.json,
  );
}

/**
 * `loom recover --scan`: startup discovery run now. Restores every unsettled session that no live
 * owner holds, lets safe continuations run to quiet, and reports each session's state. Exits 5 when
 * some session waits for a decision.
 */
async function scanCommand(permission?: PermissionMode, json?: boolean): Promise<number> {
  const rt = await openRuntime({ permission });
  try {
    await rt.mcp.ready(MCP_STARTUP_WAIT_MS); // a call resumed on restore finds its MCP tool (a slow server joins later)
    const report = await discoverUnsettled(rt.coordinator, {
      prepare: async (sessionId) => void (await rt.configFor(rt.store.queries.session(sessionId)!.location)),
    });
    await Promise.all(report.owned.map((id) => rt.coordinator.runUntilQuiet(id)));
    let waiting = 0;
    for (const id of report.owned) {
      const actor = rt.coordinator.get(id);
      const state = actor ? stateName(actor.snapshot().value) : 'stopped';
      const asking = actor?.waitingForPermission() === true;
      if (state === 'recovering' || asking) waiting++;
      const row = rt.store.queries.session(id)!;
      const note =
        state === 'recovering' ? `  (waiting: loom recover ${id} --retry|--abandon)` : asking ? `  (waiting for a permission decision: loom permit ${id})` : `  last: ${row.lastActivityStatus ?? '-'}`;
      if (json) process.stdout.write(`${JSON.stringify({ sessionId: id, state, waiting: state === 'recovering' ? 'recovery' : asking ? 'permission' : null, lastActivityStatus: row.lastActivityStatus })}\n`);
      else process.stdout.write(`${id}  ${state}${note}\n`);
      rt.coordinator.release(id);
    }
    for (const id of report.skipped) process.stdout.write(json ? `${JSON.stringify({ sessionId: id, state: 'held', owner: 'live' })}\n` : `${id}  held by a live owner\n`);
    for (const f of report.failed) {
      const message = (f.error as Error)?.message ?? String(f.error);
      process.stdout.write(json ? `${JSON.stringify({ sessionId: f.sessionId, state: 'failed', error: message })}\n` : `${f.sessionId}  failed to restore: ${message}\n`);
    }
    process.stderr.write(`recover --scan: ${report.found} unsettled, ${report.owned.length} restored, ${waiting} waiting for a decision\n`);
    return waiting > 0 ? EXIT.waiting : report.failed.length > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    rt.close();
  }
}
