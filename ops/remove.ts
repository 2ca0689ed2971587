import { lstatSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { JOBS_LIST_MAX } from '../core/limits.js';
import { exitPathOf } from '../actors/job.js';
import { deleteSession, SessionNotFoundError, SessionHasRunningJobsError, SessionOwnedError, type DeletedSession, type Store } from '../store/index.js';
import { isInside } from '../tools/confine.js';
import { killGroup, processAlive } from '../tools/process.js';
import { savedOutputPath } from '../tools/truncate.js';

export interface RemoveSessionOptions {
  /** Remove even while a live owner holds it; running jobs' process groups are stopped first. */
  force?: boolean;
  reason?: 'rm' | 'retention';
  /** Only when nothing was appended after this seq (see deleteSession). */
  ifLastSeq?: number;
}

export interface RemovedSession extends DeletedSession {
  /** Files and directories removed under $LOOM_HOME (saved tool outputs, job output and exit files). */
  removedPaths: string[];
  /** Process groups of running jobs stopped (only with `force`). */
  stoppedJobs: string[];
}

/**
 * Removes a session and everything stored about it (`loom session rm`, `DELETE /sessions/:id`,
 * retention): the database rows (store/remove.ts `deleteSession`), the tool outputs saved under
 * `$LOOM_HOME/tool-output/<session>/`, and its jobs' output and exit files under `$LOOM_HOME/jobs/`.
 *
 * Refuses while a live owner holds the session or its background jobs still run, unless `force`;
 * with `force` the running jobs' process groups are stopped first (pid and start time checked, so a
 * recycled pid is never signalled). Only files inside `home` are removed: an imported session may
 * name job files of another installation, which stay untouched. A process that owns the session
 * itself must release it first. Child sessions (subagents, forks) are separate sessions and stay.
 */
export async function removeSession(store: Store, home: string, sessionId: string, options: RemoveSessionOptions = {}): Promise<RemovedSession | null> {
  const session = store.queries.session(sessionId);
  if (!session) throw new SessionNotFoundError(sessionId);
  const owner = store.owners.get(sessionId, store.clock.now());
  if (owner?.live && !options.force) throw new SessionOwnedError(sessionId, owner.held ? owner.ownerId : null, owner.expiresAt);
  const running = store.queries.jobs(sessionId, { limit: JOBS_LIST_MAX, status: 'running' });
  if (running.length > 0 && !options.force) throw new SessionHasRunningJobsError(sessionId, running.map((j) => j.jobId));
  const stoppedJobs: string[] = [];
  for (const job of running) {
    if (job.pgid === null || job.pid === null || job.processStartTime === null) continue;
    if (!processAlive(job.pid, job.processStartTime)) continue;
    await killGroup(job.pgid);
    stoppedJobs.push(job.jobId);
  }
  const deleted = deleteSession(store, sessionId, {
    force: options.force,
    reason: options.reason,
    ...(options.ifLastSeq === undefined ? {} : { ifLastSeq: options.ifLastSeq }),
  });
  if (!deleted) return null;
  return { ...deleted, stoppedJobs, removedPaths: removeSessionFiles(home, sessionId, deleted) };
}

/** The session's saved tool outputs and its jobs' files, inside `home` only. */
function removeSessionFiles(home: string, sessionId: string, deleted: DeletedSession): string[] {
  const removed: string[] = [];
  const remove = (path: string) => {
    try {
      lstatSync(path);
    } catch {
      return;
    }
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  };
  remove(dirname(savedOutputPath(home, sessionId, 'x')));
  const jobsDir = join(home, 'jobs');
  for (const job of deleted.jobs) {
    const exit = exitPathOf(job.outputPath, job.jobId);
    const names = new Set([`${job.jobId}.out`, `${job.jobId}.exit`, `${job.jobId}.exit.tmp`]);
    for (const file of [job.outputPath, exit, `${exit}.tmp`]) {
      // Only this installation's job files, named after the job: a path from an imported log may point anywhere.
      if (dirname(file) !== jobsDir || !names.has(basename(file)) || !isInside(home, file)) continue;
      remove(file);
    }
  }
  return removed;
}
