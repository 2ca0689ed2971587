import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedAnthropicServer } from '../fixtures/scripted-anthropic-server.js';
import { spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';

function loom(args: string[], env: NodeJS.ProcessEnv) {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return p.done;
}

describe('loom CLI with the anthropic provider (real processes)', () => {
  it('loom run - anthropic/... without ANTHROPIC_API_KEY exits 2 and names it', async () => {
    const home = tempDir();
    const r = await loom(['run', '--model', 'anthropic/claude-test', 'hello'], { LOOM_HOME: home, ANTHROPIC_API_KEY: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ANTHROPIC_API_KEY/);
  });

  it('loom run - anthropic/test runs a tool turn against the scripted Messages server', async () => {
    const server = await startScriptedAnthropicServer([
      { thinking: { text: 'look at the notes', signature: 'sig==' }, toolUses: [{ name: 'read', input: { path: 'notes.md' } }] },
      { text: 'You need milk.' },
    ]);
    onCleanup(() => void server.close());
    const home = tempDir('loom-e2e-home-');
    const dir = tempDir('loom-e2e-dir-');
    writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
    const env = { LOOM_HOME: home, ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: server.url };
    const r = await loom(['run', '--model', 'anthropic/test', '--dir', dir, 'what do my notes say?'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('You need milk.');
    const messages = server.requests[1]!.body.messages as Array<{ role: string; content: Array<Record<string, unknown>> }>;
    expect(messages[1]!.content[0]).toEqual({ type: 'thinking', thinking: 'look at the notes', signature: 'sig==' });
    expect(String(messages[2]!.content[0]!.content)).toContain('remember the milk');
  });
});
