import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../services/config.js';
import { HookRegistry } from '../../services/hooks.js';
import { PluginHost } from '../../services/plugins.js';
import { Store } from '../../store/index.js';
import { createToolRegistry } from '../../tools/registry.js';
import { onCleanup, tempDir, tempStore } from '../helpers.js';
import { CHANNEL, channel, memoryCatalog, openTestRuntime, until, writeFiles, writeGlobalConfig } from './plugin-fixtures.js';

const toolPlugin = (tool: string) => `
export default function (loom, options) {
  loom.tool.register({
    name: ${JSON.stringify(tool)},
    description: 'says hello',
    input: loom.z.object({ who: loom.z.string() }),
    idempotent: true,
    timeoutMs: 5000,
    async execute(input) { return { output: (options.greeting ?? 'hello') + ' ' + input.who }; },
  });
}
`;

describe('plugins - loading', () => {
  it('plugins - loads the global config plugins in the background and records what each registered', async () => {
    const ch = channel('load');
    const catalog = memoryCatalog();
    const t = await openTestRuntime({
      catalog,
      plugins: [{ module: './plugins/hello.mjs', options: { greeting: 'hi' } }],
      files: {
        'plugins/hello.mjs': `
          export default async function (loom, options) {
            loom.tool.register({ name: 'hello', description: 'greets', input: loom.z.object({ who: loom.z.string() }), idempotent: true, timeoutMs: 5000,
              async execute(input) { return { output: options.greeting + ' ' + input.who }; } });
            loom.model.register({ id: 'openai/plugin-model', name: 'Plugin model', limits: { context: 32000 }, cost: { input: 1, output: 2 } });
            loom.hook('chat.params', (draft) => { draft.temperature = 0.5; });
            ${CHANNEL('load')}.config = loom.config;
          }`,
      },
      config: { providers: { openai: { apiKey: 'sk-config-secret-000000' } } },
    });
    await t.rt.plugins.settled();
    expect(t.system('plugin.loaded').map((e) => e.data)).toEqual([
      { plugin: 'hello', module: './plugins/hello.mjs', tools: ['hello'], models: ['openai/plugin-model'], hooks: ['chat.params'], ms: expect.any(Number) },
    ]);
    expect(t.system('registry.tool.added').map((e) => e.data)).toEqual([{ tool: 'hello' }]);
    expect(t.rt.plugins.list()).toEqual([{ name: 'hello', module: './plugins/hello.mjs', state: 'loaded', tools: ['hello'], models: ['openai/plugin-model'], hooks: ['chat.params'] }]);
    expect(catalog.get('openai/plugin-model')).toEqual({
      id: 'openai/plugin-model',
      provider: 'openai',
      name: 'Plugin model',
      capabilities: { toolCalling: true, reasoning: false },
      limits: { context: 32000 },
      cost: { input: 1, output: 2 },
      source: 'plugin',
    });
    const ctx = { sessionId: 's', activityId: '', callId: 'c', location: t.location, home: t.home, signal: new AbortController().signal, services: {} };
    expect((await t.rt.tools.execute('hello', { who: 'you' }, ctx)).output).toBe('hi you');
    // loom.config: the global config without secrets (a version 1 key is carried in memory only, out of sight) and no plugin entries.
    expect(JSON.stringify(ch.config)).not.toContain('sk-config-secret');
    expect(ch.config.plugins).toBeUndefined();
  });

  it('plugins - a project config naming plugins is refused with an error naming the key', async () => {
    const home = tempDir();
    const location = tempDir();
    writeFiles(location, { '.loom/config.jsonc': '{ "version": 1, "plugins": ["./evil.mjs"] }' });
    const error = await loadConfig({ home, location }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('plugins');
    expect((error as Error).message).toContain('a cloned repository must not run code');
    writeGlobalConfig(home, { plugins: ['./fine.mjs', { module: 'pkg', timeoutMs: 1000, options: { a: 1 } }] });
    expect((await loadConfig({ home })).config.plugins).toEqual(['./fine.mjs', { module: 'pkg', timeoutMs: 1000, options: { a: 1 } }]);
  });

  it('plugins - a plugin entry of the wrong shape is refused naming its field', async () => {
    const home = tempDir();
    writeGlobalConfig(home, { plugins: [{ module: './a.mjs', timeout: 5 }] });
    await expect(loadConfig({ home })).rejects.toThrow(/"plugins\.0\.timeout": unknown key/);
    writeGlobalConfig(home, { plugins: [{ module: './a.mjs', timeoutMs: 10 * 60_000 }] });
    await expect(loadConfig({ home })).rejects.toThrow(/"plugins\.0\.timeoutMs"/);
  });

  it('plugins - plugins that fail to import, export no function, throw or time out are reported and block nothing', async () => {
    const t = await openTestRuntime({
      plugins: ['./missing.mjs', 'loom-plugin-not-installed', './nofn.mjs', './throws.mjs', { module: './hangs.mjs', timeoutMs: 50 }, './good.mjs'],
      files: {
        'nofn.mjs': 'export const notAPlugin = 1;',
        // It registers a tool before throwing: the tool is taken back.
        'throws.mjs': `export default (loom) => {
          loom.tool.register({ name: 'half_done', description: 'x', input: loom.z.object({}), idempotent: true, timeoutMs: 1000, async execute() { return { output: '' }; } });
          throw new Error('cannot start');
        };`,
        'hangs.mjs': 'export default () => new Promise(() => {});',
        'good.mjs': toolPlugin('good_tool'),
      },
    });
    await t.rt.plugins.settled();
    const failed = t.system('plugin.failed').map((e) => e.data as { plugin: string; stage: string; message: string });
    expect(failed.map((f) => [f.plugin, f.stage])).toEqual(
      expect.arrayContaining([
        ['missing', 'import'],
        ['loom-plugin-not-installed', 'import'],
        ['nofn', 'import'],
        ['throws', 'init'],
        ['hangs', 'init'],
      ]),
    );
    expect(failed).toHaveLength(5);
    expect(failed.find((f) => f.plugin === 'loom-plugin-not-installed')!.message).toMatch(/^PluginError: cannot resolve package "loom-plugin-not-installed" from .*: not installed/);
    expect(failed.find((f) => f.plugin === 'nofn')!.message).toContain('exports no plugin function');
    expect(failed.find((f) => f.plugin === 'throws')!.message).toBe('cannot start');
    expect(failed.find((f) => f.plugin === 'hangs')!.message).toBe('PluginTimeoutError: loading hangs timed out after 50 ms');
    expect(t.system('plugin.loaded').map((e) => e.data.plugin)).toEqual(['good']);
    expect(t.rt.tools.get('good_tool')).toBeDefined();
    expect(t.rt.tools.get('half_done')).toBeUndefined();
    expect(t.system('registry.tool.removed').map((e) => e.data)).toEqual([{ tool: 'half_done' }]);
    expect(t.rt.plugins.list().map((p) => [p.name, p.state])).toEqual([
      ['missing', 'failed'],
      ['loom-plugin-not-installed', 'failed'],
      ['nofn', 'failed'],
      ['throws', 'failed'],
      ['hangs', 'failed'],
      ['good', 'loaded'],
    ]);
  });

  it('plugins - a failing plugin\'s message never carries a secret, and no secret reaches the database', async () => {
    const secret = 'sk-planted-secret-abcdefghijklmnop';
    channel('secret').key = secret; // what a plugin reads from its environment
    const t = await openTestRuntime({
      env: { OPENAI_API_KEY: secret },
      plugins: ['./leaky.mjs', './leaky-hook.mjs'],
      files: {
        'leaky.mjs': `export default () => { throw new Error("could not use key " + ${CHANNEL('secret')}.key); };`,
        'leaky-hook.mjs': `export default (loom) => loom.hook("chat.params", () => { throw new Error("auth: Bearer " + ${CHANNEL('secret')}.key); });`,
      },
    });
    await t.rt.plugins.settled();
    expect(t.system('plugin.failed')[0]!.data.message).toBe('could not use key [redacted]');
    const sessionId = await t.session('hello');
    await t.run(sessionId);
    const hookFailed = t.events(sessionId).find((e) => e.type === 'plugin.hook.failed')!;
    expect(hookFailed.data).toEqual({ plugin: 'leaky-hook', hook: 'chat.params', message: 'auth: Bearer [redacted]' });
    t.rt.store.db.pragma('wal_checkpoint(TRUNCATE)');
    const bytes = [join(t.home, 'loom.db'), join(t.home, 'loom.db-wal')].map((f) => {
      try {
        return readFileSync(f).toString('latin1');
      } catch {
        return '';
      }
    });
    expect(bytes.join('').includes(secret)).toBe(false);
  });

  it('plugins - a slow plugin does not delay the first session; its tool appears once it loads', async () => {
    const ch = channel('slow');
    let release!: () => void;
    ch.gate = new Promise<void>((r) => (release = r));
    const t = await openTestRuntime({
      plugins: ['./slow.mjs'],
      files: {
        'slow.mjs': `
          await ${CHANNEL('slow')}.gate; // the import itself is slow
          export default (loom) => loom.tool.register({ name: 'late_tool', description: 'arrives late', input: loom.z.object({}), idempotent: true, timeoutMs: 1000, async execute() { return { output: 'late' }; } });`,
      },
      script: [{ text: 'first answer' }, { text: 'second answer' }],
    });
    const first = await t.session('hello');
    await t.run(first);
    expect(t.events(first).find((e) => e.type === 'activity.settled')!.data).toMatchObject({ status: 'completed' });
    // The session completed while the plugin was still loading.
    expect(t.rt.plugins.list()).toEqual([expect.objectContaining({ name: 'slow', state: 'loading' })]);
    expect(t.system('plugin.loaded')).toEqual([]);
    const offered = (i: number) => ((t.server.requests[i]!.body as { tools?: { function: { name: string } }[] }).tools ?? []).map((x) => x.function.name);
    expect(offered(0)).not.toContain('late_tool');

    release();
    await t.rt.plugins.settled();
    expect(t.system('plugin.loaded').map((e) => e.data.plugin)).toEqual(['slow']);
    expect(t.system('registry.tool.added').map((e) => e.data)).toEqual([{ tool: 'late_tool' }]);
    const second = await t.session('again');
    await t.run(second);
    expect(offered(1)).toContain('late_tool');
  });

  it('plugins - a required plugin is waited for: the first input and request already go through its hooks and offer its tool', async () => {
    const ch = channel('required');
    let release!: () => void;
    ch.gate = new Promise<void>((r) => (release = r));
    const t = await openTestRuntime({
      plugins: [{ module: './policy.mjs', required: true }],
      files: {
        'policy.mjs': `
          await ${CHANNEL('required')}.gate;
          export default (loom) => {
            loom.hook('input.admitted', (draft) => { draft.text = draft.text.replaceAll('hunter2', '[redacted]'); });
            loom.tool.register({ name: 'policy_tool', description: 'p', input: loom.z.object({}), idempotent: true, timeoutMs: 1000, async execute() { return { output: 'p' }; } });
          };`,
      },
      script: [{ text: 'ok' }],
    });
    const admitting = t.session('my password is hunter2');
    await until(() => t.rt.plugins.list().length === 1, 'the config to be read');
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(t.rt.plugins.list()).toEqual([expect.objectContaining({ name: 'policy', state: 'loading' })]);
    expect(t.rt.store.queries.sessions({ limit: 10 }).flatMap((s) => t.rt.store.inputs(s.sessionId))).toEqual([]); // nothing admitted yet
    release();
    const sessionId = await admitting;
    await t.run(sessionId);
    expect(t.events(sessionId).find((e) => e.type === 'input.admitted')!.data).toMatchObject({ text: 'my password is [redacted]' });
    const tools = ((t.server.requests[0]!.body as { tools?: { function: { name: string } }[] }).tools ?? []).map((x) => x.function.name);
    expect(tools).toContain('policy_tool');
  });

  it('plugins - a package installed under $LOOM_HOME/node_modules loads by its name', async () => {
    const t = await openTestRuntime({
      plugins: ['loom-plugin-pkg'],
      files: {
        'node_modules/loom-plugin-pkg/package.json': JSON.stringify({ name: 'loom-plugin-pkg', version: '1.0.0', type: 'module', main: 'index.js' }),
        'node_modules/loom-plugin-pkg/index.js': toolPlugin('pkg_tool'),
      },
    });
    await t.rt.plugins.settled();
    expect(t.system('plugin.loaded').map((e) => e.data)).toEqual([expect.objectContaining({ plugin: 'loom-plugin-pkg', tools: ['pkg_tool'] })]);
  });

  it('plugins - loom.model.register with a bad entry fails the plugin with a clear message', async () => {
    const u = await openTestRuntime({
      catalog: memoryCatalog(),
      plugins: ['./bad-model.mjs'],
      files: { 'bad-model.mjs': 'export default (loom) => loom.model.register({ id: "no-slash", limits: { context: -1 } });' },
    });
    await u.rt.plugins.settled();
    expect(u.system('plugin.failed')[0]!.data.message).toBe('PluginError: loom.model.register: "id": must be "provider/model"');
  });
});

describe('plugins - the loom instance', () => {
  it('plugins - loom.session.create and loom.session.prompt create and admit like the CLI does, and the session runs', async () => {
    const ch = channel('driver');
    const t = await openTestRuntime({
      plugins: ['./driver.mjs', './shout.mjs'],
      files: {
        'driver.mjs': `export default (loom) => { ${CHANNEL('driver')}.loom = loom; };`,
        'shout.mjs': 'export default (loom) => loom.hook("input.admitted", (draft, ctx) => { draft.text = draft.text + " (via " + ctx.source + ")"; });',
      },
      config: { model: 'openai/test' },
      script: [{ text: 'done by the plugin session' }],
    });
    await t.rt.plugins.settled();
    const ran: string[] = [];
    t.rt.plugins.runSessionsWith(async (id) => {
      ran.push(id);
      await t.run(id);
    });
    const created = await ch.loom.session.create({ location: t.location, title: 'from a plugin' });
    expect(created).toEqual({ sessionId: expect.stringMatching(/^ses/), location: t.location, model: 'openai/test' });
    const prompted = await ch.loom.session.prompt(created.sessionId, 'do it');
    expect(prompted).toEqual({ inputId: expect.any(String), mode: 'queue', admitted: true });
    await until(() => t.events(created.sessionId).some((e) => e.type === 'activity.settled'), 'the plugin session to settle');
    expect(ran).toEqual([created.sessionId]);
    const events = t.events(created.sessionId);
    expect(events[0]!.data).toMatchObject({ location: t.location, model: 'openai/test', title: 'from a plugin' });
    expect(events.find((e) => e.type === 'input.admitted')!.data).toMatchObject({ text: 'do it (via plugin:driver)', source: 'plugin:driver', mode: 'queue' });
    expect(events.find((e) => e.type === 'activity.settled')!.data).toMatchObject({ status: 'completed' });
    expect((t.server.requests[0]!.body as { messages: { role: string; content: string }[] }).messages.at(-1)).toEqual({ role: 'user', content: 'do it (via plugin:driver)' });

    await expect(ch.loom.session.create({ location: 'relative/dir' })).rejects.toThrow('location must be an absolute path');
    await expect(ch.loom.session.create({ location: join(t.location, 'nope') })).rejects.toThrow('no such directory');
    await expect(ch.loom.session.create({ location: t.location, model: 'nowhere/x' })).rejects.toThrow(/unknown provider "nowhere"/);
    await expect(ch.loom.session.prompt('ses_missing', 'hi')).rejects.toThrow(/ses_missing/);
    await expect(ch.loom.session.prompt(created.sessionId, 'hi', { mode: 'now' })).rejects.toThrow('mode must be "steer" or "queue"');
  });

  it('plugins - loom.on delivers committed events in commit order, by type, by prefix and for *', async () => {
    const ch = channel('on');
    const t = await openTestRuntime({
      plugins: ['./listen.mjs'],
      files: {
        'listen.mjs': `export default (loom) => {
          const c = ${CHANNEL('on')};
          c.settled = []; c.tools = []; c.all = [];
          loom.on('activity.settled', (e) => { c.settled.push(e.data.status); });
          loom.on('tool.*', async (e) => { await new Promise((r) => setTimeout(r, 1)); c.tools.push(e.type); });
          loom.on('*', (e) => { c.all.push(e.gseq); if (!Object.isFrozen(e.data)) c.mutable = true; });
          try { loom.on('no.such.type', () => {}); } catch (error) { c.refused = error.message; }
        };`,
      },
      script: [{ toolCalls: [{ name: 'read', arguments: { path: 'missing.txt' } }] }, { text: 'ok' }],
    });
    await t.rt.plugins.settled();
    const sessionId = await t.session('read it');
    await t.run(sessionId);
    await until(() => ch.settled.length === 1 && ch.tools.length === 3, 'the handlers');
    expect(ch.settled).toEqual(['completed']);
    expect(ch.tools).toEqual(['tool.called', 'tool.started', 'tool.settled']);
    const gseqs = t.events(sessionId).map((e) => e.gseq);
    await until(() => ch.all.length >= gseqs.length, 'every event');
    expect(ch.all.filter((g: number) => gseqs.includes(g))).toEqual(gseqs);
    expect([...ch.all].sort((a: number, b: number) => a - b)).toEqual(ch.all);
    expect(ch.mutable).toBeUndefined();
    expect(ch.refused).toBe('loom.on: unknown event type "no.such.type"');
  });

  it('plugins - a config.updated event naming plugins loads new entries and unloads removed ones, taking back what they registered', async () => {
    const ch = channel('reload');
    const t = await openTestRuntime({
      plugins: ['./a.mjs'],
      files: {
        'a.mjs': `export default (loom) => {
          const c = ${CHANNEL('reload')};
          c.a = loom;
          loom.tool.register({ name: 'a_tool', description: 'a', input: loom.z.object({}), idempotent: true, timeoutMs: 1000, async execute() { return { output: 'a' }; } });
          loom.hook('chat.headers', (d) => { d['x-from-a'] = '1'; });
          loom.on('*', () => {});
          loom.onDispose(() => { c.disposed = true; });
        };`,
        'b.mjs': toolPlugin('b_tool'),
      },
    });
    await t.rt.plugins.settled();
    expect(t.rt.hooks.has('chat.headers')).toBe(true);
    writeGlobalConfig(t.home, { plugins: ['./b.mjs'] });
    t.rt.store.append({ sessionId: null, type: 'config.updated', data: { source: join(t.home, 'config.jsonc'), keys: ['plugins'] } });
    await until(() => t.rt.plugins.list().some((p) => p.name === 'b'), 'the reload');
    await t.rt.plugins.settled();
    expect(t.rt.plugins.list().map((p) => [p.name, p.state])).toEqual([['b', 'loaded']]);
    expect(t.rt.tools.get('a_tool')).toBeUndefined();
    expect(t.rt.tools.get('b_tool')).toBeDefined();
    expect(t.rt.hooks.has('chat.headers')).toBe(false);
    expect(ch.disposed).toBe(true);
    expect(t.system('plugin.unloaded').map((e) => e.data)).toEqual([{ plugin: 'a', module: './a.mjs', reason: 'removed from the config (or its entry changed)' }]);
    expect(t.system('registry.tool.removed').map((e) => e.data)).toEqual([{ tool: 'a_tool' }]);
    expect(() => ch.a.tool.register({})).toThrow('loom.tool.register: plugin a is unloaded');

    // A config.updated about other keys changes nothing.
    t.rt.store.append({ sessionId: null, type: 'config.updated', data: { source: 'x', keys: ['model'] } });
    writeGlobalConfig(t.home, { plugins: [] });
    await new Promise((r) => setTimeout(r, 20));
    expect(t.rt.plugins.list().map((p) => p.name)).toEqual(['b']);

    // Adding the removed plugin again imports its file again.
    writeGlobalConfig(t.home, { plugins: ['./b.mjs', './a.mjs'] });
    await t.rt.plugins.reload();
    await t.rt.plugins.settled();
    expect(t.rt.plugins.list().map((p) => [p.name, p.state])).toEqual([
      ['b', 'loaded'],
      ['a', 'loaded'],
    ]);
    expect(t.rt.tools.get('a_tool')).toBeDefined();
  });
});

describe('plugins - closing', () => {
  it('plugins - closing the process runs onDispose, records nothing and leaves no hook behind', async () => {
    const ch = channel('close');
    const t = await openTestRuntime({
      plugins: ['./c.mjs'],
      files: {
        'c.mjs': `export default (loom) => {
          loom.tool.register({ name: 'c_tool', description: 'c', input: loom.z.object({}), idempotent: true, timeoutMs: 1000, async execute() { return { output: 'c' }; } });
          loom.hook('chat.headers', () => {});
          loom.onDispose(() => { ${CHANNEL('close')}.disposed = true; });
        };`,
      },
    });
    await t.rt.plugins.settled();
    const before = t.system().map((e) => e.type);
    t.rt.close();
    await until(() => ch.disposed === true, 'onDispose');
    expect(t.rt.hooks.has('chat.headers')).toBe(false);
    const after = Store.open(join(t.home, 'loom.db'));
    onCleanup(() => after.close());
    expect(after.readSystem().map((e) => e.type)).toEqual(before);
  });
});

describe('plugins - loom.on subscriptions', () => {
  function host(options: { eventQueueMax?: number } = {}) {
    const store = tempStore();
    const home = tempDir();
    const logs: string[] = [];
    const plugins = new PluginHost({
      home,
      env: {},
      store,
      tools: createToolRegistry(),
      hooks: new HookRegistry(),
      configFor: async () => {
        throw new Error('not used');
      },
      signal: async () => {},
      log: (level, plugin, line) => void logs.push(`${level} ${plugin}: ${line}`),
      ...options,
    });
    onCleanup(() => plugins.close());
    const emit = (n: number) => {
      for (let i = 0; i < n; i++) store.append({ sessionId: null, type: 'config.updated', data: { source: `e${i}`, keys: [] } });
    };
    return { store, home, plugins, logs, emit };
  }

  it('plugins - a handler slower than the log drops the oldest waiting events beyond its queue, and the plugin log says how many', async () => {
    const ch = channel('queue');
    let release!: () => void;
    ch.gate = new Promise<void>((r) => (release = r));
    const h = host({ eventQueueMax: 3 });
    writeFiles(h.home, {
      'q.mjs': `export default (loom) => {
        const c = ${CHANNEL('queue')};
        c.slow = []; c.fast = [];
        loom.on('config.updated', async (e) => { c.slow.push(e.data.source); if (c.slow.length === 1) await c.gate; });
        loom.on('config.updated', (e) => { c.fast.push(e.data.source); });
      };`,
    });
    h.plugins.apply(['./q.mjs']);
    await h.plugins.settled();
    h.emit(1);
    await until(() => ch.slow.length === 1, 'the first event');
    // One event at a time: the fast subscriber keeps up, the slow one's queue overflows.
    for (let i = 1; i <= 9; i++) {
      h.store.append({ sessionId: null, type: 'config.updated', data: { source: `e${i}`, keys: [] } });
      await until(() => ch.fast.length === i + 1, `the fast subscriber to see e${i}`);
    }
    release();
    await until(() => ch.slow.length === 4, 'the slow subscriber');
    expect(ch.slow).toEqual(['e0', 'e7', 'e8', 'e9']);
    expect(ch.fast).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9']);
    expect(h.logs).toContain('warn q: a loom.on handler fell behind: 6 event(s) were dropped');
  });

  it('plugins - a failing handler is logged, recorded once as plugin.failed, and keeps receiving', async () => {
    const ch = channel('fail');
    const h = host();
    writeFiles(h.home, {
      'f.mjs': `export default (loom) => {
        const c = ${CHANNEL('fail')}; c.calls = 0;
        loom.on('config.updated', () => { c.calls++; throw new Error('handler broke'); });
      };`,
    });
    h.plugins.apply(['./f.mjs']);
    await h.plugins.settled();
    h.emit(3);
    await until(() => ch.calls === 3, 'three calls');
    await until(() => h.logs.filter((l) => l.includes('handler broke')).length === 3, 'three log lines');
    const failed = h.store.readSystem().filter((e) => e.type === 'plugin.failed');
    expect(failed.map((e) => e.data)).toEqual([{ plugin: 'f', module: './f.mjs', stage: 'listener', message: 'handler broke' }]);
  });
});
