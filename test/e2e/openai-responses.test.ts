import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedResponsesServer } from '../fixtures/scripted-responses-server.js';
import { spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';

function loom(args: string[], env: NodeJS.ProcessEnv) {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return p.done;
}

describe('loom run with openai-responses (real processes)', () => {
  it('loom run openai-responses - with no key or base URL exits 2 and names the missing variable', async () => {
    const home = tempDir();
    const r = await loom(['run', '--model', 'openai-responses/gpt-5', 'hello'], { LOOM_HOME: home, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/OPENAI_API_KEY/);
  });

  it('loom run openai-responses - runs a tool turn against the scripted Responses server and prints the answer', async () => {
    const server = await startScriptedResponsesServer([
      { reasoning: { summary: 'read it', encryptedContent: 'enc-e2e==' }, toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] },
      { text: 'You need milk.' },
    ]);
    onCleanup(() => void server.close());
    const dir = tempDir('loom-e2e-dir-');
    writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
    const env = { LOOM_HOME: tempDir('loom-e2e-home-'), OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
    const r = await loom(['run', '--model', 'openai-responses/test', '--dir', dir, 'what do I need?'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('You need milk.');
    expect(server.requests).toHaveLength(2);
    const replay = (server.requests[1]!.body as { input: Array<Record<string, unknown>> }).input;
    expect(replay.find((item) => item.type === 'reasoning')).toMatchObject({ encrypted_content: 'enc-e2e==' });
    expect(String(replay.find((item) => item.type === 'function_call_output')?.output)).toContain('remember the milk');
  });
});
