import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';


interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A real `loom` process (the shared spawner of test/fixtures/torture.ts), killed after the test. */
function loom(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<Result>; stderrUntil(re: RegExp): Promise<RegExpMatchArray> } {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return {
    child: p.child,
    done: p.done,
    async stderrUntil(re) {
      const m = await p.stderrUntil(re);
      if (!m) throw new Error(`loom ${args.join(' ')} exited before printing ${re}`);
      return m;
    },
  };
}

async function setup(script: ScriptedTurn[], respond?: (req: any, i: number) => ScriptedTurn) {
  const server = await startScriptedOpenAIServer({ script, respond });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
  const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
  return { server, home, dir, env };
}

const userContents = (body: unknown) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'user').map((m) => m.content);
const slow = (text: string): ScriptedTurn => ({ text, delayMs: 50, chunkSize: 2 });

describe('loom CLI (real processes)', () => {
  it('loom --version - prints the version and exits 0', async () => {
    const r = await loom(['--version'], {}).done;
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('loom session ls - opens and migrates the database in $LOOM_HOME', async () => {
    const home = tempDir();
    const r = await loom(['session', 'ls', '--json'], { LOOM_HOME: home }).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });

  it('two processes opening a brand-new $LOOM_HOME at once both succeed (the WAL switch waits instead of failing "database is locked")', async () => {
    for (let i = 0; i < 10; i++) {
      const home = tempDir();
      const results = await Promise.all([loom(['session', 'ls'], { LOOM_HOME: home }).done, loom(['session', 'ls'], { LOOM_HOME: home }).done]);
      expect(results.map((r) => `${r.code} ${r.stderr}`)).toEqual(['0 ', '0 ']);
    }
  });

  it('loom run - with no provider configured exits 2 and names the missing variable', async () => {
    const home = tempDir();
    const r = await loom(['run', 'hello'], { LOOM_HOME: home, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/OPENAI_API_KEY/);
    const ls = await loom(['session', 'ls', '--json'], { LOOM_HOME: home }).done;
    expect(ls.stdout).toBe(''); // nothing was created
  });

  it('loom run - runs a tool turn through the real adapter and streams the answer', async () => {
    const { env, dir, server } = await setup([{ toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, { text: 'You need milk.' }]);
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, 'what do my notes say?'], env).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('You need milk.');
    expect(r.stderr).toContain('→ read');
    const tool = (server.requests[1]!.body as { messages: { role: string; content: string }[] }).messages.find((m) => m.role === 'tool')!;
    expect(tool.content).toContain('remember the milk');
    const ls = await loom(['session', 'ls', '--json'], env).done;
    expect(JSON.parse(ls.stdout.trim())).toMatchObject({ status: 'idle', lastActivityStatus: 'completed', location: expect.stringContaining('loom-e2e-dir-') });
  });

  it('loom run --json - prints one envelope per line', async () => {
    const { env, dir } = await setup([{ text: 'hi' }]);
    const r = await loom(['run', '--json', '--model', 'openai/test', '--dir', dir, 'hello'], env).done;
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ seq: 1, type: 'session.created', version: 1 });
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    expect(lines.at(-1)).toMatchObject({ type: 'activity.settled', data: { status: 'completed' } });
    for (const l of lines) expect(Object.keys(l).sort()).toEqual(['at', 'data', 'gseq', 'seq', 'sessionId', 'type', 'version']);
  });

  it('loom prompt --steer - from a second process reaches the session loom run is running, at the next safe boundary', async () => {
    // The first answer streams for ~2.5 s, so the steer lands while it runs even on a loaded machine
    // (if the first activity settled first, the prompt would run the session itself and the test would not test steering).
    const { env, dir, server } = await setup([slow('a long first answer, streamed slowly, two characters every fifty milliseconds, for long'), { text: 'steered' }]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'first'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    await new Promise((r) => setTimeout(r, 400));
    const prompt = await loom(['prompt', id!, '--steer', 'also this'], env).done;
    expect(prompt.code).toBe(0);
    expect(prompt.stderr).toMatch(/admitted steer/);
    const r = await run.done;
    expect(r.code).toBe(0);
    expect(server.requests).toHaveLength(2);
    expect(userContents(server.requests[1]!.body)).toEqual(['first', 'also this']);
    expect(r.stdout).toContain('steered');
  });

  it('loom prompt - runs the session itself when no live owner holds it; a queued input runs after', async () => {
    const { env, dir, server } = await setup([{ text: 'one' }, { text: 'two' }]);
    const first = await loom(['run', '--model', 'openai/test', '--dir', dir, 'first'], env).done;
    const id = first.stderr.match(/session (ses_\S+)/)![1]!;
    const r = await loom(['prompt', id.slice(0, 20), '--queue', 'second'], env).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('two');
    expect(userContents(server.requests[1]!.body)).toEqual(['first', 'second']);
  });

  it('loom cancel - from another process cancels the running activity; run exits 3', async () => {
    const { env, dir } = await setup([slow('x'.repeat(300))]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'long'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    await new Promise((r) => setTimeout(r, 400));
    const cancel = await loom(['cancel', id!], env).done;
    expect(cancel.code).toBe(0);
    const r = await run.done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('activity cancelled');
  });

  it('loom run - Ctrl-C cancels the activity and exits 3', async () => {
    const { env, dir } = await setup([slow('y'.repeat(300))]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'long'], env);
    await run.stderrUntil(/session (ses_\S+)/);
    await new Promise((r) => setTimeout(r, 400));
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(3);
  });

  it('loom run - SIGTERM drains: the stream and tool in flight finish, nothing new is sent, the lease is released', async () => {
    const { env, dir, server } = await setup([{ text: 'reading it now', delayMs: 60, chunkSize: 2, toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, { text: 'never sent' }]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'go'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    await new Promise((r) => setTimeout(r, 300));
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(143);
    expect(server.requests).toHaveLength(1);
    const events = (await loom(['tail', id!, '--json'], env).done).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const types = events.map((e) => e.type);
    expect(types).toContain('tool.settled');
    expect(types.filter((t) => t === 'attempt.dispatched')).toHaveLength(1);
    expect(types.filter((t) => t === 'turn.started')).toHaveLength(2);
    const inspect = JSON.parse((await loom(['inspect', id!, '--json'], env).done).stdout);
    expect(inspect.owner.live).toBe(false);
  });

  it('loom run - reaching the turn limit exits 4', async () => {
    const { env, dir, home } = await setup(Array.from({ length: 5 }, () => ({ toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] })));
    writeFileSync(join(home, 'config.jsonc'), '{ "version": 2, "limits": { "turnLimit": 2 } // two turns\n}');
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, 'loop forever'], env).done;
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('turn_limit');
  });

  it('killed mid-stream: inspect shows recovering, run-state waits (exit 5), recover --abandon settles it (exit 1)', async () => {
    const { env, dir } = await setup([slow('z'.repeat(400))]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'long'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    await new Promise((r) => setTimeout(r, 400));
    run.child.kill('SIGKILL');
    await run.done;
    // the dead owner's lease still looks live, but its process is gone: the next process takes over at once
    const waiting = await loom(['prompt', id!, '--queue', 'more'], env).done;
    expect(waiting.code).toBe(5);
    const inspect = await loom(['inspect', id!, '--json'], env).done;
    expect(JSON.parse(inspect.stdout)).toMatchObject({ state: 'recovering' });
    const recover = await loom(['recover', id!, '--abandon', '--reason', 'killed in a test'], env).done;
    expect(recover.code).toBe(1);
    expect(recover.stderr).toContain('abandoned');
    const after = JSON.parse((await loom(['inspect', id!, '--json'], env).done).stdout);
    expect(after).toMatchObject({ state: 'idle', lastActivityStatus: 'abandoned', parked: true });
  });

  it('loom tail --follow - follows another process\'s session as it runs', async () => {
    const { env, dir } = await setup([slow('streamed text')]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'go'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    const tail = loom(['tail', id!, '--follow', '--json'], env);
    await run.done;
    await new Promise((r) => setTimeout(r, 400));
    tail.child.kill('SIGINT');
    const t = await tail.done;
    const types = t.stdout.trim().split('\n').map((l) => JSON.parse(l).type);
    expect(types[0]).toBe('session.created');
    expect(types.at(-1)).toBe('activity.settled');
  });

  it('loom prompt - an unknown session exits 2 with a clear message', async () => {
    const home = tempDir();
    const r = await loom(['prompt', 'ses_nope', 'hello'], { LOOM_HOME: home }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no session matches "ses_nope"');
  });
});
