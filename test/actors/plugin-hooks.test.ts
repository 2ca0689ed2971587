import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOOL_OUTPUT_BYTES_MAX } from '../../core/limits.js';
import { CHANNEL, channel, openTestRuntime } from '../services/plugin-fixtures.js';

/**
 * Plugins' hooks at their call sites, in real sessions: each hook's change reaches the provider
 * request, the tool, the stored input or the permission decision; a failing hook leaves the run
 * going with its draft discarded and a `plugin.hook.failed` event. Plugin tools obey the same
 * permission rules and limits as built-ins.
 */
type Body = { model: string; temperature?: number; top_p?: number; max_tokens?: number; messages: { role: string; content: string | null }[]; tools?: { function: { name: string } }[] };
const bodyOf = (t: { server: { requests: { body: unknown }[] } }, i: number) => t.server.requests[i]!.body as Body;

describe('hooks at their call sites', () => {
  it('chat.params and chat.headers - change the provider request; the headers draft starts empty and credentials stay the adapter\'s', async () => {
    const ch = channel('chat');
    const t = await openTestRuntime({
      env: { OPENAI_API_KEY: 'sk-test-key-for-hooks' },
      plugins: ['./chat.mjs'],
      files: {
        'chat.mjs': `export default (loom) => {
          const c = ${CHANNEL('chat')};
          loom.hook('chat.params', (draft, ctx) => {
            c.keys = Object.keys(draft).sort();
            c.ctx = { ...ctx };
            draft.model = 'test-b';
            draft.temperature = 0.1;
            draft.maxOutputTokens = 123;
            draft.messages.push({ role: 'user', content: 'a note from the plugin' });
          });
          loom.hook('chat.headers', (draft) => {
            c.headersSeen = JSON.stringify(draft);
            draft['X-Plugin'] = 'yes';
          });
        };`,
      },
      script: [{ text: 'ok' }],
    });
    await t.rt.plugins.settled();
    const sessionId = await t.session('hello');
    await t.run(sessionId);
    const request = t.server.requests[0]!;
    const body = bodyOf(t, 0);
    expect(body.model).toBe('test-b');
    expect(body.temperature).toBe(0.1);
    expect(body.max_tokens).toBe(123);
    expect(body.messages.at(-1)).toEqual({ role: 'user', content: 'a note from the plugin' });
    expect(request.headers['x-plugin']).toBe('yes');
    expect(request.headers.authorization).toBe('Bearer sk-test-key-for-hooks');
    expect(ch.headersSeen).toBe('{}');
    expect(ch.keys).toEqual(['messages', 'model']); // no signal, no tools, no credentials
    expect(ch.ctx).toMatchObject({ sessionId, location: t.location, model: 'openai/test' });
    const events = t.events(sessionId);
    expect(events.find((e) => e.type === 'attempt.dispatched')!.data).toMatchObject({ model: 'openai/test-b' });
    expect(events.find((e) => e.type === 'activity.settled')!.data).toMatchObject({ status: 'completed' });
  });

  it('tool.before and tool.after - change the input the tool runs with and the result the model gets', async () => {
    const t = await openTestRuntime({
      plugins: ['./tools.mjs'],
      files: {
        'tools.mjs': `export default (loom) => {
          loom.hook('tool.before', (draft) => { if (draft.tool === 'read') draft.input.path = 'real.txt'; });
          loom.hook('tool.after', (draft, ctx) => { draft.output = draft.output + '\\n[checked by plugin for ' + ctx.callId + ']'; });
        };`,
      },
      script: [{ toolCalls: [{ name: 'read', arguments: { path: 'decoy.txt' } }] }, { text: 'done' }],
    });
    writeFileSync(join(t.location, 'real.txt'), 'the real content\n');
    writeFileSync(join(t.location, 'decoy.txt'), 'the decoy\n');
    await t.rt.plugins.settled();
    const sessionId = await t.session('read it');
    await t.run(sessionId);
    const events = t.events(sessionId);
    const called = events.find((e) => e.type === 'tool.called')!;
    const settled = events.find((e) => e.type === 'tool.settled')!;
    expect(called.data).toMatchObject({ input: '{"path":"decoy.txt"}' }); // the log keeps what the model asked
    expect(settled.data).toMatchObject({ status: 'ok' });
    const output = (settled.data as { output: string }).output;
    expect(output).toContain('the real content');
    expect(output).not.toContain('the decoy');
    expect(output).toContain(`[checked by plugin for ${(called.data as { callId: string }).callId}]`);
    expect(bodyOf(t, 1).messages.find((m) => m.role === 'tool')!.content).toBe(output);
  });

  it('tool.before - a changed input that the deny rules forbid is not run', async () => {
    const t = await openTestRuntime({
      plugins: ['./redirect.mjs'],
      config: { permission: { rules: [{ tool: 'read', pattern: 'secret/**', action: 'deny' }] } },
      files: { 'redirect.mjs': `export default (loom) => loom.hook('tool.before', (draft) => { draft.input = { path: 'secret/key.txt' }; });` },
      script: [{ toolCalls: [{ name: 'read', arguments: { path: 'open.txt' } }] }, { text: 'done' }],
    });
    writeFileSync(join(t.location, 'open.txt'), 'open\n');
    await t.rt.plugins.settled();
    const sessionId = await t.session('read it');
    await t.run(sessionId);
    expect(t.events(sessionId).find((e) => e.type === 'tool.settled')!.data).toMatchObject({
      status: 'denied',
      output: "A plugin's tool.before hook changed the read input to one the permission rules deny; it was not run.",
    });
    expect(t.events(sessionId).some((e) => e.type === 'tool.started')).toBe(false);
  });

  it('input.admitted - what the hook leaves is what is stored and sent to the model', async () => {
    const t = await openTestRuntime({
      plugins: ['./input.mjs'],
      files: { 'input.mjs': `export default (loom) => loom.hook('input.admitted', (draft) => { draft.text = draft.text.replace('PASSWORD=hunter2', 'PASSWORD=[removed]'); });` },
      script: [{ text: 'ok' }],
    });
    await t.rt.plugins.settled();
    const sessionId = await t.session('log in with PASSWORD=hunter2');
    await t.run(sessionId);
    expect(t.events(sessionId).find((e) => e.type === 'input.admitted')!.data).toMatchObject({ text: 'log in with PASSWORD=[removed]' });
    expect(JSON.stringify(t.events(sessionId))).not.toContain('hunter2');
    expect(bodyOf(t, 0).messages.at(-1)).toEqual({ role: 'user', content: 'log in with PASSWORD=[removed]' });
  });

  it('permission.ask - a hook may allow or deny a call that would ask, or change what is asked', async () => {
    const t = await openTestRuntime({
      plugins: ['./perm.mjs'],
      files: {
        'perm.mjs': `export default (loom) => loom.hook('permission.ask', (draft, ctx) => {
          if (ctx.input.path.startsWith('ok/')) draft.decision = 'allow';
          else if (ctx.input.path === 'no.txt') { draft.decision = 'deny'; draft.message = 'the policy plugin forbids no.txt'; }
          else { draft.summary = 'reviewed by the policy plugin: ' + draft.summary; draft.pattern = 'ask.txt'; }
        });`,
      },
      script: [
        {
          toolCalls: [
            { name: 'write', arguments: { path: 'ok/a.txt', content: 'a' } },
            { name: 'write', arguments: { path: 'no.txt', content: 'b' } },
            { name: 'write', arguments: { path: 'ask.txt', content: 'c' } },
          ],
        },
        { text: 'done' },
      ],
    });
    await t.rt.plugins.settled();
    const sessionId = await t.session('write three files');
    await t.run(sessionId); // quiet: the third call waits for a reply no one here gives
    const events = t.events(sessionId);
    const calls = events.filter((e) => e.type === 'tool.called').map((e) => e.data as { callId: string; input: string });
    const settled = (i: number) => events.find((e) => e.type === 'tool.settled' && (e.data as { callId: string }).callId === calls[i]!.callId)?.data;
    expect(settled(0)).toMatchObject({ status: 'ok' });
    expect(settled(1)).toMatchObject({ status: 'denied', output: expect.stringContaining('the policy plugin forbids no.txt') });
    expect(settled(2)).toBeUndefined();
    const asked = events.filter((e) => e.type === 'permission.asked').map((e) => e.data);
    expect(asked).toEqual([expect.objectContaining({ callId: calls[2]!.callId, tool: 'write', pattern: 'ask.txt', summary: expect.stringMatching(/^reviewed by the policy plugin: /) })]);
  });

  it('a hook that throws - its draft is discarded, a plugin.hook.failed event is recorded, and the run completes', async () => {
    const t = await openTestRuntime({
      plugins: ['./broken.mjs', './fine.mjs'],
      files: {
        'broken.mjs': `export default (loom) => {
          loom.hook('chat.params', (draft) => { draft.temperature = 1.5; throw new Error('params hook broke'); });
          loom.hook('tool.before', (draft) => { draft.input.path = 'elsewhere.txt'; throw new TypeError('before hook broke'); });
          loom.hook('tool.after', () => { throw new Error('after hook broke'); });
        };`,
        'fine.mjs': `export default (loom) => loom.hook('chat.headers', (draft) => { draft['x-fine'] = '1'; });`,
      },
      script: [{ toolCalls: [{ name: 'read', arguments: { path: 'f.txt' } }] }, { text: 'done' }],
    });
    writeFileSync(join(t.location, 'f.txt'), 'file content\n');
    await t.rt.plugins.settled();
    const sessionId = await t.session('read f');
    await t.run(sessionId);
    const events = t.events(sessionId);
    const callId = (events.find((e) => e.type === 'tool.called')!.data as { callId: string }).callId;
    expect(events.filter((e) => e.type === 'plugin.hook.failed').map((e) => e.data)).toEqual([
      { plugin: 'broken', hook: 'chat.params', message: 'params hook broke' },
      { plugin: 'broken', hook: 'tool.before', message: 'TypeError: before hook broke', callId },
      { plugin: 'broken', hook: 'tool.after', message: 'after hook broke', callId },
      { plugin: 'broken', hook: 'chat.params', message: 'params hook broke' },
    ]);
    expect(bodyOf(t, 0).temperature).toBeUndefined();
    expect(t.server.requests[0]!.headers['x-fine']).toBe('1'); // the other plugin's hook still ran
    expect(events.find((e) => e.type === 'tool.settled')!.data).toMatchObject({ status: 'ok', output: expect.stringContaining('file content') });
    expect(events.find((e) => e.type === 'activity.settled')!.data).toMatchObject({ status: 'completed' });
  });
});

describe('plugin tools', () => {
  const tools = `export default (loom) => {
    loom.tool.register({ name: 'deploy', description: 'deploys', input: loom.z.object({ command: loom.z.string() }), idempotent: false, timeoutMs: 5000,
      async execute(input) { return { output: 'ran ' + input.command }; } });
    loom.tool.register({ name: 'stuck', description: 'never finishes', input: loom.z.object({}), idempotent: true, timeoutMs: 50,
      execute(_input, ctx) { return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')))); } });
    loom.tool.register({ name: 'chatty', description: 'prints a lot', input: loom.z.object({}), idempotent: true, timeoutMs: 5000,
      async execute() { return { output: 'line\\n'.repeat(${TOOL_OUTPUT_BYTES_MAX}) }; } });
  };`;

  it('plugin tools - without a rule a plugin tool asks, like any tool with unknown effects', async () => {
    const t = await openTestRuntime({
      plugins: ['./tools.mjs'],
      files: { 'tools.mjs': tools },
      script: [{ toolCalls: [{ name: 'deploy', arguments: { command: 'deploy prod' } }] }, { text: 'done' }],
    });
    await t.rt.plugins.settled();
    const sessionId = await t.session('deploy');
    await t.run(sessionId);
    const events = t.events(sessionId);
    expect(events.find((e) => e.type === 'permission.asked')!.data).toMatchObject({ tool: 'deploy', summary: expect.stringContaining('prod') });
    expect(events.some((e) => e.type === 'tool.started')).toBe(false);
  });

  it('plugin tools - config rules, input validation, the tool timeout and output bounds apply as to built-ins', async () => {
    const t = await openTestRuntime({
      plugins: ['./tools.mjs'],
      config: { permission: { rules: [{ tool: 'deploy', action: 'allow' }, { tool: 'deploy', pattern: 'deploy prod*', action: 'deny' }, { tool: 'stuck', action: 'allow' }, { tool: 'chatty', action: 'allow' }] } },
      files: { 'tools.mjs': tools },
      script: [
        {
          toolCalls: [
            { name: 'deploy', arguments: { command: 'deploy staging' } },
            { name: 'deploy', arguments: { command: 'deploy prod' } },
            { name: 'deploy', arguments: { command: 42 } },
            { name: 'stuck', arguments: {} },
            { name: 'chatty', arguments: {} },
          ],
        },
        { text: 'done' },
      ],
    });
    await t.rt.plugins.settled();
    const sessionId = await t.session('go');
    await t.run(sessionId);
    const events = t.events(sessionId);
    const results = events.filter((e) => e.type === 'tool.settled').map((e) => e.data as { callId: string; status: string; output: string; truncated?: boolean });
    const byCall = new Map(results.map((r) => [r.callId, r]));
    const calls = events.filter((e) => e.type === 'tool.called').map((e) => byCall.get((e.data as { callId: string }).callId)!);
    expect(calls[0]).toMatchObject({ status: 'ok', output: 'ran deploy staging' });
    expect(calls[1]).toMatchObject({ status: 'denied' });
    expect(calls[2]).toMatchObject({ status: 'error', output: expect.stringMatching(/ToolInputError.*command/) });
    expect(calls[3]).toMatchObject({ status: 'error', output: expect.stringMatching(/timed out after 50 ms/) });
    expect(calls[4]).toMatchObject({ status: 'ok', truncated: true });
    expect(Buffer.byteLength(calls[4]!.output)).toBeLessThanOrEqual(TOOL_OUTPUT_BYTES_MAX + 1024);
    expect(events.find((e) => e.type === 'activity.settled')!.data).toMatchObject({ status: 'completed' });
  });
});
