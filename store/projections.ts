import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';
import { IllegalInboxTransitionError, SessionNotFoundError } from './errors.js';
import { CheckpointProjector } from './checkpoints.js';
import { PermissionProjector } from './permissions.js';
import type { AnyEnvelope } from './schemas.js';

/**
 * Projections: read models written from events inside the append transaction. A projection that
 * throws rolls the append back, which is how requests are "checked against state" (an inbox
 * transition the lifecycle does not allow, an event for a session that does not exist).
 *
 * Everything here is a pure function of the events in gseq order: `rebuildProjections` replays
 * the log through the same code and must produce the same rows.
 */
export type InputStatus = 'pending' | 'assigned' | 'consumed' | 'cancelled';

/** The inbox lifecycle of DESIGN §4: allowed `from` states for each event. */
const INBOX_TRANSITIONS: Record<string, { from: InputStatus[]; to: InputStatus }> = {
  'input.assigned': { from: ['pending'], to: 'assigned' },
  'input.consumed': { from: ['assigned'], to: 'consumed' },
  'input.cancelled': { from: ['pending'], to: 'cancelled' },
  'input.released': { from: ['assigned'], to: 'pending' },
};

export class Projector {
  private readonly s: Record<string, Statement>;
  private readonly permissions: PermissionProjector;
  private readonly checkpoints: CheckpointProjector;

  constructor(private readonly db: Db) {
    this.permissions = new PermissionProjector(db);
    this.checkpoints = new CheckpointProjector(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      sessionExists: p('SELECT 1 FROM sessions WHERE session_id = ?'),
      sessionInsert: p(`INSERT INTO sessions (session_id, location, model, title, parent_id, double_texting, created_at,
        updated_at, last_seq, status, activity_id, activities, last_activity_status, turns, input_tokens, output_tokens, agent)
        VALUES (@sessionId, @location, @model, @title, @parentId, @doubleTexting, @at, @at, @seq, 'idle', NULL, 0, NULL, 0, 0, 0, @agent)`),
      sessionTouch: p('UPDATE sessions SET updated_at = ?, last_seq = ? WHERE session_id = ?'),
      sessionActivity: p(`UPDATE sessions SET status = ?, activity_id = ?, activities = activities + ? WHERE session_id = ?`),
      sessionSettled: p(`UPDATE sessions SET status = 'idle', activity_id = NULL, last_activity_status = ? WHERE session_id = ?`),
      sessionStatus: p('UPDATE sessions SET status = ? WHERE session_id = ?'),
      sessionUsage: p(`UPDATE sessions SET turns = turns + 1, input_tokens = input_tokens + @in, output_tokens = output_tokens + @out,
        cost_usd = CASE WHEN @cost IS NULL THEN cost_usd ELSE ifnull(cost_usd, 0) + @cost END WHERE session_id = @id`),
      activityUsage: p(`UPDATE activities SET input_tokens = input_tokens + @in, output_tokens = output_tokens + @out,
        cost_usd = CASE WHEN @cost IS NULL THEN cost_usd ELSE ifnull(cost_usd, 0) + @cost END WHERE activity_id = @id`),
      sessionTokens: p(`UPDATE sessions SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ? WHERE session_id = ?`),
      activityInsert: p(`INSERT INTO activities (activity_id, session_id, trigger, status, turns, turn_limit, restarts, reason, opened_seq, settled_seq)
        VALUES (?, ?, ?, 'open', 0, ?, 0, NULL, ?, NULL)`),
      activityTurn: p('UPDATE activities SET turns = ? WHERE activity_id = ?'),
      activitySettle: p('UPDATE activities SET status = ?, reason = ?, settled_seq = ? WHERE activity_id = ?'),
      activityRecovery: p(`UPDATE activities SET status = 'recovering', restarts = ? WHERE activity_id = ?`),
      activityStatus: p('SELECT status FROM activities WHERE activity_id = ?'),
      activityResume: p(`UPDATE activities SET status = 'open' WHERE activity_id = ?`),
      inputInsert: p(`INSERT INTO session_input (input_id, session_id, client_id, mode, text, source, status, activity_id, attempt_id, admitted_seq, updated_seq, attachments, agent)
        VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL, NULL, ?, ?, ?, ?)`),
      inputGet: p('SELECT status, session_id FROM session_input WHERE input_id = ?'),
      inputUpdate: p('UPDATE session_input SET status = ?, activity_id = ?, attempt_id = ?, updated_seq = ? WHERE input_id = ?'),
      messageInsert: p(`INSERT INTO messages (message_id, session_id, role, activity_id, seq, discarded, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)`),
      messageDelete: p('DELETE FROM messages WHERE message_id = ?'),
      partDelete: p('DELETE FROM parts WHERE message_id = ?'),
      messageDiscard: p('UPDATE messages SET discarded = 1 WHERE message_id = ?'),
      messageFinished: p('UPDATE messages SET finished = 1 WHERE message_id = ?'),
      partsDiscard: p('UPDATE parts SET discarded = 1 WHERE message_id = ?'),
      partAppend: p(`INSERT INTO parts (part_id, message_id, session_id, kind, text, done, discarded, provider_metadata, seq)
        VALUES (?, ?, ?, ?, ?, 0, 0, NULL, ?) ON CONFLICT (part_id) DO UPDATE SET text = text || excluded.text`),
      partDone: p(`INSERT INTO parts (part_id, message_id, session_id, kind, text, done, discarded, provider_metadata, seq)
        VALUES (?, ?, ?, ?, ?, 1, 0, ?, ?) ON CONFLICT (part_id) DO UPDATE SET text = excluded.text, done = 1, provider_metadata = excluded.provider_metadata`),
      toolInsert: p(`INSERT INTO tool_calls (call_id, session_id, activity_id, message_id, provider_call_id, tool, input, state, status, output, truncated, provider_metadata, called_seq, settled_seq)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'called', NULL, NULL, 0, ?, ?, NULL)`),
      toolGet: p('SELECT state FROM tool_calls WHERE call_id = ?'),
      toolStarted: p(`UPDATE tool_calls SET state = 'started' WHERE call_id = ?`),
      toolSettled: p(`UPDATE tool_calls SET state = 'settled', status = ?, output = ?, truncated = ?, settled_seq = ? WHERE call_id = ?`),
      jobInsert: p(`INSERT INTO jobs (job_id, session_id, kind, activity_id, call_id, summary, description, pid, pgid, process_start_time,
        output_path, timeout_ms, started_at, status, cancel_requested, output_offset, output_reported, started_seq)
        VALUES (@jobId, @sessionId, @kind, @activityId, @callId, @summary, @description, @pid, @pgid, @processStartTime,
        @outputPath, @timeoutMs, @startedAt, 'running', 0, 0, 0, @seq)`),
      jobGet: p('SELECT status, session_id FROM jobs WHERE job_id = ?'),
      jobOutput: p('UPDATE jobs SET output_offset = ?, output_reported = output_reported + ? WHERE job_id = ?'),
      jobSettled: p(`UPDATE jobs SET status = ?, exit_code = ?, signal = ?, reason = ?, output_tail = ?, output_bytes = ?, settled_at = ?, settled_seq = ? WHERE job_id = ?`),
      jobCancel: p(`UPDATE jobs SET cancel_requested = 1 WHERE job_id = ? AND session_id = ? AND status = 'running'`),
    };
  }

  /** Applies one event. Throws (rolling the append back) when the event contradicts state. */
  apply(e: AnyEnvelope): void {
    if (e.sessionId === null) return;
    const sid = e.sessionId;
    if (e.type === 'session.created') {
      const d = e.data;
      this.s.sessionInsert!.run({
        sessionId: sid,
        location: d.location,
        model: d.model,
        title: d.title ?? null,
        parentId: d.parentId ?? null,
        doubleTexting: d.doubleTexting ?? 'steer',
        agent: d.agent ?? null,
        at: e.at,
        seq: e.seq,
      });
      return;
    }
    if (!this.s.sessionExists!.get(sid)) throw new SessionNotFoundError(sid);
    this.s.sessionTouch!.run(e.at, e.seq, sid);
    this.applySessionEvent(sid, e);
  }

  private applySessionEvent(sid: string, e: AnyEnvelope): void {
    const s = this.s;
    switch (e.type) {
      case 'input.admitted': {
        const d = e.data;
        const attachments = d.attachments !== undefined && d.attachments.length > 0 ? JSON.stringify(d.attachments) : null;
        s.inputInsert!.run(d.inputId, sid, d.clientId ?? null, d.mode, d.text, d.source ?? null, e.seq, e.seq, attachments, d.agent ?? null);
        return;
      }
      case 'input.assigned':
        this.inboxTransition(sid, e.type, e.data.inputId, e.data.activityId, null, e.seq);
        s.messageInsert!.run(e.data.inputId, sid, 'user', e.data.activityId, e.seq, e.at);
        return;
      case 'input.consumed':
        this.inboxTransition(sid, e.type, e.data.inputId, e.data.activityId, e.data.attemptId, e.seq);
        return;
      case 'input.cancelled':
        this.inboxTransition(sid, e.type, e.data.inputId, null, null, e.seq);
        return;
      case 'input.released':
        this.inboxTransition(sid, e.type, e.data.inputId, null, null, e.seq);
        s.messageDelete!.run(e.data.inputId);
        return;
      case 'activity.opened':
        s.activityInsert!.run(e.data.activityId, sid, e.data.trigger, e.data.turnLimit, e.seq);
        s.sessionActivity!.run('active', e.data.activityId, 1, sid);
        return;
      case 'turn.started':
        s.activityTurn!.run(e.data.turn, e.data.activityId);
        return;
      case 'attempt.dispatched':
        s.messageInsert!.run(e.data.attemptId, sid, 'assistant', e.data.activityId, e.seq, e.at);
        return;
      case 'text.delta':
      case 'reasoning.delta':
        s.partAppend!.run(e.data.partId, e.data.attemptId, sid, kindOf(e.type), e.data.delta, e.seq);
        return;
      case 'text.done':
      case 'reasoning.done':
        s.partDone!.run(e.data.partId, e.data.attemptId, sid, kindOf(e.type), e.data.text, json(e.data.providerMetadata), e.seq);
        return;
      case 'tool.called': {
        const d = e.data;
        s.toolInsert!.run(d.callId, sid, d.activityId, d.attemptId, d.providerCallId, d.tool, d.input, json(d.providerMetadata), e.seq);
        return;
      }
      case 'tool.started':
        // 'started' again: an idempotent call re-run after a process loss.
        this.requireToolState(e.data.callId, ['called', 'started']);
        s.toolStarted!.run(e.data.callId);
        return;
      case 'tool.settled':
        this.requireToolState(e.data.callId, ['called', 'started']);
        s.toolSettled!.run(e.data.status, e.data.output, e.data.truncated ? 1 : 0, e.seq, e.data.callId);
        this.permissions.callSettled(e.data.callId, e.seq);
        return;
      case 'permission.asked':
        this.permissions.asked(sid, e);
        return;
      case 'permission.replied':
        this.permissions.replied(sid, e);
        return;
      case 'permission.revoked':
        this.permissions.revoked(sid, e);
        return;
      case 'attempt.failed':
        s.messageDiscard!.run(e.data.attemptId);
        s.partsDiscard!.run(e.data.attemptId);
        return;
      case 'turn.finished': {
        const usage = { in: e.data.usage.inputTokens, out: e.data.usage.outputTokens, cost: e.data.costUsd ?? null };
        s.sessionUsage!.run({ ...usage, id: sid });
        s.activityUsage!.run({ ...usage, id: e.data.activityId });
        s.messageFinished!.run(e.data.attemptId);
        return;
      }
      case 'compaction.finished':
        // A summary request is paid for like a turn: its tokens count in the session's usage (not its turns).
        if (e.data.usage) s.sessionTokens!.run(e.data.usage.inputTokens, e.data.usage.outputTokens, sid);
        return;
      case 'activity.settled':
        s.activitySettle!.run(e.data.status, e.data.reason ?? null, e.seq, e.data.activityId);
        s.sessionSettled!.run(e.data.status, sid);
        return;
      case 'recovery.detected':
        s.activityRecovery!.run(e.data.restarts, e.data.activityId);
        s.sessionStatus!.run('recovering', sid);
        return;
      case 'job.started': {
        const d = e.data;
        s.jobInsert!.run({
          jobId: d.jobId,
          sessionId: sid,
          kind: d.kind,
          activityId: d.activityId ?? null,
          callId: d.callId ?? null,
          summary: d.summary,
          description: d.description ?? null,
          pid: d.pid ?? null,
          pgid: d.pgid ?? null,
          processStartTime: d.processStartTime ?? null,
          outputPath: d.outputPath,
          timeoutMs: d.timeoutMs,
          startedAt: d.startedAt,
          seq: e.seq,
        });
        return;
      }
      case 'job.output': {
        this.requireRunningJob(sid, e.data.jobId);
        const bytes = Buffer.byteLength(e.data.chunk);
        s.jobOutput!.run(e.data.offset + bytes, bytes, e.data.jobId);
        return;
      }
      case 'job.settled': {
        const d = e.data;
        this.requireRunningJob(sid, d.jobId);
        s.jobSettled!.run(d.status, d.exitCode ?? null, d.signal ?? null, d.reason ?? null, d.outputTail, d.outputBytes, e.at, e.seq, d.jobId);
        return;
      }
      case 'cancel.requested':
        // A cancel naming a job that is not running (settled, unknown) no longer matches: ignored.
        if (e.data.jobId !== undefined) s.jobCancel!.run(e.data.jobId, sid);
        return;
      case 'checkpoint.recorded':
        this.checkpoints.recorded(sid, e);
        return;
      case 'checkpoint.restored':
        this.checkpoints.restored(sid, e);
        return;
      case 'recovery.decided':
        // A retry or continue puts a recovering activity back to work; abandon settles it later.
        if (e.data.decision !== 'abandon' && (s.activityStatus!.get(e.data.activityId) as { status: string } | undefined)?.status === 'recovering') {
          s.activityResume!.run(e.data.activityId);
          s.sessionStatus!.run('active', sid);
        }
        return;
      default:
        return;
    }
  }

  private inboxTransition(
    sid: string,
    type: string,
    inputId: string,
    activityId: string | null,
    attemptId: string | null,
    seq: number,
  ): void {
    const rule = INBOX_TRANSITIONS[type]!;
    const row = this.s.inputGet!.get(inputId) as { status: InputStatus; session_id: string } | undefined;
    if (!row || row.session_id !== sid || !rule.from.includes(row.status)) {
      throw new IllegalInboxTransitionError(inputId, row?.status ?? null, rule.to);
    }
    this.s.inputUpdate!.run(rule.to, activityId, attemptId, seq, inputId);
  }

  private requireRunningJob(sid: string, jobId: string): void {
    const row = this.s.jobGet!.get(jobId) as { status: string; session_id: string } | undefined;
    if (!row || row.session_id !== sid || row.status !== 'running') throw new IllegalJobTransitionError(jobId, row?.status ?? null);
  }

  private requireToolState(callId: string, allowed: string[]): void {
    const row = this.s.toolGet!.get(callId) as { state: string } | undefined;
    if (!row || !allowed.includes(row.state)) {
      throw new IllegalToolTransitionError(callId, row?.state ?? null);
    }
  }
}

export class IllegalToolTransitionError extends Error {
  override name = 'IllegalToolTransitionError';
  constructor(readonly callId: string, readonly from: string | null) {
    super(`tool call ${callId} cannot change from ${from ?? 'nowhere (unknown call)'}`);
  }
}

/** A job event for a job that is not running in this session (unknown, or settled already: a job settles once). */
export class IllegalJobTransitionError extends Error {
  override name = 'IllegalJobTransitionError';
  constructor(readonly jobId: string, readonly from: string | null) {
    super(`job ${jobId} cannot change from ${from ?? 'nowhere (unknown job)'}`);
  }
}

function kindOf(type: string): 'text' | 'reasoning' {
  return type.startsWith('text') ? 'text' : 'reasoning';
}

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}
