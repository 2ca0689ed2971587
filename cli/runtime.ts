import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Coordinator } from '../actors/coordinator.js';
import type { PermissionAsker } from '../actors/toolCall.js';
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
  configFor(location: string): Promise<ResolvedConfig>;
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

/** The permission asker for a foreground command: a policy, or a question on the terminal. */
export function createAsker(mode: PermissionMode): PermissionAsker {
  if (mode === 'allow') return async () => ({ reply: 'once' });
  if (mode === 'deny') return async () => ({ reply: 'reject', message: 'denied by --permission deny' });
  return async (ask) => {
    // Nothing can answer without a terminal: refuse rather than wait forever.
    if (!process.stdin.isTTY) return { reply: 'reject', message: 'no terminal to ask on (--permission ask without a TTY)' };
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await rl.question(`Allow ${ask.tool} ${JSON.stringify(ask.input)}? [y]es once / [a]lways / [N]o: `, { signal: ask.signal });
      const a = answer.trim().toLowerCase();
      if (a === 'y' || a === 'yes') return { reply: 'once' };
      if (a === 'a' || a === 'always') return { reply: 'always' };
      return { reply: 'reject', message: 'denied at the terminal' };
    } finally {
      rl.close();
    }
  };
}

export function defaultPermissionMode(): PermissionMode {
  return process.stdin.isTTY && process.stderr.isTTY ? 'ask' : 'deny';
}

export async function openRuntime(options: { permission?: PermissionMode } = {}): Promise<CliRuntime> {
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
  const asker = createAsker(options.permission ?? defaultPermissionMode());
  const coordinator = new Coordinator({
    store,
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
    configFor,
    close() {
      coordinator.shutdown();
      store.close();
    },
  };
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
