import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, waitFor, type Actor } from 'xstate';
import { toolCallMachine, type PermissionVerdict, type ToolCallContext, type ToolCallInput, type ToolCallResult } from '../../machines/toolCall.machine.js';

/**
 * The tool-call machine as a live actor with fake implementations provided the way actors/
 * provides the real ones. Timeouts are real and short.
 */

const INPUT: ToolCallInput = {
  sessionId: 'ses_test',
  activityId: 'act1',
  callId: 'call1',
  tool: 'read',
  arguments: '{"path":"README.md"}',
  timeoutMs: 50,
  startNow: true,
};

/** A promise with its resolve and reject exposed. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Fakes {
  permission?: (signal: AbortSignal) => Promise<PermissionVerdict>;
  execute?: (signal: AbortSignal) => Promise<ToolCallResult>;
}

/** Starts a tool call with fake permission and execution; records every settlement and every abort. */
function startCall(fakes: Fakes, input: Partial<ToolCallInput> = {}) {
  const settled: ToolCallResult[] = [];
  const aborted: string[] = [];
  const started: string[] = [];
  const machine = toolCallMachine.provide({
    actors: {
      checkPermission: fromPromise<PermissionVerdict, ToolCallContext>(async ({ signal }) => {
        started.push('checkPermission');
        signal.addEventListener('abort', () => aborted.push('checkPermission'));
        return fakes.permission ? fakes.permission(signal) : { allow: true };
      }),
      executeTool: fromPromise<ToolCallResult, ToolCallContext>(async ({ signal }) => {
        started.push('executeTool');
        signal.addEventListener('abort', () => aborted.push('executeTool'));
        return fakes.execute ? fakes.execute(signal) : { status: 'ok', output: 'file contents' };
      }),
    },
    actions: {
      recordSettled: ({ context }) => void settled.push(context.result!),
    },
  });
  const actor = createActor(machine, { input: { ...INPUT, ...input } });
  actor.start();
  return { actor, settled, aborted, started };
}

const done = (actor: Actor<typeof toolCallMachine>) => waitFor(actor, (s) => s.status === 'done', { timeout: 2_000 });
const never = <T>() => new Promise<T>(() => {});

describe('tool call machine', () => {
  it('tool call machine - a queued call waits for START, then asks for permission', async () => {
    const permission = deferred<PermissionVerdict>();
    const { actor, settled, started } = startCall({ permission: () => permission.promise }, { startNow: false });
    expect(actor.getSnapshot().value).toBe('queued');
    await sleep(10);
    expect(started).toEqual([]);

    actor.send({ type: 'START' });
    expect(actor.getSnapshot().value).toBe('awaitingPermission');
    permission.resolve({ allow: true });
    const final = await done(actor);
    expect(final.output).toEqual({ status: 'ok', output: 'file contents' });
    expect(settled).toHaveLength(1);
  });

  it('tool call machine - a call under the concurrency bound asks for permission at once', () => {
    const { actor } = startCall({ permission: never });
    expect(actor.getSnapshot().value).toBe('awaitingPermission');
    actor.stop();
  });

  it('tool call machine - a granted call runs and settles ok with the tool result', async () => {
    const { actor, settled, started } = startCall({ execute: async () => ({ status: 'ok', output: 'ten lines', truncated: true }) });
    const final = await done(actor);
    expect(final.value).toBe('settled');
    expect(final.output).toEqual({ status: 'ok', output: 'ten lines', truncated: true });
    expect(started).toEqual(['checkPermission', 'executeTool']);
    expect(settled).toEqual([{ status: 'ok', output: 'ten lines', truncated: true }]);
  });

  it('tool call machine - a denied permission settles denied without running the tool', async () => {
    const { actor, settled, started } = startCall({ permission: async () => ({ allow: false, message: 'denied by a permission rule' }) });
    const final = await done(actor);
    expect(final.output).toEqual({ status: 'denied', output: 'Permission to run read was denied: denied by a permission rule' });
    expect(started).toEqual(['checkPermission']);
    expect(settled).toHaveLength(1);
  });

  it('tool call machine - a denial without a message says so plainly', async () => {
    const { actor } = startCall({ permission: async () => ({ allow: false }) });
    expect((await done(actor)).output).toEqual({ status: 'denied', output: 'Permission to run read was denied.' });
  });

  it('tool call machine - a failing permission check settles denied', async () => {
    const { actor, settled, started } = startCall({ permission: async () => Promise.reject(new Error('rules file unreadable')) });
    const final = await done(actor);
    expect(final.output).toEqual({ status: 'denied', output: 'Permission check failed: rules file unreadable' });
    expect(started).toEqual(['checkPermission']);
    expect(settled).toHaveLength(1);
  });

  it('tool call machine - a tool that throws settles as error', async () => {
    const { actor, settled } = startCall({ execute: async () => Promise.reject(new Error('EACCES')) });
    const final = await done(actor);
    expect(final.output).toEqual({ status: 'error', output: 'Tool failed: EACCES' });
    expect(settled).toHaveLength(1);
  });

  it('tool call machine - a tool running past its timeout settles as error "timed out" and is aborted', async () => {
    const { actor, settled, aborted } = startCall({ execute: never }, { timeoutMs: 30 });
    const begun = Date.now();
    const final = await done(actor);
    expect(Date.now() - begun).toBeGreaterThanOrEqual(25);
    expect(final.output).toEqual({ status: 'error', output: 'The tool read timed out after 30 ms.' });
    expect(aborted).toEqual(['executeTool']);
    expect(settled).toHaveLength(1);
  });

  it('tool call machine - time waiting for permission does not count toward the timeout', async () => {
    const { actor, settled } = startCall(
      {
        permission: async () => {
          await sleep(150); // five times the timeout
          return { allow: true };
        },
        execute: async () => {
          await sleep(5);
          return { status: 'ok', output: 'quick' };
        },
      },
      { timeoutMs: 30 },
    );
    const final = await done(actor);
    expect(final.output).toEqual({ status: 'ok', output: 'quick' });
    expect(settled).toEqual([{ status: 'ok', output: 'quick' }]);
  });

  it('tool call machine - the timeout counts from the start of the run, not from the permission reply', async () => {
    // Permission takes 80 ms and the tool 20 ms: 100 ms in all, over an 80 ms timeout, but the run itself fits.
    const { actor } = startCall(
      { permission: () => sleep(80).then(() => ({ allow: true })), execute: () => sleep(20).then(() => ({ status: 'ok' as const, output: 'fits' })) },
      { timeoutMs: 80 },
    );
    expect((await done(actor)).output).toEqual({ status: 'ok', output: 'fits' });
  });

  describe('CANCEL', () => {
    it('tool call machine - CANCEL while queued settles interrupted and never asks for permission', async () => {
      const { actor, settled, started } = startCall({}, { startNow: false });
      actor.send({ type: 'CANCEL' });
      const final = await done(actor);
      expect(final.output).toEqual({ status: 'interrupted', output: 'The tool call was interrupted (cancelled).' });
      expect(started).toEqual([]);
      expect(settled).toHaveLength(1);
    });

    it('tool call machine - CANCEL while awaiting permission aborts the ask and settles interrupted', async () => {
      const { actor, settled, aborted } = startCall({ permission: never });
      await sleep(5);
      actor.send({ type: 'CANCEL' });
      const final = await done(actor);
      expect(final.output).toMatchObject({ status: 'interrupted' });
      expect(aborted).toEqual(['checkPermission']);
      expect(settled).toHaveLength(1);
    });

    it('tool call machine - CANCEL while running aborts the tool and settles interrupted', async () => {
      const { actor, settled, aborted } = startCall({ execute: never }, { timeoutMs: 1_000 });
      await waitFor(actor, (s) => s.value === 'running');
      actor.send({ type: 'CANCEL' });
      const final = await done(actor);
      expect(final.output).toMatchObject({ status: 'interrupted' });
      expect(aborted).toEqual(['executeTool']);
      expect(settled).toHaveLength(1);
    });
  });

  it('tool call machine - records its settlement exactly once on every path, whatever arrives after', async () => {
    const paths: [string, Fakes, Partial<ToolCallInput>, (a: Actor<typeof toolCallMachine>) => void][] = [
      ['ok', {}, {}, () => {}],
      ['denied', { permission: async () => ({ allow: false }) }, {}, () => {}],
      ['permission error', { permission: async () => Promise.reject(new Error('x')) }, {}, () => {}],
      ['tool error', { execute: async () => Promise.reject(new Error('x')) }, {}, () => {}],
      ['timeout', { execute: never }, { timeoutMs: 10 }, () => {}],
      ['cancel queued', {}, { startNow: false }, (a) => a.send({ type: 'CANCEL' })],
      ['cancel permission', { permission: never }, {}, (a) => a.send({ type: 'CANCEL' })],
      ['cancel running', { execute: never }, { timeoutMs: 1_000 }, (a) => setTimeout(() => a.send({ type: 'CANCEL' }), 10)],
    ];
    for (const [name, fakes, input, poke] of paths) {
      const { actor, settled } = startCall(fakes, input);
      poke(actor);
      await done(actor);
      // Late events (a second cancel, a START, the timeout's would-be moment) change nothing.
      actor.send({ type: 'CANCEL' });
      actor.send({ type: 'START' });
      await sleep(15);
      expect(settled, name).toHaveLength(1);
      expect(settled[0], name).toEqual(actor.getSnapshot().output);
    }
  });
});
