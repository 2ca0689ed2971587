import type { Db } from './db.js';
import { SessionNotFoundError, StoreError } from './errors.js';
import type { Store } from './store.js';

/** A live owner holds the session: removing it under the owner would pull its log away mid-run. */
export class SessionOwnedError extends StoreError {
  override name = 'SessionOwnedError';
  constructor(readonly sessionId: string, readonly ownerId: string | null, readonly expiresAt: number) {
    super(
      `session ${sessionId} is held by a live owner (${ownerId ?? 'unknown'}, lease until ${new Date(expiresAt).toISOString()}): ` +
        'cancel it or stop that process first, or force the removal (the owner then fails its next write)',
    );
  }
}

/** Background jobs of the session are still running: removing it would orphan their processes. */
export class SessionHasRunningJobsError extends StoreError {
  override name = 'SessionHasRunningJobsError';
  constructor(readonly sessionId: string, readonly jobIds: string[]) {
    super(
      `session ${sessionId} has ${jobIds.length} running background job${jobIds.length === 1 ? '' : 's'} (${jobIds.join(', ')}): ` +
        'cancel them first (loom jobs cancel JOB), or force the removal, which stops their process groups',
    );
  }
}

export interface DeleteSessionOptions {
  /** Remove even while a live owner holds the session or its jobs run (the caller stops their processes). */
  force?: boolean;
  /** Recorded in the `session.removed` system event. */
  reason?: 'rm' | 'retention';
  /** Only when no event was appended after this seq (retention checks idleness, then deletes). */
  ifLastSeq?: number;
}

export interface DeletedSession {
  sessionId: string;
  /** Events removed from the log. */
  events: number;
  /** The session's jobs as they were (their output files are the caller's to remove). */
  jobs: RemovedJob[];
  /** Whether a live owner held it (only with `force`). */
  forced: boolean;
}

/**
 * Deletes everything the database holds about one session, in one IMMEDIATE transaction: its
 * events, every projection row (every table with a `session_id` column, so projections added by
 * later migrations go too), its snapshot and its owner row; then records `session.removed` in the
 * system log. Files (saved tool outputs, job output) and processes are not touched here: see
 * ops/remove.ts, which callers should use.
 *
 * Refuses (SessionOwnedError) while a live owner holds the session, and (SessionHasRunningJobsError)
 * while its background jobs run, unless `force`: a forced removal
 * deletes the owner row, so the owner's next append fails as a stale owner and writes nothing.
 * A process that owns the session itself must release it before calling this.
 * Returns null when `ifLastSeq` no longer matches (something was appended meanwhile).
 */
export function deleteSession(store: Store, sessionId: string, options: DeleteSessionOptions = {}): DeletedSession | null {
  store.flushSession(sessionId);
  return store.transaction(() => {
    const session = store.queries.session(sessionId);
    if (!session) throw new SessionNotFoundError(sessionId);
    if (options.ifLastSeq !== undefined && session.lastSeq !== options.ifLastSeq) return null;
    const owner = store.owners.get(sessionId, store.clock.now());
    const held = owner !== null && owner.live;
    if (held && !options.force) throw new SessionOwnedError(sessionId, owner.held ? owner.ownerId : null, owner.expiresAt);
    // Every job of the session (the rows are deleted below in the same transaction, so no bound short of all of them).
    const jobs = (store.db.prepare('SELECT job_id, status, pgid, pid, process_start_time, output_path FROM jobs WHERE session_id = ?').all(sessionId) as JobDbRow[]).map(toJob);
    const running = jobs.filter((j) => j.status === 'running');
    if (running.length > 0 && !options.force) throw new SessionHasRunningJobsError(sessionId, running.map((j) => j.jobId));
    let events = 0;
    for (const table of sessionTables(store.db)) {
      const { changes } = store.db.prepare(`DELETE FROM "${table}" WHERE session_id = ?`).run(sessionId);
      if (table === 'events') events = changes;
    }
    store.append({ sessionId: null, type: 'session.removed', data: { sessionId, reason: options.reason ?? 'rm', events, ...(held ? { forced: true } : {}) } });
    return { sessionId, events, jobs, forced: held };
  });
}

/** Every table with a `session_id` column: the log, projections, snapshots, ownership, and later ones. */
function sessionTables(db: Db): string[] {
  const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as { name: string }[];
  return tables
    .map((t) => t.name)
    .filter((name) => (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(name) as { name: string }[]).some((c) => c.name === 'session_id'));
}

/** What the caller needs of a removed job: its process (to stop a running one) and its files. */
export interface RemovedJob {
  jobId: string;
  status: string;
  pid: number | null;
  pgid: number | null;
  processStartTime: number | null;
  outputPath: string;
}

interface JobDbRow {
  job_id: string;
  status: string;
  pid: number | null;
  pgid: number | null;
  process_start_time: number | null;
  output_path: string;
}

function toJob(r: JobDbRow): RemovedJob {
  return { jobId: r.job_id, status: r.status, pid: r.pid, pgid: r.pgid, processStartTime: r.process_start_time, outputPath: r.output_path };
}
