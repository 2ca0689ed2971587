import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSummaryRequest, respondWithSummaries } from '../fixtures/scripted-routes.js';
import { startScriptedOpenAIServer, type RecordedRequest, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom } from './loom.js';

async function setup(turns: ScriptedTurn[], summaries: ScriptedTurn[] = []) {
  const server = await startScriptedOpenAIServer({ respond: respondWithSummaries(turns, summaries) });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  const env = { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
  return { server, home, dir, env };
}

const envelopes = (stdout: string) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; data: Record<string, any> });
const sessionIdOf = (stderr: string) => /session (ses_\S+)/.exec(stderr)![1]!;
const messagesOf = (r: RecordedRequest) => (r.body as { messages: { role: string; content: string | null }[] }).messages;

describe('loom --agent (real processes)', () => {
  it('loom run --agent with an unknown name exits 2 naming it and the defined agents, and stores nothing', async () => {
    const { dir, env, home, server } = await setup([]);
    mkdirSync(join(dir, '.loom'));
    writeFileSync(join(dir, '.loom', 'config.jsonc'), '{ "version": 1, "agents": { "review": { "description": "reviews" } } }');
    const r = await runLoom(['run', '--agent', 'nope', '-d', dir, 'hello'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown agent "nope": the agents defined are build, plan, review');
    expect(server.requests).toHaveLength(0);
    const ls = await runLoom(['session', 'ls', '--json'], { LOOM_HOME: home });
    expect(ls.stdout).toBe('');
  });

  it('loom run --agent plan: the model is offered no write tool, a write it makes anyway is denied and the file is untouched; the instruction files reach the model', async () => {
    const { dir, env, server } = await setup([
      { toolCalls: [{ name: 'write', arguments: { path: 'notes.md', content: 'gone' } }] },
      { text: 'Plan: change notes.md by hand.' },
    ]);
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, 'AGENTS.md'), 'The notes file is sacred.\n');
    writeFileSync(join(dir, 'notes.md'), 'keep me\n');
    const r = await runLoom(['run', '--agent', 'plan', '--permission', 'allow', '--json', '-d', dir, 'rewrite notes.md'], env);
    expect(r.code).toBe(0);
    const settled = envelopes(r.stdout).find((e) => e.type === 'tool.settled')!;
    expect(settled.data.status).toBe('denied');
    expect(readFileSync(join(dir, 'notes.md'), 'utf8')).toBe('keep me\n');
    const tools = ((server.requests[0]!.body as { tools: { function: { name: string } }[] }).tools ?? []).map((t) => t.function.name);
    expect(tools).not.toContain('write');
    const system = messagesOf(server.requests[0]!).find((m) => m.role === 'system')!.content!;
    expect(system).toContain('plan mode');
    expect(system).toContain(`<instructions path="${join(dir, 'AGENTS.md')}" scope="project">\nThe notes file is sacred.`);
  });

  it('loom prompt --agent runs that input\'s activity with the profile; an unknown one exits 2', async () => {
    const { dir, env, server } = await setup([{ text: 'built' }, { text: 'planned' }]);
    const run = await runLoom(['run', '-d', dir, 'first'], env);
    expect(run.code).toBe(0);
    const id = sessionIdOf(run.stderr);
    const bad = await runLoom(['prompt', id, '--agent', 'nope', 'second'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown agent "nope"');
    const good = await runLoom(['prompt', id, '--agent', 'plan', '--json', 'second'], env);
    expect(good.code).toBe(0);
    expect(envelopes(good.stdout).find((e) => e.type === 'activity.opened')!.data.agent).toBe('plan');
    expect(server.requests).toHaveLength(2);
  });
});

describe('loom compact (real processes)', () => {
  it('loom compact ID from another process summarises the conversation; the next prompt sends the summary and the recent turns, not the old messages', async () => {
    const { dir, env, server } = await setup(
      [{ text: 'answer one' }, { text: 'answer two' }, { text: 'answer three' }],
      [{ text: 'SUMMARY: question one was answered' }],
    );
    mkdirSync(join(dir, '.loom'));
    writeFileSync(join(dir, '.loom', 'config.jsonc'), '{ "version": 1, "compaction": { "keepRecentTurns": 1 } }');
    const run = await runLoom(['run', '-d', dir, 'question one'], env);
    const id = sessionIdOf(run.stderr);
    expect((await runLoom(['prompt', id, 'question two'], env)).code).toBe(0);

    const compact = await runLoom(['compact', id], env);
    expect(compact.code).toBe(0);
    expect(compact.stderr).toMatch(/compacted ses_\S+: 2 message\(s\) summarised \(through seq \d+\), 1 recent turn\(s\) kept/);
    expect(server.requests.filter((r) => isSummaryRequest(r.body))).toHaveLength(1);

    expect((await runLoom(['prompt', id, 'question three'], env)).code).toBe(0);
    const last = server.requests.at(-1)!;
    const users = messagesOf(last).filter((m) => m.role === 'user').map((m) => m.content);
    expect(users[0]).toContain('SUMMARY: question one was answered');
    expect(users.slice(1)).toEqual(['question two', 'question three']);
    expect(JSON.stringify(messagesOf(last))).not.toContain('answer one');

    const inspect = JSON.parse((await runLoom(['inspect', id, '--json'], env)).stdout) as { agent: string | null; compaction: { summarySeq: number | null; running: string | null } };
    expect(inspect.compaction).toMatchObject({ running: null });
    expect(inspect.compaction.summarySeq).toBeGreaterThan(0);
    expect((await runLoom(['inspect', id], env)).stdout).toMatch(/context agent build · about \d+ of 128000 tokens in context · summary at seq \d+/);

    const tail = await runLoom(['tail', id, '--json'], env);
    const types = envelopes(tail.stdout).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['compaction.requested', 'compaction.started', 'compaction.finished']));
  });

  it('a loom compact killed right after compaction.started (failpoint) leaves the compaction open; the next loom prompt runs the summary again, then its input with the summary', async () => {
    const { dir, env, server } = await setup([{ text: 'answer one' }, { text: 'answer two' }, { text: 'answer three' }], [{ text: 'SUMMARY after the crash' }]);
    const run = await runLoom(['run', '-d', dir, 'question one'], env);
    const id = sessionIdOf(run.stderr);
    expect((await runLoom(['prompt', id, 'question two'], env)).code).toBe(0);
    const killed = await runLoom(['compact', id], { ...env, LOOM_FAILPOINT: 'after:compaction.started' });
    expect(killed.signal ?? killed.code).not.toBe(0);
    expect(server.requests.filter((r) => isSummaryRequest(r.body))).toHaveLength(0);

    const next = await runLoom(['prompt', id, '--json', 'question three'], env);
    expect(next.code).toBe(0);
    const events = envelopes(next.stdout);
    const started = events.filter((e) => e.type === 'compaction.started');
    expect(started.map((e) => e.data.restarts)).toEqual([1]);
    const types = events.map((e) => e.type);
    expect(types.indexOf('compaction.finished')).toBeLessThan(types.indexOf('activity.opened'));
    const users = messagesOf(server.requests.at(-1)!).filter((m) => m.role === 'user').map((m) => m.content);
    expect(users[0]).toContain('SUMMARY after the crash');
    expect(users.at(-1)).toBe('question three');
  });

  it('loom compact on a session with nothing to compact says why and exits 0; on an unknown session exits 2', async () => {
    const { dir, env } = await setup([]);
    const created = await runLoom(['session', 'new', '-d', dir], env);
    const id = created.stdout.trim();
    const r = await runLoom(['compact', id], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('compaction of');
    expect(r.stderr).toContain('nothing to compact');
    expect((await runLoom(['compact', 'ses_nope'], env)).code).toBe(2);
  });
});
