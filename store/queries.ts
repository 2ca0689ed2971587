import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';
import type { InputAttachment } from './schemas.js';
import { CheckpointQueries } from './checkpoints.js';
import { PermissionQueries } from './permissions.js';

/** Read-side views over the projections. Plain synchronous reads; never hold a cursor across await. */

export interface SessionRow {
  sessionId: string;
  location: string;
  model: string;
  title: string | null;
  parentId: string | null;
  doubleTexting: 'steer' | 'queue' | 'interrupt' | 'reject';
  createdAt: string;
  updatedAt: string;
  lastSeq: number;
  status: 'idle' | 'active' | 'recovering';
  activityId: string | null;
  activities: number;
  lastActivityStatus: string | null;
  turns: number;
  inputTokens: number;
  outputTokens: number;
  /** US dollars of the priced turns; null when no turn had a price. */
  costUsd: number | null;
  /** The agent profile the session was created with (null: the default, `build`). */
  agent: string | null;
}

export interface ActivityRow {
  activityId: string;
  sessionId: string;
  trigger: string;
  status: string;
  turns: number;
  turnLimit: number;
  restarts: number;
  reason: string | null;
  openedSeq: number;
  settledSeq: number | null;
  inputTokens: number;
  outputTokens: number;
  /** US dollars of the priced turns; null when no turn had a price. */
  costUsd: number | null;
}

export interface ToolCallRow {
  callId: string;
  sessionId: string;
  activityId: string;
  messageId: string;
  providerCallId: string;
  tool: string;
  input: string;
  state: 'called' | 'started' | 'settled';
  status: 'ok' | 'error' | 'denied' | 'interrupted' | null;
  output: string | null;
  truncated: boolean;
  providerMetadata: Record<string, unknown> | undefined;
}

export interface JobRow {
  jobId: string;
  sessionId: string;
  kind: 'bash' | 'task';
  activityId: string | null;
  callId: string | null;
  summary: string;
  description: string | null;
  pid: number | null;
  pgid: number | null;
  processStartTime: number | null;
  outputPath: string;
  timeoutMs: number;
  startedAt: string;
  status: 'running' | 'ok' | 'failed' | 'cancelled' | 'timed_out' | 'lost';
  cancelRequested: boolean;
  /** Offset in the output file up to which `job.output` events reported. */
  outputOffset: number;
  /** Bytes carried by `job.output` events so far (bounded per job). */
  outputReported: number;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  outputTail: string | null;
  outputBytes: number | null;
  settledAt: string | null;
  startedSeq: number;
  settledSeq: number | null;
}

export interface MessageView {
  messageId: string;
  role: 'user' | 'assistant';
  activityId: string;
  seq: number;
  parts: { partId: string; kind: 'text' | 'reasoning'; text: string; providerMetadata?: Record<string, unknown> }[];
  toolCalls: ToolCallRow[];
  /** For user messages: the input's text. */
  text?: string;
  /** For user messages: the input's resolved attachments, when it has any. */
  attachments?: InputAttachment[];
}

const camelCache = new Map<string, string>();
const camel = (s: string) => {
  let c = camelCache.get(s);
  if (c === undefined) camelCache.set(s, (c = s.replace(/_([a-z])/g, (_, x: string) => x.toUpperCase())));
  return c;
};
function mapRow<T>(row: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const k in row) out[camel(k)] = row[k];
  return out as T;
}

export class Queries {
  private readonly statements = new Map<string, Statement>();
  /** Permission asks and `always` grants (store/permissions.ts). */
  readonly permissions: PermissionQueries;
  /** File checkpoints: what tool calls changed, undos and fork restores (store/checkpoints.ts). */
  readonly checkpoints: CheckpointQueries;

  constructor(private readonly db: Db) {
    this.permissions = new PermissionQueries(db);
    this.checkpoints = new CheckpointQueries(db);
  }

  /** Prepared once per SQL text (the SQL here is a fixed set). */
  private prepare(sql: string): Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  sessions(options: { limit?: number } = {}): SessionRow[] {
    const rows = this
      .prepare('SELECT * FROM sessions ORDER BY created_at DESC, session_id DESC LIMIT ?')
      .all(options.limit ?? 1000) as Record<string, unknown>[];
    return rows.map((r) => mapRow<SessionRow>(r));
  }

  session(sessionId: string): SessionRow | undefined {
    const row = this.prepare('SELECT * FROM sessions WHERE session_id = ?').get(sessionId) as Record<string, unknown> | undefined;
    return row && mapRow<SessionRow>(row);
  }

  /** Finds a session by full id or unique prefix. */
  resolveSessionId(idOrPrefix: string): string | undefined {
    const exact = this.session(idOrPrefix);
    if (exact) return exact.sessionId;
    const rows = this.prepare(`SELECT session_id FROM sessions WHERE session_id LIKE ? || '%' LIMIT 2`).all(idOrPrefix) as { session_id: string }[];
    return rows.length === 1 ? rows[0]!.session_id : undefined;
  }

  activity(activityId: string): ActivityRow | undefined {
    const row = this.prepare('SELECT * FROM activities WHERE activity_id = ?').get(activityId) as Record<string, unknown> | undefined;
    return row && mapRow<ActivityRow>(row);
  }

  activities(sessionId: string): ActivityRow[] {
    const rows = this.prepare('SELECT * FROM activities WHERE session_id = ? ORDER BY opened_seq').all(sessionId) as Record<string, unknown>[];
    return rows.map((r) => mapRow<ActivityRow>(r));
  }

  toolCalls(sessionId: string, filter: { activityId?: string; messageId?: string } = {}): ToolCallRow[] {
    let sql = 'SELECT * FROM tool_calls WHERE session_id = ?';
    const args: unknown[] = [sessionId];
    if (filter.activityId) {
      sql += ' AND activity_id = ?';
      args.push(filter.activityId);
    }
    if (filter.messageId) {
      sql += ' AND message_id = ?';
      args.push(filter.messageId);
    }
    const rows = this.prepare(sql + ' ORDER BY called_seq').all(...args) as Record<string, unknown>[];
    return rows.map(toToolCall);
  }

  /**
   * The conversation as projected: user inputs (assigned or consumed) and assistant attempts that
   * were not discarded, each with its parts and tool calls, in log order. With `afterSeq`, only
   * messages recorded after that seq (the ones a compaction summary does not cover).
   */
  conversation(sessionId: string, options: { afterSeq?: number } = {}): MessageView[] {
    const after = options.afterSeq ?? 0;
    const kept = 'SELECT message_id FROM messages WHERE session_id = ? AND seq > ?';
    const messages = this
      .prepare('SELECT message_id, role, activity_id, seq FROM messages WHERE session_id = ? AND discarded = 0 AND seq > ? ORDER BY seq')
      .all(sessionId, after) as { message_id: string; role: 'user' | 'assistant'; activity_id: string; seq: number }[];
    const parts = this
      .prepare(`SELECT part_id, message_id, kind, text, provider_metadata FROM parts WHERE session_id = ? AND discarded = 0 AND message_id IN (${kept}) ORDER BY seq`)
      .all(sessionId, sessionId, after) as { part_id: string; message_id: string; kind: 'text' | 'reasoning'; text: string; provider_metadata: string | null }[];
    const inputs = this
      .prepare(`SELECT input_id, text, attachments FROM session_input WHERE session_id = ? AND status IN ('assigned', 'consumed') AND input_id IN (${kept})`)
      .all(sessionId, sessionId, after) as { input_id: string; text: string; attachments: string | null }[];
    const calls = (this.prepare(`SELECT * FROM tool_calls WHERE session_id = ? AND message_id IN (${kept}) ORDER BY called_seq`).all(sessionId, sessionId, after) as Record<string, unknown>[]).map(toToolCall);
    const textOf = new Map(inputs.map((i) => [i.input_id, i.text]));
    const attachmentsOf = new Map(inputs.filter((i) => i.attachments !== null).map((i) => [i.input_id, JSON.parse(i.attachments!) as InputAttachment[]]));
    const partsOf = groupBy(parts, (p) => p.message_id);
    const callsOf = groupBy(calls, (c) => c.messageId);
    return messages.map((m) => ({
      messageId: m.message_id,
      role: m.role,
      activityId: m.activity_id,
      seq: m.seq,
      text: m.role === 'user' ? (textOf.get(m.message_id) ?? '') : undefined,
      ...(m.role === 'user' && attachmentsOf.has(m.message_id) ? { attachments: attachmentsOf.get(m.message_id) } : {}),
      parts: (partsOf.get(m.message_id) ?? []).map((p) => ({
        partId: p.part_id,
        kind: p.kind,
        text: p.text,
        providerMetadata: p.provider_metadata ? JSON.parse(p.provider_metadata) : undefined,
      })),
      toolCalls: callsOf.get(m.message_id) ?? [],
    }));
  }

  /** What the projections hold of one attempt: whether it was discarded, and its parts. */
  attempt(attemptId: string): { exists: boolean; discarded: boolean; finished: boolean; partIds: string[] } {
    const m = this.prepare('SELECT discarded, finished FROM messages WHERE message_id = ?').get(attemptId) as { discarded: number; finished: number } | undefined;
    const parts = this.prepare('SELECT part_id FROM parts WHERE message_id = ? ORDER BY seq').all(attemptId) as { part_id: string }[];
    return { exists: m !== undefined, discarded: m?.discarded === 1, finished: m?.finished === 1, partIds: parts.map((p) => p.part_id) };
  }

  /**
   * Sessions with unsettled work, oldest first, bounded: an unsettled activity (active or
   * recovering), or a background job not settled (its owner is gone; a new one re-attaches it).
   */
  unsettledSessions(limit: number): string[] {
    const rows = this
      .prepare(`SELECT session_id FROM sessions WHERE status != 'idle' OR session_id IN (SELECT session_id FROM jobs WHERE status = 'running') ORDER BY updated_at LIMIT ?`)
      .all(limit) as { session_id: string }[];
    return rows.map((r) => r.session_id);
  }

  job(jobId: string): JobRow | undefined {
    const row = this.prepare('SELECT * FROM jobs WHERE job_id = ?').get(jobId) as Record<string, unknown> | undefined;
    return row && toJob(row);
  }

  /** Jobs of one session (oldest first), or of every session (newest first); bounded by `limit`. */
  jobs(sessionId: string | undefined, options: { limit: number; status?: JobRow['status'] }): JobRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (sessionId !== undefined) {
      where.push('session_id = ?');
      args.push(sessionId);
    }
    if (options.status !== undefined) {
      where.push('status = ?');
      args.push(options.status);
    }
    const order = sessionId !== undefined ? 'started_seq' : 'started_at DESC, job_id DESC';
    const sql = `SELECT * FROM jobs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ?`;
    return (this.prepare(sql).all(...args, options.limit) as Record<string, unknown>[]).map(toJob);
  }

  /** Jobs of a session still running (not settled), counted. */
  runningJobCount(sessionId: string): number {
    return (this.prepare(`SELECT count(*) AS n FROM jobs WHERE session_id = ? AND status = 'running'`).get(sessionId) as { n: number }).n;
  }

  /** Finds a job by full id or unique prefix. */
  resolveJobId(idOrPrefix: string): string | undefined {
    if (this.job(idOrPrefix)) return idOrPrefix;
    const rows = this.prepare(`SELECT job_id FROM jobs WHERE job_id LIKE ? || '%' LIMIT 2`).all(idOrPrefix) as { job_id: string }[];
    return rows.length === 1 ? rows[0]!.job_id : undefined;
  }

  /** Every projection table's rows, sorted, for comparisons (rebuild equals live). */
  dumpProjections(tables: readonly string[]): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const t of tables) out[t] = this.prepare(`SELECT * FROM ${t} ORDER BY 1`).all();
    return out;
  }
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

function toJob(r: Record<string, unknown>): JobRow {
  const row = mapRow<Omit<JobRow, 'cancelRequested'> & { cancelRequested: number }>(r);
  return { ...row, cancelRequested: row.cancelRequested === 1 };
}

function toToolCall(r: Record<string, unknown>): ToolCallRow {
  const row = mapRow<Omit<ToolCallRow, 'truncated' | 'providerMetadata'> & { truncated: number; providerMetadata: string | null }>(r);
  return {
    callId: row.callId,
    sessionId: row.sessionId,
    activityId: row.activityId,
    messageId: row.messageId,
    providerCallId: row.providerCallId,
    tool: row.tool,
    input: row.input,
    state: row.state,
    status: row.status,
    output: row.output,
    truncated: row.truncated === 1,
    providerMetadata: row.providerMetadata ? JSON.parse(row.providerMetadata) : undefined,
  };
}
