import { JOBS_RUNNING_PER_SESSION_MAX } from '../../core/limits.js';
import type { SessionContext } from '../../machines/session.machine.js';
import { stateName } from '../../machines/stateName.js';
import { openStore } from '../runtime.js';
import { requireSession } from './session.js';

/** `loom inspect`: machine state, children, inbox, owner and usage of one session. */
export async function inspectCommand(idArg: string, opts: { json?: boolean }): Promise<number> {
  const { store } = openStore();
  try {
    const s = requireSession(store, idArg);
    const snap = store.getSnapshot(s.sessionId);
    const context = snap?.context as SessionContext | undefined;
    const owner = store.owners.get(s.sessionId, store.clock.now());
    const activity = s.activityId ? store.queries.activity(s.activityId) : undefined;
    const calls = s.activityId ? store.queries.toolCalls(s.sessionId, { activityId: s.activityId }) : [];
    const inbox = store.inputs(s.sessionId).filter((i) => i.status === 'pending' || i.status === 'assigned');
    const asks = store.queries.permissions.pending(s.sessionId);
    const grants = store.queries.permissions.grants(s.sessionId);
    const report = {
      sessionId: s.sessionId,
      model: s.model,
      location: s.location,
      state: snap ? stateName(snap.value) : 'idle',
      status: s.status,
      snapshotSeq: snap?.seq ?? 0,
      lastSeq: s.lastSeq,
      machineVersion: snap?.machineVersion ?? null,
      owner: owner ? { ownerId: owner.held ? owner.ownerId : null, epoch: owner.epoch, live: owner.live, expiresAt: owner.live ? new Date(owner.expiresAt).toISOString() : null } : null,
      activity: activity
        ? { activityId: activity.activityId, status: activity.status, turn: context?.activity?.turn ?? activity.turns, turnLimit: activity.turnLimit, turns: activity.turns, restarts: activity.restarts, attemptId: context?.activity?.attemptId ?? null }
        : null,
      children: [
        ...calls.filter((c) => c.state !== 'settled').map((c) => ({ id: c.callId, kind: 'toolCall', tool: c.tool, state: asks.some((p) => p.callId === c.callId) ? 'awaitingPermission' : c.state === 'called' ? (context?.activity?.calls[c.callId]?.state ?? 'queued') : 'running' })),
        // Background jobs outlive activities: every unsettled one is a child of the session.
        ...store.queries.jobs(s.sessionId, { limit: JOBS_RUNNING_PER_SESSION_MAX * 4, status: 'running' }).map((j) => ({ id: j.jobId, kind: 'job', tool: j.kind, state: j.cancelRequested ? 'cancelling' : 'running' })),
      ],
      inbox: inbox.map((i) => ({ inputId: i.inputId, mode: i.mode, status: i.status, text: i.text })),
      permissions: {
        pending: asks.map((p) => ({ requestId: p.requestId, callId: p.callId, tool: p.tool, pattern: p.pattern, summary: p.summary, askedAt: p.askedAt })),
        grants: grants.map((g) => ({ tool: g.tool, pattern: g.pattern, requestId: g.requestId })),
      },
      parked: context?.parked ?? false,
      lastActivityStatus: s.lastActivityStatus,
      usage: { activities: s.activities, turns: s.turns, inputTokens: s.inputTokens, outputTokens: s.outputTokens },
    };
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    const w = (line: string) => process.stdout.write(`${line}\n`);
    w(`session   ${report.sessionId}  ${report.model}  ${report.location}`);
    const waiting = asks.length > 0 && report.state === 'awaitingTools' ? ' (waiting for a permission decision)' : '';
    w(`state     ${report.state}${report.parked ? ' (parked after a cancel: waits for new input, run or wake)' : ''}${waiting}`);
    w(`owner     ${report.owner?.live ? `${report.owner.ownerId} epoch ${report.owner.epoch} until ${report.owner.expiresAt}` : `none live${report.owner ? ` (last epoch ${report.owner.epoch})` : ''}`}`);
    if (report.activity) {
      const a = report.activity;
      w(`activity  ${a.activityId} ${a.status} turn ${a.turn}/${a.turnLimit} (${a.turns} in all)${a.attemptId ? ` attempt ${a.attemptId}` : ''}`);
    } else w(`activity  none${report.lastActivityStatus ? ` (last settled: ${report.lastActivityStatus})` : ''}`);
    w(`children  ${report.children.length === 0 ? 'none' : ''}`);
    for (const c of report.children) w(`  ${c.kind} ${c.id} ${c.tool} ${c.state}`);
    w(`asks      ${asks.length === 0 ? 'none pending' : `${asks.length} pending: answer with loom permit ${report.sessionId} REQUEST once|always|reject`}`);
    for (const p of asks) w(`  ${p.requestId} ${p.tool} ${p.summary ?? ''}${p.pattern ? ` (always: ${p.pattern})` : ''}`);
    if (grants.length > 0) w(`grants    ${grants.map((g) => `${g.tool} ${g.pattern ?? '(any call)'}`).join(', ')}`);
    w(`inbox     ${report.inbox.length === 0 ? 'empty' : ''}`);
    for (const i of report.inbox) w(`  ${i.inputId} ${i.mode} ${i.status} ${JSON.stringify(i.text.slice(0, 60))}`);
    w(`usage     ${report.usage.activities} activities, ${report.usage.turns} turns, ${report.usage.inputTokens} input / ${report.usage.outputTokens} output tokens`);
    w(`log       seq ${report.lastSeq}, snapshot at ${report.snapshotSeq} (${report.machineVersion ?? 'none'})`);
    return 0;
  } finally {
    store.close();
  }
}
