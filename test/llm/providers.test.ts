import { describe, expect, it } from 'vitest';
import { PROVIDERS_MAX } from '../../core/limits.js';
import { createModelCatalog, type CatalogChange } from '../../llm/catalog.js';
import { ProviderConfigError } from '../../llm/errors.js';
import {
  createAdapter,
  providerSettings,
  ProviderRegistry,
  scrubSecrets,
  type ProviderPlugin,
  type ProviderSettings,
  type ProviderStatus,
} from '../../llm/providers.js';
import type { Provider, StreamEvent } from '../../llm/types.js';
import { resolveConfig } from '../../services/config.js';
import type { CredentialProvider } from '../../services/credentials.js';
import { startScriptedAnthropicServer } from '../fixtures/scripted-anthropic-server.js';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { onCleanup } from '../helpers.js';

async function openai(script = [{ text: 'hello' }]) {
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  return server;
}

function registry(options: ConstructorParameters<typeof ProviderRegistry>[0] = {}) {
  const catalog = createModelCatalog();
  const loaded: ProviderStatus[] = [];
  const changes: CatalogChange[] = [];
  catalog.onChange((c) => changes.push(c));
  const r = new ProviderRegistry({ catalog, ...options, onLoaded: (s) => loaded.push(s) });
  onCleanup(() => r.close());
  return { r, catalog, loaded, changes };
}

async function textOf(provider: Provider, model = 'm'): Promise<string> {
  let text = '';
  for await (const e of provider.stream({ model, messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal }) as AsyncIterable<StreamEvent>) {
    if (e.type === 'text.delta') text += e.delta;
  }
  return text;
}

/** A provider kind whose load finishes when the test says so. */
function controlledPlugin(kind = 'slow') {
  let finish!: (p: Provider) => void;
  let fail!: (e: Error) => void;
  const loads: string[] = [];
  const plugin: ProviderPlugin = {
    kind,
    load: (ctx) => {
      loads.push(ctx.id);
      return new Promise((resolve, reject) => {
        finish = (provider) => resolve({ provider, models: { big: { context: 1_000_000 } } });
        fail = reject;
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
      });
    },
  };
  return { plugin, loads, finish: (p: Provider) => finish(p), fail: (e: Error) => fail(e) };
}

const echoProvider = (id: string, text: string): Provider => ({
  id,
  idempotent: false,
  async *stream() {
    yield { type: 'text.delta', delta: text };
    yield { type: 'finish', finishReason: 'stop', usage: { inputTokens: 1, outputTokens: 1 } };
  },
});

describe('llm/providers - autoload', () => {
  it('providers - the environment alone loads the built-in ids it configures; their well-known models enter the catalog', async () => {
    const server = await openai();
    const { r, catalog, loaded } = registry({ env: { OPENAI_BASE_URL: server.url } });
    r.configure({});
    await r.settled();
    expect(r.statuses().map((s) => [s.id, s.state, s.origin])).toEqual([
      ['openai', 'ready', 'env'],
      ['openai-responses', 'ready', 'env'],
      ['anthropic', 'unconfigured', null],
    ]);
    expect(r.status('anthropic')).toMatchObject({ missing: ['ANTHROPIC_API_KEY'], error: expect.stringMatching(/ANTHROPIC_API_KEY/) });
    expect(loaded.map((s) => `${s.id} ${s.state}`)).toEqual(['openai ready', 'openai-responses ready']);
    expect(catalog.get('openai/gpt-4o')).toMatchObject({ source: 'builtin', capabilities: { toolCalling: true }, cost: { input: 2.5 } });
    expect(catalog.get('openai-responses/o3')).toMatchObject({ capabilities: { reasoning: true } });
    expect(catalog.list().some((m) => m.provider === 'anthropic')).toBe(false);
    expect(await textOf(r.resolve('openai/scripted').provider)).toBe('hello');
  });

  it('providers - a config entry loads its provider, its models override the built-in fields they name', async () => {
    const server = await openai();
    const { r, catalog } = registry({ env: {} });
    r.configure({ openai: { kind: 'openai', baseURL: server.url, models: { 'gpt-4o': { cost: { input: 1, output: 2 } }, 'my-tuned': { context: 32_000 } } } });
    await r.settled();
    expect(r.status('openai')).toMatchObject({ state: 'ready', origin: 'config', baseURL: server.url, models: 11 });
    expect(catalog.get('openai/gpt-4o')).toMatchObject({ source: 'config', cost: { input: 1, output: 2 }, limits: { context: 128_000 } });
    expect(catalog.get('openai/my-tuned')).toMatchObject({ source: 'config', limits: { context: 32_000 }, capabilities: { toolCalling: true, reasoning: false } });
  });

  it('providers - a custom id of a known kind (groq = { kind: openai, baseURL }) serves groq/<model> with <ID>_API_KEY', async () => {
    const server = await openai([{ text: 'from groq' }]);
    const { r, catalog } = registry({ env: { GROQ_API_KEY: 'gsk-test-key-123' } });
    r.configure({ groq: { kind: 'openai', baseURL: server.url, models: { 'llama-3.3-70b': { context: 128_000, cost: { input: 0.59, output: 0.79 } } } } });
    await r.settled();
    expect(r.status('groq')).toMatchObject({ kind: 'openai', state: 'ready', origin: 'config', models: 1 });
    expect(catalog.list().map((m) => m.id)).toEqual(['groq/llama-3.3-70b']); // no OpenAI models under a custom id
    const { provider, model } = r.resolve('groq/llama-3.3-70b');
    expect(provider.id).toBe('groq');
    expect(await textOf(provider, model)).toBe('from groq');
    expect(server.requests[0]!.headers.authorization).toBe('Bearer gsk-test-key-123');
    expect((server.requests[0]!.body as { model: string }).model).toBe('llama-3.3-70b');
  });

  it('providers - switching a provider by config: the same id moves to another endpoint and its models follow', async () => {
    const a = await openai([{ text: 'from a' }]);
    const b = await openai([{ text: 'from b' }]);
    const { r, catalog, changes } = registry({ env: {} });
    r.configure({ local: { kind: 'openai', baseURL: a.url, models: { small: {} } } });
    await r.settled();
    expect(await textOf(r.resolve('local/small').provider)).toBe('from a');
    r.configure({ local: { kind: 'openai', baseURL: b.url, models: { large: {} } } });
    await r.settled();
    expect(await textOf(r.resolve('local/large').provider)).toBe('from b');
    expect(catalog.list().map((m) => m.id)).toEqual(['local/large']);
    expect(changes.map((c) => `${c.type} ${c.model.id}`)).toEqual(['model.added local/small', 'model.removed local/small', 'model.added local/large']);
    r.configure({});
    await r.settled();
    expect(() => r.resolve('local/large')).toThrow(/unknown provider "local"/);
    expect(catalog.size()).toBe(0);
  });

  it('providers - enabled: false keeps an entry in the file without loading it, even with its variables set', async () => {
    const { r } = registry({ env: { OPENAI_API_KEY: 'sk-x' } });
    r.configure({ openai: { enabled: false } });
    await r.settled();
    expect(r.status('openai')).toMatchObject({ state: 'unconfigured' });
    expect(r.status('openai-responses')).toMatchObject({ state: 'ready', origin: 'env' });
  });

  it('providers - config: providers.openai configures openai and openai-responses (unless it has its own entry); a version 1 key rides along in memory', () => {
    const settings = providerSettings(
      resolveConfig({ version: 2, providers: { openai: { baseURL: 'http://127.0.0.1:1/v1', idempotent: true }, anthropic: {} } }, { legacyApiKeys: { anthropic: 'k' } }),
    );
    expect(settings).toEqual({
      openai: { baseURL: 'http://127.0.0.1:1/v1', idempotent: true },
      'openai-responses': { baseURL: 'http://127.0.0.1:1/v1', idempotent: true },
      anthropic: { apiKey: 'k' },
    });
  });
});

describe('llm/providers - failures block nothing', () => {
  it('providers - a provider that fails to load is reported; the others work; a session naming it gets an error naming it and the problem', async () => {
    const server = await openai();
    const { r, loaded } = registry({ env: { OPENAI_BASE_URL: server.url } });
    r.configure({ anthropic: { kind: 'anthropic' } }); // configured, but no ANTHROPIC_API_KEY anywhere
    await r.settled();
    expect(r.status('anthropic')).toMatchObject({ state: 'failed', origin: 'config', error: expect.stringMatching(/ANTHROPIC_API_KEY is not set/) });
    expect(loaded.find((s) => s.id === 'anthropic')).toMatchObject({ state: 'failed' });
    expect(() => r.resolve('anthropic/claude-sonnet-4-5')).toThrow(ProviderConfigError);
    expect(() => r.resolve('anthropic/claude-sonnet-4-5')).toThrow(/provider "anthropic" failed to load: ANTHROPIC_API_KEY is not set/);
    await expect(r.ready('anthropic/claude-sonnet-4-5')).rejects.toThrow(/provider "anthropic" failed to load/);
    expect(await textOf(r.resolve('openai/x').provider)).toBe('hello');
  });

  it('providers - an unknown kind, or a custom id with no kind, fails naming the config key', async () => {
    const { r } = registry({ env: {} });
    r.configure({ groq: { baseURL: 'http://127.0.0.1:9/v1' }, mistral: { kind: 'mistral' } });
    await r.settled();
    expect(r.status('groq')).toMatchObject({ state: 'failed', error: expect.stringMatching(/providers\.groq\.kind is not set/) });
    expect(r.status('mistral')).toMatchObject({ state: 'failed', error: expect.stringMatching(/providers\.mistral\.kind "mistral" is not a known provider kind \(openai, openai-responses, anthropic\)/) });
  });

  it('providers - a model of a provider nothing configures is an unknown-provider error that says how to add one', async () => {
    const { r } = registry({ env: {} });
    r.configure({});
    expect(() => r.resolve('groq/llama')).toThrow(/unknown provider "groq" \(model "groq\/llama"\).*providers\.groq = \{ "kind": "openai"/);
    expect(() => r.resolve('anthropic/claude')).toThrow(/provider "anthropic" \(model "anthropic\/claude"\) is not configured: set ANTHROPIC_API_KEY/);
    expect(() => r.resolve('no-slash')).toThrow(/must be written provider\/model/);
  });

  it('providers - a plugin added later loads the config entries of its kind that were waiting for it', async () => {
    const { r } = registry({ env: {} });
    r.configure({ mine: { kind: 'echo' } });
    await r.settled();
    expect(r.status('mine')?.state).toBe('failed');
    r.addPlugin({ kind: 'echo', load: async (ctx) => ({ provider: echoProvider(ctx.id, 'echoed'), models: { one: {} } }) });
    await r.settled();
    expect(r.status('mine')).toMatchObject({ state: 'ready', models: 1 });
    expect(await textOf(r.resolve('mine/one').provider)).toBe('echoed');
  });
});

describe('llm/providers - background loading', () => {
  it('providers - configure returns at once; a session resolving a loading provider waits for it when it streams', async () => {
    const slow = controlledPlugin();
    const { r, catalog } = registry({ env: {}, plugins: [slow.plugin] });
    r.configure({ lazy: { kind: 'slow', idempotent: true } });
    expect(r.status('lazy')?.state).toBe('loading');
    const { provider, model } = r.resolve('lazy/big'); // does not throw, does not wait
    expect(provider.idempotent).toBe(true); // known from the settings before the load ends
    const text = textOf(provider, model);
    let settled = false;
    void text.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    slow.finish(echoProvider('lazy', 'after the load'));
    expect(await text).toBe('after the load');
    expect(catalog.get('lazy/big')).toMatchObject({ source: 'provider', limits: { context: 1_000_000 } });
  });

  it('providers - resolving before the registry is configured waits for configuration, then for the load', async () => {
    const slow = controlledPlugin();
    const { r } = registry({ env: {}, plugins: [slow.plugin] });
    const pending = textOf(r.resolve('lazy/x').provider);
    r.configure({ lazy: { kind: 'slow' } });
    slow.finish(echoProvider('lazy', 'ok'));
    expect(await pending).toBe('ok');
  });

  it('providers - a load that takes longer than the timeout fails (the error says so) and the waiting stream gets it', async () => {
    const slow = controlledPlugin();
    const { r } = registry({ env: {}, plugins: [slow.plugin], loadTimeoutMs: 30 });
    r.configure({ lazy: { kind: 'slow' } });
    const waiting = textOf(r.resolve('lazy/x').provider);
    await expect(waiting).rejects.toThrow(/provider "lazy" failed to load: did not load within 30 ms/);
    expect(r.status('lazy')).toMatchObject({ state: 'failed', error: 'did not load within 30 ms' });
  });

  it('providers - a stream waiting for a load ends as soon as its request is aborted', async () => {
    const slow = controlledPlugin();
    const { r } = registry({ env: {}, plugins: [slow.plugin] });
    r.configure({ lazy: { kind: 'slow' } });
    const ac = new AbortController();
    const stream = r.resolve('lazy/x').provider.stream({ model: 'x', messages: [], tools: [], signal: ac.signal });
    const first = (stream as AsyncGenerator<StreamEvent>).next();
    ac.abort(new Error('cancelled by the user'));
    await expect(first).rejects.toThrow('cancelled by the user');
    expect(r.status('lazy')?.state).toBe('loading'); // the load itself goes on for other sessions
  });

  it('providers - config entries past PROVIDERS_MAX are reported failed, not silently dropped', async () => {
    const plugin: ProviderPlugin = { kind: 'echo', load: async (ctx) => ({ provider: echoProvider(ctx.id, 'x') }) };
    const { r } = registry({ env: {}, plugins: [plugin] });
    const settings: Record<string, ProviderSettings> = {};
    for (let i = 0; i <= PROVIDERS_MAX; i++) settings[`p${i}`] = { kind: 'echo' };
    r.configure(settings);
    await r.settled();
    const states = r.statuses();
    expect(states.filter((s) => s.state === 'ready')).toHaveLength(PROVIDERS_MAX);
    expect(states.find((s) => s.id === `p${PROVIDERS_MAX}`)).toMatchObject({ state: 'failed', error: expect.stringMatching(/PROVIDERS_MAX/) });
  });

  it('providers - a failed load is tried again when the settings are applied again', async () => {
    const slow = controlledPlugin();
    const { r } = registry({ env: {}, plugins: [slow.plugin] });
    r.configure({ lazy: { kind: 'slow' } });
    slow.fail(new Error('registry down'));
    await r.settled();
    expect(r.status('lazy')).toMatchObject({ state: 'failed', error: 'registry down' });
    r.configure({ lazy: { kind: 'slow' } });
    slow.finish(echoProvider('lazy', 'ok'));
    await r.settled();
    expect(r.status('lazy')?.state).toBe('ready');
    expect(slow.loads).toEqual(['lazy', 'lazy']);
  });
});

describe('llm/providers - credentials and secrets', () => {
  it('providers - with a credential store, a built-in id it holds a key for loads without any variable; the key is sent', async () => {
    const server = await startScriptedAnthropicServer([{ text: 'hi from claude' }]);
    onCleanup(() => void server.close());
    const asked: string[] = [];
    const credentials: CredentialProvider = {
      async get(id) {
        asked.push(id);
        return id === 'anthropic' ? { credential: { type: 'api', key: 'sk-ant-stored-0001' }, source: 'file' } : undefined;
      },
    };
    const { r } = registry({ env: {}, credentials });
    r.configure({ anthropic: { kind: 'anthropic', baseURL: server.url } });
    await r.settled();
    expect(r.status('anthropic')).toMatchObject({ state: 'ready', origin: 'config' });
    // openai has no credential and no variable: not configured, and not reported as a failure.
    expect(r.status('openai')).toMatchObject({ state: 'unconfigured' });
    expect(asked.sort()).toEqual(['anthropic', 'openai', 'openai-responses']);
    expect(await textOf(r.resolve('anthropic/claude-haiku-4-5').provider, 'claude-haiku-4-5')).toBe('hi from claude');
    expect(server.requests[0]!.headers['x-api-key']).toBe('sk-ant-stored-0001');
  });

  it('providers - a basic credential loads the provider (sent per request), and its secret never shows', async () => {
    const credentials: CredentialProvider = { get: async () => ({ credential: { type: 'basic', username: 'me', password: 'hunter2-password' }, source: 'file' }) };
    const { r, loaded } = registry({ env: {}, credentials });
    r.configure({ anthropic: { kind: 'anthropic' } });
    await r.settled();
    // Every credential type is sent by every adapter now (basic as Authorization: Basic), per request.
    expect(r.status('anthropic')).toMatchObject({ state: 'ready' });
    expect(JSON.stringify(loaded)).not.toContain('hunter2');
  });

  it('providers - a load error never carries a key: known secrets and URL user info are scrubbed', async () => {
    const leaky: ProviderPlugin = {
      kind: 'leaky',
      load: async (ctx) => {
        throw new Error(`refused key ${ctx.settings.apiKey} and ${ctx.env.LEAKY_API_KEY} at https://admin:pa55word@example.com/v1`);
      },
    };
    const { r, loaded } = registry({ env: { LEAKY_API_KEY: 'env-secret-9876' }, plugins: [leaky] });
    r.configure({ leak: { kind: 'leaky', apiKey: 'file-secret-1234' } });
    await r.settled();
    const shown = JSON.stringify([r.statuses(), loaded]);
    for (const secret of ['file-secret-1234', 'env-secret-9876', 'pa55word']) expect(shown).not.toContain(secret);
    expect(r.status('leak')?.error).toBe('refused key [redacted] and [redacted] at https://[redacted]@example.com/v1');
    expect(scrubSecrets('x'.repeat(10_000), []).length).toBeLessThan(600);
  });

  it('adapter - one function builds every built-in kind; a custom openai-kind id needs a base URL or a key', () => {
    const s = (x: ProviderSettings) => x;
    expect(createAdapter({ id: 'openai', kind: 'openai', settings: {}, env: { OPENAI_API_KEY: 'k' } }).id).toBe('openai');
    expect(createAdapter({ id: 'openai-responses', kind: 'openai-responses', settings: {}, env: { OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' } }).id).toBe('openai-responses');
    expect(createAdapter({ id: 'anthropic', kind: 'anthropic', settings: s({ apiKey: 'k' }), env: {} }).id).toBe('anthropic');
    expect(() => createAdapter({ id: 'local', kind: 'openai', settings: {}, env: {} })).toThrow(/provider "local" \(kind openai\) needs providers\.local\.baseURL .* or an API key \(LOCAL_API_KEY\)/);
    expect(() => createAdapter({ id: 'claude2', kind: 'anthropic', settings: {}, env: {} })).toThrow(/set CLAUDE2_API_KEY/);
    expect(createAdapter({ id: 'x', kind: 'openai', settings: { baseURL: 'http://h/v1', headers: { a: 'b' } }, env: {} }).id).toBe('x');
  });
});
