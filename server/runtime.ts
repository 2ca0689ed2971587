import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator } from '../actors/coordinator.js';
import { discoverUnsettled, type DiscoveryReport } from '../actors/discovery.js';
import { natsUrlFromEnv, startNats } from '../actors/nats.js';
import { defaultSystemPrompt } from '../cli/runtime.js';
import { createProviderResolver } from '../llm/resolve.js';
import { loadConfig, type ResolvedConfig } from '../services/config.js';
import { Store } from '../store/index.js';
import { createDefaultRegistry } from '../tools/builtin/index.js';
import { testToolsFromEnv } from '../tools/testing/probe.js';
import { defaultSseLimits, type ServerContext } from './app.js';
import { EventHub } from './hub.js';
import { SessionRunner } from './runner.js';

/** The version in package.json, found above this module (its depth differs in the source tree, dist/ and the bundle). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'loom' && pkg.version) return pkg.version;
    } catch {
      // not here
    }
    dir = dirname(dir);
  }
  return '0.0.0';
}
const VERSION = packageVersion();

export interface ServerRuntimeOptions {
  home: string;
  token: string;
  /** Overrides for tests (shrunk SSE bounds). */
  sse?: Partial<ServerContext['sse']>;
  env?: NodeJS.ProcessEnv;
  /** Told when a session this server runs fails. */
  onSessionError?(sessionId: string, error: unknown): void;
}

export interface ServerRuntime extends ServerContext {
  /** Startup discovery: restores every unsettled session no live owner holds and runs it (DESIGN §5). */
  discover(signal?: AbortSignal): Promise<DiscoveryReport>;
  /** Releases every session and closes the store (after `runner.drain` for a graceful stop). */
  close(): void;
}

/**
 * Everything `loom serve` runs on: the store in $LOOM_HOME, per-location config, the tool registry,
 * one Coordinator whose sessions keep permission asks DURABLE (no asker: an ask waits for a reply
 * recorded over HTTP or by `loom permit`), the runner that owns sessions with work and the event
 * hub. Jobs and subagents come from the coordinator like in every process.
 */
export function openServerRuntime(options: ServerRuntimeOptions): ServerRuntime {
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
  for (const tool of testToolsFromEnv(env)) tools.register(tool);
  // With LOOM_NATS_URL the server's sessions get wakes and cancels over NATS, publish through the
  // outbox and mirror their owners into the KV bucket, like every other loom process.
  const natsUrl = natsUrlFromEnv(env);
  const nats = natsUrl ? startNats({ store, url: natsUrl, name: `loom serve ${process.pid}`, onError: debugNats }) : undefined;
  const coordinator = new Coordinator({
    store,
    transport: nats?.transport,
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
        // No asker: asks stay durable until a reply is recorded (HTTP, inspector, loom permit).
        askPermission: undefined,
        systemPrompt: defaultSystemPrompt(session.location, new Date(store.clock.now())),
      };
    },
    onSessionFailure: (sessionId, error) => options.onSessionError?.(sessionId, error),
  });
  const runner = new SessionRunner({ store, coordinator, configFor, onError: options.onSessionError });
  const hub = new EventHub(store);
  return {
    home,
    store,
    coordinator,
    runner,
    hub,
    configFor,
    token: options.token,
    allowedHosts: new Set(),
    version: VERSION,
    env,
    sse: { ...defaultSseLimits(), ...options.sse },
    async discover(signal) {
      const report = await discoverUnsettled(coordinator, {
        signal,
        prepare: async (sessionId) => void (await configFor(store.queries.session(sessionId)!.location)),
      });
      for (const id of report.owned) runner.adopt(id);
      return report;
    },
    close() {
      coordinator.shutdown();
      if (!nats) return store.close();
      // The process stays alive until the outbox has published what was committed.
      void nats.close().finally(() => store.close());
    },
  };
}

function debugNats(error: unknown): void {
  if (process.env.LOOM_DEBUG) process.stderr.write(`loom: nats: ${(error as Error)?.message ?? String(error)}\n`);
}
