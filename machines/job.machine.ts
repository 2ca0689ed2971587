import { assign, fromPromise, setup } from 'xstate';

/**
 * One background job (DESIGN §1 "job"), a child of the session actor that outlives the turn and
 * the activity that started it:
 *
 *   starting ─▶ running ──(process ends / deadline)──────────────▶ settled (ok | failed | timed_out)
 *      │           └──CANCEL──▶ stopping ──(group gone)──────────▶ settled (cancelled)
 *      └─(restored)─▶ restoring ─┬─ exit status left behind ──────▶ settled (ok | failed)
 *                                ├─ still running: reattach ─────▶ running
 *                                ├─ still running: kill, or cancel requested ─▶ stopping
 *                                └─ gone, nothing left behind ───▶ settled (lost)
 *
 * The job's process is started before the job exists (its pid is part of `job.started`), so a
 * fresh job begins in `running`. A job restored by a new owner begins in `restoring`: it is never
 * started again (DESIGN §5); it is watched, stopped or settled from what its process left.
 *
 * Pure: watching, inspecting and stopping the process and recording the settlement are named here
 * and provided by actors/job.ts. Every path ends in `settled` with exactly one `recordSettled`.
 */
export const JOB_MACHINE_VERSION = 'job@1';

export type JobKind = 'bash' | 'task';
export type JobOutcomeStatus = 'ok' | 'failed' | 'cancelled' | 'timed_out' | 'lost';

export interface JobOutcome {
  status: JobOutcomeStatus;
  exitCode?: number;
  signal?: string;
  reason?: string;
}

export interface JobInput {
  sessionId: string;
  jobId: string;
  kind: JobKind;
  /** Spawned by a new owner after a restore: inspect what is left instead of watching a process we started. */
  resumed: boolean;
  /** A cancel was recorded before this child existed (the session was not owned when it came). */
  cancelRequested: boolean;
}

/** What a new owner finds of a job's process (see `inspectJob`). */
export interface JobInspection {
  /** The recorded process is still running (same pid and start time). */
  running: boolean;
  /** The exit code the job left in its exit file, when it finished. */
  exitCode: number | null;
  /** What the config says to do with a job still running after a restart. */
  onRestart: 'reattach' | 'kill';
}

export interface JobContext extends JobInput {
  /** Why the job is being stopped (cancel, or the restart policy). */
  stopReason: string | null;
  outcome: JobOutcome | null;
}

export type JobEvent = { type: 'CANCEL' };

const exitOutcome = (exitCode: number): JobOutcome =>
  exitCode === 0 ? { status: 'ok', exitCode } : { status: 'failed', exitCode, reason: `exit code ${exitCode}` };

export const jobMachine = setup({
  types: {
    input: {} as JobInput,
    context: {} as JobContext,
    events: {} as JobEvent,
  },
  actors: {
    /** Watches the job to its end (recording bounded `job.output`), enforcing its deadline. */
    runJob: fromPromise<JobOutcome, JobContext>(async () => {
      throw new Error('runJob not provided');
    }),
    /** Stops the job (the whole process group: SIGTERM, then SIGKILL) and waits until it is gone. */
    stopJob: fromPromise<Partial<JobOutcome>, JobContext>(async () => ({})),
    /** Looks at what a restored job left: its process, its exit file. */
    inspectJob: fromPromise<JobInspection, JobContext>(async () => ({ running: false, exitCode: null, onRestart: 'reattach' as const })),
  },
  actions: {
    /** Records `job.settled` with `context.outcome` and delivers the result to the session as an input. */
    recordSettled: () => {},
  },
  guards: {
    resumed: ({ context }) => context.resumed,
    cancelRequested: ({ context }) => context.cancelRequested,
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({ ...input, stopReason: null, outcome: null }),
  initial: 'starting',
  states: {
    starting: {
      always: [
        { guard: 'resumed', target: 'restoring' },
        { guard: 'cancelRequested', target: 'stopping', actions: assign({ stopReason: 'cancel requested' }) },
        { target: 'running' },
      ],
    },
    restoring: {
      on: { CANCEL: { actions: assign({ cancelRequested: true }) } },
      invoke: {
        src: 'inspectJob',
        input: ({ context }) => context,
        onDone: [
          {
            guard: ({ event }) => event.output.exitCode !== null,
            target: 'settled',
            actions: assign({ outcome: ({ event }) => exitOutcome(event.output.exitCode!) }),
          },
          {
            guard: ({ context, event }) => event.output.running && context.cancelRequested,
            target: 'stopping',
            actions: assign({ stopReason: 'cancel requested' }),
          },
          {
            guard: ({ event }) => event.output.running && event.output.onRestart === 'kill',
            target: 'stopping',
            actions: assign({ stopReason: 'stopped after a restart (jobs.onRestart is "kill")' }),
          },
          { guard: ({ event }) => event.output.running, target: 'running' },
          {
            target: 'settled',
            actions: assign({
              outcome: {
                status: 'lost',
                reason: 'its process was gone after a restart and left no exit status; it was not run again',
              },
            }),
          },
        ],
        onError: {
          target: 'settled',
          actions: assign({ outcome: ({ event }) => ({ status: 'lost' as const, reason: `its process could not be inspected after a restart: ${errorMessage(event.error)}` }) }),
        },
      },
    },
    running: {
      on: { CANCEL: { target: 'stopping', actions: assign({ stopReason: 'cancel requested' }) } },
      invoke: {
        src: 'runJob',
        input: ({ context }) => context,
        onDone: { target: 'settled', actions: assign({ outcome: ({ event }) => event.output }) },
        onError: {
          target: 'settled',
          actions: assign({ outcome: ({ event }) => ({ status: 'failed' as const, reason: errorMessage(event.error) }) }),
        },
      },
    },
    stopping: {
      invoke: {
        src: 'stopJob',
        input: ({ context }) => context,
        onDone: {
          target: 'settled',
          actions: assign({ outcome: ({ context, event }) => ({ ...event.output, status: 'cancelled' as const, reason: context.stopReason ?? 'cancelled' }) }),
        },
        onError: {
          target: 'settled',
          actions: assign({
            outcome: ({ context, event }) => ({ status: 'cancelled' as const, reason: `${context.stopReason ?? 'cancelled'}; stopping it failed: ${errorMessage(event.error)}` }),
          }),
        },
      },
    },
    settled: {
      type: 'final',
      entry: 'recordSettled',
    },
  },
  output: ({ context }) => context.outcome,
});

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
