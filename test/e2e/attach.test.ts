import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom as loom } from './loom.js';


async function setup(script: ScriptedTurn[]) {
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
  writeFileSync(join(home, 'secret.txt'), 'not for the model\n');
  const web = createServer((req, res) => {
    res.writeHead(req.url === '/page' ? 200 : 404, { 'content-type': 'text/html' });
    res.end('<html><body><h1>Changelog</h1><p>Version <b>2</b> is out.</p></body></html>');
  });
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  onCleanup(() => {
    web.closeAllConnections();
    web.close();
  });
  const page = `http://127.0.0.1:${(web.address() as AddressInfo).port}/page`;
  const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
  return { server, home, dir, env, page };
}

const contents = (body: unknown, role: string) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === role).map((m) => m.content);

describe('loom --attach and webfetch (real processes)', () => {
  it('loom run --attach - the model sees the file and the page', async () => {
    const { env, dir, server, page } = await setup([{ text: 'Buy milk; v2 shipped.' }]);
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, '--attach', 'notes.md', '--attach', page, 'summarise'], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`(attached: notes.md, ${page})`);
    expect(contents(server.requests[0]!.body, 'user')).toEqual([
      'summarise\n\n<attachment kind="file" name="notes.md" type="text/markdown">\nremember the milk\n</attachment>\n\n' +
        `<attachment kind="url" name="${page}" type="text/markdown">\n# Changelog\n\nVersion **2** is out.\n</attachment>`,
    ]);
  });

  it('loom run --attach - a file outside the directory is refused with exit 2 and nothing is created', async () => {
    const { env, dir, home, server } = await setup([{ text: 'never' }]);
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, '--attach', join(home, 'secret.txt'), 'read it'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot attach ".*secret\.txt": path .* is outside the session directory/);
    expect(server.requests).toHaveLength(0);
    const ls = await loom(['session', 'ls', '--json'], env);
    expect(ls.stdout).toBe('');
  });

  it('loom prompt --attach - an unreachable URL is refused with exit 2 and no input is admitted', async () => {
    const { env, dir } = await setup([{ text: 'first answer' }]);
    const first = await loom(['run', '--model', 'openai/test', '--dir', dir, 'hello'], env);
    expect(first.code).toBe(0);
    const id = /session (ses_\S+)/.exec(first.stderr)![1]!;
    const r = await loom(['prompt', id, '--attach', 'http://127.0.0.1:1/nothing-listens', 'more'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot attach "http:\/\/127\.0\.0\.1:1\/nothing-listens": .*ECONNREFUSED/);
    const tail = await loom(['tail', id, '--json'], env);
    const admitted = tail.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'input.admitted');
    expect(admitted).toHaveLength(1);
  });

  it('loom run - the model calls webfetch and gets the page as Markdown', async () => {
    const { env, dir, server, page } = await setup([]);
    server.push({ toolCalls: [{ name: 'webfetch', arguments: { url: page } }] }, { text: 'Version 2 is out.' });
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, '--permission', 'allow', "what's new?"], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('→ webfetch');
    expect(contents(server.requests[1]!.body, 'tool')).toEqual(['# Changelog\n\nVersion **2** is out.']);
  });
});
