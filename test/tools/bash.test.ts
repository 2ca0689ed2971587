import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BASH_OUTPUT_BYTES_MAX, BASH_TIMEOUT_MAX_MS } from '../../core/limits.js';
import { bashTool, OutputCapture, runInGroup } from '../../tools/builtin/bash.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import { ToolServiceUnavailableError, ToolCancelledError, ToolInputError } from '../../tools/errors.js';
import { groupAlive, processAlive, processStartTime, readProcStat } from '../../tools/process.js';
import type { JobSpec, ToolContext } from '../../tools/types.js';
import { tempDir } from '../helpers.js';

function context(overrides: Partial<ToolContext> = {}): ToolContext {
  return {
    sessionId: 'ses_test',
    activityId: '',
    callId: 'call_1',
    location: realpathSync(tempDir()),
    home: tempDir(),
    signal: new AbortController().signal,
    services: {},
    ...overrides,
  };
}

const registry = createDefaultRegistry();
const run = (input: unknown, ctx = context()) => registry.execute('bash', input, ctx);

/** Pids printed one per line by `echo $!`. */
const pidsIn = (text: string) => [...text.matchAll(/^(\d+)$/gm)].map((m) => Number(m[1]));

/** Polls until `check` holds (processes take a moment to die after SIGKILL). */
async function eventually(check: () => boolean, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

describe('bash tool', () => {
  it('bash - returns stdout and stderr together with the exit code', async () => {
    const r = await run({ command: 'echo out; echo err >&2; exit 0' });
    expect(r.output).toContain('out');
    expect(r.output).toContain('err');
    expect(r.output).toMatch(/\[exit code 0\]$/);
    expect(r.metadata).toMatchObject({ exitCode: 0, signal: null, timedOut: false });
  });

  it('bash - reports a non-zero exit code as a result, not an error', async () => {
    const r = await run({ command: 'echo failing; exit 3' });
    expect(r.output).toBe('failing\n[exit code 3]');
    expect(r.metadata).toMatchObject({ exitCode: 3 });
  });

  it('bash - reports a command killed by a signal', async () => {
    const r = await run({ command: 'kill -SEGV $$' });
    expect(r.output).toContain('[terminated by signal SIGSEGV]');
  });

  it('bash - runs in the session directory with stdin closed', async () => {
    const ctx = context();
    writeFileSync(join(ctx.location, 'here.txt'), 'x');
    const r = await run({ command: 'pwd; ls; cat; echo "stdin done"' }, ctx);
    expect(r.output).toContain(ctx.location);
    expect(r.output).toContain('here.txt');
    expect(r.output).toContain('stdin done');
  });

  it('bash - says so when the command printed nothing', async () => {
    expect((await run({ command: 'true' })).output).toBe('(no output)\n[exit code 0]');
  });

  it('bash - runs bash (not a POSIX sh) when bash is installed', async () => {
    const r = await run({ command: 'echo "${BASH_VERSION:+bash}"; arr=(a b); echo ${#arr[@]}' });
    expect(r.output).toContain('bash\n2');
  });

  it('bash - keeps the head and the tail of long output and says how much was cut', async () => {
    // 200,000 numbered lines (~1.3 MB) through a bounded capture (the tool itself, before the registry's preview).
    const r = await bashTool.execute(bashTool.input.parse({ command: 'seq 1 200000' }), context());
    expect(Buffer.byteLength(r.output)).toBeLessThan(BASH_OUTPUT_BYTES_MAX + 200);
    expect(r.output.startsWith('1\n2\n3\n')).toBe(true);
    expect(r.output).toMatch(/199999\n200000\n\[exit code 0\]$/);
    const cut = r.output.match(/\[\.\.\. (\d+) bytes of output cut \((\d+) in all\) \.\.\.\]/);
    expect(cut).not.toBeNull();
    expect(Number(cut![2])).toBe(1_288_895); // bytes of `seq 1 200000`
    expect(Number(cut![1])).toBe(1_288_895 - (BASH_OUTPUT_BYTES_MAX - 0)); // head + tail kept exactly
    expect(r.metadata).toMatchObject({ outputBytes: 1_288_895 });
  });

  it('bash - through the registry, a capture over 2,000 lines reaches the model as a preview whose tail has the exit code', async () => {
    const ctx = context();
    const r = await run({ command: 'seq 1 200000' }, ctx);
    expect(r.truncated).toBe(true);
    expect(r.output.startsWith('1\n2\n3\n')).toBe(true);
    expect(r.output).toContain('[exit code 0]');
    expect(r.output).toContain(join(ctx.home, 'tool-output'));
  });

  it('bash - output capture never splits a character around the cut', () => {
    const capture = new OutputCapture(10);
    capture.add(Buffer.from('ééééééééé')); // 18 bytes of 2-byte characters
    const { text, cutBytes } = capture.render();
    expect(text).not.toContain('\ufffd');
    expect(text).toMatch(/^(é)+\n\[\.\.\. \d+ bytes of output cut \(18 in all\) \.\.\.\]\n(é)+$/);
    expect(cutBytes).toBe(18 - Buffer.byteLength(text.split('\n')[0]!) - Buffer.byteLength(text.split('\n')[2]!));
  });

  it('bash - a timeout stops the whole process group, grandchildren included', async () => {
    const r = await run({ command: 'sleep 100 & echo $!; (sleep 100 & echo $!; wait) & sleep 100; wait', timeout: 500 });
    expect(r.output).toMatch(/\[timed out; the command and every process it started were stopped/);
    expect(r.metadata).toMatchObject({ timedOut: true });
    const pids = pidsIn(r.output);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(await eventually(() => !processAlive(pid))).toBe(true);
  });

  it('bash - a process that ignores SIGTERM is killed after the grace', async () => {
    const r = await run({ command: `trap '' TERM; sh -c 'trap "" TERM; sleep 100' & echo $!; sleep 100`, timeout: 300 });
    expect(r.metadata).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    const [pid] = pidsIn(r.output);
    expect(await eventually(() => !processAlive(pid!))).toBe(true);
  });

  it('bash - a cancel stops the whole process group and reports the cancellation', async () => {
    const ac = new AbortController();
    const ctx = context({ signal: ac.signal });
    const marker = join(ctx.location, 'pids');
    const running = runInGroup(`sleep 100 & echo $! > ${marker}; sleep 100 & wait`, { cwd: ctx.location, timeoutMs: 60_000, signal: ac.signal });
    await eventually(() => existsSync(marker) && /\d/.test(readFileSync(marker, 'utf8')));
    const grandchild = Number(readFileSync(marker, 'utf8').trim());
    expect(processAlive(grandchild)).toBe(true);
    const pgid = readProcStat(grandchild)!.pgrp;
    ac.abort();
    const r = await running;
    expect(r.cancelled).toBe(true);
    expect(await eventually(() => !processAlive(grandchild) && !groupAlive(pgid))).toBe(true);
  });

  it('bash - a cancelled call through the registry rejects with ToolCancelledError and leaves nothing running', async () => {
    const ac = new AbortController();
    const ctx = context({ signal: ac.signal });
    const pending = run({ command: 'sleep 100 & echo $! > pid; wait' }, ctx);
    const pidFile = join(ctx.location, 'pid');
    await eventually(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(ToolCancelledError);
    expect(await eventually(() => !processAlive(pid))).toBe(true);
  });

  it('bash - processes a finished command left in its group are stopped and reported', async () => {
    const r = await run({ command: 'sleep 100 & echo $!' });
    const [pid] = pidsIn(r.output);
    expect(r.output).toContain('[exit code 0]');
    expect(r.output).toContain('left running in the background were stopped');
    expect(await eventually(() => !processAlive(pid!))).toBe(true);
  });

  it('bash - refuses a foreground timeout above the maximum, naming the field', async () => {
    const err = await run({ command: 'true', timeout: BASH_TIMEOUT_MAX_MS + 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolInputError);
    expect((err as Error).message).toMatch(/"timeout": at most 600000 ms for a foreground command/);
  });

  it('bash - refuses an empty command', async () => {
    await expect(run({ command: '' })).rejects.toBeInstanceOf(ToolInputError);
  });

  it('bash - a command in a directory that is gone fails to start with a clear error', async () => {
    const err = await run({ command: 'true' }, context({ location: '/nonexistent/loom/dir' })).catch((e: unknown) => e);
    expect((err as Error).name).toBe('CommandStartError');
    expect((err as Error).message).toMatch(/could not start its command/);
  });

  it('bash - background without a job service fails clearly', async () => {
    await expect(run({ command: 'sleep 1', background: true })).rejects.toBeInstanceOf(ToolServiceUnavailableError);
  });

  it('bash - background hands the command to the job service and returns the job id at once', async () => {
    const started: JobSpec[] = [];
    const ctx = context({
      services: {
        jobs: {
          async start(spec) {
            started.push(spec);
            return { jobId: 'job_1', outputPath: '/home/jobs/job_1.out' };
          },
        },
      },
    });
    const r = await run({ command: 'make all', background: true, timeout: 3_600_000 }, ctx);
    expect(started).toEqual([{ kind: 'bash', command: 'make all', description: undefined, timeoutMs: 3_600_000 }]);
    expect(r.output).toContain('job_1');
    expect(r.output).toContain('/home/jobs/job_1.out');
  });

  it('bash - is declared not idempotent, with a registry timeout covering the longest call', () => {
    expect(bashTool.idempotent).toBe(false);
    expect(bashTool.timeoutMs).toBeGreaterThan(BASH_TIMEOUT_MAX_MS);
  });
});

describe('process helpers', () => {
  it('process - reads a process start time from /proc and tells a recycled pid apart', () => {
    const start = processStartTime(process.pid);
    expect(start).toBeGreaterThan(0);
    expect(processAlive(process.pid, start)).toBe(true);
    expect(processAlive(process.pid, start! + 1)).toBe(false);
    expect(processAlive(2 ** 22 + 12345)).toBe(false);
  });
});
