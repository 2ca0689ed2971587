import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exitPathOf } from '../../actors/job.js';
import { groupAlive, signalGroup } from '../../tools/process.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { loom, spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';

/** `loom run` against the scripted model: the model starts a background bash job and answers its result. */

async function setup(script: ScriptedTurn[]) {
  const server = await startScriptedOpenAIServer({ script, respond: () => ({ text: 'nothing more to say' }) });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
  return { server, home, dir, env };
}

const background = (command: string): ScriptedTurn => ({ toolCalls: [{ name: 'bash', arguments: { command, background: true, description: 'a test job' } }] });
const userContents = (body: unknown) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'user').map((m) => m.content);

interface JobJson {
  jobId: string;
  sessionId: string;
  status: string;
  exitCode: number | null;
  pgid: number | null;
  outputPath: string;
  process: string | null;
  reason: string | null;
}

async function jobs(env: NodeJS.ProcessEnv, sessionId?: string): Promise<JobJson[]> {
  const r = await loom(['jobs', ...(sessionId ? [sessionId] : []), '--json'], env);
  expect(r.code).toBe(0);
  return r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n').map((l) => JSON.parse(l) as JobJson);
}

/** Stops a job's process group left by a failed test. */
function reap(pgid: number | null): void {
  if (pgid !== null) onCleanup(() => void (groupAlive(pgid) && signalGroup(pgid, 'SIGKILL')));
}

async function eventually(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('loom CLI - background jobs (real processes)', () => {
  it('loom run - waits for the background job its activity started, delivers the result, and loom jobs shows it', async () => {
    const { env, dir, server } = await setup([background('echo hello-from-job; sleep 0.5; echo bye'), { text: 'Started it.' }, { text: 'The job said hello.' }]);
    const r = await loom(['run', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, 'run it in the background'], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/waiting for 1 background job/);
    expect(r.stderr).toMatch(/⚙ job job_\S+ ok \(exit 0\)/);
    expect(r.stdout).toContain('Started it.');
    expect(r.stdout).toContain('The job said hello.');
    expect(server.requests).toHaveLength(3);
    expect(userContents(server.requests[2]!.body).at(-1)).toMatch(/\[background job job_\S+\] bash `echo hello-from-job.*` finished successfully[\s\S]*hello-from-job\nbye/);
    const sessionId = r.stderr.match(/session (ses_\S+)/)![1]!;
    const [job] = await jobs(env, sessionId);
    expect(job).toMatchObject({ sessionId, status: 'ok', exitCode: 0, process: null });
    const human = await loom(['jobs'], env);
    expect(human.stdout).toMatch(new RegExp(`${job!.jobId}  ${sessionId}  bash  ok \\(exit 0\\)`));
  });

  it('loom run --detach-jobs - leaves the job running with its group recorded; loom jobs cancel stops it from another process', async () => {
    const { env, dir } = await setup([background('sleep 30'), { text: 'Started it.' }, { text: 'It was cancelled.' }]);
    const r = await loom(['run', '--detach-jobs', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, 'start a long job'], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/1 background job left running/);
    const sessionId = r.stderr.match(/session (ses_\S+)/)![1]!;
    const [job] = await jobs(env, sessionId);
    reap(job!.pgid);
    expect(job).toMatchObject({ status: 'running', process: 'alive', pgid: expect.any(Number) });
    expect(groupAlive(job!.pgid!)).toBe(true);

    const cancel = await loom(['jobs', 'cancel', job!.jobId.slice(0, 20)], env);
    expect(cancel.code).toBe(0);
    expect(cancel.stderr).toContain(`job ${job!.jobId} cancelled`);
    expect(cancel.stdout).toContain('It was cancelled.');
    expect(groupAlive(job!.pgid!)).toBe(false);
    const [after] = await jobs(env, sessionId);
    expect(after).toMatchObject({ status: 'cancelled', reason: 'cancel requested' });
    const again = await loom(['jobs', 'cancel', job!.jobId], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already settled \(cancelled\)/);
  });

  it('loom prompt - the next owner of a session settles a job that finished while it was detached, and answers its result', async () => {
    const { env, dir, server } = await setup([background('sleep 0.5; echo finished-alone'), { text: 'Started it.' }]);
    const r = await loom(['run', '--detach-jobs', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, 'start it'], env);
    expect(r.code).toBe(0);
    const sessionId = r.stderr.match(/session (ses_\S+)/)![1]!;
    const [job] = await jobs(env, sessionId);
    reap(job!.pgid);
    await eventually(() => existsSync(exitPathOf(job!.outputPath, job!.jobId)));
    expect((await jobs(env, sessionId))[0]).toMatchObject({ status: 'running', process: 'exited' });
    const prompt = await loom(['prompt', sessionId, '--queue', 'anything new?'], env);
    expect(prompt.code).toBe(0);
    expect((await jobs(env, sessionId))[0]).toMatchObject({ status: 'ok', exitCode: 0 });
    const seen = server.requests.slice(2).flatMap((req) => userContents(req.body));
    expect(seen.some((c) => c.includes('finished-alone'))).toBe(true);
  });

  it('loom jobs cancel - while loom run waits for the job, the live owner stops it and run finishes', async () => {
    const { env, dir } = await setup([background('sleep 30'), { text: 'Started it.' }, { text: 'It was cancelled.' }]);
    const run = spawnLoom(['run', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, 'start a long job'], env);
    onCleanup(() => void run.kill());
    await run.stderrUntil(/waiting for 1 background job \((job_\S+)\)/);
    const [job] = await jobs(env);
    reap(job!.pgid);
    const cancel = await loom(['jobs', 'cancel', job!.jobId], env);
    expect(cancel.code).toBe(0);
    expect(cancel.stderr).toMatch(/recorded; the live owner of ses_\S+ will stop job/);
    const r = await run.done;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/⚙ job job_\S+ cancelled: cancel requested/);
    expect(r.stdout).toContain('It was cancelled.');
    expect(groupAlive(job!.pgid!)).toBe(false);
  });

  it('loom run - Ctrl-C while it waits for a background job cancels the job', async () => {
    const { env, dir } = await setup([background('sleep 30'), { text: 'Started it.' }, { text: 'Stopped.' }]);
    const run = spawnLoom(['run', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, 'start a long job'], env);
    onCleanup(() => void run.kill());
    await run.stderrUntil(/waiting for 1 background job/);
    const [job] = await jobs(env);
    reap(job!.pgid);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/⚙ job job_\S+ cancelled/);
    expect(groupAlive(job!.pgid!)).toBe(false);
  });
});
