import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MODELS_REGISTERED_MAX } from '../../core/limits.js';
import type { ProviderPlugin } from '../../llm/providers.js';
import { resolveConfig, type ConfigV1, type ResolvedConfig } from '../../services/config.js';
import { ModelNotRegisteredError, ModelRegistrationError, openModelService, type ModelService, type ModelServiceOptions } from '../../services/models.js';
import { openLoomRuntime } from '../../services/runtime.js';
import { RegisteredModels, Store, type AnyEnvelope } from '../../store/index.js';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';

/** A Loom home with its database; each `open` is a separate connection, like another process. */
function home() {
  const dir = tempDir('loom-models-home-');
  const open = () => {
    const store = Store.open(join(dir, 'loom.db'));
    onCleanup(() => store.db.open && store.close());
    return store;
  };
  return { dir, open };
}

function service(store: Store, dir: string, options: Partial<ModelServiceOptions> = {}): ModelService {
  const s = openModelService({ store, home: dir, env: {}, ...options });
  onCleanup(() => s.close());
  return s;
}

const config = (c: Omit<ConfigV1, 'version'> = {}): ResolvedConfig => resolveConfig({ version: 1, ...c });
const systemTypes = (store: Store) => store.readSystem({ limit: 1_000 }).map((e) => `${e.type} ${(e.data as { model?: string; provider?: string }).model ?? (e.data as { provider: string }).provider}`);

/** Makes this connection notice other connections' commits now (what the poll timer does), then lets the follower run. */
async function notice(store: Store): Promise<void> {
  store.changes.poll();
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

async function openaiServer() {
  const server = await startScriptedOpenAIServer({ script: [] });
  onCleanup(() => void server.close());
  return server;
}

describe('services/models - system events', () => {
  it('models - a provider load records provider.loaded and its models model.added, once across processes', async () => {
    const server = await openaiServer();
    const h = home();
    const env = { OPENAI_BASE_URL: server.url };
    const a = h.open();
    const s1 = service(a, h.dir, { env, loadGlobalConfig: async () => config() });
    await s1.settled();
    const first = systemTypes(a);
    expect(first.filter((t) => t.startsWith('provider.loaded'))).toEqual(['provider.loaded openai', 'provider.loaded openai-responses']);
    expect(first.filter((t) => t.startsWith('model.added openai/')).length).toBe(s1.catalog.list().filter((m) => m.provider === 'openai').length);
    const loaded = a.readSystem({ limit: 1_000 }).find((e) => e.type === 'provider.loaded')!;
    expect(loaded.data).toEqual({ provider: 'openai', kind: 'openai', ok: true, models: 10, origin: 'env' });
    const added = a.readSystem({ limit: 1_000 }).find((e) => e.type === 'model.added' && e.data.model === 'openai/gpt-4o')!;
    expect(added.data).toMatchObject({ source: 'builtin', capabilities: { toolCalling: true, reasoning: false }, limits: { context: 128_000 }, cost: { input: 2.5, output: 10 } });

    // The next process (another connection) derives the same facts: nothing new is recorded.
    const b = h.open();
    const s2 = service(b, h.dir, { env, loadGlobalConfig: async () => config() });
    await s2.settled();
    expect(systemTypes(b)).toEqual(first);

    // A different outcome is a new fact: the same provider, now failing.
    const c = h.open();
    const s3 = service(c, h.dir, { env: {}, loadGlobalConfig: async () => config({ providers: { openai: {} } }) });
    await s3.settled();
    const after = c.readSystem({ after: first.length, limit: 1_000 });
    expect(after.find((e) => e.type === 'provider.loaded' && e.data.provider === 'openai')?.data).toMatchObject({ ok: false, error: expect.stringMatching(/OPENAI_API_KEY or OPENAI_BASE_URL is not set/) });
    expect(after.filter((e) => e.type === 'model.removed').length).toBe(0); // this process never had them; it removes nothing
  });

  it('models - a registration is stored for every process and recorded as model.added with its fields', async () => {
    const h = home();
    const a = h.open();
    const s = service(a, h.dir, { loadGlobalConfig: async () => config() });
    await s.settled();
    const info = s.register('groq/llama-3.3-70b', { context: 128_000, cost: { input: 0.59, output: 0.79 }, reasoning: true }, 'cli');
    expect(info).toEqual({
      id: 'groq/llama-3.3-70b',
      provider: 'groq',
      capabilities: { toolCalling: true, reasoning: true },
      limits: { context: 128_000 },
      cost: { input: 0.59, output: 0.79 },
      source: 'cli',
    });
    expect(new RegisteredModels(a.db).get('groq/llama-3.3-70b')).toMatchObject({ provider: 'groq', source: 'cli', patch: { context: 128_000 } });
    const event = a.readSystem().at(-1)!;
    expect(event).toMatchObject({ type: 'model.added', sessionId: null, data: { model: 'groq/llama-3.3-70b', source: 'cli', limits: { context: 128_000 }, cost: { input: 0.59, output: 0.79 } } });
    s.register('groq/llama-3.3-70b', { context: 64_000 }, 'http');
    expect(a.readSystem().at(-1)).toMatchObject({ type: 'model.updated', data: { source: 'http', limits: { context: 64_000 } } });
    expect(s.catalog.get('groq/llama-3.3-70b')?.cost).toBeUndefined(); // a registration replaces the previous one
  });

  it('models - another process sees a registration and a removal without a restart, and records nothing itself', async () => {
    const h = home();
    const a = h.open();
    const b = h.open();
    const writer = service(a, h.dir, { loadGlobalConfig: async () => config() });
    const reader = service(b, h.dir, { loadGlobalConfig: async () => config() });
    await Promise.all([writer.settled(), reader.settled()]);
    const changes: string[] = [];
    reader.catalog.onChange((c) => changes.push(`${c.type} ${c.model.id}`));
    writer.register('local/qwen', { context: 32_000 }, 'cli');
    await notice(b);
    expect(reader.catalog.get('local/qwen')).toMatchObject({ limits: { context: 32_000 }, source: 'cli' });
    writer.unregister('local/qwen');
    await notice(b);
    expect(reader.catalog.get('local/qwen')).toBeUndefined();
    expect(changes).toEqual(['model.added local/qwen', 'model.removed local/qwen']);
    expect(systemTypes(a)).toEqual(['model.added local/qwen', 'model.removed local/qwen']);
  });

  it('models - removing a registration that covered a provider entry brings that entry back (model.updated)', async () => {
    const server = await openaiServer();
    const h = home();
    const a = h.open();
    const s = service(a, h.dir, { env: { OPENAI_BASE_URL: server.url }, loadGlobalConfig: async () => config() });
    await s.settled();
    s.register('openai/gpt-4o', { cost: { input: 1, output: 4 } }, 'cli');
    expect(s.catalog.get('openai/gpt-4o')).toMatchObject({ source: 'cli', cost: { input: 1, output: 4 }, limits: { context: 128_000 } });
    const { removed, now } = s.unregister('openai/gpt-4o');
    expect(removed.cost).toEqual({ input: 1, output: 4 });
    expect(now).toMatchObject({ source: 'builtin', cost: { input: 2.5, output: 10 } });
    expect(a.readSystem().at(-1)).toMatchObject({ type: 'model.updated', data: { model: 'openai/gpt-4o', source: 'builtin' } });
    expect(() => s.unregister('openai/gpt-4o')).toThrow(ModelNotRegisteredError);
    expect(() => s.unregister('openai/gpt-4o')).toThrow(/comes from Loom's built-in list/);
    expect(() => s.unregister('nobody/nothing')).toThrow(/is not in the catalog/);
  });

  it('models - a bad registration names the field and stores nothing', async () => {
    const h = home();
    const a = h.open();
    const s = service(a, h.dir, { loadGlobalConfig: async () => config() });
    const bad: [string, Record<string, unknown>, RegExp][] = [
      ['Groq/Llama', {}, /model id "Groq\/Llama".*lower case/],
      ['groq', {}, /provider\/model/],
      ['groq/x', { context: 0 }, /^context: /],
      ['groq/x', { cost: { input: 1 } }, /^cost\.output: /],
      ['groq/x', { window: 5 }, /unknown field window/],
    ];
    for (const [id, settings, message] of bad) {
      expect(() => s.register(id, settings, 'http')).toThrow(ModelRegistrationError);
      expect(() => s.register(id, settings, 'http')).toThrow(message);
    }
    expect(new RegisteredModels(a.db).count()).toBe(0);
    expect(a.readSystem()).toEqual([]);
  });

  it('models - registrations are bounded by MODELS_REGISTERED_MAX', async () => {
    const h = home();
    const a = h.open();
    const rows = new RegisteredModels(a.db);
    a.transaction(() => {
      for (let i = 0; i < MODELS_REGISTERED_MAX; i++) rows.put({ modelId: `bulk/m${i}`, provider: 'bulk', patch: {}, source: 'cli', updatedAt: '2026-01-01T00:00:00.000Z' });
    });
    const s = service(a, h.dir, { loadGlobalConfig: async () => config() });
    expect(a.readSystem()).toEqual([]); // loading what other processes registered records nothing
    expect(() => s.register('bulk/one-more', {}, 'cli')).toThrow(/MODELS_REGISTERED_MAX/);
    s.register('bulk/m7', { context: 1_000 }, 'cli'); // changing an existing one is fine
    expect(s.catalog.size()).toBe(MODELS_REGISTERED_MAX);
  });

  it('models - config.updated from any process makes the providers and their config models follow the file', async () => {
    const server = await openaiServer();
    const h = home();
    const file = join(h.dir, 'config.jsonc');
    writeFileSync(file, JSON.stringify({ version: 1, providers: { openai: { baseURL: server.url } } }));
    const a = h.open();
    const b = h.open();
    const s = service(b, h.dir, { env: {} }); // reads $LOOM_HOME/config.jsonc itself
    await s.settled();
    expect(s.catalog.get('openai/house-model')).toBeUndefined();
    writeFileSync(file, JSON.stringify({ version: 1, providers: { openai: { baseURL: server.url, models: { 'house-model': { context: 8_000, cost: { input: 0, output: 0 } } } } } }));
    a.append({ sessionId: null, type: 'config.updated', data: { source: file, keys: ['providers.openai.models'] } });
    await notice(b);
    await s.settled();
    await eventuallyTrue(() => s.catalog.get('openai/house-model') !== undefined);
    expect(s.catalog.get('openai/house-model')).toMatchObject({ source: 'config', limits: { context: 8_000 } });
    // A broken file later: the last good config stays in force.
    writeFileSync(file, '{ "version": 1, "providers": { "openai": { "baseURL": 42 } } }');
    a.append({ sessionId: null, type: 'config.updated', data: { source: file, keys: ['providers.openai.baseURL'] } });
    await notice(b);
    await s.settled();
    await s.reloadConfig();
    expect(s.view().configError).toMatch(/providers\.openai\.baseURL/);
    expect(s.catalog.get('openai/house-model')).toBeDefined();
    expect(s.providers.status('openai')?.state).toBe('ready');
  });

  it('models - a session resolver applies the session config\'s idempotent over the global setting', async () => {
    const server = await openaiServer();
    const h = home();
    const s = service(h.open(), h.dir, { env: { OPENAI_BASE_URL: server.url }, loadGlobalConfig: async () => config() });
    await s.settled();
    expect(s.resolverFor(config())('openai/x').provider.idempotent).toBe(false);
    expect(s.resolverFor(config({ providers: { openai: { idempotent: true } } }))('openai/x').provider.idempotent).toBe(true);
  });

  it('models - startup never waits for a slow provider; sessions on other providers run meanwhile', async () => {
    const server = await openaiServer();
    let release!: () => void;
    const slow: ProviderPlugin = {
      kind: 'slow',
      load: () => new Promise((_resolve, reject) => (release = () => reject(new Error('gave up')))),
    };
    const h = home();
    const s = service(h.open(), h.dir, { env: { OPENAI_BASE_URL: server.url }, loadGlobalConfig: async () => config() });
    s.providers.addPlugin(slow);
    await s.settled();
    // The v1 config has no custom ids yet (config v2 does); give the registry the entry directly.
    s.providers.configure({ tortoise: { kind: 'slow' } });
    expect(s.providers.status('tortoise')?.state).toBe('loading');
    expect(s.providers.status('openai')?.state).toBe('ready');
    expect(s.resolverFor(config())('openai/x').provider.id).toBe('openai');
    release();
    await s.settled();
    expect(s.providers.status('tortoise')).toMatchObject({ state: 'failed', error: 'gave up' });
  });
});

describe('services/runtime - the catalog in every process', () => {
  it('runtime - exposes catalog and providers; no secret reaches the log or the database file', async () => {
    const dir = tempDir('loom-rt-home-');
    const secret = 'sk-planted-secret-0123456789';
    writeFileSync(join(dir, 'config.jsonc'), JSON.stringify({ version: 1, providers: { anthropic: { apiKey: secret, baseURL: 'http://127.0.0.1:9' }, openai: {} } }));
    const rt = openLoomRuntime({ home: dir, env: { OPENAI_API_KEY: `${secret}-env` }, processName: 'test' });
    onCleanup(() => rt.close());
    await rt.models.settled();
    expect(rt.catalog.get('anthropic/claude-sonnet-4-5')).toBeDefined();
    rt.models.register('anthropic/claude-sonnet-4-5', { context: 100_000 }, 'cli');
    const events: AnyEnvelope[] = rt.store.readSystem({ limit: 1_000 });
    expect(events.some((e) => e.type === 'provider.loaded' && e.data.provider === 'anthropic')).toBe(true);
    expect(JSON.stringify(events)).not.toContain(secret);
    expect(JSON.stringify(rt.models.view())).not.toContain(secret);
    rt.close();
    for (const file of ['loom.db', 'loom.db-wal']) {
      if (existsSync(join(dir, file))) expect(readFileSync(join(dir, file)).includes(secret), file).toBe(false);
    }
  });
});

async function eventuallyTrue(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setImmediate(resolve));
  expect(check()).toBe(true);
}
