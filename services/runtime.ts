import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Coordinator } from '../actors/coordinator.js';
import { McpSupervisor } from '../actors/mcp.js';
import { startNats, type NatsServices } from '../actors/nats.js';
import type { PermissionAsker } from '../actors/permission.js';
import type { ModelCatalog } from '../llm/modelInfo.js';
import type { ProviderRegistry } from '../llm/providers.js';
import type { ModelInfo } from '../llm/modelInfo.js';
import { Store, type AppendRequest } from '../store/index.js';
import type { EventData, EventType, eventDefinitions } from '../store/schemas.js';
import { createDefaultRegistry } from '../tools/builtin/index.js';
import { FileCheckpoints } from '../tools/checkpoints/service.js';
import type { ToolRegistry } from '../tools/registry.js';
import { testToolsFromEnv } from '../tools/testing/probe.js';
import { createAuthService, type AuthService } from './auth.js';
import { CONFIG_UPDATED_KEYS_MAX } from '../core/limits.js';
import { loadConfig, type ConfigNote, type ResolvedConfig } from './config.js';
import { createConfigService, type ConfigChange, type ConfigService } from './configService.js';
import { HookRegistry, recordHookFailure, type Hooks } from './hooks.js';
import { PluginHost } from './plugins.js';
import type { WatchMode } from './watch.js';
import { openModelService, type ModelService } from './models.js';
import { BUILTIN_AGENTS, buildSystemPrompt } from './agents.js';

/**
 * What every long-lived loom process (a CLI command, `loom serve`, `loom worker`) runs on: the
 * store in `$LOOM_HOME`, config per session directory, the tool registry, NATS when configured, and
 * one Coordinator whose sessions get their dependencies from here. cli/runtime.ts and
 * server/runtime.ts add their surface (a terminal asker; the HTTP runner and hub) on top.
 *
 * Services that extend Loom (model catalog, auth, plugins, config watching) hang off this object,
 * so each surface gets them by building a runtime, never by wiring them itself.
 */
export interface LoomRuntime {
  home: string;
  env: NodeJS.ProcessEnv;
  store: Store;
  coordinator: Coordinator;
  tools: ToolRegistry;
  /**
   * Credentials (services/auth.ts): environment over `$LOOM_HOME/auth.json`, watched, expiring
   * tokens refreshed. Providers ask it before every request; plugins register refreshers on it.
   * Pass it as the resolver's `credentials` wherever a provider is resolved.
   */
  auth: AuthService;
  /**
   * The MCP servers of the global config (`mcp.servers`), supervised; their tools join `tools`
   * while they are connected. Started by the first session this process owns (or at once with
   * `mcp: 'eager'`); `await mcp.ready(ms)` before a first turn that should see their tools.
   */
  mcp: McpSupervisor;
  /**
   * The model catalog (llm/catalog.ts): built-in, config, plugin and registered models. Its
   * changes are recorded as `model.*` system events; registrations made by other processes
   * appear without a restart.
   */
  catalog: ModelCatalog;
  /** The provider plugins and their load status; resolves `provider/model` for sessions. */
  providers: ProviderRegistry;
  /** Catalog, providers and registrations together (`loom models`, `/models`). */
  models: ModelService;
  /** Set when a NATS URL was given: the transport, outbox and owner mirror. */
  nats?: NatsServices;
  /** File checkpoints (tools/checkpoints): every session's tools keep prior file content through it. */
  checkpoints: FileCheckpoints;
  /**
   * The config service: configs per directory, watched and reloaded while the process runs.
   * `subscribe` to reconfigure on change (after the runtime has recorded the change and
   * reconfigured the directory's live sessions).
   */
  config: ConfigService;
  /**
   * The plugins of the global config, loading in the background from the moment the runtime is
   * opened (nothing waits for them); reloaded on a `config.updated` event naming `plugins`.
   */
  plugins: PluginHost;
  /** The plugins' hooks; sessions and every admission run them (services/hooks.ts). */
  hooks: Hooks;
  /**
   * The config in force for a session directory (global file merged with the directory's own),
   * loaded on first use and kept current. A file that fails to load the first time rejects
   * (naming file, line and key); the next call tries again, so a fixed file is picked up.
   */
  configFor(location: string): Promise<ResolvedConfig>;
  /** The config of a directory already loaded by `configFor`, if any (the newest applied). */
  loadedConfig(location: string): ResolvedConfig | undefined;
  /**
   * The model catalog's entry for a `provider/model` reference (its price prices turns and checks
   * cost budgets at admission); undefined when the catalog does not know the model.
   */
  modelInfo(ref: string): ModelInfo | undefined;
  /**
   * Tells the session's owner (in any process) to look now: a `wake` after an admission or reply,
   * a `cancel` after a cancel request. Advisory (the owner also polls); never throws.
   */
  signal(kind: 'wake' | 'cancel', sessionId: string): Promise<void>;
  /** Shuts the coordinator down and closes the store (with NATS: after the outbox has published what was committed, bounded). */
  close(): void;
}

export interface LoomRuntimeOptions {
  home: string;
  env?: NodeJS.ProcessEnv;
  /** NATS server URL(s); unset = embedded (in-process transport). */
  natsUrl?: string;
  /** The client name this process shows in NATS monitoring. */
  processName: string;
  /** Answers permission asks in this process; unset = asks stay durable until a reply is recorded. */
  asker?: PermissionAsker;
  /** The coordinator's lease TTL (default OWNER_LEASE_TTL_MS). */
  leaseTtlMs?: number;
  /** Told when a live session stops on an operating failure (a lost lease, a broken store). */
  onSessionFailure?: (sessionId: string, error: unknown) => void;
  /**
   * Told once per file when a config file older than the current version is read (what was
   * converted in memory). The CLI prints it on stderr.
   */
  onConfigNotes?: (note: ConfigNote) => void;
  /** How config files are watched; default `$LOOM_CONFIG_WATCH` (`watch`, `poll` or `off`), else `watch`. */
  configWatch?: WatchMode | 'off';
  /** Load the global config's plugins (default true). */
  plugins?: boolean;
  /**
   * When the configured MCP servers connect: `lazy` (default) when this process first owns a
   * session (a command that runs no session starts no server); `eager` at once (serve, worker, acp).
   */
  mcp?: 'lazy' | 'eager';
  /** How long one provider may take to load (default PROVIDER_LOAD_TIMEOUT_MS). */
  providerLoadTimeoutMs?: number;
  /** Where model entries (prices, limits) come from; without one no model has a known price. */
  modelInfo?: (ref: string) => ModelInfo | undefined;
}

export function openLoomRuntime(options: LoomRuntimeOptions): LoomRuntime {
  const { home } = options;
  const env = options.env ?? process.env;
  mkdirSync(home, { recursive: true });
  const store = Store.open(join(home, 'loom.db'));

  const config = createConfigService({
    home,
    watch: options.configWatch ?? configWatchFromEnv(env),
    onNotes: options.onConfigNotes,
    onWatchFallback: (file, error) => debug(`config: watching ${file} failed (${error.message}); polling it instead`),
  });

  // Credentials: a change to the file (by `loom auth`, a refresh, or a hand edit) is read by the next
  // request; the ones this process makes or notices are system events (provider and change only).
  const auth = createAuthService({
    home,
    env,
    onChange: (change) => emitSystem(store, { type: 'auth.updated', data: change }),
    onError: (error) => process.stderr.write(`loom: ${error.message}\n`),
  });
  auth.watch();


  const tools = createDefaultRegistry();
  const checkpoints = new FileCheckpoints(home);
  for (const tool of testToolsFromEnv(env)) tools.register(tool);

  // Tools added or removed while the process runs (plugins, MCP servers) are system events, so
  // subscribers and the inspector see the registry change; sessions read the registry each turn.
  tools.subscribe((change) => {
    const source = change.source === undefined ? {} : { source: change.source };
    emitSystem(
      store,
      change.kind === 'added'
        ? { type: 'registry.tool.added', data: { tool: change.name, ...source } }
        : { type: 'registry.tool.removed', data: { tool: change.name, ...source, ...(change.reason === undefined ? {} : { reason: change.reason }) } },
    );
  });

  // Plugins load in the background: their tools join `tools` (recorded as registry.tool.added),
  // their hooks join `hooks`, and a hook's failure is recorded in the log of the session it ran for.
  const hooks: HookRegistry = new HookRegistry({
    report: (failure) => recordHookFailure(store, failure),
    scrub: (text: string): string => plugins.scrub(text),
    gate: (): Promise<void> | undefined => plugins.gate(),
  });
  const plugins: PluginHost = new PluginHost({
    home,
    env,
    store,
    tools,
    hooks,
    // The model catalog (`runtime.catalog`): plugins register models into it.
    catalog: () => runtime.catalog,
    configFor: (location) => config.configFor(location),
    signal: (kind, sessionId) => runtime.signal(kind, sessionId),
    emit: (event) => emitSystem(store, event),
  });
  // MCP servers come from the global config only (a project config may not name them).
  const mcp = new McpSupervisor({
    registry: tools,
    env,
    loadServers: async () => (await config.configFor()).mcp.servers,
    log: env.LOOM_DEBUG ? (line) => process.stderr.write(`loom: ${line}\n`) : undefined,
  });
  if (options.mcp === 'eager') void mcp.start();
  // Providers load in the background (never delaying startup); the catalog fills as they do.
  const models = openModelService({ store, home, env, credentials: auth, loadTimeoutMs: options.providerLoadTimeoutMs, loadGlobalConfig: async () => (await loadConfig({ home })).config });
  // The catalog's entry for a model (its price for budgets, its window for compaction); a test may substitute its own.
  const modelInfo = (ref: string): ModelInfo | undefined => (options.modelInfo ? options.modelInfo(ref) : models.catalog.get(ref));

  const nats = options.natsUrl ? startNats({ store, url: options.natsUrl, name: options.processName, onError: debugNats }) : undefined;
  const coordinator = new Coordinator({
    store,
    transport: nats?.transport,
    leaseTtlMs: options.leaseTtlMs,
    onSessionFailure: options.onSessionFailure,
    // The KV mirror of owners (visibility across processes and machines); SQLite stays the truth.
    onLease: nats
      ? (kind, lease) => void (kind === 'released' ? nats.owners.delete(lease.sessionId, lease) : nats.owners.put(lease.sessionId, lease)).catch(debugNats)
      : undefined,
    deps: (sessionId) => {
      void mcp.start(); // a session may call MCP tools: connect the servers (in the background)
      const session = store.queries.session(sessionId)!;
      const current = config.current(session.location);
      if (!current) throw new Error(`config for ${session.location} was not loaded before owning ${sessionId}`);
      return {
        config: current,
        home,
        tools,
        hooks,
        resolveProvider: models.resolverFor(current),
        askPermission: options.asker,
        modelInfo,
        // The activity's agent profile, the environment (date from the store's clock, passed in by
        // the session) and the instruction files from the session's directory up to its repository root.
        systemPrompt: (request) => buildSystemPrompt({ ...request, home, userHome: env.HOME }),
        toolServices: { checkpoints },
      };
    },
  });

  // Config changes: live sessions of the directory take the new config first (their next turn
  // and tool call use it), then the change is recorded for subscribers and the inspector.
  config.subscribe((change) => {
    if (change.type === 'updated' && change.location !== undefined) {
      for (const actor of coordinator.liveActors()) {
        if (actor.location !== change.location) continue;
        try {
          actor.reconfigure({ config: change.config, resolveProvider: models.resolverFor(change.config) });
        } catch (error) {
          debug(`config: session ${actor.sessionId} could not take the new config: ${(error as Error)?.message ?? String(error)}`);
        }
      }
    }
    // MCP servers come from the global file: a change to `mcp` starts, stops or restarts them live.
    if (change.type === 'updated' && change.location === undefined && mcp.running && change.keys.some((k) => k === 'mcp' || k.startsWith('mcp.'))) {
      mcp.apply(change.config.mcp.servers);
    }
    recordConfigChange(store, change);
  });

  const runtime: LoomRuntime = {
    home,
    env,
    store,
    coordinator,
    tools,
    auth,
    mcp,
    catalog: models.catalog,
    providers: models.providers,
    models,
    nats,
    config,
    plugins,
    hooks,
    configFor: (location) => config.configFor(location),
    loadedConfig: (location) => config.current(location),
    modelInfo,
    checkpoints,
    async signal(kind, sessionId) {
      try {
        await (kind === 'wake' ? coordinator.transport.wake(sessionId) : coordinator.transport.cancel(sessionId));
      } catch (error) {
        debugNats(error); // the owner notices by polling instead
      }
    },
    close() {
      plugins.close();
      auth.close();
      config.close();
      models.close();
      coordinator.shutdown();
      // Their tools leave the registry now (recorded while the store is open); children exit in the background.
      void mcp.close();
      if (!nats) return store.close();
      // The process stays alive until the outbox has published what this process committed.
      void nats.close().finally(() => store.close());
    },
  };
  if (options.plugins !== false) plugins.start();
  return runtime;
}

/**
 * The `build` profile's prompt with a one-line environment and no instruction files, for callers
 * that want a fixed prompt (benchmarks). Sessions of a loom process get `buildSystemPrompt`
 * (services/agents.ts) per activity instead.
 */
export function defaultSystemPrompt(location: string, now: Date): string {
  return [
    BUILTIN_AGENTS.build!.prompt,
    `Working directory: ${location}. Platform: ${process.platform}. Date: ${now.toISOString().slice(0, 10)}.`,
  ].join('\n');
}

/** A system event that cannot be recorded (the store closed under it) is not worth failing the change it reports. */
export function emitSystem(store: Store, event: SystemEventRequest): void {
  try {
    store.append({ ...event, sessionId: null } as AppendRequest);
  } catch (error) {
    if (process.env.LOOM_DEBUG) process.stderr.write(`loom: system event ${event.type} not recorded: ${(error as Error)?.message ?? String(error)}\n`);
  }
}

/** A system event to record (DESIGN §4): `config.updated`, `provider.loaded`, `model.*`, `registry.tool.*`, `auth.updated`. */
export type SystemEventRequest = {
  [T in EventType]: (typeof eventDefinitions)[T]['kind'] extends 'system' ? { type: T; data: EventData<T> } : never;
}[EventType];

/** `LOOM_CONFIG_WATCH`: `poll` where fs.watch cannot be trusted (network filesystems), `off` to never reload. */
export function configWatchFromEnv(env: NodeJS.ProcessEnv): WatchMode | 'off' {
  const mode = env.LOOM_CONFIG_WATCH;
  return mode === 'poll' || mode === 'off' ? mode : 'watch';
}

/**
 * Records a config change as a system event: `config.updated` with the changed keys (never
 * values), or `config.rejected` with the error (file, line, key); a rejection also goes to stderr
 * under LOOM_DEBUG.
 */
export function recordConfigChange(store: Store, change: ConfigChange): void {
  if (change.type === 'rejected') {
    const { error } = change;
    debug(`config: ${error.message} (the last good config stays in force)`);
    emitSystem(store, {
      type: 'config.rejected',
      data: {
        file: change.file,
        message: error.message,
        ...(error.field === undefined ? {} : { key: error.field }),
        ...(error.line === undefined ? {} : { line: error.line, column: error.column ?? 1 }),
      },
    });
    return;
  }
  const keys = change.keys.slice(0, CONFIG_UPDATED_KEYS_MAX);
  const more = change.keys.length - keys.length;
  emitSystem(store, {
    type: 'config.updated',
    data: {
      source: change.source,
      keys,
      ...(change.location === undefined ? {} : { location: change.location }),
      files: change.sources,
      ...(more > 0 ? { more } : {}),
    },
  });
}

function debug(message: string): void {
  if (process.env.LOOM_DEBUG) process.stderr.write(`loom: ${message}\n`);
}

export function debugNats(error: unknown): void {
  if (process.env.LOOM_DEBUG) process.stderr.write(`loom: nats: ${(error as Error)?.message ?? String(error)}\n`);
}
