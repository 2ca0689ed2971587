import type { Db } from './db.js';

/** A session a worker may take: it wants work and no live owner holds it (or its holder is dead). */
export interface ClaimCandidate {
  sessionId: string;
  /** The session's last seq when it was read (to skip sessions released quiet with nothing new since). */
  lastSeq: number;
  /** The holder of the lease row, when there is one (expired, released, or a dead process's). */
  ownerId: string | null;
}

/**
 * "Wants work": an unsettled activity (active or recovering), an input still pending, or a
 * background job still running (left by `--detach-jobs` or a lost owner: its next owner re-attaches
 * it and delivers its result). A parked session (cancelled, inputs left pending) matches too; a
 * worker holds those rather than release them.
 */
const WANTS_WORK = `(s.status != 'idle'
  OR EXISTS (SELECT 1 FROM session_input i WHERE i.session_id = s.session_id AND i.status = 'pending')
  OR EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'running' AND j.session_id = s.session_id))`;

/**
 * The queries a worker claims sessions with (DESIGN §6). They only find candidates: taking one is
 * the compare-and-swap of `Owners.acquire` (or `takeOver` for a dead holder), which one worker wins.
 */
export class Claims {
  private readonly unowned$;
  private readonly owners$;
  private readonly ownedBy$;
  private readonly one$;

  constructor(db: Db) {
    this.unowned$ = db.prepare(`
      SELECT s.session_id AS sessionId, s.last_seq AS lastSeq, o.owner_id AS ownerId
      FROM sessions s LEFT JOIN session_owner o ON o.session_id = s.session_id
      WHERE (o.owner_id IS NULL OR o.expires_at <= ?) AND ${WANTS_WORK}
      ORDER BY s.updated_at LIMIT ?`);
    this.owners$ = db.prepare(`
      SELECT DISTINCT owner_id AS ownerId FROM session_owner
      WHERE owner_id IS NOT NULL AND substr(owner_id, 1, length(?)) = ? AND expires_at > ? LIMIT ?`);
    this.one$ = db.prepare(`
      SELECT s.session_id AS sessionId, s.last_seq AS lastSeq, o.owner_id AS ownerId
      FROM sessions s LEFT JOIN session_owner o ON o.session_id = s.session_id
      WHERE s.session_id = ? AND (o.owner_id IS NULL OR o.expires_at <= ?) AND ${WANTS_WORK}`);
    this.ownedBy$ = db.prepare(`
      SELECT s.session_id AS sessionId, s.last_seq AS lastSeq, o.owner_id AS ownerId
      FROM session_owner o JOIN sessions s ON s.session_id = o.session_id
      WHERE o.owner_id = ? AND ${WANTS_WORK}
      ORDER BY s.updated_at LIMIT ?`);
  }

  /** Sessions that want work and whose lease is free or expired, least recently updated first. */
  unowned(now: number, limit: number): ClaimCandidate[] {
    return this.unowned$.all(now, limit) as ClaimCandidate[];
  }

  /** One session, when it wants work and its lease is free or expired (a wake named it). */
  one(sessionId: string, now: number): ClaimCandidate | undefined {
    return this.one$.get(sessionId, now) as ClaimCandidate | undefined;
  }

  /** Distinct owners holding live leases whose id starts with `prefix` (for example `host:`). */
  liveOwners(prefix: string, now: number, limit: number): string[] {
    return (this.owners$.all(prefix, prefix, now, limit) as { ownerId: string }[]).map((r) => r.ownerId);
  }

  /** Sessions that want work held by `ownerId` (a dead process's, to take over before expiry). */
  ownedBy(ownerId: string, limit: number): ClaimCandidate[] {
    return this.ownedBy$.all(ownerId, limit) as ClaimCandidate[];
  }
}
