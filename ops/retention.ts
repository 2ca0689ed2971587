import { lstatSync, readdirSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { RETENTION_FILES_PER_PASS_MAX, RETENTION_INTERVAL_MS, RETENTION_SESSIONS_PER_PASS_MAX } from '../core/limits.js';
import { loadConfig } from '../services/config.js';
import { SessionHasRunningJobsError, SessionOwnedError, type Store } from '../store/index.js';
import { pruneCheckpoints, type CheckpointPruneReport, type CheckpointRetention } from './checkpointRetention.js';
import { removeSession } from './remove.js';

/**
 * Retention (config `retention`, global file only): what a long-lived installation forgets.
 * - `sessionsDays`: a session with no event for longer than this, idle (no activity open, not
 *   recovering), with no live owner and no running job, is removed with its files (ops/remove.ts).
 * - `toolOutputDays`: files under `$LOOM_HOME/tool-output/` (full outputs saved by truncation) and
 *   under `$LOOM_HOME/jobs/` (background job output and exit files; never those of a job still
 *   running) not modified for longer than this are deleted.
 * - `checkpoints` (config `checkpoints.retentionDays` and `.maxBytes`, defaults always apply):
 *   content kept for file checkpoints expires with age and past a total size, oldest first; blobs
 *   still referenced by unexpired checkpoints are kept (ops/checkpointRetention.ts).
 * `loom db prune [--dry-run]` runs one pass; `serve` and `worker` call `startRetention`.
 */
export interface RetentionPolicy {
  sessionsDays?: number;
  toolOutputDays?: number;
  /** Kept checkpoint content (config `checkpoints`; ops/checkpointRetention.ts). */
  checkpoints?: CheckpointRetention;
}

export interface PruneReport {
  dryRun: boolean;
  /** Sessions removed (or, in a dry run, that would be). */
  sessions: { sessionId: string; updatedAt: string; events?: number }[];
  /** Old sessions kept this time, and why. */
  skipped: { sessionId: string; reason: string }[];
  /** Files removed (or that would be), with their sizes. */
  files: { path: string; bytes: number }[];
  /** Bytes of the removed files (not counting database pages: `loom db vacuum` gives those back). */
  bytes: number;
  /** More candidates than one pass handles: the next pass continues. */
  more: boolean;
  /** What checkpoint retention removed (or would), when the policy has `checkpoints`. */
  checkpoints?: CheckpointPruneReport;
}

const DAY_MS = 24 * 60 * 60_000;

/**
 * One retention pass. Bounded: at most RETENTION_SESSIONS_PER_PASS_MAX sessions and
 * RETENTION_FILES_PER_PASS_MAX directory entries; `more` says when something was left for the next
 * pass. A session written to after it was chosen is skipped (the delete is conditional on its last
 * seq). With `dryRun` nothing is removed and the report says what would be.
 */
export async function prune(store: Store, home: string, policy: RetentionPolicy, options: { dryRun?: boolean; now?: number } = {}): Promise<PruneReport> {
  const now = options.now ?? store.clock.now();
  const report: PruneReport = { dryRun: options.dryRun === true, sessions: [], skipped: [], files: [], bytes: 0, more: false };
  if (policy.sessionsDays !== undefined) await pruneSessions(store, home, now - policy.sessionsDays * DAY_MS, report);
  if (policy.toolOutputDays !== undefined) pruneFiles(store, home, now - policy.toolOutputDays * DAY_MS, report);
  if (policy.checkpoints !== undefined) {
    report.checkpoints = await pruneCheckpoints(store, home, policy.checkpoints, { now, dryRun: report.dryRun });
    if (report.checkpoints.more) report.more = true;
  }
  return report;
}

async function pruneSessions(store: Store, home: string, cutoff: number, report: PruneReport): Promise<void> {
  const candidates = store.db
    .prepare(`SELECT session_id, updated_at, last_seq FROM sessions WHERE status = 'idle' AND updated_at < ? ORDER BY updated_at, session_id LIMIT ?`)
    .all(new Date(cutoff).toISOString(), RETENTION_SESSIONS_PER_PASS_MAX + 1) as { session_id: string; updated_at: string; last_seq: number }[];
  if (candidates.length > RETENTION_SESSIONS_PER_PASS_MAX) {
    report.more = true;
    candidates.length = RETENTION_SESSIONS_PER_PASS_MAX;
  }
  for (const c of candidates) {
    const owner = store.owners.get(c.session_id, store.clock.now());
    const running = store.queries.jobs(c.session_id, { limit: 1, status: 'running' });
    if (owner?.live) report.skipped.push({ sessionId: c.session_id, reason: 'a live owner holds it' });
    else if (running.length > 0) report.skipped.push({ sessionId: c.session_id, reason: 'a background job is still running' });
    else if (report.dryRun) report.sessions.push({ sessionId: c.session_id, updatedAt: c.updated_at });
    else await removeOne(store, home, c, report);
  }
}

async function removeOne(store: Store, home: string, c: { session_id: string; updated_at: string; last_seq: number }, report: PruneReport): Promise<void> {
  try {
    const removed = await removeSession(store, home, c.session_id, { reason: 'retention', ifLastSeq: c.last_seq });
    if (removed) report.sessions.push({ sessionId: c.session_id, updatedAt: c.updated_at, events: removed.events });
    else report.skipped.push({ sessionId: c.session_id, reason: 'it was written to meanwhile' });
  } catch (error) {
    // Taken by an owner or given a job between the check and the delete: kept, as it is in use.
    if (error instanceof SessionOwnedError || error instanceof SessionHasRunningJobsError) report.skipped.push({ sessionId: c.session_id, reason: error.message });
    else throw error;
  }
}

function pruneFiles(store: Store, home: string, cutoff: number, report: PruneReport): void {
  let budget = RETENTION_FILES_PER_PASS_MAX;
  const old = (st: Stats) => st.isFile() && st.mtimeMs < cutoff;
  const drop = (path: string, st: Stats) => {
    report.files.push({ path, bytes: st.size });
    report.bytes += st.size;
    if (!report.dryRun) unlinkSync(path);
  };
  // tool-output/<session>/<call>.txt
  const outputs = join(home, 'tool-output');
  for (const name of entries(outputs)) {
    if (--budget < 0) return void (report.more = true);
    const dir = join(outputs, name);
    const st = stat(dir);
    if (!st?.isDirectory()) continue;
    let left = 0;
    for (const file of entries(dir)) {
      if (--budget < 0) return void (report.more = true);
      const path = join(dir, file);
      const fst = stat(path);
      if (fst && old(fst)) drop(path, fst);
      else left++;
    }
    if (left === 0 && !report.dryRun) tryRmdir(dir);
  }
  // jobs/<job>.out, <job>.exit: never the files of a job still running.
  const jobs = join(home, 'jobs');
  const running = store.db.prepare(`SELECT 1 FROM jobs WHERE job_id = ? AND status = 'running'`);
  for (const file of entries(jobs)) {
    if (--budget < 0) return void (report.more = true);
    const jobId = file.replace(/\.(out|exit|exit\.tmp)$/, '');
    if (jobId === file || running.get(jobId) !== undefined) continue;
    const path = join(jobs, file);
    const st = stat(path);
    if (st && old(st)) drop(path, st);
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function stat(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function tryRmdir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Not empty after all (a tool saved an output meanwhile): kept.
  }
}

export interface RetentionTask {
  /** Runs one pass now (after the one in progress, if any). */
  runNow(): Promise<PruneReport | undefined>;
  stop(): void;
}

/**
 * Applies retention periodically in a long-lived process (`serve`, `worker`): one pass at start and
 * then every `intervalMs` (RETENTION_INTERVAL_MS), never two at once. `policy` is read before each
 * pass, so a hot-reloaded config applies at the next one; a pass with nothing configured does
 * nothing. Failures go to `onError` and the next pass tries again. The timer does not keep the
 * process alive.
 */
export function startRetention(
  store: Store,
  home: string,
  policy: () => RetentionPolicy | undefined | Promise<RetentionPolicy | undefined>,
  options: { intervalMs?: number; onReport?: (report: PruneReport) => void; onError?: (error: unknown) => void } = {},
): RetentionTask {
  let running: Promise<PruneReport | undefined> = Promise.resolve(undefined);
  let stopped = false;
  const pass = (): Promise<PruneReport | undefined> => {
    running = running.then(async () => {
      try {
        const p = stopped ? undefined : await policy();
        if (stopped || !p || (p.sessionsDays === undefined && p.toolOutputDays === undefined && p.checkpoints === undefined)) return undefined;
        const report = await prune(store, home, p);
        options.onReport?.(report);
        return report;
      } catch (error) {
        options.onError?.(error);
        return undefined;
      }
    });
    return running;
  };
  const timer = setInterval(() => void pass(), options.intervalMs ?? RETENTION_INTERVAL_MS);
  timer.unref();
  void pass();
  return {
    runNow: pass,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

/**
 * `startRetention` with the global config's `retention` (re-read before every pass, so an edit
 * applies at the next one without a restart) and one log line per pass that removed something or
 * failed. For `loom serve` and `loom worker`; call `stop()` when draining.
 */
export function startConfiguredRetention(store: Store, home: string, log: (line: string) => void, options: { intervalMs?: number } = {}): RetentionTask {
  return startRetention(
    store,
    home,
    async () => {
      const { config } = await loadConfig({ home });
      return { ...config.retention, checkpoints: { retentionDays: config.checkpoints.retentionDays, maxBytes: config.checkpoints.maxBytes } };
    },
    {
    ...options,
    onReport: (r) => {
      if (r.sessions.length > 0 || r.files.length > 0) log(`retention: removed ${r.sessions.length} session(s) and ${r.files.length} file(s), ${r.bytes} bytes${r.more ? '; more at the next pass' : ''}`);
      const c = r.checkpoints;
      if (c && c.blobs > 0) log(`retention: removed ${c.blobs} kept checkpoint content file(s), ${c.bytes} bytes${c.expiredBefore ? `; checkpoints before ${c.expiredBefore} expired by the size bound` : ''}`);
    },
    onError: (error) => log(`retention failed: ${(error as Error)?.message ?? String(error)}`),
    },
  );
}
