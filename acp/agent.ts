/**
 * `loom acp`: Loom as an Agent Client Protocol agent (the official `@agentclientprotocol/sdk`), one
 * more surface over the same session actors and event log.
 *
 * - `initialize`: protocol version 1; `loadSession`; text, resource links and embedded text
 *   resources in prompts; MCP servers over stdio and HTTP.
 * - `session/new {cwd}`: a Loom session in `cwd` (with its config and model), owned by this process
 *   for the connection's lifetime. MCP servers the client names join the process's supervisor.
 * - `session/prompt`: the content is admitted as an input (the session's double-texting policy
 *   applies when it is busy); the session runs here; its log is forwarded as `session/update`s
 *   (acp/updates.ts) until the activity that took the input settles, whose status is the stop reason.
 * - `session/cancel`: `cancel.requested` for the current activity (Loom's cancel), and the
 *   connection's prompts not yet consumed are cancelled in the inbox, so they never run later.
 * - permission: the runtime's asker sends `session/request_permission` for every ask of a session
 *   this connection opened (a subagent's ask goes to its root session); the answer is recorded as
 *   `permission.replied` (actors/permission.ts), so the ask is durable like any other.
 * - `session/load {sessionId, cwd}`: the session's log is replayed as updates (final text of each
 *   part, user messages, tool calls with their outcome), then it continues live.
 */
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  agent as createAgentApp,
  methods,
  PROTOCOL_VERSION,
  RequestError,
  type AgentApp,
  type AgentConnection,
  type ContentBlock,
  type McpServer,
  type PromptResponse,
  type SessionUpdate,
  type StopReason,
  type Stream,
} from '@agentclientprotocol/sdk';
import type { PermissionAnswer, PermissionAsk } from '../actors/permission.js';
import { ACP_REPLAY_UPDATES_MAX, ACP_SESSIONS_MAX, DRAIN_TIMEOUT_MS, MCP_STARTUP_WAIT_MS, INPUT_ATTACHMENT_NAME_CHARS_MAX, MCP_SERVER_NAME_CHARS_MAX, READ_PAGE_EVENTS_MAX, SUBAGENT_DEPTH_MAX } from '../core/limits.js';
import { createProviderResolver } from '../llm/resolve.js';
import type { McpServerConfig } from '../services/config.js';
import type { LoomRuntime } from '../services/runtime.js';
import { admitWithPolicy, type AnyEnvelope, type InputAttachment } from '../store/index.js';
import { toolKind, toolTitle, UpdateMapper } from './updates.js';

export interface AcpAgentOptions {
  runtime: LoomRuntime;
  /** Loom's version, sent as `agentInfo.version`. */
  version: string;
  /** The model of new sessions when neither config nor LOOM_MODEL names one. */
  defaultModel: string;
  /** Diagnostics (stderr; never stdout, which carries the protocol). */
  log(line: string): void;
}

/** One prompt waiting for the activity that takes its input to settle. */
interface PromptWait {
  inputId: string;
  activityId: string | null;
  resolve(response: PromptResponse): void;
  reject(error: Error): void;
}

/** A Loom session this connection has open: its live forwarder and its prompts in flight. */
class AcpSession {
  /** Inputs this client sent (not echoed back as user messages). */
  readonly own = new Set<string>();
  readonly waits = new Map<string, PromptWait>();
  private readonly tail = new AbortController();
  private readonly finishReasons = new Map<string, string>();
  private forwarding: Promise<void> = Promise.resolve();

  constructor(
    readonly sessionId: string,
    readonly location: string,
    private readonly agent: LoomAcpAgent,
  ) {}

  /** Forwards every event after `after` as updates, and settles prompts, until `stop`. */
  start(after: number): void {
    this.forwarding = this.forward(after);
  }

  async stop(why = 'the agent is shutting down'): Promise<void> {
    this.tail.abort();
    await this.forwarding;
    for (const wait of this.waits.values()) wait.reject(new RequestError(-32603, why));
    this.waits.clear();
  }

  private async forward(after: number): Promise<void> {
    const { store } = this.agent.runtime;
    const mapper = new UpdateMapper({ mode: 'live', location: this.location, input: (id) => store.input(id), own: this.own });
    try {
      for await (const e of store.tail({ sessionId: this.sessionId, after }, { signal: this.tail.signal })) {
        for (const update of mapper.updates(e)) await this.agent.sendUpdate(this.sessionId, update);
        this.observe(e);
      }
    } catch (error) {
      if (!this.tail.signal.aborted) this.agent.log(`forwarding ${this.sessionId} stopped: ${(error as Error)?.message ?? String(error)}`);
    }
  }

  /** Settles the prompts an event decides (after its updates were sent, so a response follows them). */
  private observe(e: AnyEnvelope): void {
    switch (e.type) {
      case 'input.assigned': {
        const wait = this.waits.get(e.data.inputId);
        if (wait) wait.activityId = e.data.activityId;
        return;
      }
      case 'input.cancelled':
        return this.settle(e.data.inputId, { stopReason: 'cancelled' });
      case 'turn.finished':
        this.finishReasons.set(e.data.activityId, e.data.finishReason);
        return;
      case 'activity.settled': {
        const finish = this.finishReasons.get(e.data.activityId);
        this.finishReasons.delete(e.data.activityId);
        for (const wait of [...this.waits.values()]) {
          if (wait.activityId !== e.data.activityId) continue;
          if (e.data.status === 'failed' || e.data.status === 'abandoned') {
            this.waits.delete(wait.inputId);
            wait.reject(new RequestError(-32603, `the activity ${e.data.status}${e.data.reason ? `: ${e.data.reason}` : ''}`));
            continue;
          }
          this.settle(wait.inputId, { stopReason: stopReasonOf(e.data.status, finish) });
          // A cancelled activity hands unconsumed inputs back to the inbox: this prompt is over, so it must not run later.
          if (e.data.status === 'cancelled') this.agent.cancelInput(this.sessionId, wait.inputId);
        }
        return;
      }
      default:
        return;
    }
  }

  private settle(inputId: string, response: PromptResponse): void {
    const wait = this.waits.get(inputId);
    if (!wait) return;
    this.waits.delete(inputId);
    wait.resolve(response);
  }

  /** Fails every prompt in flight (the session's actor stopped on an operating failure). */
  failAll(error: Error): void {
    for (const wait of this.waits.values()) wait.reject(error);
    this.waits.clear();
  }
}

export class LoomAcpAgent {
  readonly app: AgentApp;
  readonly runtime: LoomRuntime;
  private connection: AgentConnection | undefined;
  private readonly sessions = new Map<string, AcpSession>();

  constructor(private readonly options: AcpAgentOptions) {
    this.runtime = options.runtime;
    this.app = createAgentApp({ name: 'loom' })
      .onRequest(methods.agent.initialize, () => ({
        protocolVersion: PROTOCOL_VERSION,
        agentCapabilities: {
          loadSession: true,
          promptCapabilities: { image: false, audio: false, embeddedContext: true },
          mcpCapabilities: { http: true, sse: false },
        },
        agentInfo: { name: 'loom', title: 'Loom', version: options.version },
        authMethods: [],
      }))
      .onRequest(methods.agent.session.new, async ({ params }) => ({ sessionId: await this.newSession(params.cwd, params.mcpServers) }))
      .onRequest(methods.agent.session.load, async ({ params }) => {
        await this.loadSession(params.sessionId, params.cwd, params.mcpServers);
        return {};
      })
      .onRequest(methods.agent.session.prompt, ({ params, signal }) => this.prompt(params.sessionId, params.prompt, signal))
      .onNotification(methods.agent.session.cancel, ({ params }) => this.cancel(params.sessionId, 'cancelled by the editor (session/cancel)'));
  }

  log(line: string): void {
    this.options.log(line);
  }

  /** Serves one client over `stream` (stdin/stdout for `loom acp`). */
  connect(stream: Stream): AgentConnection {
    this.connection = this.app.connect(stream);
    return this.connection;
  }

  /**
   * The runtime's permission asker: asks the client about an ask of a session it opened (a
   * subagent's ask is shown on its root session). Selected options map to `once`, `always` and
   * `reject`; the `cancelled` outcome cancels the prompt turn (the ask stays pending and the cancel
   * closes it). No answer (connection gone, ask answered elsewhere) leaves the ask durable.
   */
  readonly ask = async (ask: PermissionAsk): Promise<PermissionAnswer | undefined> => {
    const connection = this.connection;
    const root = this.rootSession(ask.sessionId);
    if (!connection || !root) return undefined;
    const scope = `${ask.tool}${ask.pattern ? ` ${ask.pattern}` : ''}`;
    let response;
    try {
      response = await connection.client.request(
        methods.client.session.requestPermission,
        {
          sessionId: root.sessionId,
          toolCall: { toolCallId: ask.callId, title: toolTitle(ask.tool, ask.input), kind: toolKind(ask.tool), status: 'pending', rawInput: ask.input },
          options: [
            { optionId: 'once', name: 'Allow once', kind: 'allow_once' },
            { optionId: 'always', name: `Always allow ${scope} in this session`, kind: 'allow_always' },
            { optionId: 'reject', name: 'Reject', kind: 'reject_once' },
          ],
          _meta: { loom: { requestId: ask.requestId, tool: ask.tool, ...(ask.pattern ? { pattern: ask.pattern } : {}), resumed: ask.resumed } },
        },
        { cancellationSignal: ask.signal, stopWaitingOnCancel: true },
      );
    } catch (error) {
      if (!ask.signal.aborted) this.log(`permission request ${ask.requestId} got no answer: ${(error as Error)?.message ?? String(error)}`);
      return undefined;
    }
    if (response.outcome.outcome === 'cancelled') {
      // ACP: a client answers `cancelled` when it cancels the prompt turn (its session/cancel may be
      // handled after this answer). The turn is cancelled here too; the ask stays pending and the
      // cancel closes it.
      this.cancel(root.sessionId, 'cancelled by the editor (session/cancel)');
      return undefined;
    }
    switch (response.outcome.optionId) {
      case 'once':
        return { reply: 'once', message: 'allowed in the editor' };
      case 'always':
        return { reply: 'always', message: 'always allowed in the editor' };
      default:
        return { reply: 'reject', message: 'rejected in the editor' };
    }
  };

  /** Told by the runtime when a session's actor stops on an operating failure. */
  sessionFailed(sessionId: string, error: unknown): void {
    this.sessions.get(sessionId)?.failAll(new RequestError(-32603, `session ${sessionId} stopped: ${(error as Error)?.message ?? String(error)}`));
  }

  /** Stops forwarding, lets owned sessions reach a safe point (bounded), then releases them. */
  async close(): Promise<void> {
    const { coordinator } = this.runtime;
    const drains = [...this.sessions.keys()].map((id) => coordinator.get(id)?.drain() ?? Promise.resolve());
    await Promise.race([Promise.all(drains), new Promise((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS).unref())]);
    await Promise.all([...this.sessions.values()].map((s) => s.stop()));
    this.sessions.clear();
  }

  async sendUpdate(sessionId: string, update: SessionUpdate): Promise<void> {
    await this.connection?.client.notify(methods.client.session.update, { sessionId, update });
  }

  cancelInput(sessionId: string, inputId: string): void {
    if (this.runtime.store.input(inputId)?.status !== 'pending') return;
    try {
      this.runtime.store.append({ sessionId, type: 'input.cancelled', data: { inputId, reason: 'its prompt was cancelled by the editor' } });
    } catch {
      // taken by an activity meanwhile: the cancel request settles that activity instead
    }
  }

  // ---- requests --------------------------------------------------------------------------------

  private async newSession(cwd: string, mcpServers: McpServer[]): Promise<string> {
    if (this.sessions.size >= ACP_SESSIONS_MAX) throw new RequestError(-32603, `this connection has ${ACP_SESSIONS_MAX} sessions open (ACP_SESSIONS_MAX)`);
    const location = resolveCwd(cwd);
    const { store, env } = this.runtime;
    const config = await this.configFor(location);
    const model = config.model ?? env.LOOM_MODEL ?? this.options.defaultModel;
    try {
      createProviderResolver(config, env)(model);
    } catch (error) {
      throw new RequestError(-32603, `cannot use model ${model}: ${(error as Error).message}`);
    }
    await this.addMcpServers(mcpServers);
    const sessionId = store.ids.next('ses');
    const [created] = store.append({ sessionId, type: 'session.created', data: { location, model, title: 'ACP session' } });
    this.open(sessionId, location, created!.seq);
    this.log(`session ${sessionId} (${model}) in ${location}`);
    return sessionId;
  }

  private async loadSession(sessionId: string, cwd: string, mcpServers: McpServer[]): Promise<void> {
    const { store } = this.runtime;
    const row = store.queries.session(sessionId);
    if (!row) throw RequestError.sessionNotFound(sessionId);
    const location = resolveCwd(cwd);
    if (location !== row.location) throw RequestError.invalidParams(undefined, `session ${sessionId} works in ${row.location}, not in ${location}`);
    await this.configFor(location);
    await this.addMcpServers(mcpServers);
    await this.sessions.get(sessionId)?.stop('the session was loaded again');
    this.sessions.delete(sessionId);
    if (this.sessions.size >= ACP_SESSIONS_MAX) throw new RequestError(-32603, `this connection has ${ACP_SESSIONS_MAX} sessions open (ACP_SESSIONS_MAX)`);
    const last = row.lastSeq;
    await this.replay(sessionId, location, last);
    this.open(sessionId, location, last);
  }

  private async prompt(sessionId: string, content: ContentBlock[], signal: AbortSignal): Promise<PromptResponse> {
    const session = this.sessions.get(sessionId);
    if (!session) throw RequestError.sessionNotFound(sessionId);
    const { text, attachments } = promptInput(content, session.location);
    const { store } = this.runtime;
    let admission;
    try {
      admission = admitWithPolicy(store, sessionId, { text, source: 'acp', ...(attachments.length > 0 ? { attachments } : {}) });
    } catch (error) {
      const e = error as Error;
      if (e.name === 'SessionBusyError') throw new RequestError(-32603, `${e.message}: the session's double-texting policy is reject`);
      if (e.name === 'LimitExceededError' || e.name === 'InvalidEventError') throw RequestError.invalidParams(undefined, e.message);
      throw error;
    }
    const inputId = admission.input.inputId;
    session.own.add(inputId);
    const response = new Promise<PromptResponse>((resolve, reject) => session.waits.set(inputId, { inputId, activityId: admission.input.activityId, resolve, reject }));
    if (admission.interrupted) await this.runtime.signal('cancel', sessionId);
    await this.runtime.signal('wake', sessionId);
    const onAbort = () => this.cancel(sessionId, 'the editor cancelled the prompt request');
    signal.addEventListener('abort', onAbort, { once: true });
    this.watchQuiet(session, inputId);
    try {
      return await response;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** session/cancel: Loom's cancel of the current activity; this client's prompts not yet taken are cancelled in the inbox. */
  private cancel(sessionId: string, reason: string): void {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    const { store } = this.runtime;
    for (const wait of session.waits.values()) if (wait.activityId === null) this.cancelInput(sessionId, wait.inputId);
    const activityId = store.queries.session(sessionId)?.activityId;
    if (activityId) store.append({ sessionId, type: 'cancel.requested', data: { activityId, reason } });
    void this.runtime.signal('cancel', sessionId);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Owns the session here when no live owner holds it, and forwards its events after `after`. */
  private open(sessionId: string, location: string, after: number): void {
    const session = new AcpSession(sessionId, location, this);
    this.sessions.set(sessionId, session);
    session.start(after);
    try {
      if (!this.runtime.coordinator.own(sessionId)) this.log(`session ${sessionId} is run by another process; its updates are forwarded, its asks wait for loom permit`);
    } catch (error) {
      this.log(`session ${sessionId} could not be owned: ${(error as Error)?.message ?? String(error)}`);
    }
  }

  /**
   * A prompt whose session goes quiet without settling its activity waits for a decision no one
   * here can make (a recovery decision; a permission ask left to `loom permit`): it fails, saying so.
   */
  private watchQuiet(session: AcpSession, inputId: string): void {
    const { coordinator, store } = this.runtime;
    const actor = coordinator.get(session.sessionId);
    if (!actor) return;
    void coordinator.runUntilQuiet(session.sessionId).then(() => {
      const wait = session.waits.get(inputId);
      if (!wait) return;
      const id = session.sessionId;
      if (actor.snapshot().value === 'recovering') {
        session.waits.delete(inputId);
        wait.reject(new RequestError(-32603, `session ${id} is waiting for a recovery decision: loom recover ${id} --retry|--abandon`));
      } else if (actor.waitingForPermission()) {
        const pending = store.queries.permissions.pending(id)[0];
        session.waits.delete(inputId);
        wait.reject(new RequestError(-32603, `session ${id} is waiting for a permission decision: loom permit ${id} ${pending?.requestId ?? 'REQUEST'} once|always|reject`));
      }
    }, () => undefined);
  }

  /** Replays the session's log up to `last` as updates; the newest ACP_REPLAY_UPDATES_MAX when longer. */
  private async replay(sessionId: string, location: string, last: number): Promise<void> {
    const { store } = this.runtime;
    const source = { mode: 'replay' as const, location, input: (id: string) => store.input(id), own: new Set<string>() };
    let total = 0;
    await forEachEvent(store, sessionId, last, (e, mapper) => void (total += mapper.updates(e).length), source);
    const skip = Math.max(0, total - ACP_REPLAY_UPDATES_MAX);
    if (skip > 0) {
      await this.sendUpdate(sessionId, { sessionUpdate: 'notice', severity: 'info', title: `${skip} earlier updates of this session are not shown`, description: `loom session show ${sessionId} prints the whole conversation` });
    }
    let index = 0;
    const pending: SessionUpdate[] = [];
    await forEachEvent(store, sessionId, last, (e, mapper) => {
      for (const update of mapper.updates(e)) if (index++ >= skip) pending.push(update);
    }, source, async () => {
      for (const update of pending.splice(0)) await this.sendUpdate(sessionId, update);
    });
  }

  private async configFor(location: string) {
    try {
      return await this.runtime.configFor(location);
    } catch (error) {
      throw RequestError.invalidParams(undefined, (error as Error).message);
    }
  }

  /**
   * MCP servers the client names for its sessions join the process's supervisor (stdio and http);
   * like `loom run`, the session starts once they (and the configured ones) have had their first
   * attempt, bounded by MCP_STARTUP_WAIT_MS, so its first turn sees their tools.
   */
  private async addMcpServers(servers: McpServer[]): Promise<void> {
    const configs: Record<string, McpServerConfig> = {};
    for (const server of servers) {
      const name = server.name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, MCP_SERVER_NAME_CHARS_MAX) || 'client';
      if ('type' in server && server.type === 'sse') {
        this.log(`MCP server "${server.name}" uses SSE, which Loom does not support; it is left out`);
        continue;
      }
      if ('url' in server) configs[name] = { type: 'http', url: server.url, headers: Object.fromEntries(server.headers.map((h) => [h.name, h.value])) };
      else configs[name] = { type: 'stdio', command: server.command, args: server.args, env: Object.fromEntries(server.env.map((v) => [v.name, v.value])) };
    }
    for (const refused of this.runtime.mcp.addServers(configs)) this.log(`MCP server "${refused}" is already configured differently; the client's is left out`);
    await this.runtime.mcp.ready(MCP_STARTUP_WAIT_MS);
  }

  /** The session this connection opened that `sessionId` is, or descends from (subagents). */
  private rootSession(sessionId: string): AcpSession | undefined {
    let id: string | undefined = sessionId;
    for (let depth = 0; id !== undefined && depth <= SUBAGENT_DEPTH_MAX + 1; depth++) {
      const open = this.sessions.get(id);
      if (open) return open;
      id = this.runtime.store.queries.session(id)?.parentId ?? undefined;
    }
    return undefined;
  }
}

/** Pages a session's log up to `last` through a fresh replay mapper; `flush` runs after each page. */
async function forEachEvent(
  store: LoomRuntime['store'],
  sessionId: string,
  last: number,
  each: (e: AnyEnvelope, mapper: UpdateMapper) => void,
  source: ConstructorParameters<typeof UpdateMapper>[0],
  flush: () => Promise<void> = async () => {},
): Promise<void> {
  const mapper = new UpdateMapper(source);
  let after = 0;
  while (after < last) {
    const page = store.read(sessionId, { after, limit: READ_PAGE_EVENTS_MAX }).filter((e) => e.seq <= last);
    if (page.length === 0) break;
    for (const e of page) each(e, mapper);
    after = page[page.length - 1]!.seq;
    await flush();
  }
}

/** How a settled activity ends a prompt turn. */
function stopReasonOf(status: string, finishReason: string | undefined): StopReason {
  if (status === 'cancelled') return 'cancelled';
  if (status === 'turn_limit') return 'max_turn_requests';
  if (status === 'budget_exceeded') return 'max_tokens';
  if (finishReason === 'length') return 'max_tokens';
  if (finishReason === 'content_filter') return 'refusal';
  return 'end_turn';
}

/** An absolute, existing directory (its real path), or invalid params naming the problem. */
function resolveCwd(cwd: string): string {
  if (!path.isAbsolute(cwd)) throw RequestError.invalidParams(undefined, `cwd must be an absolute path, got ${JSON.stringify(cwd)}`);
  let real: string;
  try {
    real = realpathSync(cwd);
  } catch {
    throw RequestError.invalidParams(undefined, `cwd ${cwd}: no such directory`);
  }
  if (!statSync(real).isDirectory()) throw RequestError.invalidParams(undefined, `cwd ${cwd}: not a directory`);
  return real;
}

/**
 * A prompt's content as an input: text blocks joined; resource links named in the text; embedded
 * text resources as attachments. Images, audio and binary resources are refused (the agent does
 * not advertise them).
 */
export function promptInput(content: ContentBlock[], location: string): { text: string; attachments: InputAttachment[] } {
  const texts: string[] = [];
  const attachments: InputAttachment[] = [];
  for (const block of content) {
    switch (block.type) {
      case 'text':
        texts.push(block.text);
        break;
      case 'resource_link':
        texts.push(`[resource: ${block.name} ${block.uri}]`);
        break;
      case 'resource': {
        const resource = block.resource as { uri: string; mimeType?: string | null; text?: string; blob?: string };
        if (typeof resource.text !== 'string') throw RequestError.invalidParams(undefined, `embedded resource ${resource.uri} is binary; only text resources are accepted`);
        const name = attachmentName(resource.uri, location).slice(0, INPUT_ATTACHMENT_NAME_CHARS_MAX);
        attachments.push({ kind: resource.uri.startsWith('file:') ? 'file' : 'url', name, mediaType: resource.mimeType ?? 'text/plain', text: resource.text, bytes: Buffer.byteLength(resource.text) });
        break;
      }
      default:
        throw RequestError.invalidParams(undefined, `${block.type} content is not supported (promptCapabilities.${block.type} is false)`);
    }
  }
  const text = texts.join('\n');
  if (text.trim() === '' && attachments.length === 0) throw RequestError.invalidParams(undefined, 'the prompt is empty');
  return { text, attachments };
}

/** A file URI inside the session's directory becomes a relative path; anything else stays as it is. */
function attachmentName(uri: string, location: string): string {
  if (!uri.startsWith('file:')) return uri;
  try {
    const file = decodeURIComponent(new URL(uri).pathname);
    const rel = path.relative(location, file);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
  } catch {
    return uri;
  }
}
