import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { LOOM_BIN, spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';

function run(args: string[], env: NodeJS.ProcessEnv) {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return p;
}
const loom = (args: string[], env: NodeJS.ProcessEnv) => run(args, env).done;

async function setup(script: ScriptedTurn[] = [], respond?: () => ScriptedTurn) {
  const server = await startScriptedOpenAIServer({ script, respond });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  return { server, home, dir, env: { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', NO_COLOR: '1' } };
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const slow = (text: string): ScriptedTurn => ({ text, delayMs: 30, chunkSize: 2 });
const inspect = async (id: string, env: NodeJS.ProcessEnv) => JSON.parse((await loom(['inspect', id, '--json'], env)).stdout);

describe('loom session new | rm | export | import (real processes)', () => {
  it('session new, export (stdout and --out), import into a new session, rm with its files', async () => {
    const { env, dir, home } = await setup([{ text: 'first answer' }]);
    const created = await loom(['session', 'new', '--model', 'openai/test', '--dir', dir, '--double-texting', 'queue', '--title', 'mine'], env);
    expect(created.code).toBe(0);
    const id = created.stdout.trim();
    expect(id).toMatch(/^ses_/);
    expect(created.stderr).toContain('double-texting queue');
    expect((await loom(['prompt', id, 'hello'], env)).code).toBe(0);

    const exported = await loom(['session', 'export', id], env);
    expect(exported.code).toBe(0);
    const lines = exported.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ sessionId: id, seq: 1, type: 'session.created', data: { doubleTexting: 'queue', title: 'mine' } });
    expect(lines.at(-1)).toMatchObject({ type: 'activity.settled', data: { status: 'completed' } });
    const file = join(tempDir(), 'export.ndjson');
    expect((await loom(['session', 'export', id, '--out', file], env)).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(exported.stdout);
    const again = await loom(['session', 'export', id, '--out', file], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/the file exists/);

    const imported = await loom(['session', 'import', file, '--json'], env);
    expect(imported.code).toBe(0);
    const result = JSON.parse(imported.stdout);
    expect(result).toMatchObject({ sourceId: id, imported: lines.length, abandonedActivityId: null });
    const show = JSON.parse((await loom(['session', 'show', result.sessionId, '--json'], env)).stdout);
    expect(show.session).toMatchObject({ doubleTexting: 'queue', title: 'mine', lastActivityStatus: 'completed' });
    expect(show.conversation.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);

    writeFileSync(join(home, 'tool-output-marker'), ''); // unrelated files stay
    const rm = await loom(['session', 'rm', id], env);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toMatch(new RegExp(`removed ${id}: ${lines.length} events`));
    expect((await loom(['session', 'show', id], env)).code).toBe(2);
    const ls = (await loom(['session', 'ls', '--json'], env)).stdout.trim().split('\n').map((l) => JSON.parse(l).sessionId);
    expect(ls).toEqual([result.sessionId]);
    expect(existsSync(join(home, 'tool-output-marker'))).toBe(true);
  });

  it('session import - a bad line exits 2 naming the file and line; nothing is stored', async () => {
    const { env } = await setup();
    const file = join(tempDir(), 'bad.ndjson');
    writeFileSync(file, `${JSON.stringify({ sessionId: 'ses_x', seq: 1, gseq: 1, type: 'session.created', version: 1, at: 'x', data: { location: '/tmp', model: 'openai/test' } })}\n{oops\n`);
    const r = await loom(['session', 'import', file], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:2: not JSON`);
    expect(r.stderr).toContain('nothing was imported');
    expect((await loom(['session', 'ls', '--json'], env)).stdout).toBe('');
  });

  it('session export into a reader that stops early (| head -1) ends quietly', async () => {
    const { env, dir } = await setup([{ text: 'x'.repeat(5_000), chunkSize: 1 }]);
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, 'long'], env);
    const id = r.stderr.match(/session (ses_\S+)/)![1]!;
    const piped = spawnSync('bash', ['-c', `'${process.execPath}' '${LOOM_BIN}' session export ${id} | head -1; echo "status \${PIPESTATUS[0]}"`], { env: { ...process.env, ...env }, encoding: 'utf8' });
    expect(piped.stdout).toMatch(/"type":"session.created"/);
    expect(piped.stdout).toMatch(/status 0/);
    expect(piped.stderr).not.toMatch(/EPIPE|Error/);
  });

  it('session rm - refuses (exit 2) while another process owns the session; --force removes it', async () => {
    const { env, dir } = await setup([slow('y'.repeat(300))]);
    const owner = run(['run', '--model', 'openai/test', '--dir', dir, 'take your time'], env);
    const id = (await owner.stderrUntil(/session (ses_\S+)/))![1]!;
    await until(() => inspect(id, env), (s) => s.owner?.live === true);
    const refused = await loom(['session', 'rm', id], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/held by a live owner.*--force/);
    const forced = await loom(['session', 'rm', id, '--force', '--json'], env);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ sessionId: id, forced: true });
    const ended = await owner.done; // its next write is refused as a stale owner
    expect(ended.code).not.toBe(0);
  });
});

describe('loom db (real processes)', () => {
  it('db backup makes a checked copy and refuses to overwrite; db vacuum; db prune removes sessions only with retention configured, honours --dry-run', async () => {
    const { env, dir, home } = await setup([{ text: 'one' }, { text: 'two' }]);
    await loom(['run', '--model', 'openai/test', '--dir', dir, 'a'], env);
    await loom(['run', '--model', 'openai/test', '--dir', dir, 'b'], env);
    const target = join(tempDir(), 'loom-backup.db');
    const backup = await loom(['db', 'backup', target, '--json'], env);
    expect(backup.code).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ path: target, sessions: 2 });
    const again = await loom(['db', 'backup', target], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists/);
    // Restoring is putting the copy in place of loom.db: a loom process opens it with every session.
    const restored = tempDir('loom-e2e-restored-');
    copyFileSync(target, join(restored, 'loom.db'));
    const fromBackup = await loom(['session', 'ls', '--json'], { ...env, LOOM_HOME: restored });
    expect(fromBackup.code).toBe(0);
    expect(fromBackup.stdout.trim().split('\n')).toHaveLength(2);

    const vacuum = await loom(['db', 'vacuum', '--json'], env);
    expect(vacuum.code).toBe(0);
    expect(JSON.parse(vacuum.stdout)).toMatchObject({ before: expect.any(Number), after: expect.any(Number) });

    // With nothing configured only checkpoint retention applies (its limits have defaults): no session goes.
    const none = await loom(['db', 'prune'], env);
    expect(none.code).toBe(0);
    expect(none.stderr).toMatch(/prune \(checkpoints over 30 days or past \d+ bytes\).*: 0 session\(s\)/);
    expect((await loom(['session', 'ls', '--json'], env)).stdout.trim().split('\n')).toHaveLength(2);
    writeFileSync(join(home, 'config.jsonc'), '{ "version": 2, "retention": { "sessionsDays": 0.000001 } }\n');
    await new Promise((r) => setTimeout(r, 200)); // older than 0.0864 s
    const dry = await loom(['db', 'prune', '--dry-run'], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout.match(/would remove session ses_/g)).toHaveLength(2);
    expect((await loom(['session', 'ls', '--json'], env)).stdout.trim().split('\n')).toHaveLength(2);
    const pruned = await loom(['db', 'prune', '--json'], env);
    expect(JSON.parse(pruned.stdout)).toMatchObject({ dryRun: false, sessions: [{}, {}] });
    expect((await loom(['session', 'ls', '--json'], env)).stdout).toBe('');
  });

  it('a project config may not set retention', async () => {
    const { env, dir } = await setup([{ text: 'one' }]);
    mkdirSync(join(dir, '.loom'));
    writeFileSync(join(dir, '.loom', 'config.jsonc'), '{ "version": 2, "retention": { "sessionsDays": 1 } }\n');
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, 'a'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/"retention": may not be set in a project config/);
  });
});

describe('double-texting from the CLI (real processes)', () => {
  /** A session with `policy`, busy in another process (a slow first answer). */
  async function busySession(policy: string, script: ScriptedTurn[]) {
    const s = await setup(script);
    const id = (await loom(['session', 'new', '--model', 'openai/test', '--dir', s.dir, '--double-texting', policy], s.env)).stdout.trim();
    const owner = run(['prompt', id, 'first'], s.env);
    await until(() => inspect(id, s.env), (x) => x.state === 'providerTurn.streaming' && x.owner?.live === true);
    return { ...s, id, owner };
  }

  it('reject: loom prompt without a mode exits 2 with a clear message while the session is busy; --queue is admitted', async () => {
    const { env, id, owner } = await busySession('reject', [slow('z'.repeat(400)), { text: 'queued answer' }]);
    const refused = await loom(['prompt', id, 'me too'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/is busy .*double-texting policy is reject: the input was not admitted/);
    const queued = await loom(['prompt', id, '--queue', 'me later'], env);
    expect(queued.code).toBe(0);
    expect(queued.stderr).toMatch(/admitted queue in_\S+ into/);
    expect((await owner.done).code).toBe(0);
    const inputs = (await loom(['session', 'export', id], env)).stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'input.admitted');
    expect(inputs.map((e) => e.data.text)).toEqual(['first', 'me later']);
  });

  it('interrupt: loom prompt cancels the running activity and its input runs next, in the owner process', async () => {
    const { env, id, owner } = await busySession('interrupt', [slow('w'.repeat(400)), { text: 'doing the new thing' }]);
    const r = await loom(['prompt', id, 'do this instead'], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/admitted steer in_\S+ into \S+ \(busy: double-texting policy interrupt, cancelled act_\S+\)/);
    const ended = await owner.done;
    expect(ended.code).toBe(0); // the last activity it settled (the new input's) completed
    expect(ended.stdout).toContain('doing the new thing');
    const settled = (await loom(['session', 'export', id], env)).stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'activity.settled');
    expect(settled.map((e) => e.data.status)).toEqual(['cancelled', 'completed']);
  });

  it('steer (default) and queue: the policy picks the mode when none is given', async () => {
    const steer = await busySession('steer', [slow('s'.repeat(300)), { text: 'steered' }]);
    const a = await loom(['prompt', steer.id, 'join in'], steer.env);
    expect(a.stderr).toMatch(/admitted steer .*double-texting policy steer/);
    await steer.owner.done;
    expect((await inspect(steer.id, steer.env)).usage.activities).toBe(1);
    const queue = await busySession('queue', [slow('q'.repeat(300)), { text: 'next' }]);
    const b = await loom(['prompt', queue.id, 'after you'], queue.env);
    expect(b.stderr).toMatch(/admitted queue .*double-texting policy queue/);
    await queue.owner.done;
    expect((await inspect(queue.id, queue.env)).usage.activities).toBe(2);
  });
});
