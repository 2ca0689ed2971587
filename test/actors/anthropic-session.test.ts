import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../actors/coordinator.js';
import { createProviderResolver } from '../../llm/resolve.js';
import { resolveConfig } from '../../services/config.js';
import type { AnyEnvelope } from '../../store/index.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import { startScriptedAnthropicServer } from '../fixtures/scripted-anthropic-server.js';
import { onCleanup, tempDir, tempStore } from '../helpers.js';

describe('session with the anthropic provider', () => {
  it('anthropic session - a thinking turn with a tool call runs the tool and replays thinking, tool_use and tool_result', async () => {
    const signature = 'sig/+opaque==';
    const server = await startScriptedAnthropicServer([
      { thinking: { text: 'read the notes', signature }, toolUses: [{ id: 'toolu_read', name: 'read', input: { path: 'notes.txt' } }] },
      { text: 'The notes say hello.' },
    ]);
    onCleanup(() => void server.close());
    const store = tempStore();
    const config = resolveConfig({ version: 2 });
    const home = tempDir();
    const deps = () => ({
      config,
      home,
      tools: createDefaultRegistry(),
      resolveProvider: createProviderResolver(config, { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: server.url }),
    });
    const coordinator = new Coordinator({ store, deps });
    onCleanup(() => coordinator.shutdown());
    const location = tempDir();
    writeFileSync(join(location, 'notes.txt'), 'hello from the notes\n');
    const sessionId = store.ids.next('ses');
    store.append({ sessionId, type: 'session.created', data: { location, model: 'anthropic/test' } });
    store.admitInput(sessionId, { mode: 'steer', text: 'what do the notes say?' });

    const actor = coordinator.own(sessionId);
    if (!actor) throw new Error('could not own the session');
    await coordinator.runUntilQuiet(sessionId);
    if (actor.failure) throw actor.failure;

    store.flushDeltas();
    const events: AnyEnvelope[] = [];
    for (let page = store.read(sessionId); page.length > 0; page = store.read(sessionId, { after: page.at(-1)!.seq })) events.push(...page);
    const types = events.map((e) => e.type);
    expect(types).toContain('tool.called');
    expect(events.find((e) => e.type === 'activity.settled')?.data).toMatchObject({ status: 'completed', turns: 2 });

    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]!.body.model).toBe('test');
    const replay = server.requests[1]!.body.messages as Array<{ role: string; content: unknown }>;
    expect(replay[1]).toEqual({
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'read the notes', signature },
        { type: 'tool_use', id: 'toolu_read', name: 'read', input: { path: 'notes.txt' } },
      ],
    });
    const results = replay[2]!.content as Array<Record<string, unknown>>;
    expect(replay[2]!.role).toBe('user');
    expect(results[0]).toMatchObject({ type: 'tool_result', tool_use_id: 'toolu_read' });
    expect(String(results[0]!.content)).toContain('hello from the notes');
  });
});
