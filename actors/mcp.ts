/**
 * The MCP supervisor: one supervised actor per configured MCP server (machines/mcpConnection.machine.ts)
 * and the effects it names: connecting over stdio or Streamable HTTP with the official
 * `@modelcontextprotocol/client`, watching the connection (close, pings, list changes), and
 * publishing the server's tools into the process's ToolRegistry while it is ready.
 *
 * An MCP tool is a JsonSchemaTool named `mcp_<server>_<tool>` (see `mcpToolName`) whose input
 * schema is the server's, passed through; it goes through the same permission rules (default ask),
 * timeout, output truncation and limits as a built-in tool, and is not idempotent unless the
 * server's `idempotentTools` lists it. A call in flight when the connection is lost settles as an
 * error naming the server and why it went.
 *
 * The SDK is imported when the first server connects, so processes without MCP servers never load it.
 * No secret reaches an event, a status or an error message: the values of a server's `env` and
 * `headers` are redacted from every message, and a server is described by its command or by its
 * URL's origin and path only.
 */
import { createHash } from 'node:crypto';
import type { Client, StreamableHTTPClientTransport, Tool as McpTool } from '@modelcontextprotocol/client';
import type { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { createActor, fromCallback, fromPromise, type Actor } from 'xstate';
import { systemClock, type Clock } from '../core/clock.js';
import {
  MCP_CLOSE_TIMEOUT_MS,
  MCP_CONNECT_ATTEMPTS_MAX,
  MCP_CONNECT_TIMEOUT_MS,
  MCP_LIST_CHANGED_DEBOUNCE_MS,
  MCP_LIST_PAGES_MAX,
  MCP_MESSAGE_BYTES_MAX,
  MCP_PING_INTERVAL_MS,
  MCP_PING_TIMEOUT_MS,
  MCP_RECONNECT_BACKOFF_MAX_MS,
  MCP_RECONNECT_BACKOFF_MIN_MS,
  MCP_STABLE_UPTIME_MS,
  MCP_STDERR_TAIL_BYTES,
  MCP_TOOL_DESCRIPTION_CHARS_MAX,
  MCP_TOOLS_PER_SERVER_MAX,
  TOOL_NAME_CHARS_MAX,
  TOOL_TIMEOUT_DEFAULT_MS,
} from '../core/limits.js';
import {
  mcpConnectionMachine,
  type McpConnected,
  type McpConnectionEvent,
  type McpToolDescriptor,
} from '../machines/mcpConnection.machine.js';
import type { McpServerConfig } from '../services/config.js';
import { ToolError } from '../tools/errors.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { JsonSchemaTool, ToolResult } from '../tools/types.js';

// ---- errors ------------------------------------------------------------------------------------

/** An MCP server could not be reached or started, or did not initialize. */
export class McpConnectError extends ToolError {
  override name = 'McpConnectError';
}

/** A call to a server that is not connected now (down, reconnecting, stopped). */
export class McpServerUnavailableError extends ToolError {
  override name = 'McpServerUnavailableError';
}

/** The connection went while the call was running: the call may or may not have taken effect. */
export class McpConnectionLostError extends ToolError {
  override name = 'McpConnectionLostError';
}

/** The server answered the call with an error (`isError`, or a JSON-RPC error). */
export class McpToolError extends ToolError {
  override name = 'McpToolError';
}

/** A `${VAR}` in a server's env or headers names a variable Loom's environment does not have. */
export class McpConfigError extends ToolError {
  override name = 'McpConfigError';
}

// ---- names -------------------------------------------------------------------------------------

/**
 * The registry name of server `server`'s tool `tool`: `mcp_<server>_<tool>`. Characters tool names
 * do not allow become `_`; a name that had to change, or is longer than TOOL_NAME_CHARS_MAX, is
 * cut and ends with 8 hex digits of a hash of the exact names, so two tools never share one.
 */
export function mcpToolName(server: string, tool: string): string {
  const exact = `mcp_${server}_${tool}`;
  const clean = exact.replace(/[^A-Za-z0-9_-]/g, '_');
  if (clean === exact && exact.length <= TOOL_NAME_CHARS_MAX) return exact;
  const hash = createHash('sha256').update(`${server}\u0000${tool}`).digest('hex').slice(0, 8);
  return `${clean.slice(0, TOOL_NAME_CHARS_MAX - hash.length - 1)}_${hash}`;
}

/** A server described without secrets: the command (stdio), or the URL's origin and path (http). */
export function describeServer(config: McpServerConfig): string {
  if (config.type === 'stdio') return config.command;
  try {
    const url = new URL(config.url);
    return `${url.origin}${url.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

// ---- status ------------------------------------------------------------------------------------

export type McpServerState = 'connecting' | 'ready' | 'backoff' | 'stopped' | 'disabled';

export interface McpToolStatus {
  /** The registry name (`mcp_<server>_<tool>`). */
  name: string;
  /** The server's own name of the tool. */
  mcpName: string;
  description: string;
  idempotent: boolean;
}

export interface McpServerStatus {
  name: string;
  type: McpServerConfig['type'];
  /** The command or the URL's origin and path (never arguments, env, headers or a query). */
  target: string;
  state: McpServerState;
  /** Consecutive failures and connections lost so far. */
  failures: number;
  restarts: number;
  /** Why the last attempt failed or the connection went (redacted). */
  lastError?: string;
  /** True when the supervisor gave up on the server (MCP_CONNECT_ATTEMPTS_MAX failures). */
  gaveUp: boolean;
  serverInfo?: { name: string; version: string };
  /** Tools in the registry now (empty unless ready). */
  tools: McpToolStatus[];
  /** Tools the server listed that are not in the registry, and why. */
  skipped: { tool: string; reason: string }[];
}

// ---- the supervisor ----------------------------------------------------------------------------

export interface McpSupervisorOptions {
  /** Where the servers' tools go. */
  registry: ToolRegistry;
  /** Reads the configured servers (the global config's `mcp.servers`); called once, by `start`. */
  loadServers?: () => Promise<Record<string, McpServerConfig>>;
  /** For `${VAR}` in env and header values. */
  env?: NodeJS.ProcessEnv;
  /** Monotonic time for connection uptimes. */
  clock?: Clock;
  /** Told about stderr lines of stdio servers and connection changes (LOOM_DEBUG). */
  log?: (line: string) => void;
  /** Overrides for tests; production uses core/limits.ts. */
  timing?: Partial<McpTiming>;
}

export interface McpTiming {
  connectTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  connectAttemptsMax: number;
  stableUptimeMs: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
}

const DEFAULT_TIMING: McpTiming = {
  connectTimeoutMs: MCP_CONNECT_TIMEOUT_MS,
  backoffMinMs: MCP_RECONNECT_BACKOFF_MIN_MS,
  backoffMaxMs: MCP_RECONNECT_BACKOFF_MAX_MS,
  connectAttemptsMax: MCP_CONNECT_ATTEMPTS_MAX,
  stableUptimeMs: MCP_STABLE_UPTIME_MS,
  pingIntervalMs: MCP_PING_INTERVAL_MS,
  pingTimeoutMs: MCP_PING_TIMEOUT_MS,
};

type ConnectionActor = Actor<typeof mcpConnectionMachine>;

/** One configured server: its config and, unless disabled, its supervised actor. */
interface ServerEntry {
  name: string;
  config: McpServerConfig;
  /** `config`: from mcp.servers (managed by `apply`); `client`: added by an ACP client for its sessions. */
  origin: 'config' | 'client';
  fingerprint: string;
  actor?: ConnectionActor;
  /** The live connection while ready (set by `connect`, cleared when the watch ends). */
  conn?: McpConnection;
  /** Registry name → the server's tool name, for the tools published now. */
  published: Map<string, McpToolDescriptor>;
  skipped: { tool: string; reason: string }[];
  /** The first connection attempt has finished (either way). */
  attempted: boolean;
  /** Connections being closed (awaited by `close`). */
  closing: Set<Promise<void>>;
}

/**
 * Supervises the configured MCP servers of one process. `start` reads the config and connects in
 * the background (it never waits for a server); `ready` waits, bounded, for every server's first
 * attempt; `status` reports each server's state and tools; `close` stops them all.
 */
export class McpSupervisor {
  private readonly entries = new Map<string, ServerEntry>();
  private readonly listeners = new Set<() => void>();
  private readonly timing: McpTiming;
  private readonly clock: Clock;
  private started: Promise<void> | undefined;
  private closed = false;
  /** Why the servers could not be read (a broken config file), for `status`. */
  configError: string | undefined;

  constructor(private readonly options: McpSupervisorOptions) {
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Reads the configured servers once and starts connecting them (in the background). Later calls
   * return the same promise. A config that cannot be read leaves no server and sets `configError`.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      if (!this.options.loadServers) return;
      try {
        const servers = await this.options.loadServers();
        if (!this.closed) this.apply(servers);
      } catch (error) {
        this.configError = errorText(error);
        this.notify();
      }
    })();
    return this.started;
  }

  /** Whether `start` has been called (a config change is applied only to a supervisor that runs). */
  get running(): boolean {
    return this.started !== undefined && !this.closed;
  }

  /**
   * Makes the running servers match `servers`: new ones start, removed or disabled ones stop (their
   * tools leave the registry), changed ones restart; unchanged ones are left alone.
   */
  apply(servers: Record<string, McpServerConfig>): void {
    if (this.closed) return;
    for (const [name, entry] of this.entries) {
      if (entry.origin !== 'config') continue;
      if (servers[name] === undefined || fingerprintOf(servers[name]) !== entry.fingerprint) this.remove(name);
    }
    for (const [name, config] of Object.entries(servers)) {
      if (!this.entries.has(name)) this.add(name, config, 'config');
    }
    this.notify();
  }

  /**
   * Adds servers an ACP client asked for (`session/new` `mcpServers`) next to the configured ones.
   * A name already in use keeps its server; returns the names that were refused for that reason.
   */
  addServers(servers: Record<string, McpServerConfig>): string[] {
    const refused: string[] = [];
    if (this.closed) return refused;
    for (const [name, config] of Object.entries(servers)) {
      const existing = this.entries.get(name);
      if (existing === undefined) this.add(name, config, 'client');
      else if (existing.fingerprint !== fingerprintOf(config)) refused.push(name);
    }
    this.notify();
    return refused;
  }

  /**
   * Resolves once every enabled server has finished its first connection attempt (ready, or failed
   * and waiting to retry), or after `timeoutMs`, whichever is first. Never rejects: a server that is
   * slow or broken shows in `status`, and its tools join when it connects.
   */
  async ready(timeoutMs: number): Promise<void> {
    await this.start();
    const done = () => [...this.entries.values()].every((e) => e.actor === undefined || e.attempted);
    if (done()) return;
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      const check = () => done() && finish();
      const timer = setTimeout(finish, timeoutMs);
      timer.unref();
      this.listeners.add(check);
    });
  }

  /** Every configured server, in config order. */
  status(): McpServerStatus[] {
    return [...this.entries.values()].map((entry) => this.statusOf(entry));
  }

  /** Told after any server changes state or tools. Returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Stops every server: their tools leave the registry at once (synchronously), their connections
   * close in the background (a stdio child gets stdin closed, then SIGTERM, then SIGKILL). The
   * promise resolves when they are closed, or after MCP_CLOSE_TIMEOUT_MS.
   */
  close(): Promise<void> {
    this.closed = true;
    const closing: Promise<void>[] = [];
    for (const name of [...this.entries.keys()]) closing.push(this.remove(name));
    this.notify();
    const all = Promise.allSettled(closing).then(() => undefined);
    return Promise.race([all, new Promise<void>((resolve) => setTimeout(resolve, MCP_CLOSE_TIMEOUT_MS).unref())]);
  }

  // ---- entries ---------------------------------------------------------------------------------

  private add(name: string, config: McpServerConfig, origin: ServerEntry['origin']): void {
    const entry: ServerEntry = { name, config, origin, fingerprint: fingerprintOf(config), published: new Map(), skipped: [], attempted: false, closing: new Set() };
    this.entries.set(name, entry);
    if (config.enabled === false) return;
    const machine = mcpConnectionMachine.provide({
      actors: {
        connect: fromPromise(({ signal }) => this.connect(entry, signal)),
        watch: fromCallback<McpConnectionEvent, { server: string }>(({ sendBack }) => this.watch(entry, sendBack)),
      },
      actions: {
        publishTools: (_, params) => this.publish(entry, params.tools),
        withdrawTools: (_, params) => this.withdraw(entry, params.reason),
      },
    });
    const actor = createActor(machine, {
      input: {
        server: name,
        connectAttemptsMax: this.timing.connectAttemptsMax,
        backoffMinMs: this.timing.backoffMinMs,
        backoffMaxMs: this.timing.backoffMaxMs,
        stableUptimeMs: this.timing.stableUptimeMs,
      },
    });
    entry.actor = actor;
    actor.subscribe({
      next: (snapshot) => {
        if (snapshot.value !== 'connecting' || snapshot.context.failures > 0) entry.attempted = true;
        this.log(`${name}: ${String(snapshot.value)}${snapshot.context.lastError && snapshot.value !== 'ready' ? ` (${snapshot.context.lastError})` : ''}`);
        this.notify();
      },
      error: (error) => this.log(`${name}: supervisor error: ${errorText(error)}`),
    });
    actor.start();
  }

  /** Stops a server's actor (withdrawing its tools) and resolves when its connection is closed. */
  private remove(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) return Promise.resolve();
    this.entries.delete(name);
    if (entry.actor) {
      entry.actor.send({ type: 'STOP' });
      entry.actor.stop();
    }
    this.withdraw(entry, 'the server was removed from the config or stopped');
    return Promise.allSettled([...entry.closing]).then(() => undefined);
  }

  private statusOf(entry: ServerEntry): McpServerStatus {
    const snapshot = entry.actor?.getSnapshot();
    const context = snapshot?.context;
    const idempotent = new Set(entry.config.idempotentTools ?? []);
    return {
      name: entry.name,
      type: entry.config.type,
      target: describeServer(entry.config),
      state: snapshot === undefined ? 'disabled' : (String(snapshot.value) as McpServerState),
      failures: context?.failures ?? 0,
      restarts: context?.restarts ?? 0,
      ...(context?.lastError ? { lastError: context.lastError } : {}),
      gaveUp: context?.gaveUp ?? false,
      ...(context?.serverInfo ? { serverInfo: context.serverInfo } : {}),
      tools: [...entry.published].map(([name, t]) => ({ name, mcpName: t.name, description: t.description ?? '', idempotent: idempotent.has(t.name) })),
      skipped: [...entry.skipped],
    };
  }

  private notify(): void {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch {
        // a listener's failure is its own
      }
    }
  }

  private log(line: string): void {
    this.options.log?.(`mcp ${line}`);
  }

  // ---- effects: connect, watch -----------------------------------------------------------------

  /** One attempt (the machine's `connect`): on success the connection is kept in `entry.conn`. */
  private async connect(entry: ServerEntry, signal: AbortSignal): Promise<McpConnected> {
    const conn = new McpConnection(entry.name, entry.config, {
      env: this.options.env ?? process.env,
      clock: this.clock,
      timing: this.timing,
      log: (line) => this.log(`${entry.name}: ${line}`),
    });
    try {
      const connected = await conn.open(signal);
      if (signal.aborted) throw new McpConnectError(`connecting to MCP server "${entry.name}" was stopped`);
      entry.conn = conn;
      return connected;
    } catch (error) {
      this.track(entry, conn.close());
      throw new McpConnectError(conn.redact(`MCP server "${entry.name}" (${describeServer(entry.config)}): ${errorText(error)}`));
    }
  }

  /** Watches a ready connection (the machine's `watch`); its cleanup closes the connection. */
  private watch(entry: ServerEntry, sendBack: (event: McpConnectionEvent) => void): () => void {
    const conn = entry.conn;
    if (!conn) {
      sendBack({ type: 'LOST', reason: 'the connection was gone before it could be watched', uptimeMs: 0 });
      return () => {};
    }
    conn.watch({
      lost: (reason, uptimeMs) => sendBack({ type: 'LOST', reason, uptimeMs }),
      toolsChanged: (tools) => sendBack({ type: 'TOOLS_CHANGED', tools }),
    });
    return () => {
      if (entry.conn === conn) entry.conn = undefined;
      this.track(entry, conn.close());
    };
  }

  private track(entry: ServerEntry, closing: Promise<void>): void {
    entry.closing.add(closing);
    void closing.finally(() => entry.closing.delete(closing));
  }

  // ---- effects: the registry -------------------------------------------------------------------

  /** Makes the registry hold exactly `tools` of this server (the machine's `publishTools`). */
  private publish(entry: ServerEntry, tools: McpToolDescriptor[]): void {
    const registry = this.options.registry;
    entry.skipped = [];
    const wanted = new Map<string, McpToolDescriptor>();
    for (const tool of tools.slice(0, MCP_TOOLS_PER_SERVER_MAX)) wanted.set(mcpToolName(entry.name, tool.name), tool);
    if (tools.length > MCP_TOOLS_PER_SERVER_MAX) {
      const over = tools.length - MCP_TOOLS_PER_SERVER_MAX;
      entry.skipped.push({ tool: `${over} more (${tools[MCP_TOOLS_PER_SERVER_MAX]!.name}, …)`, reason: `a server may offer at most ${MCP_TOOLS_PER_SERVER_MAX} tools (MCP_TOOLS_PER_SERVER_MAX)` });
    }
    for (const [name, had] of entry.published) {
      const now = wanted.get(name);
      if (now !== undefined && sameTool(had, now)) continue;
      entry.published.delete(name);
      registry.unregister(name, now === undefined ? `MCP server "${entry.name}" no longer lists it` : `MCP server "${entry.name}" changed it`);
    }
    for (const [name, tool] of wanted) {
      if (entry.published.has(name)) continue;
      if (registry.get(name) !== undefined) {
        entry.skipped.push({ tool: tool.name, reason: `another tool is already registered as ${name}` });
        continue;
      }
      try {
        registry.register(this.toolFor(entry, name, tool));
        entry.published.set(name, tool);
      } catch (error) {
        entry.skipped.push({ tool: tool.name, reason: errorText(error) });
      }
    }
    this.notify();
  }

  /** Removes every tool of the server from the registry (the machine's `withdrawTools`). */
  private withdraw(entry: ServerEntry, reason: string): void {
    for (const name of [...entry.published.keys()]) {
      entry.published.delete(name);
      this.options.registry.unregister(name, `MCP server "${entry.name}": ${reason}`);
    }
    this.notify();
  }

  /** The Loom tool for one of the server's tools. Calls go to whatever connection is live when they run. */
  private toolFor(entry: ServerEntry, name: string, tool: McpToolDescriptor): JsonSchemaTool {
    const { $schema: _dialect, ...inputSchema } = tool.inputSchema;
    const description = `[MCP server ${entry.name}] ${tool.description ?? tool.name}`;
    const timeoutMs = entry.config.timeoutMs ?? TOOL_TIMEOUT_DEFAULT_MS;
    return {
      name,
      description: description.length > MCP_TOOL_DESCRIPTION_CHARS_MAX ? `${description.slice(0, MCP_TOOL_DESCRIPTION_CHARS_MAX - 1)}…` : description,
      source: `mcp:${entry.name}`,
      inputSchema: inputSchema.type === undefined ? { type: 'object', ...inputSchema } : inputSchema,
      idempotent: (entry.config.idempotentTools ?? []).includes(tool.name),
      timeoutMs,
      execute: async (input, ctx) => {
        const conn = entry.conn;
        if (!conn || entry.actor?.getSnapshot().value !== 'ready') {
          const state = entry.actor ? String(entry.actor.getSnapshot().value) : 'stopped';
          throw new McpServerUnavailableError(`MCP server "${entry.name}" is not connected (${state}); ${name} cannot run now`);
        }
        return conn.call(tool.name, name, input, ctx.signal, timeoutMs);
      },
    };
  }
}

function sameTool(a: McpToolDescriptor, b: McpToolDescriptor): boolean {
  return a.name === b.name && a.description === b.description && JSON.stringify(a.inputSchema) === JSON.stringify(b.inputSchema);
}

function fingerprintOf(config: McpServerConfig): string {
  return JSON.stringify(config);
}

// ---- one connection ----------------------------------------------------------------------------

interface ConnectionDeps {
  env: NodeJS.ProcessEnv;
  clock: Clock;
  timing: McpTiming;
  log: (line: string) => void;
}

interface WatchHandlers {
  lost(reason: string, uptimeMs: number): void;
  toolsChanged(tools: McpToolDescriptor[]): void;
}

/**
 * One connection to one server, from `open` (transport, initialize, first listing) to `close`.
 * It reports its own loss once: the transport closed (a stdio child exited), or a ping failed (an
 * HTTP server went away: pings run every `pingIntervalMs`, and at once after a transport error).
 * Losing the connection closes the client, which fails every call in flight.
 */
class McpConnection {
  private client: Client | undefined;
  private transport: StdioClientTransport | StreamableHTTPClientTransport | undefined;
  private stderrTail = '';
  private secrets: string[] = [];
  private connectedAt = 0;
  private handlers: WatchHandlers | undefined;
  private pendingTools: McpToolDescriptor[] | undefined;
  private lostReason: string | undefined;
  private closing: Promise<void> | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(
    private readonly server: string,
    private readonly config: McpServerConfig,
    private readonly deps: ConnectionDeps,
  ) {}

  /** Connects, initializes and lists the tools, within the connect timeout. */
  async open(signal: AbortSignal): Promise<McpConnected> {
    const sdk = await import('@modelcontextprotocol/client');
    const client = new sdk.Client(
      { name: 'loom', version: '1' },
      {
        listMaxPages: MCP_LIST_PAGES_MAX,
        listChanged: { tools: { debounceMs: MCP_LIST_CHANGED_DEBOUNCE_MS, onChanged: (error, tools) => this.onListChanged(error, tools) } },
      },
    );
    this.client = client;
    client.onerror = (error) => this.onTransportError(error);
    client.onclose = () => this.onClosed();
    const transport = await this.makeTransport(sdk);
    this.transport = transport;
    const timeout = this.deps.timing.connectTimeoutMs;
    try {
      await client.connect(transport, { timeout, signal });
      const { tools } = await client.listTools(undefined, { timeout, signal });
      this.connectedAt = this.deps.clock.monotonic();
      const version = client.getServerVersion();
      return { tools: tools.map(descriptorOf), serverInfo: version ? { name: version.name, version: version.version } : null };
    } catch (error) {
      throw new Error(this.describeFailure(error));
    }
  }

  /** Starts reporting to `handlers` (a loss that happened already is reported at once). */
  watch(handlers: WatchHandlers): void {
    this.handlers = handlers;
    if (this.lostReason !== undefined) return this.report(this.lostReason);
    if (this.pendingTools) handlers.toolsChanged(this.pendingTools);
    this.pendingTools = undefined;
    this.pingTimer = setInterval(() => void this.probe('no answer to a ping'), this.deps.timing.pingIntervalMs);
    this.pingTimer.unref();
  }

  /** Calls `tool` and turns its result into a tool result (an error result throws McpToolError). */
  async call(tool: string, loomName: string, input: Record<string, unknown>, signal: AbortSignal, timeoutMs: number): Promise<ToolResult> {
    const client = this.client;
    if (!client || this.lostReason !== undefined) throw new McpServerUnavailableError(`MCP server "${this.server}" is not connected; ${loomName} cannot run now`);
    let result;
    try {
      result = await client.callTool({ name: tool, arguments: input }, { signal, timeout: timeoutMs });
    } catch (error) {
      if (signal.aborted) throw error; // the registry reports its own timeout or the cancel
      throw await this.callFailure(error, loomName);
    }
    const text = this.redact(resultText(result));
    if (result.isError === true) throw new McpToolError(`MCP server "${this.server}" reported an error from ${tool}: ${text === '' ? '(no message)' : text}`);
    return { output: text, metadata: { mcpServer: this.server, mcpTool: tool } };
  }

  /** Closes the client (and a stdio child). Idempotent; never rejects. */
  close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.handlers = undefined;
    this.lostReason ??= 'the connection was closed';
    this.closing ??= (async () => {
      try {
        await this.client?.close();
      } catch {
        // closing a broken connection may fail; it is gone either way
      }
    })();
    return this.closing;
  }

  /** `text` with every secret value of this server's env and headers replaced by `[redacted]`. */
  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return out;
  }

  // ---- internals -------------------------------------------------------------------------------

  private async makeTransport(sdk: typeof import('@modelcontextprotocol/client')): Promise<StdioClientTransport | StreamableHTTPClientTransport> {
    if (this.config.type === 'stdio') {
      const env = this.expand(this.config.env ?? {}, 'env');
      const { StdioClientTransport } = await import('@modelcontextprotocol/client/stdio');
      const transport = new StdioClientTransport({
        command: this.config.command,
        args: this.config.args ?? [],
        env,
        ...(this.config.cwd === undefined ? {} : { cwd: this.config.cwd }),
        stderr: 'pipe',
        maxBufferSize: MCP_MESSAGE_BYTES_MAX,
      });
      // Read always (a full pipe would block the server); keep a bounded tail for error messages.
      transport.stderr?.on('data', (chunk: Buffer) => this.onStderr(chunk.toString('utf8')));
      return transport;
    }
    const headers = this.expand(this.config.headers ?? {}, 'headers');
    const url = new URL(this.config.url);
    // A token in the URL (userinfo, a query parameter) is as secret as one in a header.
    for (const value of [url.username, url.password, ...url.searchParams.values()]) this.addSecret(value);
    return new sdk.StreamableHTTPClientTransport(url, {
      requestInit: { headers },
      fetch: boundedFetch,
      reconnectionOptions: { maxRetries: 2, initialReconnectionDelay: 500, maxReconnectionDelay: 5_000, reconnectionDelayGrowFactor: 2 },
    });
  }

  /** Values with `${VAR}` replaced from Loom's environment; every resulting value counts as a secret. */
  private expand(entries: Record<string, string>, field: 'env' | 'headers'): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(entries)) {
      out[key] = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, variable: string) => {
        const found = this.deps.env[variable];
        if (found === undefined) throw new McpConfigError(`the environment variable ${variable} (named in mcp.servers.${this.server}.${field}.${key}) is not set`);
        this.addSecret(found);
        return found;
      });
      this.addSecret(out[key]);
    }
    return out;
  }

  /** A value never to show (short ones would redact ordinary words, and cannot be much of a secret). */
  private addSecret(value: string): void {
    if (value.length >= 4 && !this.secrets.includes(value)) this.secrets.push(value);
  }

  private onStderr(text: string): void {
    this.stderrTail = (this.stderrTail + text).slice(-MCP_STDERR_TAIL_BYTES);
    for (const line of text.split('\n')) if (line.trim() !== '') this.deps.log(`stderr: ${this.redact(line)}`);
  }

  private onListChanged(error: Error | null, tools: McpTool[] | null): void {
    if (error || !tools) {
      void this.probe(`listing its tools after a change failed: ${error?.message ?? 'no list'}`);
      return;
    }
    const list = tools.map(descriptorOf);
    if (this.handlers) this.handlers.toolsChanged(list);
    else this.pendingTools = list; // changed while connecting: delivered when the watch starts
  }

  /** A transport error (a dropped SSE stream, a failed POST): make sure the server is still there. */
  private onTransportError(error: Error): void {
    this.deps.log(`transport: ${this.redact(error.message)}`);
    if (/^Maximum reconnection attempts/.test(error.message) && this.connectedAt > 0) {
      // The SDK gave up on a stream (the one notifications come by): without it, tool-list changes
      // would go unheard, so the connection is made again from scratch.
      this.lose(`its event stream could not be re-established (${error.message})`);
      void this.close();
      return;
    }
    void this.probe(`the transport failed (${error.message})`);
  }

  /** The transport closed (a stdio child exited, or we closed it). */
  private onClosed(): void {
    const why = this.config.type === 'stdio' ? `its process exited${this.stderrSummary()}` : 'the connection was closed';
    this.lose(why);
  }

  /** Pings the server (one probe at a time); no answer in time means the connection is lost. */
  private async probe(why: string): Promise<void> {
    if (this.probing || this.lostReason !== undefined || !this.client) return;
    this.probing = true;
    try {
      await this.client.ping({ timeout: this.deps.timing.pingTimeoutMs });
    } catch (error) {
      this.lose(`${why}; a ping failed: ${errorText(error)}`);
      void this.close();
    } finally {
      this.probing = false;
    }
  }

  private lose(reason: string): void {
    if (this.lostReason !== undefined) return;
    this.lostReason = this.redact(reason);
    this.report(this.lostReason);
  }

  private report(reason: string): void {
    const handlers = this.handlers;
    if (!handlers) return;
    this.handlers = undefined;
    if (this.pingTimer) clearInterval(this.pingTimer);
    handlers.lost(reason, this.connectedAt === 0 ? 0 : this.deps.clock.monotonic() - this.connectedAt);
  }

  /** The error a failed call becomes: the connection went (say why), or the server refused it. */
  private async callFailure(error: unknown, loomName: string): Promise<Error> {
    const code = (error as { code?: unknown })?.code;
    if (code === 'CONNECTION_CLOSED' || code === 'NOT_CONNECTED' || this.lostReason !== undefined) {
      return new McpConnectionLostError(
        `MCP server "${this.server}" went away while ${loomName} was running (${this.lostReason ?? errorText(error)}); the call may or may not have taken effect`,
      );
    }
    if (typeof code === 'number') return new McpToolError(this.redact(`MCP server "${this.server}" refused the call to ${loomName}: ${errorText(error)} (code ${code})`));
    // A transport failure (the HTTP server is unreachable): find out whether the connection is gone.
    await this.probe(`a call failed (${errorText(error)})`);
    if (this.lostReason !== undefined) {
      return new McpConnectionLostError(`MCP server "${this.server}" went away while ${loomName} was running (${this.lostReason}); the call may or may not have taken effect`);
    }
    return new McpToolError(this.redact(`the call to ${loomName} on MCP server "${this.server}" failed: ${errorText(error)}`));
  }

  private describeFailure(error: unknown): string {
    const e = error as NodeJS.ErrnoException & { code?: unknown };
    if (e?.code === 'ENOENT' && this.config.type === 'stdio') return `could not start "${this.config.command}": no such program (ENOENT)`;
    if (e?.code === 'EACCES' && this.config.type === 'stdio') return `could not start "${this.config.command}": permission denied (EACCES)`;
    if (e?.code === 'REQUEST_TIMEOUT') return `no answer to initialize or tools/list within ${this.deps.timing.connectTimeoutMs} ms${this.stderrSummary()}`;
    if (e?.code === 'CONNECTION_CLOSED') return `the server closed the connection while initializing${this.stderrSummary()}`;
    return `${errorText(error)}${this.stderrSummary()}`;
  }

  private stderrSummary(): string {
    const tail = this.redact(this.stderrTail.trim());
    if (tail === '') return '';
    const lines = tail.split('\n').slice(-5).join(' | ');
    return `; stderr: ${lines}`;
  }
}

/** The parts of an MCP tool the supervisor keeps. */
function descriptorOf(tool: McpTool): McpToolDescriptor {
  return {
    name: tool.name,
    ...(tool.description === undefined ? {} : { description: tool.description }),
    inputSchema: (tool.inputSchema ?? { type: 'object' }) as Record<string, unknown>,
  };
}

/**
 * A call's content as text for the model: text blocks as they are, resources by their text or URI,
 * images and audio by their type and size (never their bytes); structured content as JSON when
 * there is no text.
 */
export function resultText(result: { content?: unknown; structuredContent?: unknown }): string {
  const blocks = Array.isArray(result.content) ? (result.content as Record<string, unknown>[]) : [];
  const parts = blocks.map(blockText).filter((t) => t !== '');
  if (parts.length === 0 && result.structuredContent !== undefined) return JSON.stringify(result.structuredContent, null, 2);
  return parts.join('\n');
}

function blockText(block: Record<string, unknown>): string {
  switch (block.type) {
    case 'text':
      return String(block.text ?? '');
    case 'image':
    case 'audio':
      return `[${block.type} ${String(block.mimeType ?? '')}, ${Math.floor((String(block.data ?? '').length * 3) / 4)} bytes]`;
    case 'resource': {
      const resource = (block.resource ?? {}) as Record<string, unknown>;
      return typeof resource.text === 'string' ? resource.text : `[resource ${String(resource.uri ?? '')}${resource.mimeType ? ` (${String(resource.mimeType)})` : ''}]`;
    }
    case 'resource_link':
      return `[resource link ${String(block.uri ?? '')}${block.name ? ` "${String(block.name)}"` : ''}]`;
    default:
      return `[${String(block.type)} content]`;
  }
}

/**
 * fetch with the body of each POST response (one request's answer, JSON or SSE) cut at
 * MCP_MESSAGE_BYTES_MAX: the stream errors past it, so a runaway server cannot fill memory.
 */
const boundedFetch = async (url: string | URL, init?: RequestInit): Promise<Response> => {
  const response = await fetch(url, init);
  if ((init?.method ?? 'GET').toUpperCase() !== 'POST' || response.body === null) return response;
  let seen = 0;
  const limited = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > MCP_MESSAGE_BYTES_MAX) controller.error(new Error(`the MCP server's response is larger than ${MCP_MESSAGE_BYTES_MAX} bytes`));
        else controller.enqueue(chunk);
      },
    }),
  );
  return new Response(limited, { status: response.status, statusText: response.statusText, headers: response.headers });
};

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
