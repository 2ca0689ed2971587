import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, initialTransition, transition, waitFor, type Actor } from 'xstate';
import { jobMachine, type JobContext, type JobInput, type JobInspection, type JobOutcome } from '../../machines/job.machine.js';
import { sessionMachine, type SessionEvent } from '../../machines/session.machine.js';
import { ev, SMALL_INPUT } from './harness.js';

/** The job machine as a live actor with fake implementations, provided the way actors/job.ts provides the real ones. */

const INPUT: JobInput = { sessionId: 'ses_test', jobId: 'job_1', kind: 'bash', resumed: false, cancelRequested: false };

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

interface Fakes {
  run?: (signal: AbortSignal) => Promise<JobOutcome>;
  inspect?: () => Promise<JobInspection>;
  stop?: () => Promise<Partial<JobOutcome>>;
}

function startJob(fakes: Fakes, input: Partial<JobInput> = {}) {
  const settled: JobOutcome[] = [];
  const started: string[] = [];
  const aborted: string[] = [];
  const machine = jobMachine.provide({
    actors: {
      runJob: fromPromise<JobOutcome, JobContext>(async ({ signal }) => {
        started.push('runJob');
        signal.addEventListener('abort', () => aborted.push('runJob'));
        return fakes.run ? fakes.run(signal) : { status: 'ok', exitCode: 0 };
      }),
      inspectJob: fromPromise<JobInspection, JobContext>(async () => {
        started.push('inspectJob');
        return fakes.inspect ? fakes.inspect() : { running: false, exitCode: null, onRestart: 'reattach' };
      }),
      stopJob: fromPromise<Partial<JobOutcome>, JobContext>(async () => {
        started.push('stopJob');
        return fakes.stop ? fakes.stop() : {};
      }),
    },
    actions: { recordSettled: ({ context }) => void settled.push(context.outcome!) },
  });
  const actor = createActor(machine, { input: { ...INPUT, ...input } });
  actor.start();
  return { actor, settled, started, aborted };
}

const done = (actor: Actor<typeof jobMachine>) => waitFor(actor, (s) => s.status === 'done', { timeout: 2_000 });
const never = <T>() => new Promise<T>(() => {});
const inspection = (patch: Partial<JobInspection>): JobInspection => ({ running: false, exitCode: null, onRestart: 'reattach', ...patch });

describe('job machine', () => {
  it('job machine - a fresh job is watched until it ends and settles once with the outcome', async () => {
    const { actor, settled, started } = startJob({ run: async () => ({ status: 'failed', exitCode: 2, reason: 'exit code 2' }) });
    expect(actor.getSnapshot().value).toBe('running');
    await done(actor);
    expect(started).toEqual(['runJob']);
    expect(settled).toEqual([{ status: 'failed', exitCode: 2, reason: 'exit code 2' }]);
  });

  it('job machine - CANCEL while running stops the watch, stops the job and settles cancelled', async () => {
    const { actor, settled, started, aborted } = startJob({ run: () => never(), stop: async () => ({ signal: 'SIGTERM' }) });
    actor.send({ type: 'CANCEL' });
    await done(actor);
    expect(aborted).toEqual(['runJob']);
    expect(started).toEqual(['runJob', 'stopJob']);
    expect(settled).toEqual([{ status: 'cancelled', signal: 'SIGTERM', reason: 'cancel requested' }]);
  });

  it('job machine - a failing watch settles failed with the error', async () => {
    const { actor, settled } = startJob({ run: async () => Promise.reject(new Error('disk gone')) });
    await done(actor);
    expect(settled).toEqual([{ status: 'failed', reason: 'disk gone' }]);
  });

  it('job machine - restored with an exit status left behind: settles from it, never runs', async () => {
    const { actor, settled, started } = startJob({ inspect: async () => inspection({ exitCode: 0 }) }, { resumed: true });
    await done(actor);
    expect(started).toEqual(['inspectJob']);
    expect(settled).toEqual([{ status: 'ok', exitCode: 0 }]);
  });

  it('job machine - restored while its process runs: re-attached (watched again)', async () => {
    const { actor, settled, started } = startJob({ inspect: async () => inspection({ running: true }) }, { resumed: true });
    await done(actor);
    expect(started).toEqual(['inspectJob', 'runJob']);
    expect(settled).toEqual([{ status: 'ok', exitCode: 0 }]);
  });

  it('job machine - restored while running with onRestart kill: stopped and settled cancelled', async () => {
    const { actor, settled, started } = startJob({ inspect: async () => inspection({ running: true, onRestart: 'kill' }) }, { resumed: true });
    await done(actor);
    expect(started).toEqual(['inspectJob', 'stopJob']);
    expect(settled[0]).toMatchObject({ status: 'cancelled', reason: expect.stringContaining('onRestart') });
  });

  it('job machine - restored with its process gone and no exit status: lost, never run again', async () => {
    const { actor, settled, started } = startJob({}, { resumed: true });
    await done(actor);
    expect(started).toEqual(['inspectJob']);
    expect(settled).toEqual([{ status: 'lost', reason: expect.stringContaining('not run again') }]);
  });

  it('job machine - a cancel arriving while it is being inspected stops a job found running', async () => {
    const found = deferred<JobInspection>();
    const { actor, settled, started } = startJob({ inspect: () => found.promise }, { resumed: true });
    actor.send({ type: 'CANCEL' });
    found.resolve(inspection({ running: true }));
    await done(actor);
    expect(started).toEqual(['inspectJob', 'stopJob']);
    expect(settled[0]).toMatchObject({ status: 'cancelled' });
  });

  it('job machine - spawned with a cancel already recorded: stops the job at once', async () => {
    const { actor, settled, started } = startJob({}, { cancelRequested: true });
    await done(actor);
    expect(started).toEqual(['stopJob']);
    expect(settled[0]).toMatchObject({ status: 'cancelled' });
  });
});

describe('session machine - jobs', () => {
  const jobStarted = (jobId: string) =>
    ev('job.started', { jobId, kind: 'bash', summary: 'sleep 1', pid: 100, pgid: 100, processStartTime: 1, outputPath: `/h/jobs/${jobId}.out`, timeoutMs: 1_000, startedAt: '2025-01-01T00:00:00.000Z' });
  const jobChildren = (s: ReturnType<typeof initialTransition<typeof sessionMachine>>[0]) =>
    Object.entries(s.children as Record<string, { src?: unknown }>).filter(([, r]) => r?.src === 'job').map(([id]) => id);
  const step = (s: ReturnType<typeof initialTransition<typeof sessionMachine>>[0], e: SessionEvent) => transition(sessionMachine, s, e);

  it('session machine - job.started spawns a job child; job.settled removes it', () => {
    let [s] = initialTransition(sessionMachine, SMALL_INPUT);
    [s] = step(s, jobStarted('job_a'));
    expect(s.context.jobs).toEqual({ job_a: { kind: 'bash', live: true, cancelRequested: false } });
    expect(jobChildren(s)).toEqual(['job_a']);
    [s] = step(s, ev('job.settled', { jobId: 'job_a', status: 'ok', exitCode: 0, outputTail: '', outputBytes: 0 }));
    expect(s.context.jobs).toEqual({});
    expect(jobChildren(s)).toEqual([]);
    expect(s.value).toBe('idle');
  });

  it('session machine - a cancel naming a job goes to the job child, not to the activity', () => {
    let [s] = initialTransition(sessionMachine, SMALL_INPUT);
    [s] = step(s, jobStarted('job_a'));
    const [next, actions] = step(s, ev('cancel.requested', { jobId: 'job_a' }));
    expect(next.context.jobs.job_a!.cancelRequested).toBe(true);
    expect(actions.some((a) => a.type === 'xstate.sendTo')).toBe(true);
    // A cancel naming an unknown job changes nothing.
    const [same] = step(s, ev('cancel.requested', { jobId: 'job_x' }));
    expect(same.context.jobs).toEqual(s.context.jobs);
  });

  it('session machine - CHECK gives a child to each job restored without one, with the recorded cancel', () => {
    let [s] = initialTransition(sessionMachine, SMALL_INPUT);
    [s] = step(s, jobStarted('job_a'));
    [s] = step(s, jobStarted('job_b'));
    // As the runtime restores it: no child is live.
    const restored = sessionMachine.resolveState({
      value: 'idle',
      context: { ...s.context, jobs: { job_a: { kind: 'bash', live: false, cancelRequested: true }, job_b: { kind: 'bash', live: false, cancelRequested: false } } },
    });
    expect(jobChildren(restored)).toEqual([]);
    const [checked, actions] = step(restored, { type: 'CHECK' });
    expect(jobChildren(checked).sort()).toEqual(['job_a', 'job_b']);
    expect(Object.values(checked.context.jobs).every((j) => j.live)).toBe(true);
    expect(actions.filter((a) => a.type === 'xstate.spawnChild')).toHaveLength(2);
    // A second CHECK spawns nothing more.
    expect(step(checked, { type: 'CHECK' })[1].filter((a) => a.type === 'xstate.spawnChild')).toEqual([]);
  });
});
