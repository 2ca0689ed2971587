import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Coordinator } from '../actors/coordinator.js';
import { natsUrlFromEnv, startNats, type NatsServices } from '../actors/nats.js';
import type { PermissionAnswer, PermissionAsk, PermissionAsker } from '../actors/permission.js';
import { createProviderResolver } from '../llm/resolve.js';
import { loadConfig, resolveLoomHome, type ResolvedConfig } from '../services/config.js';
import { Store } from '../store/index.js';
import { createDefaultRegistry } from '../tools/builtin/index.js';
import { testToolsFromEnv } from '../tools/testing/probe.js';
import { UsageError } from './exit.js';

export type PermissionMode = 'allow' | 'deny' | 'ask';

/** What a CLI command works with: the store in $LOOM_HOME, config, tools and a coordinator. */
export interface CliRuntime {
  home: string;
  store: Store;
  coordinator: Coordinator;
  /** Set when LOOM_NATS_URL (or `--nats URL`) names a server: the transport, outbox and owner mirror. */
  nats?: NatsServices;
  configFor(location: string): Promise<ResolvedConfig>;
  /**
   * Tells the session's owner (in any process) to look now: a `wake` after an admission or reply,
   * a `cancel` after a cancel request. Advisory (the owner also polls); never throws.
   */
  signal(kind: 'wake' | 'cancel', sessionId: string): Promise<void>;
  /** Shuts the coordinator down and closes the store (with NATS: after the outbox has published what was committed, bounded). */
  close(): void;
}

export function openStore(): { home: string; store: Store } {
  const home = resolveLoomHome();
  mkdirSync(home, { recursive: true });
  return { home, store: Store.open(join(home, 'loom.db')) };
}

export function defaultSystemPrompt(location: string, now: Date): string {
  return [
    'You are Loom, a coding agent working in a user\'s project.',
    `Working directory: ${location}. File tools take paths relative to it and cannot leave it.`,
    `Platform: ${process.platform}. Date: ${now.toISOString().slice(0, 10)}.`,
    'Use the tools to look at the project before answering questions about it. Be concise.',
  ].join('\n');
}

/**
 * The permission asker for a foreground command (`--permission`):
 * - `allow` / `deny`: a policy answers every ask at once (recorded as `permission.replied` with a
 *   message naming the policy);
 * - `ask` on a terminal: the user is asked, one question at a time, and the answer is recorded;
 * - `ask` without a terminal: no asker, so asks stay pending in the log and the run stops waiting
 *   for a decision (exit 5) until `loom permit` answers from any process.
 */
export function createAsker(mode: PermissionMode): PermissionAsker | undefined {
  if (mode === 'allow') return async () => ({ reply: 'once', message: 'allowed by the --permission allow policy' });
  if (mode === 'deny') return async () => ({ reply: 'reject', message: 'denied by the --permission deny policy (no one was asked)' });
  if (!(process.stdin.isTTY && process.stderr.isTTY)) return undefined;
  let queue: Promise<unknown> = Promise.resolve();
  return (ask) => {
    const asked = queue.then(() => (ask.signal.aborted ? undefined : askAtTerminal(ask)));
    queue = asked.catch(() => undefined);
    return asked;
  };
}

/** One question on the terminal. "n: reason" (or "no reason") rejects with a message the model sees. */
async function askAtTerminal(ask: PermissionAsk): Promise<PermissionAnswer | undefined> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // A Ctrl-C while asking cancels the activity, as it does elsewhere in the run.
  rl.on('SIGINT', () => {
    rl.close();
    process.kill(process.pid, 'SIGINT');
  });
  try {
    const scope = `${ask.tool} ${ask.pattern ?? '(any call)'}`;
    const answer = await rl.question(
      `? ${ask.tool} asks permission: ${ask.summary}\n  [y]es once / [a]lways for ${scope} in this session / [n]o[: reason] (${ask.requestId}): `,
      { signal: ask.signal },
    );
    const a = answer.trim();
    if (/^(y|yes)$/i.test(a)) return { reply: 'once' };
    if (/^(a|always)$/i.test(a)) return { reply: 'always' };
    // Anything else rejects; after "n"/"no" (or instead of it) the text is the reason the model sees.
    const reason = (/^(?:n|no)\b[:\s]*(.*)$/is.exec(a)?.[1] ?? a).trim();
    return { reply: 'reject', message: reason === '' ? 'rejected at the terminal' : `rejected at the terminal: ${reason}` };
  } finally {
    rl.close();
  }
}

/** `ask` where a person can answer (stdin and stderr are terminals), else `deny`, so nothing hangs. */
export function defaultPermissionMode(): PermissionMode {
  return process.stdin.isTTY && process.stderr.isTTY ? 'ask' : 'deny';
}

export interface RuntimeOptions {
  permission?: PermissionMode;
  /** No asker at all (`loom worker`, `serve`): every ask waits durably for `loom permit`. */
  durableAsks?: boolean;
  /** The coordinator's lease TTL (default OWNER_LEASE_TTL_MS). */
  leaseTtlMs?: number;
  /** Told when a live session stops on an operating failure (a lost lease, a broken store). */
  onSessionFailure?: (sessionId: string, error: unknown) => void;
}

export async function openRuntime(options: RuntimeOptions = {}): Promise<CliRuntime> {
  const { home, store } = openStore();
  const configs = new Map<string, ResolvedConfig>();
  const configFor = async (location: string) => {
    let c = configs.get(location);
    if (!c) {
      c = (await loadConfig({ home, location })).config;
      configs.set(location, c);
    }
    return c;
  };
  const tools = createDefaultRegistry();
  for (const tool of testToolsFromEnv()) tools.register(tool);
  const asker = options.durableAsks ? undefined : createAsker(options.permission ?? defaultPermissionMode());
  const natsUrl = natsUrlFromEnv();
  const nats = natsUrl
    ? startNats({ store, url: natsUrl, name: `loom ${process.argv[2] ?? ''} ${process.pid}`.replace(/\s+/g, ' '), onError: debugNats })
    : undefined;
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
      const config = configs.get(session.location);
      if (!config) throw new Error(`config for ${session.location} was not loaded before owning ${sessionId}`);
      return {
        config,
        home,
        tools,
        resolveProvider: createProviderResolver(config),
        askPermission: asker,
        systemPrompt: defaultSystemPrompt(session.location, new Date(store.clock.now())),
      };
    },
  });
  return {
    home,
    store,
    coordinator,
    nats,
    configFor,
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
      // The process stays alive until the outbox has published what this command committed.
      void nats.close().finally(() => store.close());
    },
  };
}

function debugNats(error: unknown): void {
  if (process.env.LOOM_DEBUG) process.stderr.write(`loom: nats: ${(error as Error)?.message ?? String(error)}\n`);
}

/** The real path of a directory a session will be confined to. */
export function resolveLocation(dir: string): string {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    throw new UsageError(`--dir ${dir}: no such directory`);
  }
  if (!statSync(real).isDirectory()) throw new UsageError(`--dir ${dir}: not a directory`);
  return real;
}
