/**
 * Plugins (DESIGN §8, issue 8 item 9): JavaScript modules named by the GLOBAL config's `plugins`
 * key, loaded into every loom process that runs sessions. Each exports a function (default export,
 * or an export named `plugin`) that receives a `loom` instance and its options:
 *
 *   export default async function (loom, options) {
 *     loom.tool.register({ name, description, input: loom.z.object({...}), idempotent, timeoutMs, execute });
 *     loom.model.register({ id: 'openai/my-model', limits: { context: 128_000 } });
 *     loom.hook('chat.params', (draft, ctx) => { draft.temperature = 0.2; });
 *     loom.on('activity.settled', (event) => { ... });
 *   }
 *
 * Rules:
 * - Loading never delays startup: every plugin is imported in the background, bounded by its load
 *   timeout; sessions run meanwhile with what is registered so far (a tool registered later is
 *   offered from the next provider request on).
 * - Outcomes are system events: `plugin.loaded` (with what it registered), `plugin.failed` (where
 *   it failed, the message without known secrets), `plugin.unloaded`. A failing plugin blocks
 *   nothing; what it registered before failing is taken back.
 * - Plugin tools are ordinary registry tools (tools/registry.ts): the same input validation,
 *   timeout, output bounds and permission rules as built-ins (a tool without a rule asks).
 * - A project's `.loom/config.jsonc` may not name plugins (a cloned repository must not run code).
 * - A `config.updated` system event naming `plugins` makes every process read the global config
 *   again: new entries load, removed or changed ones are unloaded (tools, models, hooks and
 *   listeners taken back, `onDispose` callbacks run).
 */
import { realpath, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { z } from 'zod';
import {
  PLUGIN_ERROR_MESSAGE_CHARS_MAX,
  PLUGIN_EVENT_QUEUE_MAX,
  PLUGIN_HANDLER_TIMEOUT_MS,
  PLUGIN_HOOK_TIMEOUT_MS,
  PLUGIN_HOOKS_PER_PLUGIN_MAX,
  PLUGIN_LISTENERS_PER_PLUGIN_MAX,
  PLUGIN_LOAD_TIMEOUT_DEFAULT_MS,
  PLUGIN_LOADED_NAMES_MAX,
  PLUGIN_SESSION_TITLE_CHARS_MAX,
} from '../core/limits.js';
import type { ModelCatalog, ModelInfo } from '../llm/modelInfo.js';
import { createProviderResolver, DEFAULT_MODEL } from '../llm/resolve.js';
import { EventHub } from '../server/hub.js';
import { eventDefinitions, SessionNotFoundError, type AnyEnvelope, type Store } from '../store/index.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { Tool } from '../tools/types.js';
import { globalConfigPath, loadConfig, type PluginEntry, type ResolvedConfig } from './config.js';
import { admitWithHooks, errorMessage, withTimeout, type HookFn, type HookName, type HookRegistry } from './hooks.js';
import type { SystemEventRequest } from './runtime.js';

// ---- what a plugin sees ---------------------------------------------------------------------------

/** A plugin module's function. Its return value is ignored; a rejection or throw fails the plugin. */
export type LoomPlugin = (loom: Loom, options: Readonly<Record<string, unknown>>) => void | Promise<void>;

/** A model as a plugin registers it: `provider` comes from the id; capabilities and limits may be left out. */
export interface PluginModelInfo {
  /** `provider/model`. */
  id: string;
  name?: string;
  /** Default: tool calling, no reasoning. */
  capabilities?: Partial<ModelInfo['capabilities']>;
  limits?: ModelInfo['limits'];
  cost?: ModelInfo['cost'];
}

export interface PluginLogger {
  /** Shown with LOOM_DEBUG set. */
  debug(...args: unknown[]): void;
  /** Shown with LOOM_DEBUG set. */
  info(...args: unknown[]): void;
  /** Always shown on stderr. */
  warn(...args: unknown[]): void;
  /** Always shown on stderr. */
  error(...args: unknown[]): void;
}

/** The `loom` instance a plugin's function receives. Calls after the plugin was unloaded throw. */
export interface Loom {
  /** This plugin's name (events and errors use it). */
  readonly name: string;
  /** The global config in force when the plugin loaded, with secrets redacted and without `plugins`. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly log: PluginLogger;
  /** The zod Loom validates tool inputs with: build tool input schemas with it. */
  readonly z: typeof z;
  readonly session: {
    /**
     * Creates a session like `loom run` / `POST /sessions` does (without an input). `location` must
     * be an absolute path to a directory; `model` defaults to the directory's config, then
     * $LOOM_MODEL, then the built-in default. Throws when the model's provider is not configured.
     */
    create(options: { location: string; model?: string; title?: string }): Promise<{ sessionId: string; location: string; model: string }>;
    /**
     * Admits an input through the same path as `loom prompt` and `POST /sessions/:id/inputs`
     * (`input.admitted` hooks, then the double-texting policy unless `mode` is given), then tells
     * the session's owner. In `loom serve` a session without a live owner is run by the server; in
     * other processes a `loom worker`, `loom serve` or the next `loom prompt` runs it.
     */
    prompt(sessionId: string, text: string, options?: { mode?: 'steer' | 'queue' }): Promise<{ inputId: string; mode: 'steer' | 'queue'; admitted: boolean }>;
  };
  readonly tool: {
    /** Registers a tool (the same `Tool` as built-ins); returns the function that removes it. Throws ToolRegistrationError for a taken name or a bad tool. */
    register(tool: Tool): () => void;
  };
  readonly model: {
    /** Adds or replaces a model in the catalog (source `plugin`); it is removed when the plugin is unloaded. */
    register(info: PluginModelInfo): void;
  };
  /** Registers a hook (services/hooks.ts); returns the function that removes it. */
  hook<N extends HookName>(name: N, fn: HookFn<N>): () => void;
  /**
   * Calls `handler` with every event committed from now on (by any process) whose type is `type`,
   * matches `prefix.*`, or any event for `*`; one call at a time per subscription, in commit order.
   * Returns the unsubscribe function. Events are frozen.
   */
  on(type: string, handler: (event: AnyEnvelope) => void | Promise<void>): () => void;
  /** Called when the plugin is unloaded or the process closes: stop timers, close connections. */
  onDispose(fn: () => void | Promise<void>): void;
}

/** A plugin module was unusable or a plugin called its `loom` instance wrongly. */
export class PluginError extends Error {
  override name = 'PluginError';
}

// ---- the host -----------------------------------------------------------------------------------

export type PluginState = 'loading' | 'loaded' | 'failed';

export interface PluginStatus {
  name: string;
  module: string;
  state: PluginState;
  /** Why it failed (no secrets). */
  error?: string;
  tools: string[];
  models: string[];
  hooks: string[];
}

export interface PluginHostOptions {
  /** `$LOOM_HOME`: the global config lives here, and relative module paths resolve against it. */
  home: string;
  env: NodeJS.ProcessEnv;
  store: Store;
  tools: ToolRegistry;
  hooks: HookRegistry;
  /** The process's model catalog, when it has one; `loom.model.register` throws without it. */
  catalog?: () => ModelCatalog | undefined;
  configFor(location: string): Promise<ResolvedConfig>;
  /** Tells a session's owner to look (wake after an admission, cancel after an interrupt). */
  signal(kind: 'wake' | 'cancel', sessionId: string): Promise<void>;
  /** Records a system event (default: appended, failures ignored). */
  emit?(event: SystemEventRequest): void;
  /** Where plugin log lines go (default: stderr; debug and info only with LOOM_DEBUG). */
  log?(level: keyof PluginLogger, plugin: string, line: string): void;
  /** Reads the global config (default: `$LOOM_HOME/config.jsonc` through loadConfig). */
  globalConfig?(): Promise<ResolvedConfig>;
  /** Per `loom.on` handler call (default PLUGIN_HANDLER_TIMEOUT_MS). */
  handlerTimeoutMs?: number;
  /** Per subscription (default PLUGIN_EVENT_QUEUE_MAX). */
  eventQueueMax?: number;
}

interface Normalized {
  key: string;
  name: string;
  module: string;
  options: Record<string, unknown>;
  timeoutMs: number;
  required: boolean;
}

interface Subscription {
  matches(type: string): boolean;
  handler(event: AnyEnvelope): void | Promise<void>;
  queue: AnyEnvelope[];
  dropped: number;
  running: boolean;
  closed: boolean;
  failed: boolean;
}

interface PluginRecord extends Normalized {
  order: number;
  state: PluginState;
  error?: string;
  /** Set once unloaded (or failed): its `loom` instance refuses every call. */
  revoked: boolean;
  tools: Set<string>;
  models: Set<string>;
  hooks: { name: HookName; off: () => void }[];
  subscriptions: Set<Subscription>;
  disposers: (() => void | Promise<void>)[];
  done: Promise<void>;
}

/**
 * Loads and runs the plugins of one process. `start()` returns at once; loads finish in the
 * background (`settled()` waits for them, for tests and status views).
 */
export class PluginHost {
  private records: PluginRecord[] = [];
  private closed = false;
  private started = false;
  /** The global config has been read once (or failed to be): `required` plugins are known. */
  private configRead = false;
  private config: ResolvedConfig | undefined;
  private secrets: string[] = [];
  private hub: EventHub | undefined;
  private offHub: (() => void) | undefined;
  private offConfigWatch: (() => void) | undefined;
  private runSession: ((sessionId: string) => Promise<unknown>) | undefined;
  /** Module URLs imported before: importing one again after an unload needs a fresh URL. */
  private readonly imported = new Map<string, number>();
  private reloading: Promise<void> = Promise.resolve();
  /** Resolves on `close`, releasing sessions that wait at the gate. */
  private readonly whenClosed: Promise<void>;
  private markClosed!: () => void;

  constructor(private readonly options: PluginHostOptions) {
    this.whenClosed = new Promise((resolve) => (this.markClosed = resolve));
    this.secrets = secretsOf(options.env, undefined);
  }

  /** Reads the global config and starts loading its plugins; follows `config.updated` to reload. Never waits for a plugin. */
  start(): void {
    this.started = true;
    this.watchConfig();
    void this.reload();
  }

  /**
   * What sessions wait for before their hooks run and their requests leave (HookRegistry's gate):
   * the first read of the global config, then every `required` plugin still loading (each bounded
   * by its load timeout). Undefined when nothing is pending: plugins without `required` are
   * never waited for.
   */
  gate(): Promise<void> | undefined {
    if (!this.started || this.closed) return undefined;
    if (!this.configRead) return Promise.race([this.reloading.then(() => this.gate()), this.whenClosed]);
    const loading = this.records.filter((r) => r.required && r.state === 'loading');
    if (loading.length === 0) return undefined;
    return Promise.race([Promise.all(loading.map((r) => r.done)).then(() => undefined), this.whenClosed]);
  }

  /**
   * Reads the global config again and applies its `plugins` (see `apply`). A config that fails to
   * load changes nothing (its error surfaces where the config is used).
   */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      if (this.closed) return;
      let config: ResolvedConfig;
      try {
        config = await (this.options.globalConfig?.() ?? loadConfig({ home: this.options.home }).then((r) => r.config));
      } catch (error) {
        this.configRead = true;
        this.log('warn', 'loom', `plugins not (re)loaded: the global config cannot be read: ${errorMessage(error, this.scrub)}`);
        return;
      }
      if (this.closed) return;
      this.config = config;
      this.secrets = secretsOf(this.options.env, config);
      this.apply(config.plugins ?? []);
      this.configRead = true;
    });
    return this.reloading;
  }

  /**
   * Makes the loaded plugins those of `entries`, in that order: entries already loaded (same
   * module, options, timeout and name) stay as they are; new ones and ones that failed before
   * start loading; loaded ones no longer named are unloaded. Returns at once.
   */
  apply(entries: readonly PluginEntry[]): void {
    if (this.closed) return;
    const wanted = dedupeNames(entries.map((e) => normalize(e)));
    const keep = new Map(this.records.filter((r) => r.state !== 'failed').map((r) => [r.key, r]));
    const next: PluginRecord[] = [];
    wanted.forEach((entry, order) => {
      const existing = keep.get(entry.key);
      if (existing) {
        keep.delete(entry.key);
        existing.order = order;
        next.push(existing);
      } else {
        next.push(this.load(entry, order));
      }
    });
    for (const gone of keep.values()) this.unload(gone, 'removed from the config (or its entry changed)');
    this.records = next;
  }

  /** Resolves once every plugin now listed has loaded or failed. */
  async settled(): Promise<void> {
    await this.reloading;
    await Promise.all(this.records.map((r) => r.done));
  }

  list(): PluginStatus[] {
    return this.records.map((r) => ({
      name: r.name,
      module: r.module,
      state: r.state,
      ...(r.error === undefined ? {} : { error: r.error }),
      tools: [...r.tools],
      models: [...r.models],
      hooks: r.hooks.map((h) => h.name),
    }));
  }

  /** How `loom.session.prompt` gets a session without a live owner running (`loom serve` runs it itself). */
  runSessionsWith(run: (sessionId: string) => Promise<unknown>): void {
    this.runSession = run;
  }

  /** Removes known secrets (API keys and tokens of the environment and config) from a text. */
  readonly scrub = (text: string): string => scrubSecrets(text, this.secrets);

  /**
   * Stops every plugin (hooks and subscriptions dropped, `onDispose` run) and stops following the
   * log. Nothing is recorded and the registry and catalog are left as they are: the process is
   * closing, and a `registry.tool.removed` per tool on every exit would only be noise.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.markClosed();
    this.offConfigWatch?.();
    for (const r of this.records) this.revoke(r, { closing: true });
    this.records = [];
    this.offHub?.();
    this.offHub = undefined;
  }

  // ---- loading ------------------------------------------------------------------------------

  private load(entry: Normalized, order: number): PluginRecord {
    const rec: PluginRecord = {
      ...entry,
      order,
      state: 'loading',
      revoked: false,
      tools: new Set(),
      models: new Set(),
      hooks: [],
      subscriptions: new Set(),
      disposers: [],
      done: Promise.resolve(),
    };
    rec.done = this.run(rec);
    return rec;
  }

  private async run(rec: PluginRecord): Promise<void> {
    const started = performance.now();
    const at: { stage: 'import' | 'init' } = { stage: 'import' };
    const load = async () => {
      const url = await this.moduleUrl(rec.module);
      const fn = pluginFunction(((await import(url)) ?? {}) as Record<string, unknown>, rec.module);
      if (rec.revoked) return;
      at.stage = 'init';
      await fn(this.instance(rec), Object.freeze({ ...rec.options }));
    };
    try {
      // One bound for the import and the plugin function together; a late finish is ignored (revoked).
      await withTimeout(load(), rec.timeoutMs, `loading ${rec.name}`);
      if (rec.revoked) return;
      rec.state = 'loaded';
      this.emit({
        type: 'plugin.loaded',
        data: {
          plugin: rec.name,
          module: rec.module,
          tools: [...rec.tools].slice(0, PLUGIN_LOADED_NAMES_MAX),
          models: [...rec.models].slice(0, PLUGIN_LOADED_NAMES_MAX),
          hooks: [...new Set(rec.hooks.map((h) => h.name))],
          ms: Math.round(performance.now() - started),
        },
      });
    } catch (error) {
      if (rec.revoked) return;
      this.revoke(rec);
      rec.state = 'failed';
      rec.error = errorMessage(error, this.scrub);
      this.log('error', rec.name, `failed to load (${at.stage}): ${rec.error}`);
      this.emit({ type: 'plugin.failed', data: { plugin: rec.name, module: rec.module, stage: at.stage, message: rec.error } });
    }
  }

  /**
   * The URL to import: a path relative to the config's directory, an absolute path, `~/…`, a
   * `file:` URL, or a package installed under `$LOOM_HOME/node_modules`. A module imported before
   * (then unloaded) gets a query so that its file is evaluated again.
   */
  private async moduleUrl(specifier: string): Promise<string> {
    const base = path.dirname(globalConfigPath(this.options.home));
    let url: string;
    if (specifier.startsWith('file:')) url = specifier;
    else if (specifier === '~' || specifier.startsWith('~/')) url = pathToFileURL(path.join(os.homedir(), specifier.slice(1))).href;
    else if (path.isAbsolute(specifier) || specifier.startsWith('./') || specifier.startsWith('../') || specifier === '.' || specifier === '..') {
      url = pathToFileURL(path.resolve(base, specifier)).href;
    } else {
      let resolved: string;
      try {
        resolved = createRequire(path.join(base, 'package.json')).resolve(specifier);
      } catch (error) {
        const why = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'not installed' : String((error as Error).message).split('\n')[0];
        throw new PluginError(`cannot resolve package "${specifier}" from ${base}: ${why} (install it under ${path.join(base, 'node_modules')}, or name the module by its path)`);
      }
      url = pathToFileURL(resolved).href;
    }
    const times = this.imported.get(url) ?? 0;
    this.imported.set(url, times + 1);
    return times === 0 ? url : `${url}${url.includes('?') ? '&' : '?'}loom-reload=${times}`;
  }

  // ---- unloading ----------------------------------------------------------------------------

  private unload(rec: PluginRecord, reason: string): void {
    const wasLoaded = rec.state === 'loaded';
    this.revoke(rec);
    if (wasLoaded) this.emit({ type: 'plugin.unloaded', data: { plugin: rec.name, module: rec.module, reason } });
  }

  /** Takes back everything the plugin registered and runs its dispose callbacks. Idempotent. */
  private revoke(rec: PluginRecord, options: { closing?: boolean } = {}): void {
    if (rec.revoked) return;
    rec.revoked = true;
    if (!options.closing) {
      for (const name of rec.tools) this.options.tools.unregister(name);
      const catalog = this.options.catalog?.();
      for (const id of rec.models) if (catalog?.get(id)?.source === 'plugin') catalog.remove(id);
    }
    for (const h of rec.hooks) h.off();
    for (const s of rec.subscriptions) this.unsubscribe(rec, s);
    for (const dispose of rec.disposers.splice(0)) {
      void withTimeout(Promise.resolve().then(dispose), PLUGIN_HOOK_TIMEOUT_MS, `a dispose callback of ${rec.name}`).catch((error) =>
        this.log('warn', rec.name, `dispose failed: ${errorMessage(error, this.scrub)}`),
      );
    }
  }

  // ---- the loom instance --------------------------------------------------------------------

  private instance(rec: PluginRecord): Loom {
    const live = (what: string) => {
      if (rec.revoked) throw new PluginError(`${what}: plugin ${rec.name} is unloaded`);
    };
    const line = (args: unknown[]) => args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 4, breakLength: Infinity }))).join(' ');
    const log = (level: keyof PluginLogger) => (...args: unknown[]) => this.log(level, rec.name, line(args));
    return Object.freeze({
      name: rec.name,
      config: Object.freeze(redactConfig(this.config)),
      z,
      log: Object.freeze({ debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }),
      session: Object.freeze({
        create: async (options: { location: string; model?: string; title?: string }) => {
          live('loom.session.create');
          return this.createSession(options);
        },
        prompt: async (sessionId: string, text: string, options: { mode?: 'steer' | 'queue' } = {}) => {
          live('loom.session.prompt');
          return this.prompt(rec, sessionId, text, options);
        },
      }),
      tool: Object.freeze({
        register: (tool: Tool) => {
          live('loom.tool.register');
          this.options.tools.register(tool);
          const name = tool.name;
          rec.tools.add(name);
          return () => {
            if (rec.tools.delete(name)) this.options.tools.unregister(name);
          };
        },
      }),
      model: Object.freeze({
        register: (info: PluginModelInfo) => {
          live('loom.model.register');
          const catalog = this.options.catalog?.();
          if (!catalog) throw new PluginError('loom.model.register: this loom process has no model catalog');
          const model = modelInfoOf(info);
          catalog.register(model);
          rec.models.add(model.id);
        },
      }),
      hook: <N extends HookName>(name: N, fn: HookFn<N>) => {
        live('loom.hook');
        if (rec.hooks.length >= PLUGIN_HOOKS_PER_PLUGIN_MAX) throw new PluginError(`loom.hook: a plugin may register at most ${PLUGIN_HOOKS_PER_PLUGIN_MAX} hooks`);
        const off = this.options.hooks.add({ name: rec.name, order: () => rec.order }, name, fn);
        const entry = { name, off };
        rec.hooks.push(entry);
        return () => {
          const i = rec.hooks.indexOf(entry);
          if (i !== -1) rec.hooks.splice(i, 1);
          off();
        };
      },
      on: (type: string, handler: (event: AnyEnvelope) => void | Promise<void>) => {
        live('loom.on');
        return this.subscribe(rec, type, handler);
      },
      onDispose: (fn: () => void | Promise<void>) => {
        live('loom.onDispose');
        if (typeof fn !== 'function') throw new PluginError('loom.onDispose: expected a function');
        rec.disposers.push(fn);
      },
    } satisfies Loom);
  }

  private async createSession(options: { location: string; model?: string; title?: string }): Promise<{ sessionId: string; location: string; model: string }> {
    const { store, env } = this.options;
    if (typeof options?.location !== 'string' || !path.isAbsolute(options.location)) {
      throw new PluginError(`loom.session.create: location must be an absolute path (got ${JSON.stringify(options?.location)})`);
    }
    if (options.title !== undefined && (typeof options.title !== 'string' || options.title.length > PLUGIN_SESSION_TITLE_CHARS_MAX)) {
      throw new PluginError(`loom.session.create: title must be a string of at most ${PLUGIN_SESSION_TITLE_CHARS_MAX} characters`);
    }
    let location: string;
    try {
      location = await realpath(options.location);
    } catch {
      throw new PluginError(`loom.session.create: location: no such directory ${JSON.stringify(options.location)}`);
    }
    if (!(await stat(location)).isDirectory()) throw new PluginError(`loom.session.create: location: not a directory ${JSON.stringify(options.location)}`);
    const config = await this.options.configFor(location);
    const model = options.model ?? config.model ?? env.LOOM_MODEL ?? DEFAULT_MODEL;
    createProviderResolver(config, env)(model); // refuse before creating anything when the provider is not configured
    const sessionId = store.ids.next('ses');
    store.append({ sessionId, type: 'session.created', data: { location, model, ...(options.title === undefined ? {} : { title: options.title }) } });
    return { sessionId, location, model };
  }

  private async prompt(rec: PluginRecord, sessionId: string, text: string, options: { mode?: 'steer' | 'queue' }) {
    const { store } = this.options;
    if (typeof text !== 'string' || text.trim() === '') throw new PluginError('loom.session.prompt: text must be a non-empty string');
    if (options.mode !== undefined && options.mode !== 'steer' && options.mode !== 'queue') {
      throw new PluginError(`loom.session.prompt: mode must be "steer" or "queue" (got ${JSON.stringify(options.mode)})`);
    }
    const session = store.queries.session(sessionId);
    if (!session) throw new SessionNotFoundError(sessionId);
    await this.options.configFor(session.location); // an owner in this process needs the directory's config
    const admission = await admitWithHooks(store, this.options.hooks, sessionId, {
      text,
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      source: `plugin:${rec.name}`,
    });
    if (admission.interrupted) await this.options.signal('cancel', sessionId);
    if (admission.admitted) {
      await this.options.signal('wake', sessionId);
      this.runSession?.(sessionId).catch((error) => this.log('warn', rec.name, `could not run ${sessionId}: ${errorMessage(error, this.scrub)}`));
    }
    return { inputId: admission.input.inputId, mode: admission.mode, admitted: admission.admitted };
  }

  // ---- events -------------------------------------------------------------------------------

  private subscribe(rec: PluginRecord, type: string, handler: (event: AnyEnvelope) => void | Promise<void>): () => void {
    if (typeof handler !== 'function') throw new PluginError('loom.on: expected a handler function');
    if (rec.subscriptions.size >= PLUGIN_LISTENERS_PER_PLUGIN_MAX) throw new PluginError(`loom.on: a plugin may hold at most ${PLUGIN_LISTENERS_PER_PLUGIN_MAX} subscriptions`);
    const sub: Subscription = { matches: matcher(type), handler, queue: [], dropped: 0, running: false, closed: false, failed: false };
    rec.subscriptions.add(sub);
    this.ensureHub();
    return () => this.unsubscribe(rec, sub);
  }

  private unsubscribe(rec: PluginRecord, sub: Subscription): void {
    sub.closed = true;
    sub.queue.length = 0;
    rec.subscriptions.delete(sub);
    if (!this.records.some((r) => r.subscriptions.size > 0)) {
      this.offHub?.();
      this.offHub = undefined;
    }
  }

  private ensureHub(): void {
    if (this.offHub || this.closed) return;
    this.hub ??= new EventHub(this.options.store);
    this.offHub = this.hub.subscribe((page) => this.deliver(page));
  }

  private deliver(page: readonly AnyEnvelope[]): void {
    const max = this.options.eventQueueMax ?? PLUGIN_EVENT_QUEUE_MAX;
    const subs = this.records.flatMap((r) => [...r.subscriptions].map((s) => [r, s] as const));
    for (const event of page) {
      let frozen: AnyEnvelope | undefined;
      for (const [, s] of subs) {
        if (s.closed || !s.matches(event.type)) continue;
        frozen ??= deepFreeze(event);
        s.queue.push(frozen);
        if (s.queue.length > max) {
          s.queue.shift(); // sliding: the oldest waiting event goes
          s.dropped++;
        }
      }
    }
    for (const [r, s] of subs) if (!s.running && s.queue.length > 0) void this.drain(r, s);
  }

  private async drain(rec: PluginRecord, sub: Subscription): Promise<void> {
    sub.running = true;
    const timeoutMs = this.options.handlerTimeoutMs ?? PLUGIN_HANDLER_TIMEOUT_MS;
    try {
      for (let event = sub.queue.shift(); event !== undefined && !sub.closed; event = sub.queue.shift()) {
        if (sub.dropped > 0) {
          this.log('warn', rec.name, `a loom.on handler fell behind: ${sub.dropped} event(s) were dropped`);
          sub.dropped = 0;
        }
        try {
          await withTimeout(Promise.resolve().then(() => sub.handler(event)), timeoutMs, 'a loom.on handler');
        } catch (error) {
          const message = errorMessage(error, this.scrub);
          this.log('error', rec.name, `a loom.on handler failed on ${event.type}: ${message}`);
          if (!sub.failed) {
            // Only the first failure of a subscription becomes an event: a handler failing on every
            // event (or on plugin.failed itself) must not flood the log.
            sub.failed = true;
            this.emit({ type: 'plugin.failed', data: { plugin: rec.name, module: rec.module, stage: 'listener', message } });
          }
        }
      }
    } finally {
      sub.running = false;
    }
  }

  /** Follows the system log for `config.updated` events that touch `plugins`. */
  private watchConfig(): void {
    const { store } = this.options;
    let cursor = store.systemSeq();
    let scheduled = false;
    const look = () => {
      scheduled = false;
      if (this.closed) return;
      let touched = false;
      try {
        for (let page = store.readSystem({ after: cursor }); page.length > 0; page = store.readSystem({ after: cursor })) {
          for (const e of page) {
            cursor = e.seq;
            if (e.type === 'config.updated' && e.data.keys.some((k) => k === 'plugins' || k.startsWith('plugins.'))) touched = true;
          }
        }
      } catch {
        return; // the store is closing
      }
      if (touched) void this.reload();
    };
    this.offConfigWatch = store.changes.subscribe(() => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(look);
    });
  }

  // ---- output -------------------------------------------------------------------------------

  private emit(event: SystemEventRequest): void {
    if (this.closed) return;
    if (this.options.emit) return this.options.emit(event);
    try {
      this.options.store.append({ ...event, sessionId: null } as never);
    } catch {
      // the store closed under the plugin: nothing to report to
    }
  }

  private log(level: keyof PluginLogger, plugin: string, text: string): void {
    const bounded = text.length > PLUGIN_ERROR_MESSAGE_CHARS_MAX ? `${text.slice(0, PLUGIN_ERROR_MESSAGE_CHARS_MAX - 1)}…` : text;
    if (this.options.log) return this.options.log(level, plugin, bounded);
    if ((level === 'debug' || level === 'info') && !this.options.env.LOOM_DEBUG) return;
    process.stderr.write(`loom: plugin ${plugin}: ${bounded}\n`);
  }
}

// ---- helpers --------------------------------------------------------------------------------------

function normalize(entry: PluginEntry): Normalized {
  const e = typeof entry === 'string' ? { module: entry } : entry;
  const base = path.basename(e.module.replace(/[?#].*$/, '').replace(/\/+$/, ''));
  const name = e.name ?? (base.replace(/\.(m?js|cjs)$/, '') || e.module);
  const options = e.options ?? {};
  const timeoutMs = e.timeoutMs ?? PLUGIN_LOAD_TIMEOUT_DEFAULT_MS;
  const required = e.required ?? false;
  return { key: JSON.stringify([e.module, options, timeoutMs, e.name ?? null, required]), name, module: e.module, options, timeoutMs, required };
}

/** Two entries with the same name get `-2`, `-3`… so events and hooks can tell them apart. */
function dedupeNames(entries: Normalized[]): Normalized[] {
  const seen = new Map<string, number>();
  return entries.map((e) => {
    const n = (seen.get(e.name) ?? 0) + 1;
    seen.set(e.name, n);
    return n === 1 ? e : { ...e, name: `${e.name}-${n}` };
  });
}

function pluginFunction(mod: Record<string, unknown>, module: string): LoomPlugin {
  const candidate = typeof mod.default === 'function' ? mod.default : mod.plugin;
  if (typeof candidate !== 'function') throw new PluginError(`${module} exports no plugin function (a default export, or an export named "plugin")`);
  return candidate as LoomPlugin;
}

function matcher(type: string): (t: string) => boolean {
  if (typeof type !== 'string' || type === '') throw new PluginError('loom.on: expected an event type, "prefix.*" or "*"');
  if (type === '*') return () => true;
  if (type.endsWith('.*')) {
    const prefix = type.slice(0, -1);
    if (!Object.keys(eventDefinitions).some((t) => t.startsWith(prefix))) throw new PluginError(`loom.on: no event type matches "${type}"`);
    return (t) => t.startsWith(prefix);
  }
  if (!(type in eventDefinitions)) throw new PluginError(`loom.on: unknown event type "${type}"`);
  return (t) => t === type;
}

const modelInfoSchema = z.strictObject({
  id: z.string().regex(/^[^/\s]+\/\S+$/, 'must be "provider/model"'),
  name: z.string().min(1).optional(),
  capabilities: z.strictObject({ toolCalling: z.boolean().optional(), reasoning: z.boolean().optional() }).optional(),
  limits: z.strictObject({ context: z.number().int().positive().optional(), output: z.number().int().positive().optional() }).optional(),
  cost: z
    .strictObject({
      input: z.number().nonnegative(),
      output: z.number().nonnegative(),
      cacheRead: z.number().nonnegative().optional(),
      cacheWrite: z.number().nonnegative().optional(),
    })
    .optional(),
});

function modelInfoOf(info: PluginModelInfo): ModelInfo {
  const parsed = modelInfoSchema.safeParse(info);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]].join('.') : issue.path.join('.');
    throw new PluginError(`loom.model.register: "${field || '(info)'}": ${issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message}`);
  }
  const m = parsed.data;
  return {
    id: m.id,
    provider: m.id.slice(0, m.id.indexOf('/')),
    ...(m.name === undefined ? {} : { name: m.name }),
    capabilities: { toolCalling: m.capabilities?.toolCalling ?? true, reasoning: m.capabilities?.reasoning ?? false },
    limits: { ...m.limits },
    ...(m.cost === undefined ? {} : { cost: { ...m.cost } }),
    source: 'plugin',
  };
}

const SECRET_KEY = /(key|token|secret|password|passwd|credential|authorization|cookie)/i;

/** The global config a plugin may read: secret-looking values redacted, other plugins' entries left out. */
function redactConfig(config: ResolvedConfig | undefined): Record<string, unknown> {
  if (!config) return {};
  const { plugins: _plugins, ...rest } = config;
  return redact(rest) as Record<string, unknown>;
}

function redact(value: unknown, key = ''): unknown {
  if (SECRET_KEY.test(key) && value !== null && typeof value !== 'object') return '[redacted]';
  if (Array.isArray(value)) return Object.freeze(value.map((v) => redact(v)));
  if (value !== null && typeof value === 'object') return Object.freeze(Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)])));
  return value;
}

/**
 * Secrets to keep out of events and logs: secret-looking variables of the runtime's environment
 * and of the process's own (which plugins can read), and the config's provider keys.
 */
function secretsOf(env: NodeJS.ProcessEnv, config: ResolvedConfig | undefined): string[] {
  const found = new Set<string>();
  for (const source of [env, process.env]) {
    for (const [name, value] of Object.entries(source)) if (value !== undefined && value.length >= 8 && SECRET_KEY.test(name)) found.add(value);
  }
  for (const provider of Object.values(config?.providers ?? {})) {
    const key = (provider as { apiKey?: unknown } | undefined)?.apiKey;
    if (typeof key === 'string' && key.length >= 4) found.add(key);
  }
  // Longest first, so a secret containing another is replaced whole.
  return [...found].sort((a, b) => b.length - a.length);
}

/** Replaces every known secret, and anything shaped like a bearer token or an API key, with `[redacted]`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
  return out.replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, '$1 [redacted]').replace(/\bsk-[A-Za-z0-9_-]{16,}/g, '[redacted]');
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
