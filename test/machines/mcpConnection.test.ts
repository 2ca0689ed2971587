import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, SimulatedClock } from 'xstate';
import {
  mcpConnectionMachine,
  reconnectDelayMs,
  type McpConnected,
  type McpConnectionEvent,
  type McpToolDescriptor,
} from '../../machines/mcpConnection.machine.js';

const tool = (name: string): McpToolDescriptor => ({ name, inputSchema: { type: 'object' } });

/**
 * The machine with scripted effects: each `connect` takes the next outcome (a tool list, or an
 * error); `watch` hands the test its `sendBack`; published and withdrawn lists are recorded.
 */
function harness(outcomes: (McpConnected | Error)[], input: Partial<{ connectAttemptsMax: number; stableUptimeMs: number }> = {}) {
  const clock = new SimulatedClock();
  const log: string[] = [];
  let sendBack: ((e: McpConnectionEvent) => void) | undefined;
  let watching = 0;
  const machine = mcpConnectionMachine.provide({
    actors: {
      connect: fromPromise(async () => {
        const next = outcomes.shift();
        if (next === undefined) return new Promise<McpConnected>(() => {}); // stays connecting
        if (next instanceof Error) throw next;
        return next;
      }),
      watch: fromCallback<McpConnectionEvent, { server: string }>(({ sendBack: send }) => {
        sendBack = send;
        watching++;
        return () => {
          watching--;
          log.push('closed');
        };
      }),
    },
    actions: {
      publishTools: (_, params) => void log.push(`publish ${params.tools.map((t) => t.name).join(',')}`),
      withdrawTools: (_, params) => void log.push(`withdraw: ${params.reason}`),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: { server: 'fx', connectAttemptsMax: input.connectAttemptsMax ?? 3, backoffMinMs: 100, backoffMaxMs: 400, stableUptimeMs: input.stableUptimeMs ?? 1_000 },
  });
  actor.start();
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  return {
    actor,
    clock,
    log,
    settle,
    send: (e: McpConnectionEvent) => sendBack!(e),
    watching: () => watching,
    value: () => actor.getSnapshot().value,
    context: () => actor.getSnapshot().context,
  };
}

const connected = (...names: string[]): McpConnected => ({ tools: names.map(tool), serverInfo: { name: 'fixture', version: '1' } });

describe('mcpConnection machine', () => {
  it('mcpConnection - publishes the tools when connected and watches the connection', async () => {
    const h = harness([connected('echo', 'add')]);
    await h.settle();
    expect(h.value()).toBe('ready');
    expect(h.log).toEqual(['publish echo,add']);
    expect(h.watching()).toBe(1);
    expect(h.context().serverInfo).toEqual({ name: 'fixture', version: '1' });
  });

  it('mcpConnection - a changed tool list is published again while ready', async () => {
    const h = harness([connected('echo')]);
    await h.settle();
    h.send({ type: 'TOOLS_CHANGED', tools: [tool('echo'), tool('extra')] });
    expect(h.log).toEqual(['publish echo', 'publish echo,extra']);
    expect(h.context().tools.map((t) => t.name)).toEqual(['echo', 'extra']);
  });

  it('mcpConnection - a lost connection withdraws the tools with the reason, backs off, and reconnects', async () => {
    const h = harness([connected('echo'), connected('echo')]);
    await h.settle();
    h.send({ type: 'LOST', reason: 'its process exited', uptimeMs: 10 });
    expect(h.value()).toBe('backoff');
    expect(h.log).toEqual(['publish echo', 'withdraw: its process exited', 'closed']);
    expect(h.context()).toMatchObject({ failures: 1, restarts: 1, lastError: 'its process exited', tools: [] });
    h.clock.increment(99);
    expect(h.value()).toBe('backoff');
    h.clock.increment(1);
    await h.settle();
    expect(h.value()).toBe('ready');
    expect(h.log.at(-1)).toBe('publish echo');
  });

  it('mcpConnection - failed attempts back off exponentially up to the maximum', async () => {
    expect([1, 2, 3, 4, 5].map((failures) => reconnectDelayMs({ failures, backoffMinMs: 100, backoffMaxMs: 400 }))).toEqual([100, 200, 400, 400, 400]);
    const h = harness([new Error('refused'), new Error('refused again'), connected('echo')]);
    await h.settle();
    expect(h.value()).toBe('backoff');
    expect(h.context()).toMatchObject({ failures: 1, lastError: 'refused' });
    h.clock.increment(100);
    await h.settle();
    expect(h.context()).toMatchObject({ failures: 2, lastError: 'refused again' });
    h.clock.increment(199);
    await h.settle();
    expect(h.value()).toBe('backoff');
    h.clock.increment(1);
    await h.settle();
    expect(h.value()).toBe('ready');
    expect(h.context().lastError).toBeNull();
  });

  it('mcpConnection - gives up after connectAttemptsMax consecutive failures and can be restarted', async () => {
    const h = harness([new Error('a'), new Error('b'), new Error('c'), connected('echo')], { connectAttemptsMax: 3 });
    await h.settle();
    h.clock.increment(100);
    await h.settle();
    h.clock.increment(200);
    await h.settle();
    expect(h.value()).toBe('stopped');
    expect(h.context()).toMatchObject({ failures: 3, gaveUp: true, lastError: 'c' });
    h.clock.increment(10_000);
    await h.settle();
    expect(h.value()).toBe('stopped'); // no more attempts
    h.actor.send({ type: 'RESTART' });
    await h.settle();
    expect(h.value()).toBe('ready');
    expect(h.context()).toMatchObject({ failures: 0, gaveUp: false });
  });

  it('mcpConnection - a connection lost soon after connecting counts toward giving up; one that was stable starts the count again', async () => {
    const h = harness([connected('a'), connected('a'), connected('a')], { connectAttemptsMax: 2, stableUptimeMs: 1_000 });
    await h.settle();
    h.send({ type: 'LOST', reason: 'crashed at once', uptimeMs: 5 });
    expect(h.context().failures).toBe(1);
    h.clock.increment(100);
    await h.settle();
    expect(h.value()).toBe('ready');
    h.send({ type: 'LOST', reason: 'crashed after an hour', uptimeMs: 3_600_000 });
    expect(h.value()).toBe('backoff');
    expect(h.context()).toMatchObject({ failures: 1, restarts: 2 });
    h.clock.increment(100);
    await h.settle();
    h.send({ type: 'LOST', reason: 'crashed at once again', uptimeMs: 5 });
    expect(h.value()).toBe('stopped');
    expect(h.context()).toMatchObject({ failures: 2, gaveUp: true, lastError: 'crashed at once again' });
    expect(h.log.filter((l) => l.startsWith('withdraw'))).toHaveLength(3);
  });

  it('mcpConnection - STOP from any state withdraws the tools, closes the connection and stays stopped', async () => {
    const h = harness([connected('echo')]);
    await h.settle();
    h.actor.send({ type: 'STOP' });
    expect(h.value()).toBe('stopped');
    expect(h.log).toEqual(['publish echo', 'withdraw: the server was stopped', 'closed']);
    expect(h.context().gaveUp).toBe(false);
    h.clock.increment(60_000);
    expect(h.value()).toBe('stopped');

    const connecting = harness([]);
    connecting.actor.send({ type: 'STOP' });
    expect(connecting.value()).toBe('stopped');
  });
});
