import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom as loom } from './loom.js';


/** A scripted model and a session directory whose project config makes `read` ask. */
async function setup(script: ScriptedTurn[]) {
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
  mkdirSync(join(dir, '.loom'));
  writeFileSync(join(dir, '.loom', 'config.jsonc'), '{ "version": 2, "permission": { "rules": [{ "tool": "read", "action": "ask" }] } }\n');
  const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
  return { server, env, dir };
}

const readNotes: ScriptedTurn = { toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] };
const toolContents = (body: unknown) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'tool').map((m) => m.content);

describe('loom permit (real processes)', () => {
  it('loom run --permission ask without a TTY exits 5 with the ask pending; loom permit answers and the session completes', async () => {
    const { env, dir, server } = await setup([readNotes, { text: 'You need milk.' }]);
    const run = await loom(['run', '--model', 'openai/test', '--dir', dir, '--permission', 'ask', 'what do my notes say?'], env);
    expect(run.code).toBe(5);
    const id = run.stderr.match(/session (ses_\S+)/)![1]!;
    const requestId = run.stderr.match(/loom permit \S+ (perm_\S+) once\|always\|reject/)![1]!;
    expect(run.stderr).toContain('waiting for a permission decision');

    // The ask is durable: another process sees it, and the lease was released cleanly.
    const inspect = JSON.parse((await loom(['inspect', id, '--json'], env)).stdout);
    expect(inspect.permissions.pending).toMatchObject([{ requestId, tool: 'read', pattern: '*', summary: '{"path":"notes.md"}' }]);
    expect(inspect.owner.live).toBe(false);
    expect(inspect.state).toBe('awaitingTools');
    const listed = JSON.parse((await loom(['permit', id, '--json'], env)).stdout);
    expect(listed.pending.map((p: { requestId: string }) => p.requestId)).toEqual([requestId]);

    const permit = await loom(['permit', id, requestId, 'once'], env);
    expect(permit.code).toBe(0);
    expect(permit.stdout).toContain('You need milk.');
    expect(toolContents(server.requests[1]!.body)[0]).toContain('remember the milk');
    const after = JSON.parse((await loom(['inspect', id, '--json'], env)).stdout);
    expect(after).toMatchObject({ state: 'idle', lastActivityStatus: 'completed', permissions: { pending: [] } });

    // Answering again names what was wrong.
    const again = await loom(['permit', id, requestId, 'reject'], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`permission request ${requestId} was already answered (once)`);
  });

  it('loom permit reject --message: the call is denied and the model sees the message', async () => {
    const { env, dir, server } = await setup([readNotes, { text: 'Fine, I will not look.' }]);
    const run = await loom(['run', '--model', 'openai/test', '--dir', dir, '--permission', 'ask', 'read my notes'], env);
    expect(run.code).toBe(5);
    const id = run.stderr.match(/session (ses_\S+)/)![1]!;
    const requestId = run.stderr.match(/(perm_\S+) once\|always\|reject/)![1]!;
    const permit = await loom(['permit', id, requestId, 'reject', '--message', 'private notes'], env);
    expect(permit.code).toBe(0);
    expect(toolContents(server.requests[1]!.body)[0]).toContain('private notes');
  });

  it('loom permit always grants the scope across processes; --revoke records permission.revoked', async () => {
    const { env, dir } = await setup([readNotes, { text: 'one' }, readNotes, { text: 'two' }]);
    const run = await loom(['run', '--model', 'openai/test', '--dir', dir, '--permission', 'ask', 'read'], env);
    const id = run.stderr.match(/session (ses_\S+)/)![1]!;
    const requestId = run.stderr.match(/(perm_\S+) once\|always\|reject/)![1]!;
    expect((await loom(['permit', id, requestId, 'always'], env)).code).toBe(0);
    // a later prompt in another process reads without asking
    const prompt = await loom(['prompt', id, '--permission', 'ask', 'again'], env);
    expect(prompt.code).toBe(0);
    expect(prompt.stdout).toContain('two');
    const listed = JSON.parse((await loom(['permit', id, '--json'], env)).stdout);
    expect(listed.grants).toMatchObject([{ tool: 'read', pattern: '*', requestId }]);
    const revoke = await loom(['permit', id, '--revoke', 'read'], env);
    expect(revoke.code).toBe(0);
    expect(revoke.stderr).toContain('revoked always read *');
    const tail = await loom(['tail', id, '--json'], env);
    expect(tail.stdout).toContain('"type":"permission.revoked"');
    expect(JSON.parse((await loom(['permit', id, '--json'], env)).stdout).grants).toEqual([]);
    const missing = await loom(['permit', id, '--revoke', 'read'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('holds no always grant for read');
  });

  it('without --permission and without a TTY, asks are denied by policy so nothing hangs', async () => {
    const { env, dir } = await setup([readNotes, { text: 'denied, fine' }]);
    const run = await loom(['run', '--model', 'openai/test', '--dir', dir, '--json', 'read'], env);
    expect(run.code).toBe(0);
    const events = run.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.find((e) => e.type === 'permission.replied').data).toMatchObject({ reply: 'reject', message: expect.stringContaining('--permission deny') });
    expect(events.find((e) => e.type === 'tool.settled').data.status).toBe('denied');
  });

  it('loom permit - an unknown session or request exits 2 naming it', async () => {
    const { env, dir } = await setup([readNotes, { text: 'x' }]);
    const run = await loom(['run', '--model', 'openai/test', '--dir', dir, '--permission', 'ask', 'read'], env);
    const id = run.stderr.match(/session (ses_\S+)/)![1]!;
    const noSession = await loom(['permit', 'ses_nope', 'perm_x', 'once'], env);
    expect(noSession.code).toBe(2);
    expect(noSession.stderr).toContain('no session matches "ses_nope"');
    const noRequest = await loom(['permit', id, 'perm_nope', 'once'], env);
    expect(noRequest.code).toBe(2);
    expect(noRequest.stderr).toMatch(new RegExp(`session ${id} has no permission request "perm_nope" \\(pending: perm_`));
    const badReply = await loom(['permit', id, 'perm_nope', 'maybe'], env);
    expect(badReply.code).toBe(2);
  });
});
