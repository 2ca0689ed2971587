import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { firstUserMessage, respondByConversation } from '../fixtures/scripted-routes.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom as loom } from './loom.js';


describe('loom CLI - the task tool (real processes)', () => {
  it('loom run - a task call runs a subagent session whose answer reaches the parent; session ls and show know the child', async () => {
    const parentPrompt = 'what do my notes say? ask a subagent';
    const childPrompt = 'read notes.md and report what it says';
    const server = await startScriptedOpenAIServer({
      respond: respondByConversation({
        [parentPrompt]: [{ toolCalls: [{ name: 'task', arguments: { description: 'read the notes', prompt: childPrompt } }] }, { text: 'Your notes are about milk.' }],
        [childPrompt]: [{ toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, { text: 'The notes say: remember the milk.' }],
      }),
    });
    onCleanup(() => void server.close());
    const home = tempDir('loom-e2e-home-');
    const dir = tempDir('loom-e2e-dir-');
    writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
    const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };

    const r = await loom(['run', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, parentPrompt], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Your notes are about milk.');
    expect(r.stderr).toContain('→ task');
    const parentId = r.stderr.match(/session (ses_\S+)/)![1]!;
    expect(server.requests.map((q) => firstUserMessage(q.body))).toEqual([parentPrompt, childPrompt, childPrompt, parentPrompt]);
    const toolMessage = (server.requests[3]!.body as { messages: { role: string; content: string }[] }).messages.find((m) => m.role === 'tool')!;
    expect(toolMessage.content).toContain('The notes say: remember the milk.');
    const childId = toolMessage.content.match(/Subagent session (ses_\S+)/)![1]!;

    const ls = await loom(['session', 'ls', '--json'], env);
    const rows = ls.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.find((row) => row.sessionId === childId)).toMatchObject({ parentId, title: 'task: read the notes', lastActivityStatus: 'completed' });
    const human = await loom(['session', 'ls'], env);
    expect(human.stdout).toMatch(new RegExp(`${childId} .*← ${parentId} "task: read the notes"`));

    const show = await loom(['session', 'show', childId], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`← ${parentId}`);
    expect(show.stdout).toContain(`user: ${childPrompt}`);
    expect(show.stdout).toContain('tool read(');
    expect(show.stdout).toContain('assistant: The notes say: remember the milk.');
  });
});
