import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { subagentDepth } from '../../actors/subagent.js';
import { INPUT_TEXT_BYTES_MAX, SUBAGENT_DEPTH_MAX } from '../../core/limits.js';
import type { AnyEnvelope, Store } from '../../store/index.js';
import { subagentSessionId } from '../../tools/subagents.js';
import { firstUserMessage, respondByConversation, type ConversationScripts } from '../fixtures/scripted-routes.js';
import { tempStore } from '../helpers.js';
import { createHarness } from './harness.js';

const allowTask = { permission: { rules: [{ tool: 'task', action: 'allow' as const }] } };
const task = (prompt: string, extra: Record<string, unknown> = {}) => ({ toolCalls: [{ name: 'task', arguments: { description: 'a subtask', prompt, ...extra } }] });

function eventsOf(store: Store, sessionId: string): AnyEnvelope[] {
  store.flushDeltas();
  const out: AnyEnvelope[] = [];
  for (let page = store.read(sessionId); page.length > 0; page = store.read(sessionId, { after: page.at(-1)!.seq })) out.push(...page);
  return out;
}
const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];

async function subagentHarness(scripts: ConversationScripts, config: object = allowTask) {
  const h = await createHarness({ respond: respondByConversation(scripts), config });
  /** The child session the parent's first task call started. */
  const child = () => subagentSessionId(of(h.events(), 'tool.called').find((e) => e.data.tool === 'task')!.data.callId);
  return { ...h, child };
}

/** Resolves with the first event of `sessionId` matching `predicate` (the session may not exist yet). */
async function waitForEvent(store: Store, sessionId: () => string | undefined, predicate: (e: AnyEnvelope) => boolean, timeoutMs = 10_000): Promise<AnyEnvelope> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const id = sessionId();
    const hit = id === undefined ? undefined : eventsOf(store, id).find(predicate);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error('waitForEvent timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('subagents - the task tool', () => {
  it('the child runs its own turns (with a tool call) and its final text becomes the parent tool result', async () => {
    const h = await subagentHarness({
      'summarise my notes': [task('read notes.md and summarise it'), { text: 'The notes are about milk.' }],
      'read notes.md and summarise it': [{ toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, { text: 'Summary: buy milk.' }],
    });
    writeFileSync(join(h.location, 'notes.md'), 'remember the milk\n');
    h.admit('steer', 'summarise my notes');
    await h.run();

    const childId = h.child();
    const parent = h.events();
    const settled = of(parent, 'tool.settled')[0]!.data;
    expect(settled.status).toBe('ok');
    expect(settled.output).toContain('Summary: buy milk.');
    expect(settled.output).toContain(`Subagent session ${childId}`);
    expect(of(parent, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    // The order of provider requests: parent, child, child, parent (the parent waits for the child).
    expect(h.server.requests.map((r) => firstUserMessage(r.body))).toEqual([
      'summarise my notes', 'read notes.md and summarise it', 'read notes.md and summarise it', 'summarise my notes',
    ]);
    const toolMessage = (h.server.requests[3]!.body as { messages: { role: string; content: string }[] }).messages.find((m) => m.role === 'tool')!;
    expect(toolMessage.content).toContain('Summary: buy milk.');

    // The child is an ordinary session: same directory and model, linked to its parent and call.
    const row = h.store.queries.session(childId)!;
    expect(row).toMatchObject({ parentId: h.sessionId, location: h.location, model: 'openai/test', title: 'task: a subtask', lastActivityStatus: 'completed' });
    const child = eventsOf(h.store, childId);
    expect(of(child, 'session.created')[0]!.data).toMatchObject({ parentCallId: of(parent, 'tool.called')[0]!.data.callId });
    expect(of(child, 'tool.settled')[0]!.data).toMatchObject({ status: 'ok', output: expect.stringContaining('remember the milk') });
    // Released when the call ends: no live actor, no live lease.
    expect(h.coordinator.get(childId)).toBeUndefined();
    expect(h.store.owners.get(childId, h.store.clock.now())?.live ?? false).toBe(false);
  });

  it('a child that fails gives the parent an error result naming the child session and its status', async () => {
    const h = await subagentHarness({
      go: [task('doomed'), { text: 'the subagent failed, sorry' }],
      doomed: [{ status: 400 }],
    });
    h.admit('steer', 'go');
    await h.run();
    const childId = h.child();
    expect(h.store.queries.session(childId)!.lastActivityStatus).toBe('failed');
    const settled = of(h.events(), 'tool.settled')[0]!.data;
    expect(settled.status).toBe('error');
    expect(settled.output).toMatch(new RegExp(`SubagentFailedError: subagent session ${childId} ended failed`));
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed']); // the parent goes on
  });

  it('cancelling the parent cancels the child (a cancel.requested for its activity) and waits for it to settle', async () => {
    const h = await subagentHarness({
      'start a long task': [task('take your time')],
      'take your time': [{ text: 'x'.repeat(2_000), delayMs: 20, chunkSize: 2 }],
    });
    h.admit('steer', 'start a long task');
    const run = h.run();
    const childId = () => (of(h.events(), 'tool.called')[0] ? h.child() : undefined);
    await waitForEvent(h.store, childId, (e) => e.type === 'text.delta');
    const activityId = of(h.events(), 'activity.opened')[0]!.data.activityId;
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId, reason: 'test' } });
    await run;
    const childSettled = await waitForEvent(h.store, childId, (e) => e.type === 'activity.settled');
    expect(childSettled.data).toMatchObject({ status: 'cancelled' });
    const cancel = of(eventsOf(h.store, childId()!), 'cancel.requested')[0]!;
    expect(cancel.data.reason).toBe('parent task call cancelled');
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['cancelled']);
    expect(of(h.events(), 'tool.settled')[0]!.data.status).toBe('interrupted');
    // The child's stream was aborted: two requests in all (parent, child).
    expect(h.server.requests).toHaveLength(2);
    await waitFor(() => h.coordinator.get(childId()!) === undefined);
  });

  it(`nests down to SUBAGENT_DEPTH_MAX (${SUBAGENT_DEPTH_MAX}) levels and refuses the next task call clearly`, async () => {
    const scripts: ConversationScripts = { root: [task('level 1'), { text: 'root done' }] };
    for (let level = 1; level <= SUBAGENT_DEPTH_MAX; level++) scripts[`level ${level}`] = [task(`level ${level + 1}`), { text: `level ${level} done` }];
    const h = await subagentHarness(scripts);
    h.admit('steer', 'root');
    await h.run();
    // Walk down the chain of children.
    const chain = [h.sessionId];
    for (let level = 1; level <= SUBAGENT_DEPTH_MAX; level++) {
      const call = of(eventsOf(h.store, chain.at(-1)!), 'tool.called')[0]!;
      chain.push(subagentSessionId(call.data.callId));
    }
    const deepest = eventsOf(h.store, chain.at(-1)!);
    const refused = of(deepest, 'tool.settled')[0]!.data;
    expect(refused.status).toBe('error');
    expect(refused.output).toContain(`SubagentDepthError: subagent depth limit reached: session ${chain.at(-1)} is a subagent ${SUBAGENT_DEPTH_MAX} level(s) deep`);
    expect(subagentDepth(h.store, chain.at(-1)!)).toBe(SUBAGENT_DEPTH_MAX);
    expect(h.server.requests.map((r) => firstUserMessage(r.body))).not.toContain(`level ${SUBAGENT_DEPTH_MAX + 1}`);
    for (const id of chain) expect(h.store.queries.session(id)!.lastActivityStatus).toBe('completed');
    expect(of(h.events(), 'tool.settled')[0]!.data.output).toContain('level 1 done');
  });

  it('subagent depth counts only links made by task (forks do not count)', () => {
    const store = tempStore();
    const create = (sessionId: string, data: Record<string, string>) =>
      store.append({ sessionId, type: 'session.created', data: { location: '/tmp', model: 'openai/test', ...data } });
    create('ses_root', {});
    create('ses_fork', { parentId: 'ses_root' });
    create('ses_child', { parentId: 'ses_fork', parentCallId: 'call_1' });
    create('ses_grandchild', { parentId: 'ses_child', parentCallId: 'call_2' });
    expect(subagentDepth(store, 'ses_root')).toBe(0);
    expect(subagentDepth(store, 'ses_fork')).toBe(0);
    expect(subagentDepth(store, 'ses_child')).toBe(1);
    expect(subagentDepth(store, 'ses_grandchild')).toBe(2);
  });

  it('background: true without a jobs service fails with an error naming the missing service', async () => {
    // A process whose runtime offers no background jobs (the coordinator's own service removed).
    const h = await createHarness({ respond: respondByConversation({ go: [task('later', { background: true }), { text: 'ok' }] }), config: allowTask, toolServices: { jobs: undefined } });
    h.admit('steer', 'go');
    await h.run();
    const settled = of(h.events(), 'tool.settled')[0]!.data;
    expect(settled).toMatchObject({ status: 'error', output: expect.stringContaining('ToolServiceUnavailableError: tool "task" needs the background jobs service') });
    expect(h.server.requests.map((r) => firstUserMessage(r.body))).toEqual(['go', 'go']); // no child ran
  });

  it('a prompt the inbox refuses (over INPUT_TEXT_BYTES_MAX) is an error and leaves no child session behind', async () => {
    const huge = 'p'.repeat(INPUT_TEXT_BYTES_MAX + 1);
    const h = await subagentHarness({ go: [{ ...task(huge), chunkSize: 64 * 1024 }, { text: 'ok' }] });
    h.admit('steer', 'go');
    await h.run();
    const childId = h.child();
    expect(of(h.events(), 'tool.settled')[0]!.data.output).toContain(`SubagentStartError: cannot start a subagent session ${childId}: its prompt was refused`);
    expect(h.store.queries.session(childId)).toBeUndefined();
    expect(h.store.read(childId)).toHaveLength(0);
  });

  it('the task tool runs its subagent with the profile it names (recorded on the child, applied to its requests); an unknown name is refused, listing the defined ones', async () => {
    const config = { ...allowTask, agents: { reviewer: { description: 'reviews without running commands', tools: { bash: false } } } };
    const h = await subagentHarness(
      { go: [task('as a reviewer', { agent: 'reviewer' }), task('as nobody', { agent: 'nobody' }), { text: 'ok' }], 'as a reviewer': [{ text: 'reviewed' }] },
      config,
    );
    h.admit('steer', 'go');
    await h.run();
    const child = h.child();
    expect(of(eventsOf(h.store, child), 'session.created')[0]!.data.agent).toBe('reviewer');
    expect(of(eventsOf(h.store, child), 'activity.opened')[0]!.data.agent).toBe('reviewer');
    const childRequest = h.server.requests.find((r) => firstUserMessage(r.body) === 'as a reviewer')!;
    const toolNames = ((childRequest.body as { tools?: { function: { name: string } }[] }).tools ?? []).map((t) => t.function.name);
    expect(toolNames).toContain('read');
    expect(toolNames).not.toContain('bash');
    const [reviewed, refused] = of(h.events(), 'tool.settled');
    expect(reviewed!.data.status).toBe('ok');
    expect(reviewed!.data.output).toContain('agent reviewer');
    expect(refused!.data.status).toBe('error');
    expect(refused!.data.output).toContain('unknown agent "nobody"');
    expect(refused!.data.output).toContain('build, plan, reviewer');
    expect(h.store.queries.session(subagentSessionId(of(h.events(), 'tool.called')[1]!.data.callId))).toBeUndefined();
  });

  it('a subagent inherits its parent activity\'s profile, and a read-only parent cannot start one that may edit', async () => {
    const h = await subagentHarness({ go: [task('look around'), task('edit for me', { agent: 'build' }), { text: 'ok' }], 'look around': [{ text: 'looked' }] });
    h.store.append({ sessionId: h.sessionId, type: 'input.admitted', data: { inputId: 'in_plan', mode: 'steer', text: 'go', agent: 'plan' } });
    await h.run();
    expect(of(h.events(), 'activity.opened')[0]!.data.agent).toBe('plan');
    expect(of(eventsOf(h.store, h.child()), 'session.created')[0]!.data.agent).toBe('plan');
    const refused = of(h.events(), 'tool.settled')[1]!;
    expect(refused.data.status).toBe('error');
    expect(refused.data.output).toContain('agent "plan" may not start a subagent with agent "build": it would allow write, edit, bash');
  });

  it('the parent owner dies while the child runs: the task call settles interrupted naming the child, which recovers on its own', async () => {
    const h = await subagentHarness({
      'long job': [task('slow child'), { text: 'parent carries on' }],
      'slow child': [{ text: 'y'.repeat(2_000), delayMs: 20, chunkSize: 2 }],
    });
    h.admit('steer', 'long job');
    void h.run().catch(() => {});
    const childId = () => (of(h.events(), 'tool.called')[0] ? h.child() : undefined);
    await waitForEvent(h.store, childId, (e) => e.type === 'text.delta');
    const child = childId()!;
    // The process dies: both actors stop with nothing recorded and both leases lapse.
    h.coordinator.get(child)!.stop();
    h.crash();
    h.store.db.prepare('UPDATE session_owner SET expires_at = 0 WHERE session_id = ?').run(child);
    await new Promise((r) => setTimeout(r, 50));
    expect(of(eventsOf(h.store, child), 'cancel.requested')).toHaveLength(0);

    // The next owner of the parent: the started task call is not run again; its result names the child.
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    const call = of(h.events(), 'tool.settled')[0]!.data;
    expect(call.status).toBe('interrupted');
    expect(call.output).toContain(`Its subagent session, if it started, is ${child}`);
    expect(of(h.events(), 'activity.settled').at(-1)!.data.status).toBe('completed');

    // The child is a durable session of its own: its next owner finds it unsettled and recovers it.
    const actor = coordinator.own(child)!;
    expect(actor.snapshot().value).toBe('recovering');
    expect(of(eventsOf(h.store, child), 'recovery.detected')[0]!.data.classification).toBe('ambiguous');
    h.store.append({ sessionId: child, type: 'recovery.decided', data: { activityId: actor.context().activity!.id, decision: 'abandon' } });
    actor.catchUp();
    expect(h.store.queries.session(child)!.lastActivityStatus).toBe('abandoned');
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('waitFor timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
