import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom } from './loom.js';

/**
 * Budgets, usage and retries through the real `loom` binary: a budget reached exits 4, a cost
 * budget the catalog cannot price is refused before anything is stored (exit 2), and usage shows
 * in `inspect` and `tail`; a retried attempt shows as a retry line.
 */

async function setup(script: ScriptedTurn[]) {
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  return { server, home, dir, env: { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', LOOM_MODEL: UNPRICED } };
}

/** A model the catalog has no price for (the scripted server answers any model name). */
const UNPRICED = 'openai/scripted-unpriced';

const sessionIdOf = (stderr: string) => /session (ses_\w+)/.exec(stderr)![1]!;

describe('loom budgets and usage (real processes)', () => {
  it('loom run --budget-tokens - a turn that uses up the budget settles budget_exceeded and exits 4; inspect and tail show the usage', async () => {
    const { env, dir, server } = await setup([{ toolCalls: [{ name: 'list', arguments: {} }], usage: { prompt_tokens: 700, completion_tokens: 40 } }, { text: 'never' }]);
    const r = await runLoom(['run', '--budget-tokens', '500', '-d', dir, 'look around'], env);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('■ activity budget_exceeded: activity token budget of 500 used up (740 tokens) (1 turn · 700 input / 40 output tokens)');
    expect(server.requests).toHaveLength(1);
    const id = sessionIdOf(r.stderr);

    const inspect = await runLoom(['inspect', id], env);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toContain('usage 1 activities, 1 turns, 700 input / 40 output tokens');
    const json = JSON.parse((await runLoom(['inspect', id, '--json'], env)).stdout) as { usage: unknown; lastActivityStatus: string };
    expect(json).toMatchObject({ usage: { inputTokens: 700, outputTokens: 40, costUsd: null, budget: null }, lastActivityStatus: 'budget_exceeded' });

    const tail = await runLoom(['tail', id], env);
    expect(tail.stdout).toMatch(/turn\.finished tool_calls · 700 input \/ 40 output tokens · 1 tool call \(act_\w+\)/);
    expect(tail.stdout).toMatch(/activity\.settled budget_exceeded: activity token budget of 500 used up/);

    // A prompt with its own budget exits 4 too.
    server.push({ text: 'still too much', usage: { prompt_tokens: 100, completion_tokens: 5 } });
    const again = await runLoom(['prompt', id, '--budget-tokens', '50', 'once more'], env);
    expect(again.code).toBe(4);
  });

  it('loom run --budget-usd - refused with exit 2 naming the model when the catalog has no price; nothing is stored', async () => {
    const { env, dir, server } = await setup([]);
    const r = await runLoom(['run', '--budget-usd', '0.50', '-d', dir, '-m', UNPRICED, 'hello'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--budget-usd: a cost budget needs the price of model ${UNPRICED}`);
    expect(server.requests).toHaveLength(0);
    const ls = await runLoom(['session', 'ls', '--json'], env);
    expect(ls.stdout).toBe('');
  });

  it('a cost budget in the config is refused the same way, naming the config key; a malformed flag is a usage error', async () => {
    const { env, dir, home } = await setup([]);
    writeFileSync(join(home, 'config.jsonc'), '{ "version": 1, "budget": { "session": { "costUsd": 2 } } }');
    const r = await runLoom(['run', '-d', dir, 'hello'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('budget.session.costUsd (config): a cost budget needs the price of model');
    const bad = await runLoom(['run', '--budget-tokens', 'lots', '-d', dir, 'hello'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--budget-tokens lots: expected a whole number of tokens');
  });

  it('LOOM_FAILPOINT=after:attempt.retrying - a process killed in the backoff left nothing in flight: recover --scan retries and completes', async () => {
    const { env, dir, server } = await setup([{ status: 503 }, { text: 'after the crash' }]);
    const killed = await runLoom(['run', '-d', dir, 'hello'], { ...env, LOOM_FAILPOINT: 'after:attempt.retrying' });
    expect(killed.signal ?? killed.code).toBe('SIGKILL');
    const id = sessionIdOf(killed.stderr);
    const scan = await runLoom(['recover', '--scan'], env);
    expect(scan.code, scan.stderr).toBe(0);
    const events = (await runLoom(['tail', id, '--json'], env)).stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: any });
    expect(events.find((e) => e.type === 'recovery.detected')!.data).toMatchObject({ classification: 'safe', reason: 'no provider request was in flight' });
    expect(events.filter((e) => e.type === 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(server.requests).toHaveLength(2);
  });

  it('loom run - a 503 is retried: the retry shows as a line with its delay and the run completes', async () => {
    const { env, dir, server } = await setup([{ status: 503 }, { text: 'second time lucky' }]);
    const r = await runLoom(['run', '-d', dir, 'hello'], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/↻ retrying: attempt 2 in 0\.\d s after server: The provider failed \(HTTP 503\)/);
    expect(r.stdout).toContain('second time lucky');
    expect(server.requests).toHaveLength(2);
  });
});
