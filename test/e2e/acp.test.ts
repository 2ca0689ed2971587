import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import {
  client as acpClient,
  methods,
  ndJsonStream,
  PROTOCOL_VERSION,
  type ClientContext,
  type RequestPermissionRequest,
  type RequestPermissionResponse,
  type SessionNotification,
  type SessionUpdate,
} from '@agentclientprotocol/sdk';
import { describe, expect, it } from 'vitest';
import { Store } from '../../store/index.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { respondByConversation } from '../fixtures/scripted-routes.js';
import type { RecordedRequest } from '../fixtures/scripted-openai-server.js';
import { LOOM_BIN } from '../fixtures/torture.js';
import { DIST, onCleanup, tempDir } from '../helpers.js';

const STDIO_SERVER = join(DIST, 'test/fixtures/mcp-stdio-server.js');

/** An editor: `loom acp` as a child process, driven by the SDK's client side. */
interface Editor {
  updates: SessionNotification[];
  permissionRequests: RequestPermissionRequest[];
  /** How the next permission requests are answered, in order (then: allow once). */
  answers: ((request: RequestPermissionRequest, agent: ClientContext) => Promise<RequestPermissionResponse>)[];
  stderr(): string;
  run<T>(op: (agent: ClientContext) => Promise<T>): Promise<T>;
  child: ChildProcess;
}

function startEditor(env: NodeJS.ProcessEnv): Editor {
  const child = spawn(process.execPath, [LOOM_BIN, 'acp'], { env: { ...process.env, LOOM_FAILPOINT: '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  onCleanup(() => void (child.exitCode === null && child.kill('SIGKILL')));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const editor: Editor = {
    updates: [],
    permissionRequests: [],
    answers: [],
    stderr: () => stderr,
    child,
    run: (op) => {
      const stream = ndJsonStream(Writable.toWeb(child.stdin!) as WritableStream<Uint8Array>, Readable.toWeb(child.stdout!) as unknown as ReadableStream<Uint8Array>);
      const app = acpClient({ name: 'test-editor' })
        .onNotification(methods.client.session.update, ({ params }) => void editor.updates.push(params))
        .onRequest(methods.client.session.requestPermission, async ({ params, agent }) => {
          editor.permissionRequests.push(params);
          const answer = editor.answers.shift();
          return answer ? answer(params, agent) : { outcome: { outcome: 'selected', optionId: 'once' } };
        });
      return app.connectWith(stream, op);
    },
  };
  return editor;
}

async function initialize(agent: ClientContext) {
  return agent.request(methods.agent.initialize, { protocolVersion: PROTOCOL_VERSION, clientCapabilities: {}, clientInfo: { name: 'test-editor', version: '1.0.0' } });
}

/**
 * One script per prompt of a session, keyed by the text of the request's LAST user message (the
 * prompts of one session share their first message, so respondByConversation cannot tell them apart).
 */
function respondByLastPrompt(scripts: Record<string, ScriptedTurn[]>): (request: RecordedRequest) => ScriptedTurn {
  return (request) => {
    const users = ((request.body as { messages?: { role: string; content: unknown }[] }).messages ?? []).filter((m) => m.role === 'user');
    const last = users[users.length - 1]?.content;
    const key = typeof last === 'string' ? last : '';
    return scripts[key]?.shift() ?? { text: `(no script left for ${JSON.stringify(key)})` };
  };
}

const kinds = (updates: SessionNotification[]) => updates.map((n) => n.update.sessionUpdate);
const of = <K extends SessionUpdate['sessionUpdate']>(updates: SessionNotification[], kind: K) =>
  updates.map((n) => n.update).filter((u): u is Extract<SessionUpdate, { sessionUpdate: K }> => u.sessionUpdate === kind);
const textOf = (updates: SessionNotification[], kind: 'agent_message_chunk' | 'agent_thought_chunk' | 'user_message_chunk') =>
  of(updates, kind)
    .map((u) => (u.content.type === 'text' ? u.content.text : ''))
    .join('');

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('loom acp (driven by the ACP SDK client, real processes)', () => {
  it('loom acp - a prompt streams thoughts, text and a tool call through a permission request; a cancel; a session load replays the log', async () => {
    const first = 'write the greeting';
    const second = 'now run the long command';
    const third = 'say it again';
    const scripts: Record<string, ScriptedTurn[]> = {
      [first]: [
        { reasoning: 'I should write hello.txt.', text: 'Writing the file.', toolCalls: [{ name: 'write', arguments: { path: 'hello.txt', content: 'hello from acp\n' } }] },
        { text: 'Done: hello.txt is written.' },
      ],
      [second]: [{ toolCalls: [{ name: 'bash', arguments: { command: 'sleep 30' } }] }, { text: 'never sent' }],
    };
    const server = await startScriptedOpenAIServer({ respond: respondByLastPrompt(scripts) });
    onCleanup(() => void server.close());
    const home = tempDir('loom-acp-home-');
    const dir = tempDir('loom-acp-dir-');
    const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', LOOM_MODEL: 'openai/test' };

    const editor = startEditor(env);
    let sessionId = '';
    await editor.run(async (agent) => {
      const init = await initialize(agent);
      expect(init.protocolVersion).toBe(PROTOCOL_VERSION);
      expect(init.agentCapabilities).toMatchObject({ loadSession: true, promptCapabilities: { embeddedContext: true } });
      expect(init.agentInfo).toMatchObject({ name: 'loom' });

      ({ sessionId } = await agent.request(methods.agent.session.new, { cwd: dir, mcpServers: [] }));
      expect(sessionId).toMatch(/^ses_/);

      // 1. A prompt with a tool call that asks for permission (write asks by default).
      const r1 = await agent.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: 'text', text: first }] });
      expect(r1.stopReason).toBe('end_turn');
      expect(readFileSync(join(dir, 'hello.txt'), 'utf8')).toBe('hello from acp\n');
      expect(editor.permissionRequests).toHaveLength(1);
      const ask = editor.permissionRequests[0]!;
      expect(ask.sessionId).toBe(sessionId);
      expect(ask.toolCall).toMatchObject({ title: 'write hello.txt', kind: 'edit', status: 'pending', rawInput: { path: 'hello.txt', content: 'hello from acp\n' } });
      expect(ask.options.map((o) => o.kind)).toEqual(['allow_once', 'allow_always', 'reject_once']);
      const updates = editor.updates.filter((u) => u.sessionId === sessionId);
      expect(textOf(updates, 'agent_thought_chunk')).toBe('I should write hello.txt.');
      expect(textOf(updates, 'agent_message_chunk')).toBe('Writing the file.Done: hello.txt is written.');
      expect(textOf(updates, 'user_message_chunk')).toBe(''); // the editor's own prompt is not echoed
      const calls = of(updates, 'tool_call');
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatchObject({ toolCallId: ask.toolCall.toolCallId, title: 'write hello.txt', kind: 'edit', status: 'pending', locations: [{ path: join(dir, 'hello.txt') }] });
      const statuses = of(updates, 'tool_call_update').filter((u) => u.toolCallId === ask.toolCall.toolCallId).map((u) => u.status);
      expect(statuses).toEqual(['in_progress', 'completed']);
      // The order the editor saw: thought, text, the call pending, running, done, then the final text.
      const order = kinds(updates).filter((k, i, all) => k !== all[i - 1]);
      expect(order).toEqual(['agent_thought_chunk', 'agent_message_chunk', 'tool_call', 'tool_call_update', 'agent_message_chunk']);

      // 2. A cancel while the editor is being asked: the prompt stops as cancelled, the call never runs.
      editor.answers.push(async (request, ctx) => {
        await ctx.notify(methods.agent.session.cancel, { sessionId: request.sessionId });
        return { outcome: { outcome: 'cancelled' } };
      });
      const before = editor.updates.length;
      const r2 = await agent.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: 'text', text: second }] });
      expect(r2.stopReason).toBe('cancelled');
      const bash = of(editor.updates.slice(before), 'tool_call');
      expect(bash).toMatchObject([{ title: 'bash sleep 30', kind: 'execute', status: 'pending' }]);
      const bashEnd = of(editor.updates.slice(before), 'tool_call_update').filter((u) => u.toolCallId === bash[0]!.toolCallId);
      expect(bashEnd.map((u) => u.status)).toEqual(['failed']);
    });
    editor.child.stdin!.end();
    expect(await exited(editor.child)).toBe(0);

    // What the editor did is in the log like any other reply and cancel.
    const store = Store.open(join(home, 'loom.db'));
    try {
      const events = store.read(sessionId, { after: 0, limit: 1_000 });
      const replies = events.filter((e) => e.type === 'permission.replied').map((e) => e.data);
      expect(replies).toEqual([expect.objectContaining({ reply: 'once', message: 'allowed in the editor' })]);
      // One cancel: the `cancelled` answer and the session/cancel notification are the same cancel.
      expect(events.filter((e) => e.type === 'cancel.requested').map((e) => e.data)).toEqual([expect.objectContaining({ reason: 'cancelled by the editor (session/cancel)' })]);
      expect(events.filter((e) => e.type === 'permission.asked')).toHaveLength(2);
      expect(events.filter((e) => e.type === 'activity.settled').map((e) => (e.data as { status: string }).status)).toEqual(['completed', 'cancelled']);
      expect(store.queries.permissions.pending(sessionId)).toEqual([]);
    } finally {
      store.close();
    }
    const started = server.requests.length;

    // 3. Another editor process loads the session: the log is replayed as updates, then it goes on live.
    scripts[third] = [{ text: 'Again: hello.' }];
    const second_ = startEditor(env);
    await second_.run(async (agent) => {
      await initialize(agent);
      await agent.request(methods.agent.session.load, { sessionId, cwd: dir, mcpServers: [] });
      const replayed = second_.updates.filter((u) => u.sessionId === sessionId);
      expect(textOf(replayed, 'user_message_chunk')).toBe(`${first}${second}`);
      expect(textOf(replayed, 'agent_thought_chunk')).toBe('I should write hello.txt.');
      expect(textOf(replayed, 'agent_message_chunk')).toBe('Writing the file.Done: hello.txt is written.');
      const replayedCalls = of(replayed, 'tool_call');
      expect(replayedCalls.map((c) => c.title)).toEqual(['write hello.txt', 'bash sleep 30']);
      const outcomes = of(replayed, 'tool_call_update').filter((u) => u.status === 'completed' || u.status === 'failed');
      expect(outcomes.map((u) => u.status)).toEqual(['completed', 'failed']);
      expect(server.requests.length).toBe(started); // loading calls no model

      const before = second_.updates.length;
      const r3 = await agent.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: 'text', text: third }] });
      expect(r3.stopReason).toBe('end_turn');
      expect(textOf(second_.updates.slice(before), 'agent_message_chunk')).toBe('Again: hello.');
    });
    second_.child.stdin!.end();
    expect(await exited(second_.child)).toBe(0);
    expect(second_.stderr()).not.toMatch(/error/i);
  });

  it('loom acp - an MCP tool the editor names is used in a prompt; a rejected permission reaches the model', async () => {
    const prompt = 'use the echo tool';
    const server = await startScriptedOpenAIServer({
      respond: respondByConversation({
        [prompt]: [{ toolCalls: [{ name: 'mcp_fx_echo', arguments: { text: 'hi' } }] }, { toolCalls: [{ name: 'mcp_fx_echo', arguments: { text: 'again' } }] }, { text: 'ok' }],
      }),
    });
    onCleanup(() => void server.close());
    const home = tempDir('loom-acp-home-');
    const dir = tempDir('loom-acp-dir-');
    const editor = startEditor({ LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', LOOM_MODEL: 'openai/test' });
    editor.answers.push(async () => ({ outcome: { outcome: 'selected', optionId: 'once' } }));
    editor.answers.push(async () => ({ outcome: { outcome: 'selected', optionId: 'reject' } }));
    await editor.run(async (agent) => {
      await initialize(agent);
      const { sessionId } = await agent.request(methods.agent.session.new, {
        cwd: dir,
        mcpServers: [{ name: 'fx', command: process.execPath, args: [STDIO_SERVER], env: [] }],
      });
      const r = await agent.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: 'text', text: prompt }] });
      expect(r.stopReason).toBe('end_turn');
      expect(editor.permissionRequests.map((p) => p.toolCall.title)).toEqual(['mcp_fx_echo', 'mcp_fx_echo']);
      const ends = of(editor.updates, 'tool_call_update').filter((u) => u.status === 'completed' || u.status === 'failed');
      expect(ends.map((u) => u.status)).toEqual(['completed', 'failed']);
      expect(JSON.stringify(ends[0]!.content)).toContain('echo: hi');
      expect(JSON.stringify(ends[1]!.content)).toContain('rejected in the editor');
    });
    // The model saw the tool's output, then the rejection.
    const tools = (server.requests[2]!.body as { messages: { role: string; content: string }[] }).messages.filter((m) => m.role === 'tool').map((m) => m.content);
    expect(tools[0]).toBe('echo: hi');
    expect(tools[1]).toMatch(/denied: rejected in the editor/);
    editor.child.stdin!.end();
    expect(await exited(editor.child)).toBe(0);
    expect(existsSync(join(home, 'loom.db'))).toBe(true);
  });

  it('loom acp - protocol errors name the problem: a relative cwd, an unknown session, an image prompt', async () => {
    const home = tempDir('loom-acp-home-');
    const dir = tempDir('loom-acp-dir-');
    writeFileSync(join(dir, 'x'), '');
    const editor = startEditor({ LOOM_HOME: home, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_API_KEY: '', LOOM_MODEL: 'openai/test' });
    await editor.run(async (agent) => {
      await initialize(agent);
      await expect(agent.request(methods.agent.session.new, { cwd: 'relative/dir', mcpServers: [] })).rejects.toThrow(/cwd must be an absolute path/);
      await expect(agent.request(methods.agent.session.new, { cwd: join(dir, 'x'), mcpServers: [] })).rejects.toThrow(/not a directory/);
      await expect(agent.request(methods.agent.session.prompt, { sessionId: 'ses_nope', prompt: [{ type: 'text', text: 'hi' }] })).rejects.toThrow(/not found/i);
      await expect(agent.request(methods.agent.session.load, { sessionId: 'ses_nope', cwd: dir, mcpServers: [] })).rejects.toThrow(/not found/i);
      const { sessionId } = await agent.request(methods.agent.session.new, { cwd: dir, mcpServers: [] });
      await expect(
        agent.request(methods.agent.session.prompt, { sessionId, prompt: [{ type: 'image', data: 'AAAA', mimeType: 'image/png' }] }),
      ).rejects.toThrow(/image content is not supported/);
    });
    editor.child.stdin!.end();
    expect(await exited(editor.child)).toBe(0);
  });
});
