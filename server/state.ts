import { JOBS_LIST_MAX, JOBS_RUNNING_PER_SESSION_MAX } from '../core/limits.js';
import { compactionView } from '../machines/compaction.js';
import type { SessionContext } from '../machines/session.machine.js';
import { stateName } from '../machines/stateName.js';
import type { Store } from '../store/index.js';
import type { SessionState } from './contract.js';

/**
 * The `loom inspect` view of one session, as data: the machine state (from the snapshot its owner
 * wrote with its last step), the child actors (unsettled tool calls with their states, unsettled
 * background jobs), the inbox, pending permission asks, grants, jobs, the owner, and usage with
 * the budgets in force (the session's and the open activity's, from the snapshot).
 */
export function sessionState(store: Store, sessionId: string): SessionState {
  const s = store.queries.session(sessionId)!;
  const snap = store.getSnapshot(sessionId);
  const context = snap?.context as SessionContext | undefined;
  const owner = store.owners.get(sessionId, store.clock.now());
  const activity = s.activityId ? store.queries.activity(s.activityId) : undefined;
  const calls = s.activityId ? store.queries.toolCalls(sessionId, { activityId: s.activityId }) : [];
  const inbox = store.inputs(sessionId).filter((i) => i.status === 'pending' || i.status === 'assigned');
  const asks = store.queries.permissions.pending(sessionId);
  const grants = store.queries.permissions.grants(sessionId);
  const running = store.queries.jobs(sessionId, { limit: JOBS_RUNNING_PER_SESSION_MAX * 4, status: 'running' });
  return {
    sessionId,
    model: s.model,
    location: s.location,
    state: snap ? stateName(snap.value) : 'idle',
    stateValue: snap?.value ?? 'idle',
    status: s.status,
    snapshotSeq: snap?.seq ?? 0,
    lastSeq: s.lastSeq,
    machineVersion: snap?.machineVersion ?? null,
    owner: owner
      ? { ownerId: owner.held ? owner.ownerId : null, epoch: owner.epoch, live: owner.live, expiresAt: owner.live ? new Date(owner.expiresAt).toISOString() : null }
      : null,
    activity: activity
      ? {
          activityId: activity.activityId,
          status: activity.status,
          turn: context?.activity?.turn ?? activity.turns,
          turnLimit: activity.turnLimit,
          turns: activity.turns,
          restarts: activity.restarts,
          attemptId: context?.activity?.attemptId ?? null,
          usage: { inputTokens: activity.inputTokens, outputTokens: activity.outputTokens, costUsd: activity.costUsd },
          budget: context?.activity?.budget ?? null,
        }
      : null,
    children: [
      ...calls
        .filter((c) => c.state !== 'settled')
        .map((c) => ({
          id: c.callId,
          kind: 'toolCall',
          tool: c.tool,
          state: asks.some((p) => p.callId === c.callId) ? 'awaitingPermission' : c.state === 'called' ? (context?.activity?.calls[c.callId]?.state ?? 'queued') : 'running',
        })),
      ...running.map((j) => ({ id: j.jobId, kind: 'job', tool: j.kind, state: j.cancelRequested ? 'cancelling' : 'running' })),
    ],
    inbox: inbox.map((i) => ({ inputId: i.inputId, mode: i.mode, status: i.status, text: i.text })),
    permissions: {
      pending: asks.map((p) => ({ requestId: p.requestId, callId: p.callId, tool: p.tool, pattern: p.pattern, summary: p.summary, askedAt: p.askedAt })),
      grants: grants.map((g) => ({ tool: g.tool, pattern: g.pattern, requestId: g.requestId })),
    },
    jobs: store.queries.jobs(sessionId, { limit: JOBS_LIST_MAX }),
    parked: context?.parked ?? false,
    lastActivityStatus: s.lastActivityStatus,
    usage: { activities: s.activities, turns: s.turns, inputTokens: s.inputTokens, outputTokens: s.outputTokens, costUsd: s.costUsd, budget: context?.sessionBudget ?? null },
    agent: context?.activity?.agent ?? s.agent ?? null,
    compaction: compactionView(context),
  };
}
