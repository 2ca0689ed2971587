import { discoverUnsettled, type DiscoveryReport } from '../actors/discovery.js';
import { natsUrlFromEnv } from '../actors/nats.js';
import { MCP_STARTUP_WAIT_MS } from '../core/limits.js';
import { loomVersion } from '../core/version.js';
import type { PluginHost } from '../services/plugins.js';
import { openLoomRuntime, type LoomRuntimeOptions } from '../services/runtime.js';
import { defaultSseLimits, type ServerContext } from './app.js';
import { EventHub } from './hub.js';
import { SessionRunner } from './runner.js';

const VERSION = loomVersion();

export interface ServerRuntimeOptions {
  home: string;
  token: string;
  /** Overrides for tests (shrunk SSE bounds). */
  sse?: Partial<ServerContext['sse']>;
  env?: NodeJS.ProcessEnv;
  /** Told when a session this server runs fails. */
  onSessionError?(sessionId: string, error: unknown): void;
  /** Told once per config file older than the current version (see LoomRuntimeOptions.onConfigNotes). */
  onConfigNotes?: LoomRuntimeOptions['onConfigNotes'];
  /** Where model entries (prices) come from (see LoomRuntimeOptions.modelInfo). */
  modelInfo?: LoomRuntimeOptions['modelInfo'];
}

export interface ServerRuntime extends ServerContext {
  /** The plugins of the global config (loading in the background). */
  plugins: PluginHost;
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
  const env = options.env ?? process.env;
  // No asker: asks stay durable until a reply is recorded (HTTP, inspector, loom permit). With
  // LOOM_NATS_URL the server's sessions get wakes and cancels over NATS, publish through the
  // outbox and mirror their owners into the KV bucket, like every other loom process.
  const rt = openLoomRuntime({
    home: options.home,
    env,
    natsUrl: natsUrlFromEnv(env),
    processName: `loom serve ${process.pid}`,
    mcp: 'eager', // MCP servers connect at startup: their tools are there for the first session
    onSessionFailure: (sessionId, error) => options.onSessionError?.(sessionId, error),
    onConfigNotes: options.onConfigNotes,
    modelInfo: options.modelInfo,
  });
  const { store, coordinator, configFor } = rt;
  const runner = new SessionRunner({ store, coordinator, configFor, onError: options.onSessionError });
  // A plugin's loom.session.prompt into a session no live process owns: the server runs it, like an HTTP input.
  rt.plugins.runSessionsWith((sessionId) => runner.kick(sessionId));
  const hub = new EventHub(store);
  return {
    home: rt.home,
    store,
    coordinator,
    runner,
    hub,
    hooks: rt.hooks,
    plugins: rt.plugins,
    configFor,
    models: rt.models,
    modelInfo: rt.modelInfo,
    token: options.token,
    allowedHosts: new Set(),
    version: VERSION,
    env,
    credentials: rt.auth,
    sse: { ...defaultSseLimits(), ...options.sse },
    async discover(signal) {
      await rt.mcp.ready(MCP_STARTUP_WAIT_MS); // restored sessions find the MCP servers' tools (a slow server joins later)
      const report = await discoverUnsettled(coordinator, {
        signal,
        prepare: async (sessionId) => void (await configFor(store.queries.session(sessionId)!.location)),
      });
      for (const id of report.owned) runner.adopt(id);
      return report;
    },
    close: () => rt.close(),
  };
}
