import type { Statement } from 'better-sqlite3';
import { CHECKPOINT_RECORDS_READ_MAX } from '../core/limits.js';
import type { Db } from './db.js';
import { StoreError } from './errors.js';
import type { CheckpointFileState, Envelope } from './schemas.js';

/**
 * The checkpoint projection (tables `checkpoints` and `checkpoint_files`, see migrations.ts) and
 * its reads. Written from `checkpoint.recorded` and `checkpoint.restored` in the append transaction;
 * an undo of an activity that has no recorded changes, or whose changes were undone already, is
 * refused here, so two processes can never both undo one activity.
 */

/** A checkpoint row: one tool call's changes (`change`) or one undo or fork restore (`restore`). */
export interface CheckpointRow {
  sessionId: string;
  seq: number;
  kind: 'change' | 'restore';
  activityId: string | null;
  callId: string | null;
  tool: string | null;
  incomplete: string | null;
  omittedFiles: number;
  /** The seq of the undo that put this change back. */
  undoneSeq: number | null;
  at: string;
  files: CheckpointFileRow[];
}

export interface CheckpointFileRow {
  path: string;
  before: CheckpointFileState;
  after: CheckpointFileState;
  mode: number | null;
}

/** An undo names an activity with no recorded changes left to undo. */
export class NothingToUndoError extends StoreError {
  override name = 'NothingToUndoError';
  constructor(readonly activityId: string, why: string) {
    super(`activity ${activityId} ${why}`);
  }
}

export class CheckpointProjector {
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insert: p(`INSERT INTO checkpoints (session_id, seq, kind, activity_id, call_id, tool, incomplete, omitted_files, undone_seq, at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`),
      file: p(`INSERT INTO checkpoint_files (session_id, seq, path, before, before_note, after, after_note, mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (session_id, seq, path) DO NOTHING`),
      open: p(`SELECT count(*) AS n FROM checkpoints WHERE session_id = ? AND activity_id = ? AND kind = 'change' AND undone_seq IS NULL`),
      any: p(`SELECT count(*) AS n FROM checkpoints WHERE session_id = ? AND activity_id = ? AND kind = 'change'`),
      undo: p(`UPDATE checkpoints SET undone_seq = ? WHERE session_id = ? AND activity_id = ? AND kind = 'change' AND undone_seq IS NULL`),
    };
  }

  recorded(sid: string, e: Envelope<'checkpoint.recorded'>): void {
    const d = e.data;
    this.s.insert!.run(sid, e.seq, 'change', d.activityId, d.callId, d.tool, d.incomplete ?? null, d.omittedFiles ?? 0, e.at);
    for (const f of d.files) this.s.file!.run(sid, e.seq, f.path, ...columns(f.before), ...columns(f.after), f.mode ?? null);
  }

  restored(sid: string, e: Envelope<'checkpoint.restored'>): void {
    const d = e.data;
    if (d.reason === 'undo' && d.activityId !== undefined) {
      if ((this.s.open!.get(sid, d.activityId) as { n: number }).n === 0) {
        const any = (this.s.any!.get(sid, d.activityId) as { n: number }).n > 0;
        throw new NothingToUndoError(d.activityId, any ? 'was undone already' : 'has no recorded file changes');
      }
      this.s.undo!.run(e.seq, sid, d.activityId);
    }
    this.s.insert!.run(sid, e.seq, 'restore', d.activityId ?? null, null, null, null, 0, e.at);
    for (const f of d.files) this.s.file!.run(sid, e.seq, f.path, ...columns(f.from), ...columns(f.to), null);
  }
}

/** A file state as two columns: (hash, note); a missing file is (NULL, NULL). */
function columns(state: CheckpointFileState): [string | null, string | null] {
  if (state === null) return [null, null];
  if (typeof state === 'string') return [state, null];
  return [null, state.uncaptured];
}

function stateOf(hash: string | null, note: string | null): CheckpointFileState {
  if (hash !== null) return hash;
  return note === null ? null : { uncaptured: note };
}

interface CheckpointDbRow {
  session_id: string;
  seq: number;
  kind: 'change' | 'restore';
  activity_id: string | null;
  call_id: string | null;
  tool: string | null;
  incomplete: string | null;
  omitted_files: number;
  undone_seq: number | null;
  at: string;
}

interface FileDbRow {
  seq: number;
  path: string;
  before: string | null;
  before_note: string | null;
  after: string | null;
  after_note: string | null;
  mode: number | null;
}

/** Reads of the checkpoint projection. Synchronous; bounded by CHECKPOINT_RECORDS_READ_MAX. */
export class CheckpointQueries {
  private readonly s: Record<string, Statement>;

  constructor(private readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      rows: p(`SELECT * FROM checkpoints WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
      files: p(`SELECT seq, path, before, before_note, after, after_note, mode FROM checkpoint_files WHERE session_id = ? AND seq > ? AND seq <= ? ORDER BY seq, path`),
      lastChanged: p(`SELECT activity_id FROM checkpoints c WHERE session_id = ? AND kind = 'change' AND undone_seq IS NULL
        AND (incomplete IS NOT NULL OR EXISTS (SELECT 1 FROM checkpoint_files f WHERE f.session_id = c.session_id AND f.seq = c.seq))
        ORDER BY seq DESC LIMIT 1`),
    };
  }

  /**
   * Every checkpoint of a session after `afterSeq`, oldest first, with its files. Throws when the
   * session has more than CHECKPOINT_RECORDS_READ_MAX of them (nothing is silently cut).
   */
  records(sessionId: string, afterSeq = 0): CheckpointRow[] {
    const rows = this.s.rows!.all(sessionId, afterSeq, CHECKPOINT_RECORDS_READ_MAX + 1) as CheckpointDbRow[];
    if (rows.length > CHECKPOINT_RECORDS_READ_MAX) {
      throw new StoreError(`session ${sessionId} has more than ${CHECKPOINT_RECORDS_READ_MAX} checkpoints; CHECKPOINT_RECORDS_READ_MAX bounds what one command reads`);
    }
    if (rows.length === 0) return [];
    const bySeq = new Map<number, CheckpointRow>();
    const out = rows.map((r) => {
      const row: CheckpointRow = {
        sessionId: r.session_id,
        seq: r.seq,
        kind: r.kind,
        activityId: r.activity_id,
        callId: r.call_id,
        tool: r.tool,
        incomplete: r.incomplete,
        omittedFiles: r.omitted_files,
        undoneSeq: r.undone_seq,
        at: r.at,
        files: [],
      };
      bySeq.set(r.seq, row);
      return row;
    });
    for (const f of this.s.files!.iterate(sessionId, afterSeq, rows[rows.length - 1]!.seq) as Iterable<FileDbRow>) {
      bySeq.get(f.seq)?.files.push({ path: f.path, before: stateOf(f.before, f.before_note), after: stateOf(f.after, f.after_note), mode: f.mode });
    }
    return out;
  }

  /** The last activity whose recorded changes are not undone (the default of `loom diff` and `loom undo`). */
  lastChangedActivity(sessionId: string): string | null {
    const row = this.s.lastChanged!.get(sessionId) as { activity_id: string | null } | undefined;
    return row?.activity_id ?? null;
  }

  /**
   * Every content hash referenced by a checkpoint recorded at or after `sinceIso`, with the newest
   * such time per hash, for retention (blobs referenced by unexpired checkpoints are kept).
   */
  referencedBlobs(sinceIso: string): Map<string, string> {
    const out = new Map<string, string>();
    const rows = this.db
      .prepare(
        `SELECT h, max(at) AS at FROM (
           SELECT f.before AS h, c.at AS at FROM checkpoint_files f JOIN checkpoints c ON c.session_id = f.session_id AND c.seq = f.seq WHERE f.before IS NOT NULL AND c.at >= ?
           UNION ALL
           SELECT f.after AS h, c.at AS at FROM checkpoint_files f JOIN checkpoints c ON c.session_id = f.session_id AND c.seq = f.seq WHERE f.after IS NOT NULL AND c.at >= ?
         ) GROUP BY h`,
      )
      .iterate(sinceIso, sinceIso) as Iterable<{ h: string; at: string }>;
    for (const r of rows) out.set(r.h, r.at);
    return out;
  }
}
