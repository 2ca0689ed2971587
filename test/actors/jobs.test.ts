import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverUnsettled } from '../../actors/discovery.js';
import { exitPathOf } from '../../actors/job.js';
import { JOB_OUTPUT_EVENT_BYTES_MAX, JOB_OUTPUT_EVENTS_BYTES_MAX, JOBS_RUNNING_PER_SESSION_MAX } from '../../core/limits.js';
import type { AnyEnvelope } from '../../store/index.js';
import { JobLimitError } from '../../tools/errors.js';
import { groupAlive, processAlive, signalGroup } from '../../tools/process.js';
import type { JobSpec, SubagentRunner, ToolContext } from '../../tools/types.js';
import type { ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { createHarness, type Harness } from './harness.js';

const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];
const userContents = (body: unknown) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'user').map((m) => m.content);

/** The model starts a background bash job, says so, and later answers the job's result. */
const backgroundTurns = (command: string, answer = 'the job is done'): ScriptedTurn[] => [
  { toolCalls: [{ name: 'bash', arguments: { command, background: true } }] },
  { text: 'started it' },
  { text: answer },
];

const allow = { permission: { rules: [{ tool: '*', action: 'allow' as const }] } };

async function eventually(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts a job directly through the session's job service (as a tool would). */
function startJob(h: Harness, spec: JobSpec, coordinator = h.coordinator) {
  const actor = coordinator.get(h.sessionId) ?? coordinator.own(h.sessionId)!;
  const ctx: ToolContext = {
    sessionId: h.sessionId,
    activityId: '',
    callId: '',
    location: h.location,
    home: h.home,
    signal: new AbortController().signal,
    services: actor.deps.toolServices ?? {},
  };
  return actor.deps.toolServices!.jobs!.start(spec, ctx);
}

const bash = (command: string, timeoutMs = 60_000): JobSpec => ({ kind: 'bash', command, timeoutMs });
const jobRow = (h: Harness, jobId: string) => h.store.queries.job(jobId)!;

describe('background jobs', () => {
  it('jobs - a background bash job runs past the turn; its result is delivered as an input that wakes the session', async () => {
    const h = await createHarness({ script: backgroundTurns('echo first; sleep 0.5; echo second'), config: allow });
    h.admit('steer', 'run it in the background');
    await h.run(); // quiet: the activity settled while the job still runs
    const afterTurn = h.events();
    expect(of(afterTurn, 'activity.settled')).toHaveLength(1);
    const started = of(afterTurn, 'job.started')[0]!;
    expect(started.data).toMatchObject({ kind: 'bash', summary: 'echo first; sleep 0.5; echo second', pid: expect.any(Number), pgid: started.data.pid });
    expect(started.data.processStartTime).toBeGreaterThan(0);
    expect(started.data.activityId).toBe(of(afterTurn, 'activity.opened')[0]!.data.activityId);
    const tool = of(afterTurn, 'tool.settled')[0]!;
    expect(tool.data.output).toContain(started.data.jobId);

    await h.coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    const events = h.events();
    const settled = of(events, 'job.settled')[0]!;
    expect(settled.data).toMatchObject({ jobId: started.data.jobId, status: 'ok', exitCode: 0, outputTail: 'first\nsecond\n', outputBytes: 13 });
    const delivered = of(events, 'input.admitted').find((e) => e.data.source === `job:${started.data.jobId}`)!;
    expect(delivered.data.mode).toBe('queue');
    expect(delivered.data.text).toContain('finished successfully');
    expect(delivered.seq).toBeLessThan(settled.seq);
    // The delivered result opened a second activity; the model saw it.
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
    expect(userContents(h.server.requests[2]!.body).at(-1)).toContain('first\nsecond');
    expect(jobRow(h, started.data.jobId)).toMatchObject({ status: 'ok', exitCode: 0, outputBytes: 13 });
    expect(readFileSync(started.data.outputPath, 'utf8')).toBe('first\nsecond\n');
    expect(readFileSync(exitPathOf(started.data.outputPath, started.data.jobId), 'utf8').trim()).toBe('0');
  });
});

describe('background jobs - output, limits, cancel', () => {
  it('jobs - output is reported in bounded job.output events while the job runs', async () => {
    const h = await createHarness({ script: [{ text: 'noted' }], config: allow });
    h.coordinator.own(h.sessionId);
    // Prints more per second than one event may carry, for longer than the per-job budget lasts.
    const { jobId } = await startJob(h, bash('for i in $(seq 1 30); do head -c 6000 /dev/zero | tr "\\\\0" x; echo; sleep 0.1; done'));
    await h.coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    const outputs = of(h.events(), 'job.output').filter((e) => e.data.jobId === jobId);
    expect(outputs.length).toBeGreaterThan(1);
    let total = 0;
    let last = -1;
    for (const e of outputs) {
      const bytes = Buffer.byteLength(e.data.chunk);
      expect(bytes).toBeLessThanOrEqual(JOB_OUTPUT_EVENT_BYTES_MAX);
      expect(e.data.offset).toBeGreaterThan(last); // in file order, never repeated
      last = e.data.offset;
      total += bytes;
    }
    expect(total).toBeLessThanOrEqual(JOB_OUTPUT_EVENTS_BYTES_MAX);
    expect(outputs.some((e) => (e.data.skippedBytes ?? 0) > 0)).toBe(true); // the newest bytes won
    const settled = of(h.events(), 'job.settled')[0]!;
    expect(settled.data.outputBytes).toBe(30 * 6001);
    expect(Buffer.byteLength(settled.data.outputTail)).toBeLessThanOrEqual(8 * 1024);
  });

  it('jobs - a job that exits non-zero settles failed with its exit code; one past its deadline settles timed_out and its group is stopped', async () => {
    const h = await createHarness({ config: allow });
    h.coordinator.own(h.sessionId);
    const failing = await startJob(h, bash('echo broken >&2; exit 7'));
    const slow = await startJob(h, bash('sleep 100 & echo $! > grandchild; sleep 100', 500));
    await h.coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, failing.jobId)).toMatchObject({ status: 'failed', exitCode: 7, outputTail: 'broken\n' });
    const timed = jobRow(h, slow.jobId);
    expect(timed).toMatchObject({ status: 'timed_out' });
    expect(groupAlive(timed.pgid!)).toBe(false);
    const grandchild = Number(readFileSync(join(h.location, 'grandchild'), 'utf8'));
    expect(processAlive(grandchild)).toBe(false);
    const texts = of(h.events(), 'input.admitted').filter((e) => e.data.source?.startsWith('job:')).map((e) => e.data.text);
    expect(texts.some((t) => t.includes('failed: exit code 7'))).toBe(true);
    expect(texts.some((t) => t.includes('timed out'))).toBe(true);
  });

  it('jobs - a session runs at most JOBS_RUNNING_PER_SESSION_MAX jobs; one more fails clearly and starts nothing', async () => {
    const h = await createHarness({ config: allow });
    h.coordinator.own(h.sessionId);
    const jobs = [];
    for (let i = 0; i < JOBS_RUNNING_PER_SESSION_MAX; i++) jobs.push(await startJob(h, bash('sleep 100')));
    const err = await startJob(h, bash('echo never > never.txt')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobLimitError);
    expect((err as Error).message).toMatch(/already runs 8 background jobs/);
    expect(existsSync(join(h.location, 'never.txt'))).toBe(false);
    expect(h.store.queries.runningJobCount(h.sessionId)).toBe(JOBS_RUNNING_PER_SESSION_MAX);
    for (const j of jobs) h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { jobId: j.jobId } });
    await eventually(() => h.store.queries.runningJobCount(h.sessionId) === 0);
  });

  it('jobs - cancel.requested naming a job stops its whole process group and settles it cancelled; the result is delivered', async () => {
    const h = await createHarness({ script: [{ text: 'ok, cancelled' }], config: allow });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, bash('sleep 100 & echo $! > grandchild; echo started; sleep 100'));
    await eventually(() => existsSync(join(h.location, 'grandchild')));
    const row = jobRow(h, jobId);
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { jobId, reason: 'test' } });
    await h.coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, jobId)).toMatchObject({ status: 'cancelled', cancelRequested: true, reason: 'cancel requested' });
    expect(groupAlive(row.pgid!)).toBe(false);
    expect(processAlive(Number(readFileSync(join(h.location, 'grandchild'), 'utf8')))).toBe(false);
    const delivered = of(h.events(), 'input.admitted').find((e) => e.data.source === `job:${jobId}`)!;
    expect(delivered.data.text).toContain('was cancelled');
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
  });

  it('jobs - cancelling the activity that started a job leaves the job running', async () => {
    const h = await createHarness({
      script: [{ toolCalls: [{ name: 'bash', arguments: { command: 'sleep 0.8; echo survived', background: true } }, { name: 'sleep', arguments: { ms: 5_000 } }] }, { text: 'result seen' }],
      config: allow,
    });
    h.admit('steer', 'go');
    const run = h.run();
    const started = (await h.waitFor((e) => e.type === 'job.started')) as Extract<AnyEnvelope, { type: 'job.started' }>;
    await h.waitFor((e) => e.type === 'tool.started' && h.store.queries.toolCalls(h.sessionId).find((c) => c.callId === e.data.callId)?.tool === 'sleep');
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId: started.data.activityId! } });
    await run;
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('cancelled');
    expect(jobRow(h, started.data.jobId).status).toBe('running');
    h.coordinator.wake(h.sessionId); // the cancel parked the session; the job's result un-parks it anyway
    await h.coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, started.data.jobId)).toMatchObject({ status: 'ok', outputTail: 'survived\n' });
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['cancelled', 'completed']);
  });

  it('jobs - with jobs.deliver "steer" the result joins the running activity at its next boundary', async () => {
    const h = await createHarness({
      script: [
        { toolCalls: [{ name: 'bash', arguments: { command: 'echo quick', background: true } }] },
        { toolCalls: [{ name: 'sleep', arguments: { ms: 1_000 } }] },
        { text: 'saw the job result in this same activity' },
      ],
      config: { ...allow, jobs: { deliver: 'steer' } },
    });
    h.admit('steer', 'go');
    h.coordinator.own(h.sessionId);
    await h.coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    const events = h.events();
    const delivered = of(events, 'input.admitted').find((e) => e.data.source?.startsWith('job:'))!;
    expect(delivered.data.mode).toBe('steer');
    expect(of(events, 'activity.opened')).toHaveLength(1);
    expect(userContents(h.server.requests[2]!.body).at(-1)).toContain('quick');
  });

  it('jobs - a task job runs the subagent and delivers its answer; without a subagent runner it fails clearly', async () => {
    const runs: string[] = [];
    const subagents: SubagentRunner = {
      async run(request) {
        runs.push(request.prompt);
        return { sessionId: 'ses_child', status: 'completed', text: `answer to ${request.prompt}` };
      },
    };
    const h = await createHarness({ config: allow, toolServices: { subagents } });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, { kind: 'task', prompt: 'find the bug', description: 'bug hunt', timeoutMs: 60_000 });
    await h.coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(runs).toEqual(['find the bug']);
    expect(jobRow(h, jobId)).toMatchObject({ kind: 'task', status: 'ok', outputTail: 'answer to find the bug', pid: null });
    expect(of(h.events(), 'input.admitted').find((e) => e.data.source === `job:${jobId}`)!.data.text).toContain('task "bug hunt" finished successfully');

    const bare = await createHarness({ config: allow, toolServices: { subagents: undefined } });
    bare.coordinator.own(bare.sessionId);
    const orphan = await startJob(bare, { kind: 'task', prompt: 'x', timeoutMs: 60_000 });
    await bare.coordinator.runUntilQuiet(bare.sessionId, { jobs: true });
    expect(jobRow(bare, orphan.jobId)).toMatchObject({ status: 'failed', reason: expect.stringContaining('no subagent runner') });
  });
});

describe('background jobs - after a restart', () => {
  it('jobs - a job still running when its owner is lost is re-attached by a new owner and settled from its exit file', async () => {
    const h = await createHarness({ script: [{ text: 'got the result' }], config: allow });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, bash('echo begin; sleep 1; echo end; exit 3'));
    h.crash(); // the owner dies; the job's process group keeps running
    const row = jobRow(h, jobId);
    expect(processAlive(row.pid!, row.processStartTime!)).toBe(true);
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, jobId)).toMatchObject({ status: 'failed', exitCode: 3, outputTail: 'begin\nend\n' });
    expect(of(h.events(), 'job.started')).toHaveLength(1); // never started again
    expect(of(h.events(), 'input.admitted').find((e) => e.data.source === `job:${jobId}`)!.data.text).toContain('exit code 3');
  });

  it('jobs - with jobs.onRestart "kill" a new owner stops a job that still runs', async () => {
    const h = await createHarness({ script: [{ text: 'noted' }], config: { ...allow, jobs: { onRestart: 'kill' } } });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, bash('sleep 100'));
    h.crash();
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    const row = jobRow(h, jobId);
    expect(row).toMatchObject({ status: 'cancelled', reason: expect.stringContaining('jobs.onRestart is "kill"') });
    expect(groupAlive(row.pgid!)).toBe(false);
  });

  it('jobs - a job that finished while no owner watched is settled from its exit file', async () => {
    const h = await createHarness({ script: [{ text: 'noted' }], config: allow });
    h.coordinator.own(h.sessionId);
    const { jobId, outputPath } = await startJob(h, bash('echo done while away'));
    h.crash();
    await eventually(() => existsSync(exitPathOf(outputPath, jobId)));
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, jobId)).toMatchObject({ status: 'ok', exitCode: 0, outputTail: 'done while away\n' });
  });

  it('jobs - a job whose process is gone without an exit file is marked lost and reported to the session, never re-run', async () => {
    const h = await createHarness({ script: [{ text: 'sorry, it was lost' }], config: allow });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, bash('echo ran >> runs.txt; sleep 100'));
    await eventually(() => existsSync(join(h.location, 'runs.txt')));
    h.crash();
    const row = jobRow(h, jobId);
    signalGroup(row.pgid!, 'SIGKILL'); // the whole group dies with the machine, say: no exit file
    await eventually(() => !groupAlive(row.pgid!));
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, jobId)).toMatchObject({ status: 'lost' });
    const delivered = of(h.events(), 'input.admitted').find((e) => e.data.source === `job:${jobId}`)!;
    expect(delivered.data.text).toContain('was lost');
    expect(readFileSync(join(h.location, 'runs.txt'), 'utf8')).toBe('ran\n');
    expect(userContents(h.server.requests[0]!.body).at(-1)).toContain('was lost');
  });

  it('jobs - a cancel recorded while no owner holds the session is carried out by the next owner', async () => {
    const h = await createHarness({ script: [{ text: 'noted' }], config: allow });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, bash('sleep 100'));
    h.crash();
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { jobId, reason: 'loom jobs cancel' } });
    const row = jobRow(h, jobId);
    expect(row.cancelRequested).toBe(true);
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, jobId)).toMatchObject({ status: 'cancelled' });
    expect(groupAlive(row.pgid!)).toBe(false);
  });

  it('jobs - a task job cannot outlive its owner: after a restart it is lost, not run again', async () => {
    let runs = 0;
    const subagents: SubagentRunner = {
      run: (request) =>
        new Promise((_, reject) => {
          runs++;
          request.signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    };
    const h = await createHarness({ script: [{ text: 'noted' }], config: allow, toolServices: { subagents } });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, { kind: 'task', prompt: 'long research', timeoutMs: 60_000 });
    await eventually(() => runs === 1);
    h.crash();
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, jobId).status).toBe('lost');
    expect(runs).toBe(1);
  });

  it('jobs - startup discovery finds an idle session whose job is unsettled and re-attaches it', async () => {
    const h = await createHarness({ script: [{ text: 'noted' }], config: allow });
    h.coordinator.own(h.sessionId);
    const { jobId } = await startJob(h, bash('sleep 0.5; echo found'));
    h.crash();
    expect(h.store.queries.session(h.sessionId)!.status).toBe('idle');
    const { coordinator } = h.restart();
    coordinator.release(h.sessionId); // a fresh process that has not looked at the session yet
    const report = await discoverUnsettled(coordinator);
    expect(report.owned).toEqual([h.sessionId]);
    await coordinator.runUntilQuiet(h.sessionId, { jobs: true });
    expect(jobRow(h, jobId)).toMatchObject({ status: 'ok', outputTail: 'found\n' });
  });
});
