import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../actors/coordinator.js';
import { createProviderResolver } from '../../llm/resolve.js';
import { resolveConfig } from '../../services/config.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import { startScriptedResponsesServer } from '../fixtures/scripted-responses-server.js';
import { onCleanup, tempDir, tempStore } from '../helpers.js';

describe('openai-responses session', () => {
  it('openai-responses session - a run through a tool call replays the encrypted reasoning unchanged and completes', async () => {
    const server = await startScriptedResponsesServer([
      {
        reasoning: { id: 'rs_session', summary: 'I should read the file', encryptedContent: 'enc-session-blob==' },
        toolCalls: [{ callId: 'call_read', name: 'read', arguments: { path: 'hello.txt' } }],
        chunkSize: 3,
      },
      { text: 'The file greets you.' },
    ]);
    onCleanup(() => void server.close());
    const store = tempStore();
    const config = resolveConfig({ version: 2 });
    const tools = createDefaultRegistry();
    const home = tempDir();
    const deps = () => ({ config, home, tools, resolveProvider: createProviderResolver(config, { OPENAI_BASE_URL: server.url }) });
    const coordinator = new Coordinator({ store, deps });
    onCleanup(() => coordinator.shutdown());
    const location = tempDir();
    writeFileSync(join(location, 'hello.txt'), 'hello there\n');
    const sessionId = store.ids.next('ses');
    store.append({ sessionId, type: 'session.created', data: { location, model: 'openai-responses/test' } });
    store.admitInput(sessionId, { mode: 'steer', text: 'what does hello.txt say?' });

    const actor = coordinator.own(sessionId);
    if (!actor) throw new Error('could not own the session');
    await coordinator.runUntilQuiet(sessionId);
    if (actor.failure) throw actor.failure;

    store.flushDeltas();
    const events = store.read(sessionId);
    const settled = events.filter((e) => e.type === 'activity.settled');
    expect(settled.map((e) => (e.data as { status: string }).status)).toEqual(['completed']);
    expect(server.requests).toHaveLength(2);
    const first = server.requests[0]!.body as { model: string; store: boolean };
    expect(first).toMatchObject({ model: 'test', store: false });
    const replay = (server.requests[1]!.body as { input: Array<Record<string, unknown>> }).input;
    const types = replay.map((item) => item.type ?? item.role);
    expect(types).toEqual(['user', 'reasoning', 'function_call', 'function_call_output']);
    expect(replay[1]).toEqual({
      id: 'rs_session',
      type: 'reasoning',
      summary: [{ type: 'summary_text', text: 'I should read the file' }],
      encrypted_content: 'enc-session-blob==',
    });
    expect(replay[2]).toMatchObject({ type: 'function_call', call_id: 'call_read', name: 'read' });
    expect(replay[3]).toMatchObject({ type: 'function_call_output', call_id: 'call_read' });
    expect(String(replay[3]!.output)).toContain('hello there');
  });

  it('openai-responses session - encrypted reasoning without a summary on a text-only turn is replayed with the next input', async () => {
    const server = await startScriptedResponsesServer([
      { reasoning: { id: 'rs_quiet', summary: '', encryptedContent: 'enc-quiet==' }, text: 'Hello.' },
      { text: 'Still here.' },
    ]);
    onCleanup(() => void server.close());
    const store = tempStore();
    const config = resolveConfig({ version: 2 });
    const home = tempDir();
    const deps = () => ({ config, home, tools: createDefaultRegistry(), resolveProvider: createProviderResolver(config, { OPENAI_BASE_URL: server.url }) });
    const coordinator = new Coordinator({ store, deps });
    onCleanup(() => coordinator.shutdown());
    const sessionId = store.ids.next('ses');
    store.append({ sessionId, type: 'session.created', data: { location: tempDir(), model: 'openai-responses/test' } });
    store.admitInput(sessionId, { mode: 'steer', text: 'hi' });
    coordinator.own(sessionId);
    await coordinator.runUntilQuiet(sessionId);
    store.admitInput(sessionId, { mode: 'steer', text: 'again' });
    coordinator.get(sessionId)!.catchUp();
    await coordinator.runUntilQuiet(sessionId);
    expect(server.requests).toHaveLength(2);
    const replay = (server.requests[1]!.body as { input: Array<Record<string, unknown>> }).input;
    expect(replay.find((item) => item.type === 'reasoning')).toMatchObject({ id: 'rs_quiet', encrypted_content: 'enc-quiet==' });
  });
});
