import type { Db } from './db.js';

/** A session's owner lease. `epoch` is the fencing token: bumped on every acquisition. */
export interface Lease {
  sessionId: string;
  ownerId: string;
  epoch: number;
  expiresAt: number;
}

interface OwnerRow {
  owner_id: string | null;
  epoch: number;
  expires_at: number;
}

/**
 * Takes, renews and releases `session_owner` rows by compare-and-swap inside IMMEDIATE
 * transactions. Times are wall-clock epoch milliseconds from the injected clock (they must compare
 * across processes); an owner measures its own margin on a monotonic clock.
 */
export class Owners {
  private readonly get$;
  private readonly insert$;
  private readonly take$;
  private readonly renew$;
  private readonly release$;

  constructor(private readonly db: Db) {
    this.get$ = db.prepare('SELECT owner_id, epoch, expires_at FROM session_owner WHERE session_id = ?');
    this.insert$ = db.prepare(
      'INSERT INTO session_owner (session_id, owner_id, epoch, expires_at, acquired_at) VALUES (?, ?, 1, ?, ?)',
    );
    this.take$ = db.prepare(
      'UPDATE session_owner SET owner_id = ?, epoch = epoch + 1, expires_at = ?, acquired_at = ? WHERE session_id = ? AND epoch = ?',
    );
    this.renew$ = db.prepare(
      'UPDATE session_owner SET expires_at = ? WHERE session_id = ? AND owner_id = ? AND epoch = ?',
    );
    this.release$ = db.prepare(
      'UPDATE session_owner SET owner_id = NULL, expires_at = 0 WHERE session_id = ? AND owner_id = ? AND epoch = ?',
    );
  }

  /** The current lease, live or not; null when the session was never owned. */
  get(sessionId: string, now: number): (Lease & { live: boolean; held: boolean }) | null {
    const row = this.get$.get(sessionId) as OwnerRow | undefined;
    if (!row) return null;
    return {
      sessionId,
      ownerId: row.owner_id ?? '',
      epoch: row.epoch,
      expiresAt: row.expires_at,
      held: row.owner_id !== null,
      live: row.owner_id !== null && row.expires_at > now,
    };
  }

  /** Current epoch if an owner holds the session (for fencing); null otherwise. Call in a transaction. */
  heldEpoch(sessionId: string): number | null {
    const row = this.get$.get(sessionId) as OwnerRow | undefined;
    return row && row.owner_id !== null ? row.epoch : null;
  }

  /**
   * Acquires the lease when nobody holds it or the holder's lease has expired; a live lease of
   * another owner wins and `null` is returned. Re-acquiring one's own live lease keeps its epoch.
   */
  acquire(sessionId: string, ownerId: string, ttlMs: number, now: number): Lease | null {
    const txn = this.db.transaction((): Lease | null => {
      const row = this.get$.get(sessionId) as OwnerRow | undefined;
      const expiresAt = now + ttlMs;
      if (!row) {
        this.insert$.run(sessionId, ownerId, expiresAt, now);
        return { sessionId, ownerId, epoch: 1, expiresAt };
      }
      const live = row.owner_id !== null && row.expires_at > now;
      if (live && row.owner_id !== ownerId) return null;
      if (live && row.owner_id === ownerId) {
        this.renew$.run(expiresAt, sessionId, ownerId, row.epoch);
        return { sessionId, ownerId, epoch: row.epoch, expiresAt };
      }
      const changed = this.take$.run(ownerId, expiresAt, now, sessionId, row.epoch).changes;
      return changed === 1 ? { sessionId, ownerId, epoch: row.epoch + 1, expiresAt } : null;
    });
    return txn.immediate();
  }

  /**
   * Takes a live-looking lease whose holder is known to be dead (its process is gone), by CAS on
   * the holder and epoch; the epoch bumps as on any acquisition. Null when the row changed.
   */
  takeOver(sessionId: string, deadOwnerId: string, deadEpoch: number, ownerId: string, ttlMs: number, now: number): Lease | null {
    const txn = this.db.transaction((): Lease | null => {
      const row = this.get$.get(sessionId) as OwnerRow | undefined;
      if (!row || row.owner_id !== deadOwnerId || row.epoch !== deadEpoch) return null;
      const changed = this.take$.run(ownerId, now + ttlMs, now, sessionId, row.epoch).changes;
      return changed === 1 ? { sessionId, ownerId, epoch: row.epoch + 1, expiresAt: now + ttlMs } : null;
    });
    return txn.immediate();
  }

  /** Extends a lease still held under the same epoch; false when it was lost (taken over or released). */
  renew(lease: Lease, ttlMs: number, now: number): boolean {
    const txn = this.db.transaction(() => this.renew$.run(now + ttlMs, lease.sessionId, lease.ownerId, lease.epoch).changes === 1);
    const ok = txn.immediate();
    if (ok) lease.expiresAt = now + ttlMs;
    return ok;
  }

  /** Gives the lease up (the epoch stays, so the next acquisition bumps it). */
  release(lease: Lease): boolean {
    const txn = this.db.transaction(() => this.release$.run(lease.sessionId, lease.ownerId, lease.epoch).changes === 1);
    return txn.immediate();
  }
}
