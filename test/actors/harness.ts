import { z } from 'zod';
import { Coordinator } from '../../actors/coordinator.js';
import type { SessionDeps } from '../../actors/session.js';
import type { PermissionAsker } from '../../actors/toolCall.js';
import { createProviderResolver } from '../../llm/resolve.js';
import { resolveConfig, type ConfigV2 } from '../../services/config.js';
import type { AnyEnvelope, Store } from '../../store/index.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import type { ToolServices } from '../../tools/types.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir, tempStore } from '../helpers.js';

/** A test tool that waits `ms` (honouring its signal). Not idempotent: its start is a barrier. */
export const sleepTool = {
  name: 'sleep',
  description: 'waits',
  input: z.object({ ms: z.number() }),
  idempotent: false,
  timeoutMs: 5_000,
  async execute(input: { ms: number }, ctx: { signal: AbortSignal }) {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, input.ms);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(t);
        reject(new Error('aborted'));
      });
    });
    return { output: `slept ${input.ms}` };
  },
};

/** An idempotent slow tool (safe to run again after a process loss). */
export const slowReadTool = { ...sleepTool, name: 'slow_read', description: 'waits, read-only', idempotent: true };

export interface Harness {
  store: Store;
  coordinator: Coordinator;
  sessionId: string;
  location: string;
  /** `$LOOM_HOME` of the session's tools (job output files live under it). */
  home: string;
  server: Awaited<ReturnType<typeof startScriptedOpenAIServer>>;
  types(): string[];
  events(): AnyEnvelope[];
  waitFor(predicate: (e: AnyEnvelope) => boolean, timeoutMs?: number): Promise<AnyEnvelope>;
  admit(mode: 'steer' | 'queue', text: string): string;
  run(): Promise<void>;
  /** Simulates the owner process dying: the actor stops with nothing recorded and its lease lapses. */
  crash(): void;
  /** A fresh coordinator (a new process) owning the session; returns its actor. */
  restart(): { coordinator: Coordinator; actor: NonNullable<ReturnType<Coordinator['own']>> };
}

export async function createHarness(options: {
  script?: ScriptedTurn[];
  respond?: Parameters<typeof startScriptedOpenAIServer>[0] extends infer O ? (O extends { respond?: infer R } ? R : never) : never;
  config?: Partial<ConfigV2>;
  askPermission?: PermissionAsker;
  store?: Store;
  /** Told when a live session stops on an operating failure (see CoordinatorOptions). */
  onSessionFailure?: (sessionId: string, error: unknown) => void;
  /** Extra services for tools (subagents); background jobs are wired by the coordinator. */
  toolServices?: ToolServices;
  /** `$LOOM_HOME` (a fresh temp directory by default). */
  home?: string;
  /** The session's double-texting policy (session.created). */
  doubleTexting?: 'steer' | 'queue' | 'interrupt' | 'reject';
  /** The jitter source of retry backoffs (SessionDeps.random). */
  random?: () => number;
  /** The XState timers of the session actors (SessionDeps.timers): a SimulatedClock moves retry backoffs by hand. */
  timers?: SessionDeps['timers'];
  /** The session's agent profile (session.created). */
  agent?: string;
  /** The session's system prompt (a fixed text or a builder; none by default). */
  systemPrompt?: SessionDeps['systemPrompt'];
  /** The model catalog's entries (context windows). */
  modelInfo?: SessionDeps['modelInfo'];
} = {}): Promise<Harness> {
  const server = await startScriptedOpenAIServer({ script: options.script ?? [], respond: options.respond });
  onCleanup(() => void server.close());
  const store = options.store ?? tempStore();
  const config = resolveConfig({ version: 2, ...options.config });
  const tools = createDefaultRegistry();
  tools.register(sleepTool);
  tools.register(slowReadTool);
  const home = options.home ?? tempDir();
  const deps = () => ({
    config,
    home,
    tools,
    resolveProvider: createProviderResolver(config, { OPENAI_BASE_URL: server.url }),
    askPermission: options.askPermission,
    toolServices: options.toolServices,
    random: options.random,
    timers: options.timers,
    systemPrompt: options.systemPrompt,
    modelInfo: options.modelInfo,
  });
  const coordinator = new Coordinator({ store, deps, onSessionFailure: options.onSessionFailure });
  onCleanup(() => coordinator.shutdown());
  const location = tempDir();
  const sessionId = store.ids.next('ses');
  store.append({
    sessionId,
    type: 'session.created',
    data: { location, model: 'openai/test', ...(options.doubleTexting ? { doubleTexting: options.doubleTexting } : {}), ...(options.agent ? { agent: options.agent } : {}) },
  });
  const events = () => {
    store.flushDeltas();
    const out: AnyEnvelope[] = [];
    for (let page = store.read(sessionId); page.length > 0; page = store.read(sessionId, { after: page.at(-1)!.seq })) out.push(...page);
    return out;
  };
  return {
    store,
    coordinator,
    sessionId,
    location,
    home,
    server,
    events,
    types: () => events().map((e) => e.type).filter((t) => t !== 'text.delta' && t !== 'reasoning.delta'),
    async waitFor(predicate, timeoutMs = 10_000) {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), timeoutMs);
      try {
        for await (const e of store.tail({ sessionId }, { signal: ac.signal })) if (predicate(e)) return e;
        throw new Error('waitFor timed out');
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
    },
    admit(mode, text) {
      return store.admitInput(sessionId, { mode, text }).input.inputId;
    },
    crash() {
      coordinator.get(sessionId)?.stop();
      store.flushDeltas();
      store.db.prepare('UPDATE session_owner SET expires_at = 0 WHERE session_id = ?').run(sessionId);
    },
    restart() {
      const next = new Coordinator({ store, deps });
      onCleanup(() => next.shutdown());
      const actor = next.own(sessionId);
      if (!actor) throw new Error('restart could not own the session');
      return { coordinator: next, actor };
    },
    async run() {
      const actor = coordinator.own(sessionId);
      if (!actor) throw new Error('could not own the session');
      await coordinator.runUntilQuiet(sessionId);
      if (actor.failure) throw actor.failure;
    },
  };
}
