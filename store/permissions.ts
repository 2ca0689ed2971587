import type { Statement } from 'better-sqlite3';
import { PERMISSION_GRANTS_PER_SESSION_MAX, PERMISSION_LIST_MAX } from '../core/limits.js';
import type { Db } from './db.js';
import { LimitExceededError, StoreError } from './errors.js';
import type { AnyEnvelope, EventData } from './schemas.js';
import type { AppendRequest, Store } from './store.js';

/**
 * Durable permissions (DESIGN §3, §4): the asks of a session and its `always` grants, projected
 * from the log (migration 3), and the one way to reply to an ask from any process.
 *
 * Lifecycle of a request (`permission_requests.status`):
 *   pending ──permission.replied──▶ once | always | reject
 *   pending ──tool.settled of its call (cancel, interrupt, fork)──▶ closed
 * A reply to a request that is not pending is refused by the projection (the append rolls back),
 * so two processes answering at once cannot both win.
 */
export type PermissionRequestStatus = 'pending' | 'once' | 'always' | 'reject' | 'closed';
export type PermissionReply = 'once' | 'always' | 'reject';

export interface PermissionRequestRow {
  requestId: string;
  sessionId: string;
  callId: string;
  tool: string;
  /** The scope an `always` reply grants; null: every call of the tool. */
  pattern: string | null;
  /** The call's input, bounded (PERMISSION_SUMMARY_CHARS_MAX). */
  summary: string | null;
  status: PermissionRequestStatus;
  message: string | null;
  askedSeq: number;
  askedAt: string;
  repliedSeq: number | null;
}

export interface PermissionGrantRow {
  sessionId: string;
  tool: string;
  /** null: every call of the tool. */
  pattern: string | null;
  requestId: string;
  grantedSeq: number;
}

/** A reply names a request that this session never asked. */
export class PermissionRequestNotFoundError extends StoreError {
  override name = 'PermissionRequestNotFoundError';
  constructor(readonly sessionId: string, readonly requestId: string) {
    super(`session ${sessionId} has no permission request ${requestId}`);
  }
}

/** A reply to a request that was already answered, or closed because its call settled. */
export class PermissionNotPendingError extends StoreError {
  override name = 'PermissionNotPendingError';
  constructor(readonly requestId: string, readonly status: PermissionRequestStatus) {
    super(
      status === 'closed'
        ? `permission request ${requestId} is closed: its tool call settled without a reply`
        : `permission request ${requestId} was already answered (${status})`,
    );
  }
}

/** A revoke names no grant the session holds. */
export class PermissionGrantNotFoundError extends StoreError {
  override name = 'PermissionGrantNotFoundError';
  constructor(readonly sessionId: string, readonly tool: string, readonly pattern: string | undefined) {
    super(`session ${sessionId} holds no always grant for ${tool}${pattern === undefined ? '' : ` with pattern ${JSON.stringify(pattern)}`}`);
  }
}

/** The projection of permission events; called by the Projector inside the append transaction. */
export class PermissionProjector {
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insert: p(`INSERT INTO permission_requests (request_id, session_id, call_id, tool, pattern, summary, status, message, asked_seq, asked_at, replied_seq)
        VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?, NULL)`),
      get: p('SELECT session_id, status, tool, pattern FROM permission_requests WHERE request_id = ?'),
      reply: p('UPDATE permission_requests SET status = ?, message = ?, replied_seq = ? WHERE request_id = ?'),
      close: p(`UPDATE permission_requests SET status = 'closed', replied_seq = ? WHERE call_id = ? AND status = 'pending'`),
      grantCount: p('SELECT count(*) AS n FROM permission_grants WHERE session_id = ?'),
      grant: p(`INSERT INTO permission_grants (session_id, tool, pattern, request_id, granted_seq) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (session_id, tool, pattern) DO UPDATE SET request_id = excluded.request_id, granted_seq = excluded.granted_seq`),
      revokeOne: p('DELETE FROM permission_grants WHERE session_id = ? AND tool = ? AND pattern = ?'),
      revokeTool: p('DELETE FROM permission_grants WHERE session_id = ? AND tool = ?'),
    };
  }

  asked(sid: string, e: { seq: number; at: string; data: EventData<'permission.asked'> }): void {
    const d = e.data;
    this.s.insert!.run(d.requestId, sid, d.callId, d.tool, d.pattern ?? null, d.summary ?? null, e.seq, e.at);
  }

  replied(sid: string, e: { seq: number; data: EventData<'permission.replied'> }): void {
    const d = e.data;
    const row = this.s.get!.get(d.requestId) as { session_id: string; status: PermissionRequestStatus; tool: string; pattern: string | null } | undefined;
    if (!row || row.session_id !== sid) throw new PermissionRequestNotFoundError(sid, d.requestId);
    if (row.status !== 'pending') throw new PermissionNotPendingError(d.requestId, row.status);
    this.s.reply!.run(d.reply, d.message ?? null, e.seq, d.requestId);
    if (d.reply !== 'always') return;
    if ((this.s.grantCount!.get(sid) as { n: number }).n >= PERMISSION_GRANTS_PER_SESSION_MAX) {
      throw new LimitExceededError('PERMISSION_GRANTS_PER_SESSION_MAX', `session ${sid} holds ${PERMISSION_GRANTS_PER_SESSION_MAX} always grants; revoke some first`);
    }
    this.s.grant!.run(sid, row.tool, row.pattern ?? '', d.requestId, e.seq);
  }

  revoked(sid: string, e: { data: EventData<'permission.revoked'> }): void {
    const { tool, pattern } = e.data;
    const removed = pattern === undefined ? this.s.revokeTool!.run(sid, tool) : this.s.revokeOne!.run(sid, tool, pattern);
    if (removed.changes === 0) throw new PermissionGrantNotFoundError(sid, tool, pattern);
  }

  /** A call settled (ran, was refused, cancelled or interrupted): an ask of it still pending is closed. */
  callSettled(callId: string, seq: number): void {
    this.s.close!.run(seq, callId);
  }
}

/** Read side of the permission projection. */
export class PermissionQueries {
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      request: p('SELECT * FROM permission_requests WHERE request_id = ?'),
      forCall: p('SELECT * FROM permission_requests WHERE call_id = ? ORDER BY asked_seq DESC LIMIT 1'),
      pending: p(`SELECT * FROM permission_requests WHERE session_id = ? AND status = 'pending' ORDER BY asked_seq LIMIT ?`),
      byPrefix: p(`SELECT * FROM permission_requests WHERE session_id = ? AND request_id LIKE ? || '%' ORDER BY asked_seq LIMIT 2`),
      grants: p('SELECT * FROM permission_grants WHERE session_id = ? ORDER BY granted_seq LIMIT ?'),
      grantsOf: p('SELECT * FROM permission_grants WHERE session_id = ? AND tool = ? ORDER BY granted_seq LIMIT ?'),
    };
  }

  request(requestId: string): PermissionRequestRow | undefined {
    const row = this.s.request!.get(requestId) as RequestDbRow | undefined;
    return row && toRequest(row);
  }

  /** The latest ask of a tool call (a resumed call waits for it instead of asking again). */
  requestForCall(callId: string): PermissionRequestRow | undefined {
    const row = this.s.forCall!.get(callId) as RequestDbRow | undefined;
    return row && toRequest(row);
  }

  /** A session's request by full id or unique prefix. */
  resolveRequest(sessionId: string, idOrPrefix: string): PermissionRequestRow | undefined {
    const exact = this.request(idOrPrefix);
    if (exact) return exact.sessionId === sessionId ? exact : undefined;
    const rows = this.s.byPrefix!.all(sessionId, idOrPrefix) as RequestDbRow[];
    return rows.length === 1 ? toRequest(rows[0]!) : undefined;
  }

  /** Asks still waiting for a reply, oldest first (at most PERMISSION_LIST_MAX). */
  pending(sessionId: string): PermissionRequestRow[] {
    return (this.s.pending!.all(sessionId, PERMISSION_LIST_MAX) as RequestDbRow[]).map(toRequest);
  }

  /** The session's `always` grants (of one tool when given), oldest first. */
  grants(sessionId: string, tool?: string): PermissionGrantRow[] {
    const rows = (tool === undefined ? this.s.grants!.all(sessionId, PERMISSION_GRANTS_PER_SESSION_MAX) : this.s.grantsOf!.all(sessionId, tool, PERMISSION_GRANTS_PER_SESSION_MAX)) as GrantDbRow[];
    return rows.map((r) => ({ sessionId: r.session_id, tool: r.tool, pattern: r.pattern === '' ? null : r.pattern, requestId: r.request_id, grantedSeq: r.granted_seq }));
  }
}

/**
 * Replies to a permission ask, from any process (`permission.replied` is a request event). In one
 * transaction, so what it reads cannot change before it writes:
 * - `reject` also rejects every other pending ask of the session (DESIGN §3: the user said no to
 *   this line of work), each recorded as its own reply naming the first;
 * - `always` also answers `once` the other pending asks the new grant covers (same tool, same
 *   scope, or a grant of the whole tool), so they do not wait for a question already answered.
 * Throws PermissionRequestNotFoundError or PermissionNotPendingError (nothing written) when the
 * request is unknown to the session or no longer pending.
 */
export function replyToPermission(
  store: Store,
  request: { sessionId: string; requestId: string; reply: PermissionReply; message?: string },
): AnyEnvelope[] {
  return store.transaction(() => {
    const { sessionId, requestId, reply, message } = request;
    const permissions = store.queries.permissions;
    const row = permissions.request(requestId);
    if (!row || row.sessionId !== sessionId) throw new PermissionRequestNotFoundError(sessionId, requestId);
    if (row.status !== 'pending') throw new PermissionNotPendingError(requestId, row.status);
    const replies: AppendRequest[] = [{ sessionId, type: 'permission.replied', data: { requestId, reply, ...(message === undefined ? {} : { message }) } }];
    for (const other of permissions.pending(sessionId)) {
      if (other.requestId === requestId) continue;
      if (reply === 'reject') {
        replies.push({ sessionId, type: 'permission.replied', data: { requestId: other.requestId, reply: 'reject', message: `rejected together with ${requestId}${message ? `: ${message}` : ''}` } });
      } else if (reply === 'always' && other.tool === row.tool && (row.pattern === null || other.pattern === row.pattern)) {
        replies.push({ sessionId, type: 'permission.replied', data: { requestId: other.requestId, reply: 'once', message: `covered by the always grant of ${requestId}` } });
      }
    }
    return store.append(replies);
  });
}

interface RequestDbRow {
  request_id: string;
  session_id: string;
  call_id: string;
  tool: string;
  pattern: string | null;
  summary: string | null;
  status: PermissionRequestStatus;
  message: string | null;
  asked_seq: number;
  asked_at: string;
  replied_seq: number | null;
}

interface GrantDbRow {
  session_id: string;
  tool: string;
  pattern: string;
  request_id: string;
  granted_seq: number;
}

function toRequest(r: RequestDbRow): PermissionRequestRow {
  return {
    requestId: r.request_id,
    sessionId: r.session_id,
    callId: r.call_id,
    tool: r.tool,
    pattern: r.pattern,
    summary: r.summary,
    status: r.status,
    message: r.message,
    askedSeq: r.asked_seq,
    askedAt: r.asked_at,
    repliedSeq: r.replied_seq,
  };
}
