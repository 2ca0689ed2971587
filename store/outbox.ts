import { randomBytes } from 'node:crypto';
import type { Db } from './db.js';

/** The outbox publisher's lease. `epoch` fences cursor updates: bumped on every acquisition. */
export interface OutboxLease {
  name: string;
  ownerId: string;
  epoch: number;
  expiresAt: number;
  /** The cursor when the lease was taken. */
  gseq: number;
  /** The database's wire id (see OutboxState). */
  dbId: string;
}

export interface OutboxState {
  name: string;
  /** The last gseq the destination acknowledged: everything up to it is published. */
  gseq: number;
  /** Names this database on the wire (the Loom-Db header), so a publisher recognises its own messages. */
  dbId: string;
  ownerId: string | null;
  epoch: number;
  expiresAt: number;
  /** A holder whose lease has not expired at `now`. */
  live: boolean;
}

interface Row {
  name: string;
  gseq: number;
  db_id: string;
  owner_id: string | null;
  epoch: number;
  expires_at: number;
}

/**
 * The `outbox` table (migration 6): per destination, a cursor and a publisher lease, in the style
 * of store/owners.ts — compare-and-swap inside IMMEDIATE transactions, wall-clock times from the
 * injected clock (they compare across processes). The cursor advances only under the current
 * lease and never backwards.
 */
export class OutboxCursors {
  private readonly get$;
  private readonly insert$;
  private readonly take$;
  private readonly renew$;
  private readonly release$;
  private readonly advance$;

  constructor(private readonly db: Db) {
    this.get$ = db.prepare('SELECT name, gseq, db_id, owner_id, epoch, expires_at FROM outbox WHERE name = ?');
    this.insert$ = db.prepare('INSERT OR IGNORE INTO outbox (name, gseq, db_id, owner_id, epoch, expires_at, updated_at) VALUES (?, 0, ?, NULL, 0, 0, ?)');
    this.take$ = db.prepare('UPDATE outbox SET owner_id = ?, epoch = epoch + 1, expires_at = ?, updated_at = ? WHERE name = ? AND epoch = ?');
    this.renew$ = db.prepare('UPDATE outbox SET expires_at = ?, updated_at = ? WHERE name = ? AND owner_id = ? AND epoch = ?');
    this.release$ = db.prepare('UPDATE outbox SET owner_id = NULL, expires_at = 0, updated_at = ? WHERE name = ? AND owner_id = ? AND epoch = ?');
    this.advance$ = db.prepare('UPDATE outbox SET gseq = ?, updated_at = ? WHERE name = ? AND owner_id = ? AND epoch = ? AND gseq < ?');
  }

  /** The destination's row (created, cursor 0, when missing). */
  state(name: string, now: number): OutboxState {
    return this.db.transaction(() => this.stateNow(name, now)).immediate();
  }

  /** The row as it is, without writing (undefined when it was never created). A cheap read. */
  peek(name: string, now: number): OutboxState | undefined {
    const row = this.get$.get(name) as Row | undefined;
    return row && toState(row, now);
  }

  /**
   * Takes the lease when nobody holds it or the holder's lease expired; a live lease of another
   * publisher wins (null). Re-acquiring one's own live lease keeps its epoch.
   */
  acquire(name: string, ownerId: string, ttlMs: number, now: number): OutboxLease | null {
    return this.db
      .transaction((): OutboxLease | null => {
        const row = this.stateNow(name, now);
        const expiresAt = now + ttlMs;
        if (row.live && row.ownerId !== ownerId) return null;
        const held = { name, ownerId, expiresAt, gseq: row.gseq, dbId: row.dbId };
        if (row.live) {
          this.renew$.run(expiresAt, now, name, ownerId, row.epoch);
          return { ...held, epoch: row.epoch };
        }
        return this.take$.run(ownerId, expiresAt, now, name, row.epoch).changes === 1 ? { ...held, epoch: row.epoch + 1 } : null;
      })
      .immediate();
  }

  /** Takes a live-looking lease whose holder is known to be dead, by CAS on holder and epoch. */
  takeOver(name: string, deadOwnerId: string, deadEpoch: number, ownerId: string, ttlMs: number, now: number): OutboxLease | null {
    return this.db
      .transaction((): OutboxLease | null => {
        const row = this.get$.get(name) as Row | undefined;
        if (!row || row.owner_id !== deadOwnerId || row.epoch !== deadEpoch) return null;
        if (this.take$.run(ownerId, now + ttlMs, now, name, row.epoch).changes !== 1) return null;
        return { name, ownerId, epoch: row.epoch + 1, expiresAt: now + ttlMs, gseq: row.gseq, dbId: row.db_id };
      })
      .immediate();
  }

  /** Extends a lease still held under the same epoch; false when it was lost. */
  renew(lease: OutboxLease, ttlMs: number, now: number): boolean {
    const ok = this.db.transaction(() => this.renew$.run(now + ttlMs, now, lease.name, lease.ownerId, lease.epoch).changes === 1).immediate();
    if (ok) lease.expiresAt = now + ttlMs;
    return ok;
  }

  release(lease: OutboxLease, now: number): boolean {
    return this.db.transaction(() => this.release$.run(now, lease.name, lease.ownerId, lease.epoch).changes === 1).immediate();
  }

  /**
   * Moves the cursor forward to `gseq` under the lease (one short transaction). False when the
   * lease was lost; a cursor already at or past `gseq` is left as it is (and counts as success).
   */
  advance(lease: OutboxLease, gseq: number, now: number): boolean {
    return this.db
      .transaction((): boolean => {
        if (this.advance$.run(gseq, now, lease.name, lease.ownerId, lease.epoch, gseq).changes === 1) return true;
        const row = this.get$.get(lease.name) as Row | undefined;
        return row !== undefined && row.owner_id === lease.ownerId && row.epoch === lease.epoch;
      })
      .immediate();
  }

  private stateNow(name: string, now: number): OutboxState {
    let row = this.get$.get(name) as Row | undefined;
    if (!row) {
      this.insert$.run(name, randomBytes(8).toString('hex'), now);
      row = this.get$.get(name) as Row;
    }
    return toState(row, now);
  }
}

function toState(row: Row, now: number): OutboxState {
  return {
    name: row.name,
    gseq: row.gseq,
    dbId: row.db_id,
    ownerId: row.owner_id,
    epoch: row.epoch,
    expiresAt: row.expires_at,
    live: row.owner_id !== null && row.expires_at > now,
  };
}
