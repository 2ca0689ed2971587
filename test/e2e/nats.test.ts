import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, startNatsServer } from '../fixtures/nats-server.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { spawnLoom } from '../fixtures/torture.js';
import { DIST, onCleanup, tempDir } from '../helpers.js';
import { Store, type AnyEnvelope } from '../../store/index.js';
import { eventually, readStream } from '../transport/nats/helpers.js';

/** A real `loom` process, killed after the test. */
function loom(args: string[], env: NodeJS.ProcessEnv) {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return {
    ...p,
    async stderrUntil(re: RegExp): Promise<RegExpMatchArray> {
      const m = await p.stderrUntil(re);
      if (!m) throw new Error(`loom ${args.join(' ')} exited before printing ${re}`);
      return m;
    },
  };
}

async function setup(script: ScriptedTurn[]) {
  const nats = await startNatsServer({ onCleanup });
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
  const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', LOOM_NATS_URL: nats.url };
  return { nats, server, home, dir, env };
}

/** The examples/nats-subscriber.js process (compiled), printing every session event as NDJSON. */
function subscriber(url: string) {
  const child = spawn(process.execPath, [join(DIST, 'examples', 'nats-subscriber.js'), '--nats', url, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return {
    events: () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AnyEnvelope),
    stderr: () => stderr,
  };
}

function sessionLog(home: string, sessionId: string): AnyEnvelope[] {
  const store = Store.open(join(home, 'loom.db'));
  try {
    const out: AnyEnvelope[] = [];
    for (let page = store.read(sessionId); page.length > 0; page = store.read(sessionId, { after: out.at(-1)!.seq })) out.push(...page);
    return out;
  } finally {
    store.close();
  }
}

const slow = (text: string): ScriptedTurn => ({ text, delayMs: 20, chunkSize: 2 });

describe('loom with NATS (real processes, a real nats-server)', () => {
  it('loom tail --follow - in another process gets the run\'s events through NATS: all of them, in order, once', async () => {
    const { env, dir, home } = await setup([{ toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, slow('You need milk. '.repeat(8))]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, '--permission', 'allow', 'what do my notes say?'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    const tail = loom(['tail', id!, '--follow', '--json'], env);
    let printed = '';
    tail.child.stdout!.on('data', (d) => (printed += d));
    await tail.stderrUntil(/through NATS/);
    const r = await run.done;
    expect(r.code).toBe(0);
    const log = sessionLog(home, id!);
    const out = () => printed.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AnyEnvelope);
    await eventually(() => out().length >= log.length, 10_000, 'the tail to print every event');
    tail.child.kill('SIGTERM');
    expect((await tail.done).code).toBe(0);
    expect(out()).toEqual(log);
    expect(log.at(-1)).toMatchObject({ type: 'activity.settled', data: { status: 'completed' } });
  });

  it('nats-server killed and restarted mid-run: 0 events lost, the session completes, the example subscriber receives every event once and in order', async () => {
    const { env, dir, home, nats } = await setup([slow('a long answer, streamed slowly. '.repeat(6))]);
    const sub = subscriber(nats.url);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'talk slowly'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    await eventually(() => sub.events().length >= 3, 10_000, 'the first events at the subscriber');
    await nats.kill();
    await new Promise((r) => setTimeout(r, 300));
    await nats.restart();
    const r = await run.done;
    expect(r.code).toBe(0);
    const log = sessionLog(home, id!);
    expect(log.at(-1)).toMatchObject({ type: 'activity.settled', data: { status: 'completed' } });
    await eventually(() => sub.events().length >= log.length, 15_000, `every event at the subscriber (${sub.stderr()})`);
    expect(sub.events()).toEqual(log);
  });

  it('NATS down: loom run works from SQLite alone; a later command with NATS up publishes the backlog in order', async () => {
    const { env, dir, home, nats } = await setup([{ text: 'first answer' }, { text: 'second answer' }]);
    const down = `nats://127.0.0.1:${await freePort()}`;
    const first = await loom(['run', '--model', 'openai/test', '--dir', dir, 'hello'], { ...env, LOOM_NATS_URL: down }).done;
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('first answer');
    const id = first.stderr.match(/session (ses_\S+)/)![1]!;
    const second = await loom(['prompt', id, 'again'], env).done;
    expect(second.code).toBe(0);
    const log = sessionLog(home, id);
    const stream = (await readStream(nats.url)).map((m) => m.event);
    expect(stream.filter((e) => e.sessionId === id)).toEqual(log);
    // The system log (providers loaded, their models) is published too, in the same gseq order.
    expect(stream.some((e) => e.sessionId === null && e.type === 'provider.loaded')).toBe(true);
    expect(stream.map((e) => e.gseq)).toEqual([...stream.map((e) => e.gseq)].sort((x, y) => x - y));
  });

  it('loom cancel - from another process, signalled over NATS: the owner aborts its run, which exits 3', async () => {
    const { env, dir } = await setup([slow('x'.repeat(600))]);
    const run = loom(['run', '--model', 'openai/test', '--dir', dir, 'long'], env);
    const [, id] = await run.stderrUntil(/session (ses_\S+)/);
    await new Promise((r) => setTimeout(r, 400));
    const cancel = await loom(['cancel', id!], env).done;
    const r = await run.done;
    expect(cancel.code).toBe(0);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('activity cancelled');
  });
});
