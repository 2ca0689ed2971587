import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom as loom } from './loom.js';

const call = (name: string, args: Record<string, unknown>): ScriptedTurn => ({ toolCalls: [{ name, arguments: args }] });

interface Envelope {
  sessionId: string;
  seq: number;
  type: string;
  data: Record<string, any>;
}

async function setup(script: ScriptedTurn[]) {
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  const dir = tempDir('loom-e2e-dir-');
  const env = { LOOM_HOME: tempDir('loom-e2e-home-'), OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', NO_COLOR: '1' };
  const file = (rel: string) => join(dir, rel);
  const events = async (id: string): Promise<Envelope[]> =>
    (await loom(['tail', id, '--json'], env)).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Envelope);
  return { server, dir, env, file, events };
}

describe('loom diff | undo | session fork --restore-files (real processes)', () => {
  it('loom diff and loom undo - per-activity diffs; undo refuses while the user has edited a file (naming it, restoring nothing), then restores; a created file is deleted', async () => {
    const { dir, env, file, events } = await setup([
      call('write', { path: 'src/app.txt', content: 'hello\n' }),
      { text: 'wrote it' },
      call('edit', { path: 'src/app.txt', old_string: 'hello', new_string: 'hello, world' }),
      call('bash', { command: 'echo generated > gen.txt && rm old.txt' }),
      { text: 'changed it' },
    ]);
    writeFileSync(file('old.txt'), 'keep me\n');
    const run = await loom(['run', '--permission', 'allow', '--json', '--model', 'openai/test', '--dir', dir, 'write the app'], env);
    expect(run.code).toBe(0);
    const id = (JSON.parse(run.stdout.split('\n')[0]!) as Envelope).sessionId;
    expect((await loom(['prompt', '--permission', 'allow', id, 'change it'], env)).code).toBe(0);
    expect(readFileSync(file('src/app.txt'), 'utf8')).toBe('hello, world\n');
    const [a1, a2] = (await events(id)).filter((e) => e.type === 'activity.opened').map((e) => e.data.activityId as string);

    // Default: the last activity that changed files.
    const diff = await loom(['diff', id], env);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toContain(`# activity ${a2}: 3 files changed`);
    expect(diff.stdout).toContain('--- a/src/app.txt\n+++ b/src/app.txt');
    expect(diff.stdout).toContain('-hello\n+hello, world');
    expect(diff.stdout).toContain('--- /dev/null\n+++ b/gen.txt');
    expect(diff.stdout).toContain('--- a/old.txt\n+++ /dev/null');
    const first = JSON.parse((await loom(['diff', id, '--activity', a1!, '--json'], env)).stdout) as { activityId: string; files: { path: string; status: string }[] };
    expect(first).toMatchObject({ activityId: a1, files: [{ path: 'src/app.txt', status: 'created' }] });
    const all = await loom(['diff', id, '--all'], env);
    expect(all.stdout).toContain(`# session ${id}: 3 files changed`);
    expect(all.stdout).toContain('--- /dev/null\n+++ b/src/app.txt\n@@ -0,0 +1,1 @@\n+hello, world');
    expect((await loom(['diff', id, '--activity', 'act_nope'], env)).code).toBe(2);

    // The user edits a file the activity changed: undo refuses, names it, and restores nothing.
    writeFileSync(file('src/app.txt'), 'hello, world\nmy line\n');
    const refused = await loom(['undo', id], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/cannot undo activity .*: a file changed since, so nothing was restored:\n {2}src\/app\.txt: its content changed since; changed outside Loom/);
    expect(existsSync(file('gen.txt'))).toBe(true);
    expect(existsSync(file('old.txt'))).toBe(false);

    writeFileSync(file('src/app.txt'), 'hello, world\n');
    const undo = await loom(['undo', id], env);
    expect(undo.code).toBe(0);
    expect(undo.stdout.split('\n').filter(Boolean).sort()).toEqual(['deleted gen.txt', 'recreated old.txt', 'restored src/app.txt']);
    expect(undo.stderr).toContain(`undid activity ${a2}: 3 file(s) restored`);
    expect(readFileSync(file('src/app.txt'), 'utf8')).toBe('hello\n');
    expect(readFileSync(file('old.txt'), 'utf8')).toBe('keep me\n');
    expect(existsSync(file('gen.txt'))).toBe(false);

    // Next: the first activity, which created the file: undo deletes it.
    const undoFirst = JSON.parse((await loom(['undo', id, '--json'], env)).stdout) as { activityId: string; restored: unknown[] };
    expect(undoFirst).toMatchObject({ activityId: a1, restored: [{ path: 'src/app.txt', to: null }] });
    expect(existsSync(file('src/app.txt'))).toBe(false);
    const nothing = await loom(['undo', id], env);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/no activity with file changes left to undo/);

    const restored = (await events(id)).filter((e) => e.type === 'checkpoint.restored');
    expect(restored.map((e) => [e.data.reason, e.data.activityId])).toEqual([
      ['undo', a2],
      ['undo', a1],
    ]);
  });

  it('loom session fork --restore-files - the shared directory goes back to its state at SEQ; refused with nothing forked when a file changed since', async () => {
    const { dir, env, file, events } = await setup([
      call('write', { path: 'a.txt', content: 'v1\n' }),
      { text: 'one' },
      call('edit', { path: 'a.txt', old_string: 'v1', new_string: 'v2' }),
      call('write', { path: 'c.txt', content: 'later\n' }),
      { text: 'two' },
    ]);
    const run = await loom(['run', '--permission', 'allow', '--json', '--model', 'openai/test', '--dir', dir, 'one'], env);
    const id = (JSON.parse(run.stdout.split('\n')[0]!) as Envelope).sessionId;
    const at = (await events(id)).find((e) => e.type === 'activity.settled')!.seq;
    expect((await loom(['prompt', '--permission', 'allow', id, 'two'], env)).code).toBe(0);
    expect(readFileSync(file('a.txt'), 'utf8')).toBe('v2\n');

    // A file changed outside Loom: refused, nothing restored, no fork made.
    writeFileSync(file('c.txt'), 'later, edited\n');
    const refused = await loom(['session', 'fork', id, '--at', String(at), '--restore-files'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/c\.txt: its content changed since; changed outside Loom/);
    expect(refused.stderr).toContain('no fork was made');
    expect(readFileSync(file('a.txt'), 'utf8')).toBe('v2\n');
    expect((await loom(['session', 'ls', '--json'], env)).stdout.trim().split('\n')).toHaveLength(1);

    writeFileSync(file('c.txt'), 'later\n');
    const fork = await loom(['session', 'fork', id, '--at', String(at), '--restore-files', '--json'], env);
    expect(fork.code).toBe(0);
    const result = JSON.parse(fork.stdout) as { sessionId: string; location: string; restoredFiles: { path: string }[] };
    expect(result.location).toBe(dir);
    expect(result.restoredFiles.map((f) => f.path)).toEqual(['a.txt', 'c.txt']);
    expect(readFileSync(file('a.txt'), 'utf8')).toBe('v1\n');
    expect(existsSync(file('c.txt'))).toBe(false);
    const forkEvents = await events(result.sessionId);
    expect(forkEvents.at(-1)).toMatchObject({ type: 'checkpoint.restored', data: { reason: 'fork', atSeq: at, sourceId: id } });
    // The fork carries the first activity's checkpoint: its diff works there.
    const forkDiff = await loom(['diff', result.sessionId], env);
    expect(forkDiff.stdout).toContain('--- /dev/null\n+++ b/a.txt');
  });
});
