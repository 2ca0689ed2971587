import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ModelCatalog, ModelInfo } from '../../llm/modelInfo.js';
import { admitWithHooks } from '../../services/hooks.js';
import { openLoomRuntime, type LoomRuntime } from '../../services/runtime.js';
import type { PermissionAsker } from '../../actors/permission.js';
import type { AnyEnvelope } from '../../store/index.js';
import { startScriptedOpenAIServer, type RecordedRequest, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';

/**
 * Plugins under test are real modules on disk (`.mjs`), imported by the real plugin host of a real
 * loom runtime (temp $LOOM_HOME and SQLite file, the scripted OpenAI-compatible server over
 * loopback). A plugin talks back to its test through `globalThis.__loomTest`, keyed by a name
 * the test picks, since the test and the plugin share this process.
 */
export type TestChannel = Record<string, any>;

export function channel(key: string): TestChannel {
  const g = globalThis as { __loomTest?: Record<string, TestChannel> };
  g.__loomTest ??= {};
  g.__loomTest[key] = {};
  onCleanup(() => delete g.__loomTest![key]);
  return g.__loomTest[key]!;
}

/** The code a plugin module uses to reach its test's channel. */
export const CHANNEL = (key: string) => `globalThis.__loomTest[${JSON.stringify(key)}]`;

/** A ModelCatalog kept in a Map, emitting nothing (the catalog service records model.* events). */
export function memoryCatalog(): ModelCatalog & { entries: Map<string, ModelInfo> } {
  const entries = new Map<string, ModelInfo>();
  return {
    entries,
    get: (id) => entries.get(id),
    list: () => [...entries.values()],
    register: (info) => void entries.set(info.id, info),
    remove: (id) => entries.delete(id),
  };
}

export interface TestRuntimeOptions {
  /** `plugins` of the global config. */
  plugins?: unknown[];
  /** Files to write under $LOOM_HOME (plugin modules), by relative path. */
  files?: Record<string, string>;
  /** More global config keys. */
  config?: Record<string, unknown>;
  script?: ScriptedTurn[];
  respond?: (request: RecordedRequest, index: number) => ScriptedTurn;
  env?: NodeJS.ProcessEnv;
  catalog?: ModelCatalog;
  asker?: PermissionAsker;
}

export async function openTestRuntime(options: TestRuntimeOptions = {}) {
  const server = await startScriptedOpenAIServer({ script: options.script ?? [], respond: options.respond });
  onCleanup(() => void server.close());
  const home = tempDir('loom-plugins-home-');
  const location = tempDir('loom-plugins-dir-');
  writeFiles(home, options.files ?? {});
  writeGlobalConfig(home, { ...(options.plugins ? { plugins: options.plugins } : {}), ...options.config });
  const rt = openLoomRuntime({
    home,
    env: { OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '', ...options.env },
    processName: 'plugin-test',
    asker: options.asker,
  });
  if (options.catalog) (rt as LoomRuntime & { catalog?: ModelCatalog }).catalog = options.catalog;
  onCleanup(() => rt.close());
  return {
    rt,
    server,
    home,
    location,
    /** Creates a session in `location` on openai/test and admits `text` the way the CLI does (hooks included). */
    async session(text: string): Promise<string> {
      await rt.configFor(location);
      const sessionId = rt.store.ids.next('ses');
      rt.store.append({ sessionId, type: 'session.created', data: { location, model: 'openai/test' } });
      await admitWithHooks(rt.store, rt.hooks, sessionId, { text, source: 'test' });
      return sessionId;
    },
    /** Owns the session here and runs it until it is quiet. */
    async run(sessionId: string): Promise<void> {
      const actor = rt.coordinator.get(sessionId) ?? rt.coordinator.own(sessionId);
      if (!actor) throw new Error(`could not own ${sessionId}`);
      await rt.coordinator.runUntilQuiet(sessionId);
      if (actor.failure) throw actor.failure;
    },
    events(sessionId: string): AnyEnvelope[] {
      rt.store.flushDeltas();
      const out: AnyEnvelope[] = [];
      for (let page = rt.store.read(sessionId); page.length > 0; page = rt.store.read(sessionId, { after: page.at(-1)!.seq })) out.push(...page);
      return out;
    },
    /** System events (of `type`), oldest first; `data` untyped for brevity in assertions. */
    system(type?: string): { type: string; seq: number; data: any }[] {
      const out: AnyEnvelope[] = [];
      for (let page = rt.store.readSystem(); page.length > 0; page = rt.store.readSystem({ after: page.at(-1)!.seq })) out.push(...page);
      return type === undefined ? out : out.filter((e) => e.type === type);
    },
  };
}

export function writeFiles(root: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, name)), { recursive: true });
    writeFileSync(join(root, name), text);
  }
}

export function writeGlobalConfig(home: string, config: Record<string, unknown>): void {
  writeFileSync(join(home, 'config.jsonc'), `// written by the test\n${JSON.stringify({ version: 1, ...config }, null, 2)}\n`);
}

/** Polls `done` (yielding to the event loop between looks) until it holds; fails after `limit` looks. */
export async function until(done: () => boolean, what: string, limit = 2_000): Promise<void> {
  for (let i = 0; !done(); i++) {
    if (i >= limit) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
