/**
 * Background jobs (DESIGN §1 "job", §6): the JobStarter tools call (`bash` / `task` with
 * `background: true`) and the implementations of the job child (machines/job.machine.ts).
 *
 * A bash job runs under a small wrapper shell that is the leader of its own process group:
 *
 *   sh -c '"$1" -c "$2" </dev/null >>"$3" 2>&1; code=$?; echo $code >"$4.tmp"; mv "$4.tmp" "$4"; exit $code'
 *
 * The command's output goes straight to `$LOOM_HOME/jobs/<jobId>.out` and its exit code to
 * `<jobId>.exit`, written by the processes themselves. So a job outlives the process that started
 * it (`--detach-jobs`, a crash), and a later owner can still tell how it ended: a job whose
 * process is gone is settled from its exit file, or marked `lost` when there is none. The group's
 * pid and /proc start time are in `job.started`, so a later owner re-attaches only to that very
 * process, never to a recycled pid.
 *
 * A task job (a subagent) runs inside this process; it cannot outlive it and is `lost` after a
 * restart unless it finished and left its exit file.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fromPromise } from 'xstate';
import {
  INPUT_TEXT_BYTES_MAX,
  JOB_OUTPUT_EVENT_BYTES_MAX,
  JOB_OUTPUT_EVENTS_BYTES_MAX,
  JOB_OUTPUT_INTERVAL_MS,
  JOB_OUTPUT_TAIL_BYTES_MAX,
  JOB_POLL_INTERVAL_MS,
  JOB_SUMMARY_CHARS_MAX,
  JOBS_RUNNING_PER_SESSION_MAX,
  PROCESS_EXIT_WAIT_MS,
} from '../core/limits.js';
import type { JobContext, JobInspection, JobOutcome } from '../machines/job.machine.js';
import type { AppendRequest, JobRow } from '../store/index.js';
import { utf8End, utf8Start } from '../tools/builtin/bash.js';
import { CommandStartError, JobLimitError, ToolServiceUnavailableError } from '../tools/errors.js';
import { commandShell, groupAlive, killGroup, processAlive, processStartTime, readProcStat, spawnInGroup } from '../tools/process.js';
import type { JobSpec, JobStarter, ToolContext } from '../tools/types.js';
import type { SessionActor } from './session.js';

/** The wrapper shell: runs the command with its output in the job's file, then leaves the exit code beside it. */
const WRAPPER = '"$1" -c "$2" </dev/null >>"$3" 2>&1; code=$?; echo "$code" >"$4.tmp" && mv -f "$4.tmp" "$4"; exit "$code"';

/** The exit file of a job, beside its output file. */
export function exitPathOf(outputPath: string, jobId: string): string {
  return join(dirname(outputPath), `${jobId}.exit`);
}

/** What this process holds of a job it started (gone after a restart). */
interface Launched {
  /** Bash: resolves when the wrapper exits (code, or the signal that killed it). */
  exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  /** Task: the request, kept whole (`job.started` has a summary only). */
  task?: { spec: Extract<JobSpec, { kind: 'task' }>; ctx: ToolContext };
}

/**
 * Starts background jobs for the tools of every session of one coordinator, and implements the
 * job child. One per coordinator (SessionLogic holds it).
 */
export class JobRuntime implements JobStarter {
  private readonly launched = new Map<string, Launched>();

  constructor(private readonly lookup: (sessionId: string) => SessionActor | undefined) {}

  /**
   * Starts the job's work, then records `job.started` (the session machine spawns the job's child
   * on it). Throws JobLimitError over JOBS_RUNNING_PER_SESSION_MAX running jobs, CommandStartError
   * when the process cannot start; if the record fails (a stale owner) the process is stopped.
   */
  async start(spec: JobSpec, ctx: ToolContext): Promise<{ jobId: string; outputPath: string }> {
    const session = this.lookup(ctx.sessionId);
    if (!session) throw new ToolServiceUnavailableError(spec.kind === 'bash' ? 'bash' : 'task', `background jobs (session ${ctx.sessionId} has no live actor here)`);
    const running = Object.keys(session.context().jobs).length;
    if (running >= JOBS_RUNNING_PER_SESSION_MAX) throw new JobLimitError(ctx.sessionId, JOBS_RUNNING_PER_SESSION_MAX);
    const { store } = session.deps;
    const jobId = store.ids.next('job');
    const dir = join(ctx.home, 'jobs');
    mkdirSync(dir, { recursive: true });
    const outputPath = join(dir, `${jobId}.out`);
    writeFileSync(outputPath, '', { flag: 'wx' });
    const base = {
      jobId,
      kind: spec.kind,
      activityId: ctx.activityId === '' ? undefined : ctx.activityId,
      callId: ctx.callId === '' ? undefined : ctx.callId,
      summary: summarize(spec.kind === 'bash' ? spec.command : spec.prompt),
      description: spec.description,
      outputPath,
      timeoutMs: spec.timeoutMs,
      startedAt: new Date(store.clock.now()).toISOString(),
    };
    if (spec.kind === 'task') {
      this.launched.set(jobId, { task: { spec, ctx } });
      this.record(session, jobId, { sessionId: session.sessionId, epoch: session.lease.epoch, type: 'job.started', data: base });
      return { jobId, outputPath };
    }
    const child = this.spawn(spec.command, ctx.location, outputPath, exitPathOf(outputPath, jobId));
    const launched: Launched = {};
    launched.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        launched.exit = { code, signal };
        resolve(launched.exit);
      }),
    );
    this.launched.set(jobId, launched);
    const data = { ...base, pid: child.pid, pgid: child.pid, processStartTime: processStartTime(child.pid) };
    try {
      this.record(session, jobId, { sessionId: session.sessionId, epoch: session.lease.epoch, type: 'job.started', data });
    } catch (error) {
      await killGroup(child.pid);
      throw error;
    }
    return { jobId, outputPath };
  }

  private spawn(command: string, cwd: string, outputPath: string, exitPath: string) {
    try {
      const child = spawnInGroup('/bin/sh', ['-c', WRAPPER, 'loom-job', commandShell(), command, outputPath, exitPath], {
        cwd,
        env: process.env,
        stdio: 'ignore',
      });
      child.once('error', () => {}); // the wrapper's exit reports what happened
      child.unref(); // the job's watcher, not the child, keeps a waiting process alive
      return child;
    } catch (error) {
      throw new CommandStartError('bash', (error as Error).message);
    }
  }

  private record(session: SessionActor, jobId: string, request: AppendRequest): void {
    try {
      session.observe([request]);
    } catch (error) {
      this.launched.delete(jobId);
      throw error;
    }
  }

  /** The job child's implementations (see machines/job.machine.ts). */
  implementations() {
    const session = (sessionId: string) => {
      const actor = this.lookup(sessionId);
      if (!actor) throw new Error(`no live session actor for ${sessionId}`);
      return actor;
    };
    const rowOf = (s: SessionActor, jobId: string) => {
      const row = s.deps.store.queries.job(jobId);
      if (!row) throw new Error(`job ${jobId} is not in the jobs projection`);
      return row;
    };

    const inspectJob = fromPromise<JobInspection, JobContext>(async ({ input }) => {
      await Promise.resolve();
      const s = session(input.sessionId);
      const row = rowOf(s, input.jobId);
      const exitCode = readExitFile(exitPathOf(row.outputPath, row.jobId));
      const running = exitCode === null && isRecordedProcessAlive(row);
      if (exitCode !== null) await stopLeftovers(row); // what the command left behind
      return { running, exitCode, onRestart: s.deps.config.jobs.onRestart };
    });

    const runJob = fromPromise<JobOutcome, JobContext>(async ({ input, signal }) => {
      await Promise.resolve();
      const s = session(input.sessionId);
      const row = rowOf(s, input.jobId);
      return row.kind === 'task' ? this.runTask(s, row, signal) : this.watchBash(s, row, signal);
    });

    const stopJob = fromPromise<Partial<JobOutcome>, JobContext>(async ({ input }) => {
      await Promise.resolve();
      const s = session(input.sessionId);
      const row = rowOf(s, input.jobId);
      if (row.kind !== 'bash' || row.pgid === null) return {}; // a task stops when its run is aborted (leaving `running`)
      await stopLeftovers(row);
      // The wrapper's exit event follows the kill (bounded: a process stuck in the kernel may survive SIGKILL).
      const launched = this.launched.get(row.jobId);
      if (launched?.exited) await Promise.race([launched.exited, delay(PROCESS_EXIT_WAIT_MS)]);
      const exit = launched?.exit;
      return { ...(exit?.signal ? { signal: exit.signal } : {}), ...(typeof exit?.code === 'number' ? { exitCode: exit.code } : {}) };
    });

    return {
      actors: { inspectJob, runJob, stopJob },
      actions: {
        recordSettled: ({ context }: { context: JobContext }) => this.settle(session(context.sessionId), context),
      },
    };
  }

  /**
   * Watches a bash job until its process ends or its deadline passes, recording bounded
   * `job.output` on the way. Works the same for a job this process started and for one
   * re-attached after a restart (by pid and start time).
   */
  private async watchBash(s: SessionActor, row: JobRow, signal: AbortSignal): Promise<JobOutcome> {
    const { clock } = s.deps.store;
    const launched = this.launched.get(row.jobId);
    const deadline = Date.parse(row.startedAt) + row.timeoutMs;
    const reporter = new OutputReporter(s, row);
    const exitPath = exitPathOf(row.outputPath, row.jobId);
    // One listener on the exit, however many polls: it cuts the current poll's wait short.
    let wake: (() => void) | undefined;
    void launched?.exited?.then(() => wake?.());
    while (!signal.aborted) {
      const ended = launched?.exited ? launched.exit !== undefined : !isRecordedProcessAlive(row);
      if (ended) {
        await stopLeftovers(row); // processes it left behind
        const code = readExitFile(exitPath);
        if (code !== null) return { status: code === 0 ? 'ok' : 'failed', exitCode: code, ...(code === 0 ? {} : { reason: `exit code ${code}` }) };
        if (launched?.exit?.signal) return { status: 'failed', signal: launched.exit.signal, reason: `killed by ${launched.exit.signal}` };
        return { status: 'failed', reason: 'its process ended without leaving an exit status (killed from outside?)' };
      }
      if (clock.now() >= deadline) {
        await stopLeftovers(row);
        return { status: 'timed_out', reason: `timed out after ${row.timeoutMs} ms; its process group was stopped` };
      }
      reporter.poll();
      await sleep(JOB_POLL_INTERVAL_MS, signal, (done) => (wake = done));
    }
    return { status: 'failed', reason: 'no longer watched' }; // the child was stopped; this outcome is never recorded
  }

  /** Runs a task job (a subagent) in this process, under the job's deadline. */
  private async runTask(s: SessionActor, row: JobRow, signal: AbortSignal): Promise<JobOutcome> {
    const task = this.launched.get(row.jobId)?.task;
    if (!task) return { status: 'lost', reason: 'the task was started by another process that is gone; it was not run again' };
    const runner = task.ctx.services.subagents ?? s.deps.toolServices?.subagents;
    if (!runner) return { status: 'failed', reason: 'this process has no subagent runner: background tasks cannot run here' };
    const remaining = Math.max(0, Date.parse(row.startedAt) + row.timeoutMs - s.deps.store.clock.now());
    const deadline = AbortSignal.timeout(remaining);
    const jobSignal = AbortSignal.any([signal, deadline]);
    const exitPath = exitPathOf(row.outputPath, row.jobId);
    try {
      const result = await runner.run(
        { prompt: task.spec.prompt, description: task.spec.description, agent: task.spec.agent, signal: jobSignal },
        { ...task.ctx, signal: jobSignal },
      );
      const code = result.status === 'completed' ? 0 : 1;
      writeFileSync(row.outputPath, result.text);
      writeExitFile(exitPath, code);
      return {
        status: code === 0 ? 'ok' : 'failed',
        exitCode: code,
        reason: `subagent session ${result.sessionId} settled ${result.status}`,
      };
    } catch (error) {
      if (deadline.aborted && !signal.aborted) return { status: 'timed_out', reason: `timed out after ${row.timeoutMs} ms` };
      return { status: 'failed', reason: `the subagent failed: ${(error as Error)?.message ?? String(error)}` };
    }
  }

  /**
   * Records the settlement and delivers the result to the session as an input (source
   * `job:<id>`, mode by `jobs.deliver`), in one step: the input comes first, so the session is
   * never quiet with no jobs between the two. The input wakes an idle session.
   */
  private settle(s: SessionActor, context: JobContext): void {
    const { store, config } = s.deps;
    const row = store.queries.job(context.jobId);
    this.launched.delete(context.jobId);
    if (!row || row.status !== 'running') return;
    const outcome = context.outcome ?? { status: 'failed' as const, reason: 'settled without an outcome' };
    const tail = readTail(row.outputPath, JOB_OUTPUT_TAIL_BYTES_MAX);
    const sid = s.sessionId;
    s.observe([
      {
        sessionId: sid,
        type: 'input.admitted',
        data: {
          inputId: store.ids.next('in'),
          clientId: `job:${row.jobId}`,
          mode: config.jobs.deliver,
          text: resultText(row, outcome, tail),
          source: `job:${row.jobId}`,
        },
      },
      {
        sessionId: sid,
        epoch: s.lease.epoch,
        type: 'job.settled',
        data: {
          jobId: row.jobId,
          status: outcome.status,
          exitCode: outcome.exitCode,
          signal: outcome.signal,
          outputTail: tail.text,
          outputBytes: tail.size,
          reason: outcome.reason,
        },
      },
    ]);
  }
}

/**
 * Reports a job's new output as `job.output` events: at most one per JOB_OUTPUT_INTERVAL_MS, at
 * most JOB_OUTPUT_EVENT_BYTES_MAX each (the newest bytes when more arrived) and
 * JOB_OUTPUT_EVENTS_BYTES_MAX per job in all. Resumes where the projection says the last owner stopped.
 */
class OutputReporter {
  private offset: number;
  private reported: number;
  private lastAt = -Infinity;

  constructor(
    private readonly s: SessionActor,
    private readonly row: JobRow,
  ) {
    this.offset = row.outputOffset;
    this.reported = row.outputReported;
  }

  poll(): void {
    const budget = Math.min(JOB_OUTPUT_EVENT_BYTES_MAX, JOB_OUTPUT_EVENTS_BYTES_MAX - this.reported);
    if (budget <= 0) return;
    const now = this.s.deps.store.clock.monotonic();
    if (now - this.lastAt < JOB_OUTPUT_INTERVAL_MS) return;
    const size = fileSize(this.row.outputPath);
    if (size <= this.offset) return;
    const from = Math.max(this.offset, size - budget);
    const bytes = readRange(this.row.outputPath, from, size - from);
    // Whole characters only: skip a partial one at the start, keep back a partial one at the end.
    const start = from > this.offset ? utf8Start(bytes) : 0;
    const end = utf8End(bytes);
    if (end <= start) return;
    const chunk = bytes.subarray(start, end).toString('utf8');
    const offset = from + start;
    this.lastAt = now;
    this.s.observe([
      {
        sessionId: this.s.sessionId,
        epoch: this.s.lease.epoch,
        type: 'job.output',
        data: { jobId: this.row.jobId, offset, chunk, ...(offset > this.offset ? { skippedBytes: offset - this.offset } : {}) },
      },
    ]);
    this.offset = offset + (end - start);
    this.reported += end - start;
  }
}

/**
 * Stops what is left of a job's process group, if that group is still the job's: a pgid stays
 * reserved while any member lives, so members without a leader are the job's; but a live process
 * whose pid is the pgid and whose start time differs is a new group that reused the number, and is
 * left alone.
 */
async function stopLeftovers(row: JobRow): Promise<void> {
  if (row.pgid === null || !groupAlive(row.pgid)) return;
  const leader = readProcStat(row.pgid);
  if (leader && leader.startTime !== row.processStartTime) return;
  await killGroup(row.pgid);
}

/** The recorded leader process is alive and is the same process (pid and /proc start time). */
function isRecordedProcessAlive(row: JobRow): boolean {
  // Without a recorded start time a live pid cannot be told from a recycled one: treat it as gone.
  if (row.pid === null || row.processStartTime === null) return false;
  return processAlive(row.pid, row.processStartTime);
}

/** The exit code in a job's exit file, or null when there is none (or it is unreadable). */
export function readExitFile(path: string): number | null {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

function writeExitFile(path: string, code: number): void {
  writeFileSync(`${path}.tmp`, `${code}\n`);
  renameSync(`${path}.tmp`, path);
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readRange(path: string, position: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const n = readSync(fd, buffer, filled, length - filled, position + filled);
      if (n === 0) break;
      filled += n;
    }
    return buffer.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** The last `maxBytes` of a file, on character boundaries, and its size. */
export function readTail(path: string, maxBytes: number): { text: string; size: number } {
  const size = fileSize(path);
  if (size === 0) return { text: '', size };
  const from = Math.max(0, size - maxBytes);
  const bytes = readRange(path, from, size - from);
  const start = from > 0 ? utf8Start(bytes) : 0;
  return { text: bytes.subarray(start, utf8End(bytes)).toString('utf8'), size };
}

function summarize(text: string): string {
  return text.length <= JOB_SUMMARY_CHARS_MAX ? text : `${text.slice(0, JOB_SUMMARY_CHARS_MAX - 1)}…`;
}

/** The message the model gets when a job ends (bounded well below INPUT_TEXT_BYTES_MAX). */
function resultText(row: JobRow, outcome: JobOutcome, tail: { text: string; size: number }): string {
  const what = row.kind === 'bash' ? `bash \`${row.summary}\`` : `task "${row.description ?? row.summary}"`;
  const how =
    outcome.status === 'ok'
      ? 'finished successfully (exit code 0)'
      : outcome.status === 'failed'
        ? `failed${outcome.reason ? `: ${outcome.reason}` : ''}`
        : outcome.status === 'timed_out'
          ? `timed out${outcome.reason ? `: ${outcome.reason}` : ''}`
          : outcome.status === 'cancelled'
            ? `was cancelled${outcome.reason ? `: ${outcome.reason}` : ''}`
            : `was lost: ${outcome.reason ?? 'its process was gone after a restart'}`;
  const shown = tail.size > Buffer.byteLength(tail.text) ? `last ${Buffer.byteLength(tail.text)} of ${tail.size} bytes` : `${tail.size} bytes`;
  const output = tail.size === 0 ? 'It printed no output.' : `Output (${shown}; all of it is in ${row.outputPath}):\n${tail.text}`;
  const text = `[background job ${row.jobId}] ${what} ${how}.\n${output}`;
  return Buffer.byteLength(text) <= INPUT_TEXT_BYTES_MAX ? text : text.slice(0, INPUT_TEXT_BYTES_MAX / 4);
}

/** Waits `ms`, or less when `signal` fires or the function handed to `onWake` is called. */
function sleep(ms: number, signal: AbortSignal, onWake: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    onWake(done);
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
