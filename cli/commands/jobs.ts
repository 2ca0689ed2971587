import { exitPathOf, readExitFile } from '../../actors/job.js';
import { JOBS_LIST_MAX } from '../../core/limits.js';
import type { JobRow } from '../../store/index.js';
import { processAlive } from '../../tools/process.js';
import { EXIT, UsageError } from '../exit.js';
import { driveSession } from '../drive.js';
import { openRuntime, openStore, type PermissionMode } from '../runtime.js';
import { requireSession } from './session.js';

/**
 * What a running job's process looks like from here, without owning its session: `alive`, `exited`
 * (it left an exit code; it settles when its session is next owned) or `gone` (no process, no exit
 * code: the next owner marks it lost). Null for settled jobs and task jobs.
 */
export function processState(job: JobRow): 'alive' | 'exited' | 'gone' | null {
  if (job.status !== 'running' || job.kind !== 'bash') return null;
  if (readExitFile(exitPathOf(job.outputPath, job.jobId)) !== null) return 'exited';
  if (job.pid !== null && job.processStartTime !== null && processAlive(job.pid, job.processStartTime)) return 'alive';
  return 'gone';
}

/** `loom jobs [ID]`: background jobs of one session (oldest first) or of all (newest first). Reads only. */
export async function jobsList(idArg: string | undefined, opts: { json?: boolean }): Promise<number> {
  const { store } = openStore();
  try {
    const sessionId = idArg === undefined ? undefined : requireSession(store, idArg).sessionId;
    const rows = store.queries.jobs(sessionId, { limit: JOBS_LIST_MAX });
    if (opts.json) {
      for (const r of rows) process.stdout.write(`${JSON.stringify({ ...r, process: processState(r) })}\n`);
      return EXIT.ok;
    }
    if (rows.length === 0) {
      process.stdout.write(`no background jobs${sessionId ? ` in ${sessionId}` : ''}\n`);
      return EXIT.ok;
    }
    for (const r of rows) process.stdout.write(`${formatJob(r, sessionId === undefined)}\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}

function formatJob(r: JobRow, withSession: boolean): string {
  const state = processState(r);
  const status =
    r.status === 'running'
      ? state === 'alive' || state === null
        ? `running${r.cancelRequested ? ' (cancel requested)' : ''}`
        : `running (${state === 'exited' ? 'finished' : 'process gone'}; settles when its session is next owned)`
      : `${r.status}${r.exitCode === null ? '' : ` (exit ${r.exitCode})`}`;
  const session = withSession ? `  ${r.sessionId}` : '';
  const pid = r.pgid === null ? '' : `  pgid ${r.pgid}`;
  return `${r.jobId}${session}  ${r.kind}  ${status}  ${r.startedAt}${pid}  ${oneLine(r.description ?? r.summary)}  ${r.outputPath}`;
}

function oneLine(s: string): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > 80 ? `${one.slice(0, 79)}…` : one;
}

/**
 * `loom jobs cancel JOB`: records `cancel.requested` naming the job. A live owner stops it
 * within one polling interval. Without one, this process takes the lease: the job's child stops
 * the process group and settles it `cancelled`, the result is delivered to the session and the
 * session runs until quiet (it answers the result), then the lease is released. Other jobs of the
 * session are left running (or re-attached and left again).
 */
export async function jobsCancel(jobArg: string, opts: { permission?: PermissionMode; json?: boolean }): Promise<number> {
  const rt = await openRuntime({ permission: opts.permission });
  try {
    const jobId = rt.store.queries.resolveJobId(jobArg);
    if (!jobId) throw new UsageError(`no job matches "${jobArg}" (see loom jobs)`);
    const job = rt.store.queries.job(jobId)!;
    if (job.status !== 'running') throw new UsageError(`job ${jobId} has already settled (${job.status})`);
    const session = rt.store.queries.session(job.sessionId)!;
    await rt.configFor(session.location);
    const after = session.lastSeq;
    rt.store.append({ sessionId: session.sessionId, type: 'cancel.requested', data: { jobId, reason: 'loom jobs cancel' } });
    const actor = rt.coordinator.own(session.sessionId);
    if (!actor) {
      process.stderr.write(`recorded; the live owner of ${session.sessionId} will stop job ${jobId}\n`);
      return EXIT.ok;
    }
    await actor.whenJobSettled(jobId);
    const settled = rt.store.queries.job(jobId)!;
    process.stderr.write(`job ${jobId} ${settled.status}${settled.reason ? `: ${settled.reason}` : ''}\n`);
    const code = await driveSession(rt, session.sessionId, { after, jobs: 'detach', json: opts.json });
    return code ?? EXIT.ok;
  } finally {
    rt.close();
  }
}
