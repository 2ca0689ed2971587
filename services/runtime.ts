import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Coordinator } from '../actors/coordinator.js';
import { startNats, type NatsServices } from '../actors/nats.js';
import type { PermissionAsker } from '../actors/permission.js';
import { createProviderResolver } from '../llm/resolve.js';
import { Store, type AppendRequest } from '../store/index.js';
import type { EventData, EventType, eventDefinitions } from '../store/schemas.js';
import { createDefaultRegistry } from '../tools/builtin/index.js';
import { FileCheckpoints } from '../tools/checkpoints/service.js';
import type { ToolRegistry } from '../tools/registry.js';
import { testToolsFromEnv } from '../tools/testing/probe.js';
import { loadConfig, type ResolvedConfig } from './config.js';

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
  /** Set when a NATS URL was given: the transport, outbox and owner mirror. */
  nats?: NatsServices;
  /** File checkpoints (tools/checkpoints): every session's tools keep prior file content through it. */
  checkpoints: FileCheckpoints;
  /**
   * The config in force for a session directory (global file merged with the directory's own),
   * loaded once per directory. A file that fails to load rejects (naming file and key); the next
   * call tries again, so a fixed file is picked up.
   */
  configFor(location: string): Promise<ResolvedConfig>;
  /** The config of a directory already loaded by `configFor`, if any. */
  loadedConfig(location: string): ResolvedConfig | undefined;
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
  /** Builds the system prompt of a session's requests. */
  systemPrompt?: (location: string, now: Date) => string;
}

export function openLoomRuntime(options: LoomRuntimeOptions): LoomRuntime {
  const { home } = options;
  const env = options.env ?? process.env;
  mkdirSync(home, { recursive: true });
  const store = Store.open(join(home, 'loom.db'));

  const configs = new Map<string, Promise<ResolvedConfig>>();
  const loaded = new Map<string, ResolvedConfig>();
  const configFor = (location: string): Promise<ResolvedConfig> => {
    let c = configs.get(location);
    if (!c) {
      c = loadConfig({ home, location }).then((r) => {
        loaded.set(location, r.config);
        return r.config;
      });
      c.catch(() => configs.delete(location)); // a broken config file may be fixed; try again next time
      configs.set(location, c);
    }
    return c;
  };

  const tools = createDefaultRegistry();
  const checkpoints = new FileCheckpoints(home);
  for (const tool of testToolsFromEnv(env)) tools.register(tool);

  // Tools added or removed while the process runs (plugins, MCP servers) are system events, so
  // subscribers and the inspector see the registry change; sessions read the registry each turn.
  tools.subscribe((change) => {
    emitSystem(store, change.kind === 'added' ? { type: 'registry.tool.added', data: { tool: change.name } } : { type: 'registry.tool.removed', data: { tool: change.name } });
  });

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
      const session = store.queries.session(sessionId)!;
      const config = loaded.get(session.location);
      if (!config) throw new Error(`config for ${session.location} was not loaded before owning ${sessionId}`);
      return {
        config,
        home,
        tools,
        resolveProvider: createProviderResolver(config, env),
        askPermission: options.asker,
        systemPrompt: options.systemPrompt?.(session.location, new Date(store.clock.now())),
        toolServices: { checkpoints },
      };
    },
  });

  return {
    home,
    env,
    store,
    coordinator,
    tools,
    nats,
    checkpoints,
    configFor,
    loadedConfig: (location) => loaded.get(location),
    async signal(kind, sessionId) {
      try {
        await (kind === 'wake' ? coordinator.transport.wake(sessionId) : coordinator.transport.cancel(sessionId));
      } catch (error) {
        debugNats(error); // the owner notices by polling instead
      }
    },
    close() {
      coordinator.shutdown();
      if (!nats) return store.close();
      // The process stays alive until the outbox has published what this process committed.
      void nats.close().finally(() => store.close());
    },
  };
}

/** The system prompt sessions get unless an agent profile says otherwise. */
export function defaultSystemPrompt(location: string, now: Date): string {
  return [
    'You are Loom, a coding agent working in a user\'s project.',
    `Working directory: ${location}. File tools take paths relative to it and cannot leave it.`,
    `Platform: ${process.platform}. Date: ${now.toISOString().slice(0, 10)}.`,
    'Use the tools to look at the project before answering questions about it. Be concise.',
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

/** A system event to record (DESIGN §4): `config.updated`, `provider.loaded`, `model.*`, `registry.tool.*`. */
export type SystemEventRequest = {
  [T in EventType]: (typeof eventDefinitions)[T]['kind'] extends 'system' ? { type: T; data: EventData<T> } : never;
}[EventType];

export function debugNats(error: unknown): void {
  if (process.env.LOOM_DEBUG) process.stderr.write(`loom: nats: ${(error as Error)?.message ?? String(error)}\n`);
}
