import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { respondByConversation } from '../fixtures/scripted-routes.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom as loom } from './loom.js';


/** A local page for webfetch. */
async function startPage(): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<html><body><h1>Release notes</h1><p>Version <b>2.1</b> ships today.</p></body></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => void server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/notes`;
}

const call = (name: string, args: Record<string, unknown>): ScriptedTurn => ({ toolCalls: [{ name, arguments: args }] });

interface ChatBody {
  messages: { role: string; content: string; tool_call_id?: string }[];
}

describe('loom CLI - every built-in tool from loom run (real processes)', () => {
  it('loom run - the scripted model uses each built-in tool in turn; every result reaches it and the files change', async () => {
    const page = await startPage();
    const prompt = 'tidy up my notes';
    const childPrompt = 'count the lines of notes.md';
    const script: ScriptedTurn[] = [
      call('list', { path: '.' }),
      call('glob', { pattern: '**/*.md' }),
      call('grep', { pattern: 'milk' }),
      call('read', { path: 'notes.md' }),
      call('write', { path: 'out/summary.txt', content: 'draft summary\n' }),
      call('edit', { path: 'out/summary.txt', old_string: 'draft', new_string: 'final' }),
      call('webfetch', { url: page, format: 'text' }),
      call('task', { description: 'count lines', prompt: childPrompt }),
      call('bash', { command: 'wc -l < notes.md && echo from-bash > out/bash.txt' }),
      { text: 'All done.' },
    ];
    const server = await startScriptedOpenAIServer({
      respond: respondByConversation({
        [prompt]: script,
        [childPrompt]: [call('read', { path: 'notes.md' }), { text: 'notes.md has 2 lines.' }],
      }),
    });
    onCleanup(() => void server.close());
    const home = tempDir('loom-e2e-home-');
    const dir = tempDir('loom-e2e-dir-');
    writeFileSync(join(dir, 'notes.md'), 'remember the milk\nand the bread\n');
    writeFileSync(join(dir, 'todo.md'), 'call the plumber\n');
    const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };

    const r = await loom(['run', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, prompt], env);
    expect(r.stderr).not.toMatch(/Error|failed/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('All done.');

    // The parent's requests, in order: each after the first carries the previous tool's result last.
    const parent = server.requests.filter((q) => (q.body as ChatBody).messages.find((m) => m.role === 'user')?.content === prompt);
    expect(parent).toHaveLength(script.length);
    const lastTool = (i: number) => {
      const tools = (parent[i]!.body as ChatBody).messages.filter((m) => m.role === 'tool');
      return tools[tools.length - 1]!.content;
    };
    expect(lastTool(1)).toMatch(/notes\.md/); // list
    expect(lastTool(1)).toMatch(/todo\.md/);
    expect(lastTool(2)).toMatch(/notes\.md/); // glob
    expect(lastTool(3)).toMatch(/notes\.md.*remember the milk/s); // grep
    expect(lastTool(4)).toMatch(/1\tremember the milk/); // read
    expect(lastTool(5)).toMatch(/out\/summary\.txt/); // write
    expect(lastTool(6)).toMatch(/summary\.txt/); // edit
    expect(lastTool(7)).toMatch(/Release notes[\s\S]*2\.1/); // webfetch
    expect(lastTool(8)).toContain('notes.md has 2 lines.'); // task
    expect(lastTool(9)).toMatch(/^\s*2\b/m); // bash
    expect(readFileSync(join(dir, 'out', 'summary.txt'), 'utf8')).toBe('final summary\n');
    expect(readFileSync(join(dir, 'out', 'bash.txt'), 'utf8')).toBe('from-bash\n');
  });
});
