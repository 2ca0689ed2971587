import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLoomClient } from '../../sdk/index.js';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom } from './loom.js';

async function setup() {
  const server = await startScriptedOpenAIServer({ script: [{ text: 'hello from the scripted model' }] });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-models-home-');
  const dir = tempDir('loom-e2e-models-dir-');
  return { server, home, dir, env: { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '' } };
}

/** Every file under `dir`, recursively (the data directory a secret must never reach). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('loom models (real processes)', () => {
  it('loom models - lists the catalog (capabilities, limits, price, source) and every provider with its state', async () => {
    const { env } = await setup();
    const r = await runLoom(['models'], env);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('openai/gpt-4o '))!;
    expect(line.split(/\s{2,}/)).toEqual(['openai/gpt-4o', 'yes', 'no', '128k', '16384', '$2.50', '$10.00', 'builtin', 'ready']);
    expect(r.stdout).toMatch(/^anthropic\s+anthropic\s+unconfigured\s+0\s+not configured: set ANTHROPIC_API_KEY/m);
    expect(r.stdout).toMatch(/^openai\s+openai\s+ready\s+10\s+from env at http:\/\/127\.0\.0\.1/m);

    const json = await runLoom(['models', '--json', '--provider', 'openai'], env);
    expect(json.code).toBe(0);
    const view = JSON.parse(json.stdout) as { models: { id: string; source: string }[]; providers: { id: string; state: string }[] };
    expect(view.models.every((m) => m.id.startsWith('openai/'))).toBe(true);
    expect(view.providers).toMatchObject([{ id: 'openai', state: 'ready', origin: 'env' }]);
  });

  it('loom models add / rm - a model is registered with its limits and price, shown with source cli, and removed', async () => {
    const { env } = await setup();
    const add = await runLoom(['models', 'add', 'openai/house-model', '--context', '32k', '--output', '4096', '--input-cost', '0.5', '--output-cost', '1.5', '--reasoning', '--no-tools'], env);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toBe('added openai/house-model: no tools, reasoning; context 32k, output 4096; $0.50/$1.50 per M tokens (cli)\n');
    const listed = JSON.parse((await runLoom(['models', '--json'], env)).stdout) as { models: Record<string, unknown>[] };
    expect(listed.models.find((m) => m.id === 'openai/house-model')).toMatchObject({
      capabilities: { toolCalling: false, reasoning: true },
      limits: { context: 32_000, output: 4_096 },
      cost: { input: 0.5, output: 1.5 },
      source: 'cli',
      providerState: 'ready',
    });
    // Over a built-in entry: the named fields change, `rm` brings the built-in values back.
    const cheaper = await runLoom(['models', 'add', 'openai/gpt-4o', '--input-cost', '1', '--output-cost', '4', '--json'], env);
    expect(JSON.parse(cheaper.stdout)).toMatchObject({ source: 'cli', cost: { input: 1, output: 4 }, limits: { context: 128_000 } });
    const rm = await runLoom(['models', 'rm', 'openai/gpt-4o'], env);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toMatch(/^removed openai\/gpt-4o; the builtin entry is in force again: tools; context 128k/);
    expect((await runLoom(['models', 'rm', 'openai/house-model', '--json'], env)).stdout).toContain('"now":null');
  });

  it('loom models - bad input exits 2 naming what is wrong and stores nothing', async () => {
    const { env, home } = await setup();
    const cases: [string[], RegExp][] = [
      [['models', 'add', 'openai/x', '--context', 'lots'], /--context "lots": expected a positive whole number of tokens/],
      [['models', 'add', 'openai/x', '--input-cost', '1'], /needs both --input-cost and --output-cost/],
      [['models', 'add', 'OpenAI/X'], /model id "OpenAI\/X".*lower case/],
      [['models', 'add', 'openai/x', '--context', '1000000000'], /context: /],
      [['models', 'rm', 'openai/gpt-4o'], /comes from Loom's built-in list.*cannot be removed/],
      [['models', 'rm', 'nobody/none'], /is not in the catalog/],
    ];
    for (const [args, message] of cases) {
      const r = await runLoom(args, env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    const view = JSON.parse((await runLoom(['models', '--json'], { ...env, LOOM_HOME: home })).stdout) as { models: { source: string }[] };
    expect(view.models.filter((m) => m.source === 'cli')).toEqual([]);
  });

  it('loom models add - a model of a provider nothing configures is stored, with a note that sessions cannot use it yet', async () => {
    const { env } = await setup();
    const r = await runLoom(['models', 'add', 'groq/llama-3.3-70b', '--context', '128k'], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/no provider "groq" is configured/);
    const run = await runLoom(['run', '-m', 'groq/llama-3.3-70b', 'hi'], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown provider "groq" \(model "groq\/llama-3.3-70b"\)/);
  });

  it('loom run - a provider that failed to load is named with its problem (exit 2); the other providers still run', async () => {
    const { env, home, dir } = await setup();
    writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 1, providers: { anthropic: { idempotent: true } } })); // no key anywhere
    const bad = await runLoom(['run', '-m', 'anthropic/claude-sonnet-4-5', '--dir', dir, 'hi'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/provider "anthropic" failed to load: ANTHROPIC_API_KEY is not set/);
    expect((await runLoom(['session', 'ls', '--json'], env)).stdout).toBe(''); // nothing was created
    const listed = await runLoom(['models', '--provider', 'anthropic'], env);
    expect(listed.stdout).toMatch(/^anthropic\s+anthropic\s+failed\s+0\s+ANTHROPIC_API_KEY is not set/m);
    const good = await runLoom(['run', '-m', 'openai/scripted', '--dir', dir, 'hi'], env);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain('hello from the scripted model');
    // A session created while its provider worked, prompted after the provider broke: refused before admission.
    const id = good.stderr.match(/session (ses_\S+)/)![1]!;
    writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 1, providers: { openai: { idempotent: true } } }));
    const broken = await runLoom(['prompt', id, 'again'], { ...env, OPENAI_BASE_URL: '' });
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/provider "openai" failed to load: OPENAI_API_KEY or OPENAI_BASE_URL is not set/);
    const log = (await runLoom(['tail', id, '--json'], env)).stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(log.filter((e) => e.type === 'input.admitted')).toHaveLength(1); // only the first run's input
  });

  it('loom serve - a running server sees a model added by loom models add in another process, without a restart', async () => {
    const { env, home } = await setup();
    writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 1, providers: { anthropic: { idempotent: true } } })); // no key: fails to load
    const serve = spawnLoom(['serve', '--port', '0'], env);
    onCleanup(() => void serve.kill());
    const m = await serve.stderrUntil(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    if (!m) throw new Error(`loom serve exited: ${(await serve.done).stderr}`);
    // The operator is told, and the server runs on with the other providers.
    expect(await serve.stderrUntil(/loom serve: provider anthropic failed to load: ANTHROPIC_API_KEY is not set/)).not.toBeNull();
    const client = createLoomClient({ baseUrl: m[1]!, token: readFileSync(join(home, 'server-token'), 'utf8').trim() });
    expect((await client.models()).models.some((x) => x.id === 'openai/house-model')).toBe(false);

    const add = await runLoom(['models', 'add', 'openai/house-model', '--context', '64k'], env);
    expect(add.code, add.stderr).toBe(0);
    await expect.poll(async () => (await client.models()).models.find((x) => x.id === 'openai/house-model'), { timeout: 10_000 }).toMatchObject({
      limits: { context: 64_000 },
      source: 'cli',
      providerState: 'ready',
    });
    // The server records nothing for a change another process recorded.
    const added = (await client.systemEvents({ last: 500 })).events.filter((e) => e.type === 'model.added' && e.data.model === 'openai/house-model');
    expect(added).toHaveLength(1);

    expect((await runLoom(['models', 'rm', 'openai/house-model'], env)).code).toBe(0);
    await expect.poll(async () => (await client.models()).models.some((x) => x.id === 'openai/house-model'), { timeout: 10_000 }).toBe(false);
  }, 60_000);

  it('secrets - keys from the environment and config never reach the log, the data directory, --json output or messages', async () => {
    const { env, home, dir } = await setup();
    const envSecret = 'sk-env-planted-1f2e3d4c5b6a';
    const fileSecret = 'sk-ant-file-planted-9a8b7c6d';
    writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 1, providers: { anthropic: { apiKey: fileSecret, baseURL: 'http://127.0.0.1:9' } } }));
    const secretEnv = { ...env, OPENAI_API_KEY: envSecret };
    const outputs = [
      await runLoom(['models', '--json'], secretEnv),
      await runLoom(['models'], secretEnv),
      await runLoom(['models', 'add', 'anthropic/claude-x', '--context', '1k', '--json'], secretEnv),
      await runLoom(['run', '-m', 'openai/scripted', '--dir', dir, '--json', 'hi'], secretEnv),
      await runLoom(['run', '-m', 'anthropic/claude-x', '--dir', dir, 'hi'], secretEnv), // fails at the endpoint
    ];
    for (const o of outputs) {
      for (const s of [envSecret, fileSecret]) {
        expect(o.stdout).not.toContain(s);
        expect(o.stderr).not.toContain(s);
      }
    }
    for (const file of filesUnder(home).filter((f) => !f.endsWith('config.jsonc'))) {
      const bytes = readFileSync(file);
      expect(bytes.includes(envSecret), file).toBe(false);
      expect(bytes.includes(fileSecret), file).toBe(false);
    }
  }, 60_000);
});
