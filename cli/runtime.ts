import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { natsUrlFromEnv } from '../actors/nats.js';
import type { PermissionAnswer, PermissionAsk, PermissionAsker } from '../actors/permission.js';
import { resolveLoomHome } from '../services/config.js';
import { defaultSystemPrompt, openLoomRuntime, type LoomRuntime } from '../services/runtime.js';
import { Store } from '../store/index.js';
import { printConfigNote } from './configNotes.js';
import { UsageError } from './exit.js';

export { defaultSystemPrompt };

export type PermissionMode = 'allow' | 'deny' | 'ask';

/** What a CLI command works with: the shared loom runtime (store, config, tools, coordinator, NATS). */
export type CliRuntime = LoomRuntime;

export function openStore(): { home: string; store: Store } {
  const home = resolveLoomHome();
  mkdirSync(home, { recursive: true });
  return { home, store: Store.open(join(home, 'loom.db')) };
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
  /** Connect the configured MCP servers at once (long-lived processes) instead of with the first owned session. */
  mcp?: 'lazy' | 'eager';
}

export async function openRuntime(options: RuntimeOptions = {}): Promise<CliRuntime> {
  return openLoomRuntime({
    home: resolveLoomHome(),
    natsUrl: natsUrlFromEnv(),
    processName: `loom ${process.argv[2] ?? ''} ${process.pid}`.replace(/\s+/g, ' '),
    asker: options.durableAsks ? undefined : createAsker(options.permission ?? defaultPermissionMode()),
    leaseTtlMs: options.leaseTtlMs,
    onSessionFailure: options.onSessionFailure,
    onConfigNotes: (note) => printConfigNote(note),
    mcp: options.mcp,
  });
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
