import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PermissionAsker } from '../../actors/permission.js';
import {
  PermissionNotPendingError,
  PermissionRequestNotFoundError,
  replyToPermission,
  Store,
  type AnyEnvelope,
} from '../../store/index.js';
import type { ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { forkSession } from '../../store/fork.js';
import { onCleanup } from '../helpers.js';
import { createHarness, type Harness } from './harness.js';

const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];
const sleeps = (...ms: number[]): ScriptedTurn => ({ toolCalls: ms.map((m) => ({ name: 'sleep', arguments: { ms: m } })) });
const toolMessages = (body: unknown) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'tool').map((m) => m.content);

/** Admits "go", owns the session and runs it until it is quiet (here: waiting for a decision). */
async function startWaiting(options: Parameters<typeof createHarness>[0]): Promise<Harness> {
  const h = await createHarness(options);
  h.admit('steer', 'go');
  h.coordinator.own(h.sessionId);
  await h.coordinator.runUntilQuiet(h.sessionId);
  return h;
}

const pending = (h: Harness) => h.store.queries.permissions.pending(h.sessionId);
const settled = async (h: Harness) => (await h.waitFor((e) => e.type === 'activity.settled')) as Extract<AnyEnvelope, { type: 'activity.settled' }>;

describe('permissions - durable asks', () => {
  it('a call to a tool that does not exist asks no one and settles as an error naming the tools there are', async () => {
    const h = await createHarness({ script: [{ toolCalls: [{ name: 'no_such_tool', arguments: {} }] }, { text: 'done' }] });
    h.admit('steer', 'go');
    await h.run();
    expect(h.types()).not.toContain('permission.asked');
    const result = of(h.events(), 'tool.settled')[0]!.data;
    expect(result.status).toBe('error');
    expect(result.output).toMatch(/Unknown tool "no_such_tool"\. Available tools: read, /);
  });

  it('an ask is recorded with its scope and a summary, and the call waits: the session is waiting for a decision', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'done' }] });
    const actor = h.coordinator.get(h.sessionId)!;
    expect(actor.snapshot().value).toBe('awaitingTools');
    expect(actor.waitingForPermission()).toBe(true);
    expect(actor.isQuiet()).toBe(true);
    const asked = of(h.events(), 'permission.asked');
    expect(asked).toHaveLength(1);
    expect(asked[0]!.data).toMatchObject({ tool: 'sleep', summary: '{"ms":5}' });
    expect(asked[0]!.data.pattern).toBeUndefined(); // no path, command or URL: always would cover every sleep call
    expect(pending(h).map((p) => p.requestId)).toEqual([asked[0]!.data.requestId]);
    expect(h.types()).not.toContain('tool.started');
    expect(h.server.requests).toHaveLength(1);
  });

  it('a reply appended through another Store connection on the same file (another process) is honoured', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'done' }] });
    const other = Store.open(h.store.path);
    onCleanup(() => other.close());
    const requestId = pending(h)[0]!.requestId;
    replyToPermission(other, { sessionId: h.sessionId, requestId, reply: 'once' });
    expect((await settled(h)).data).toMatchObject({ status: 'completed' });
    const types = h.types();
    expect(types.indexOf('permission.replied')).toBeLessThan(types.indexOf('tool.started'));
    expect(of(h.events(), 'tool.settled')[0]!.data).toMatchObject({ status: 'ok', output: 'slept 5' });
    expect(h.store.queries.permissions.request(requestId)!.status).toBe('once');
  });

  it('a reject settles the call denied with the message, and the model is told it', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'understood' }] });
    replyToPermission(h.store, { sessionId: h.sessionId, requestId: pending(h)[0]!.requestId, reply: 'reject', message: 'not now, use the cache' });
    await settled(h);
    const call = of(h.events(), 'tool.settled')[0]!.data;
    expect(call.status).toBe('denied');
    expect(call.output).toContain('not now, use the cache');
    expect(h.types()).not.toContain('tool.started');
    expect(toolMessages(h.server.requests[1]!.body)[0]).toContain('not now, use the cache');
  });

  it('a reject also rejects the other pending asks of the session, each recorded', async () => {
    const h = await startWaiting({ script: [sleeps(5, 6, 7), { text: 'ok' }] });
    const asks = pending(h);
    expect(asks).toHaveLength(3);
    replyToPermission(h.store, { sessionId: h.sessionId, requestId: asks[1]!.requestId, reply: 'reject', message: 'stop' });
    await settled(h);
    const replies = of(h.events(), 'permission.replied');
    expect(replies.map((r) => [r.data.requestId, r.data.reply])).toEqual([
      [asks[1]!.requestId, 'reject'],
      [asks[0]!.requestId, 'reject'],
      [asks[2]!.requestId, 'reject'],
    ]);
    expect(replies[1]!.data.message).toBe(`rejected together with ${asks[1]!.requestId}: stop`);
    expect(of(h.events(), 'tool.settled').map((e) => e.data.status)).toEqual(['denied', 'denied', 'denied']);
    expect(pending(h)).toEqual([]);
  });

  it('replies to an unknown request or to one already answered are refused and write nothing', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'ok' }] });
    const requestId = pending(h)[0]!.requestId;
    const before = h.events().length;
    expect(() => replyToPermission(h.store, { sessionId: h.sessionId, requestId: 'perm_nope', reply: 'once' })).toThrow(PermissionRequestNotFoundError);
    // the projection refuses a bare append too (checked against state, not epoch)
    expect(() => h.store.append({ sessionId: h.sessionId, type: 'permission.replied', data: { requestId: 'perm_nope', reply: 'once' } })).toThrow(PermissionRequestNotFoundError);
    expect(h.events()).toHaveLength(before);
    replyToPermission(h.store, { sessionId: h.sessionId, requestId, reply: 'once' });
    expect(() => replyToPermission(h.store, { sessionId: h.sessionId, requestId, reply: 'reject' })).toThrow(/already answered \(once\)/);
    await settled(h);
    expect(of(h.events(), 'permission.replied')).toHaveLength(1);
  });

  it('a cancel while an ask waits settles the call interrupted and closes the ask', async () => {
    const h = await startWaiting({ script: [sleeps(5)] });
    const requestId = pending(h)[0]!.requestId;
    const activityId = h.store.queries.session(h.sessionId)!.activityId!;
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId } });
    expect((await settled(h)).data).toMatchObject({ status: 'cancelled' });
    expect(h.store.queries.permissions.request(requestId)!.status).toBe('closed');
    expect(() => replyToPermission(h.store, { sessionId: h.sessionId, requestId, reply: 'once' })).toThrow(PermissionNotPendingError);
  });
});

describe('permissions - askers in the owner process', () => {
  it('an asker answers at once and its answer is recorded as permission.replied with its message', async () => {
    const asked: string[] = [];
    const askPermission: PermissionAsker = async (ask) => {
      asked.push(`${ask.tool} ${ask.summary} resumed=${ask.resumed}`);
      return { reply: 'once', message: 'allowed by policy' };
    };
    const h = await createHarness({ script: [sleeps(5), { text: 'ok' }], askPermission });
    h.admit('steer', 'go');
    await h.run();
    expect(asked).toEqual(['sleep {"ms":5} resumed=false']);
    expect(of(h.events(), 'permission.replied')[0]!.data).toMatchObject({ reply: 'once', message: 'allowed by policy' });
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('an asker that passes leaves the ask pending in the log', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'ok' }], askPermission: async () => undefined });
    expect(h.coordinator.get(h.sessionId)!.waitingForPermission()).toBe(true);
    expect(pending(h)).toHaveLength(1);
  });

  it('a reply from elsewhere while the asker is still asking wins and stops the asker', async () => {
    let aborted = false;
    const askPermission: PermissionAsker = (ask) =>
      new Promise((resolve) => ask.signal.addEventListener('abort', () => ((aborted = true), resolve({ reply: 'reject' }))));
    const h = await createHarness({ script: [sleeps(5), { text: 'ok' }], askPermission });
    h.admit('steer', 'go');
    const run = h.run();
    const asked = (await h.waitFor((e) => e.type === 'permission.asked')) as Extract<AnyEnvelope, { type: 'permission.asked' }>;
    replyToPermission(h.store, { sessionId: h.sessionId, requestId: asked.data.requestId, reply: 'once' });
    await run;
    expect(aborted).toBe(true);
    expect(of(h.events(), 'permission.replied').map((r) => r.data.reply)).toEqual(['once']);
    expect(of(h.events(), 'tool.settled')[0]!.data.status).toBe('ok');
  });
});

describe('permissions - always grants', () => {
  it('always grants the scope durably: later matching calls run without asking, also after a restart; a revoke asks again', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'one' }, sleeps(6), { text: 'two' }, sleeps(7)] });
    replyToPermission(h.store, { sessionId: h.sessionId, requestId: pending(h)[0]!.requestId, reply: 'always' });
    await settled(h);
    expect(h.store.queries.permissions.grants(h.sessionId)).toMatchObject([{ tool: 'sleep', pattern: null }]);
    // a new process owns the session: the grant is read from the projection
    h.crash();
    const { coordinator } = h.restart();
    h.admit('queue', 'again');
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'permission.asked')).toHaveLength(1);
    expect(of(h.events(), 'tool.settled').map((e) => e.data.status)).toEqual(['ok', 'ok']);
    // revoke: recorded as a request event; the next call asks again
    h.store.append({ sessionId: h.sessionId, type: 'permission.revoked', data: { tool: 'sleep' } });
    expect(h.store.queries.permissions.grants(h.sessionId)).toEqual([]);
    expect(h.types()).toContain('permission.revoked');
    h.admit('queue', 'third');
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'permission.asked')).toHaveLength(2);
    expect(coordinator.get(h.sessionId)!.waitingForPermission()).toBe(true);
  });

  it('a path grant covers its directory only; a call elsewhere asks again', async () => {
    const read = (path: string): ScriptedTurn => ({ toolCalls: [{ name: 'read', arguments: { path } }] });
    const h = await startWaiting({
      script: [read('docs/a.md'), { text: 'one' }, read('docs/b.md'), { text: 'two' }, read('c.md')],
      config: { permission: { rules: [{ tool: 'read', action: 'ask' }] } },
    });
    mkdirSync(join(h.location, 'docs'));
    for (const f of ['docs/a.md', 'docs/b.md', 'c.md']) writeFileSync(join(h.location, f), 'x');
    const ask = of(h.events(), 'permission.asked')[0]!;
    expect(ask.data.pattern).toBe('docs/*');
    replyToPermission(h.store, { sessionId: h.sessionId, requestId: ask.data.requestId, reply: 'always' });
    await settled(h);
    h.admit('queue', 'b');
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'permission.asked')).toHaveLength(1);
    h.admit('queue', 'c');
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'permission.asked').map((e) => e.data.pattern)).toEqual(['docs/*', '*']);
  });

  it('always answers the other pending asks its grant covers', async () => {
    const h = await startWaiting({ script: [sleeps(5, 6), { text: 'ok' }] });
    const [first, second] = pending(h);
    replyToPermission(h.store, { sessionId: h.sessionId, requestId: first!.requestId, reply: 'always' });
    await settled(h);
    const replies = of(h.events(), 'permission.replied');
    expect(replies.map((r) => [r.data.requestId, r.data.reply])).toEqual([
      [first!.requestId, 'always'],
      [second!.requestId, 'once'],
    ]);
    expect(of(h.events(), 'tool.settled').map((e) => e.data.status)).toEqual(['ok', 'ok']);
  });

  it('a fork carries grants and closes the asks it copies pending (their calls settle interrupted there)', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'one' }, sleeps(6)] });
    replyToPermission(h.store, { sessionId: h.sessionId, requestId: pending(h)[0]!.requestId, reply: 'always' });
    await settled(h);
    h.store.append({ sessionId: h.sessionId, type: 'permission.revoked', data: { tool: 'sleep' } });
    h.admit('queue', 'two');
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(pending(h)).toHaveLength(1);
    const atRevoke = of(h.events(), 'permission.revoked')[0]!.seq;
    const before = forkSession(h.store, h.sessionId, atRevoke - 1);
    expect(h.store.queries.permissions.grants(before.sessionId)).toMatchObject([{ tool: 'sleep', pattern: null }]);
    const now = forkSession(h.store, h.sessionId, h.store.queries.session(h.sessionId)!.lastSeq);
    expect(h.store.queries.permissions.grants(now.sessionId)).toEqual([]);
    expect(h.store.queries.permissions.pending(now.sessionId)).toEqual([]);
    expect(pending(h)).toHaveLength(1); // the source still waits
  });

  it('revoking a grant the session does not hold is refused', async () => {
    const h = await createHarness();
    expect(() => h.store.append({ sessionId: h.sessionId, type: 'permission.revoked', data: { tool: 'bash' } })).toThrow(/holds no always grant for bash/);
  });
});

describe('permissions - restarts', () => {
  it('a pending ask survives a crash: the new owner waits for the same request (no second ask), then the reply continues the activity', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'after restart' }] });
    const requestId = pending(h)[0]!.requestId;
    h.crash();
    const { coordinator, actor } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(actor.waitingForPermission()).toBe(true);
    expect(of(h.events(), 'permission.asked')).toHaveLength(1);
    const detected = of(h.events(), 'recovery.detected')[0]!.data;
    expect(detected).toMatchObject({ classification: 'tools', restarts: 0 });
    expect(detected.reason).toMatch(/asked for permission and none had started/);
    expect(of(h.events(), 'recovery.decided')[0]!.data).toMatchObject({ decision: 'continue', automatic: true });
    replyToPermission(h.store, { sessionId: h.sessionId, requestId, reply: 'once' });
    expect((await settled(h)).data.status).toBe('completed');
    expect(of(h.events(), 'tool.started')).toHaveLength(1);
    expect(h.server.requests).toHaveLength(2);
  });

  it('a reply recorded while no owner runs is honoured when the session is restored', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'after restart' }] });
    const requestId = pending(h)[0]!.requestId;
    h.crash();
    replyToPermission(h.store, { sessionId: h.sessionId, requestId, reply: 'reject', message: 'no' });
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
    expect(of(h.events(), 'tool.settled')[0]!.data).toMatchObject({ status: 'denied' });
    expect(of(h.events(), 'permission.asked')).toHaveLength(1);
  });

  it('drain (SIGTERM) stops at an ask still being asked here; the ask stays pending for the next owner', async () => {
    const asking: PermissionAsker = (ask) => new Promise((resolve) => ask.signal.addEventListener('abort', () => resolve(undefined)));
    const h = await createHarness({ script: [sleeps(5), { text: 'done' }], askPermission: asking });
    h.admit('steer', 'go');
    const actor = h.coordinator.own(h.sessionId)!;
    await h.waitFor((e) => e.type === 'turn.finished');
    expect(actor.isQuiet()).toBe(false); // someone here is being asked
    await actor.drain();
    h.coordinator.release(h.sessionId);
    expect(pending(h)).toHaveLength(1);
    expect(h.types()).not.toContain('permission.replied');
  });

  it('stops that leave asks pending do not count as restarts, even with autoResume off', async () => {
    const h = await startWaiting({ script: [sleeps(5), { text: 'done' }], config: { recovery: { restartsMax: 1, autoResume: false } } });
    for (let i = 0; i < 3; i++) {
      h.crash();
      const { coordinator, actor } = h.restart();
      await coordinator.runUntilQuiet(h.sessionId);
      expect(actor.waitingForPermission()).toBe(true);
    }
    expect(h.store.queries.activity(h.store.queries.session(h.sessionId)!.activityId!)!.restarts).toBe(0);
    expect(of(h.events(), 'permission.asked')).toHaveLength(1);
  });
});
