/**
 * Plugin hooks (DESIGN §8): named points in the session loop where plugins may change what is
 * about to happen. Each hook gets an immer draft of the value; its changes are kept only when it
 * returns in time and leaves a valid value. A hook that throws, times out or leaves an invalid
 * value has its draft discarded (the value before it is kept), its failure recorded, and the run
 * goes on with the next hook.
 *
 * | hook | draft | runs |
 * |---|---|---|
 * | `chat.params` | `{ model, messages, maxOutputTokens?, temperature?, topP? }` | before each provider request (actors/providerTurn.ts) |
 * | `chat.headers` | extra HTTP headers (starts empty) | before each provider request; credential headers are refused and the adapter's own headers win (a hook never sees a credential) |
 * | `tool.before` | `{ tool, input }` (`tool` read-only) | after the permission decision, before the tool runs (actors/toolCall.ts) |
 * | `tool.after` | `{ tool, output, isError }` (`tool` read-only) | after the tool ran, before its result is recorded |
 * | `input.admitted` | `{ text, mode? }` | before an input is stored (every surface: CLI, HTTP, plugins) |
 * | `permission.ask` | `{ tool, pattern?, summary, decision: 'ask', message? }` | when the rules say ask and no grant covers the call; `allow` runs it, `deny` refuses it |
 *
 * Hooks run one after the other in plugin order (the order of the `plugins` config key), each
 * under PLUGIN_HOOK_TIMEOUT_MS. When no plugin registered a hook of a name, `run` returns its
 * value untouched without building a draft.
 */
import { Immer, type Draft, type Objectish } from 'immer';
import { z } from 'zod';
import {
  INPUT_TEXT_BYTES_MAX,
  PERMISSION_MESSAGE_CHARS_MAX,
  PERMISSION_SUMMARY_CHARS_MAX,
  PLUGIN_ERROR_MESSAGE_CHARS_MAX,
  PLUGIN_HEADER_VALUE_CHARS_MAX,
  PLUGIN_HEADERS_MAX,
  PLUGIN_HOOK_TIMEOUT_MS,
} from '../core/limits.js';
import { CREDENTIAL_HEADERS } from '../llm/headers.js';
import type { ChatMessage } from '../llm/types.js';
import { admitWithPolicy, type Admission, type AdmitWithPolicyRequest, type AppendRequest, type Store } from '../store/index.js';

export const HOOK_NAMES = ['chat.params', 'chat.headers', 'tool.before', 'tool.after', 'input.admitted', 'permission.ask'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** The provider request as `chat.params` hooks see it: no signal, no tools, no credentials. */
export interface ChatParams {
  /** The provider's model id (without the `provider/` prefix). */
  model: string;
  messages: ChatMessage[];
  maxOutputTokens?: number;
  temperature?: number;
  topP?: number;
}

/** The value each hook's draft is made from. */
export interface HookDrafts {
  'chat.params': ChatParams;
  'chat.headers': Record<string, string>;
  'tool.before': { tool: string; input: unknown };
  'tool.after': { tool: string; output: string; isError: boolean };
  /** `mode` unset: the session's double-texting policy decides at admission. */
  'input.admitted': { text: string; mode?: 'steer' | 'queue' };
  /** `message`: what the model is told when the decision is `deny`. */
  'permission.ask': { tool: string; pattern?: string; summary: string; decision: 'ask' | 'allow' | 'deny'; message?: string };
}

/** What a hook is told about where it runs (read-only). */
export interface HookContext {
  sessionId?: string;
  /** The session's directory. */
  location?: string;
  /** The session's model, `provider/model`. */
  model?: string;
  activityId?: string;
  /** The tool call (tool and permission hooks). */
  callId?: string;
  /** Who sent the input (`cli`, `http`, `plugin:<name>`): `input.admitted`. */
  source?: string;
  /** The call's parsed input (a copy): `permission.ask` and `tool.after`. */
  input?: unknown;
}

/** A hook: change `draft` in place (its return value is ignored). */
export type HookFn<N extends HookName = HookName> = (draft: Draft<HookDrafts[N]>, ctx: Readonly<HookContext>) => void | Promise<void>;

/** A hook that failed; its draft was discarded. `message` is bounded and has known secrets removed. */
export interface HookFailure {
  plugin: string;
  hook: HookName;
  message: string;
  ctx: HookContext;
}

export interface Hooks {
  /** Whether any plugin registered a hook of this name now. */
  has(name: HookName): boolean;
  /**
   * Runs every hook of `name` over `value` in plugin order and returns the result (`value` itself
   * when no hook changed it; `value` is never modified). Never rejects: a failing hook is reported
   * to `report` (default: recorded as `plugin.hook.failed` in the session's log, or as a
   * `plugin.failed` system event without a session) and skipped.
   */
  run<N extends HookName>(name: N, value: HookDrafts[N], ctx: HookContext, report?: (failure: HookFailure) => void): Promise<HookDrafts[N]>;
}

/** No plugin: every `run` returns its value. For sessions built without a plugin host (tests, tools). */
export const NO_HOOKS: Hooks = {
  has: () => false,
  run: async (_name, value) => value,
};

/** A hook that did not finish within its time. */
export class PluginTimeoutError extends Error {
  override name = 'PluginTimeoutError';
  constructor(what: string, readonly timeoutMs: number) {
    super(`${what} timed out after ${timeoutMs} ms`);
  }
}

/**
 * Resolves or rejects like `work`, or rejects with PluginTimeoutError after `ms`. The work itself
 * is not stopped (a plugin's promise cannot be cancelled); its late result is ignored. The timer
 * does not keep the process alive.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PluginTimeoutError(what, ms)), ms);
    timer.unref();
  });
  work.catch(() => {}); // a late rejection after the timeout is not an unhandled rejection
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** A plugin's error as one bounded line, for events and logs. */
export function errorMessage(error: unknown, scrub: (text: string) => string = (t) => t): string {
  const raw = error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error);
  const text = scrub(raw.replace(/\s+/g, ' ').trim());
  return text.length > PLUGIN_ERROR_MESSAGE_CHARS_MAX ? `${text.slice(0, PLUGIN_ERROR_MESSAGE_CHARS_MAX - 1)}…` : text;
}

// ---- validation of what a hook leaves -----------------------------------------------------------

const metadata = z.record(z.string(), z.unknown()).optional();
const chatMessageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: z.string() }),
  z.object({ role: z.literal('user'), content: z.string() }),
  z.object({
    role: z.literal('assistant'),
    content: z.string(),
    reasoning: z.string().optional(),
    toolCalls: z.array(z.object({ id: z.string(), name: z.string(), arguments: z.string(), providerMetadata: metadata })).optional(),
    providerMetadata: metadata,
  }),
  z.object({ role: z.literal('tool'), toolCallId: z.string(), name: z.string(), content: z.string(), isError: z.boolean().optional() }),
]);

/** RFC 9110 token characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the HTTP client manages; a hook setting one would break the request. */
const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'proxy-connection']);

const headersSchema = z
  .record(
    z.string().regex(HEADER_NAME, 'is not a valid header name'),
    z.string().max(PLUGIN_HEADER_VALUE_CHARS_MAX).regex(/^[\t\x20-\x7e]*$/, 'may hold only printable ASCII (no line breaks)'),
  )
  .superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > PLUGIN_HEADERS_MAX) ctx.addIssue({ code: 'custom', message: `at most ${PLUGIN_HEADERS_MAX} headers` });
    const seen = new Set<string>();
    for (const name of names) {
      const lower = name.toLowerCase();
      if (FORBIDDEN_HEADERS.has(lower)) ctx.addIssue({ code: 'custom', path: [name], message: 'is managed by the HTTP client and may not be set' });
      if (CREDENTIAL_HEADERS.has(lower)) ctx.addIssue({ code: 'custom', path: [name], message: 'carries a credential: credentials come from the provider configuration (loom auth), never from a hook' });
      if (seen.has(lower)) ctx.addIssue({ code: 'custom', path: [name], message: 'is set twice (header names ignore case)' });
      seen.add(lower);
    }
  });

const validators: { [N in HookName]: z.ZodType } = {
  'chat.params': z.strictObject({
    model: z.string().min(1),
    messages: z.array(chatMessageSchema).min(1),
    maxOutputTokens: z.number().int().positive().optional(),
    temperature: z.number().min(0).max(2).optional(),
    topP: z.number().gt(0).max(1).optional(),
  }),
  'chat.headers': headersSchema,
  'tool.before': z.strictObject({ tool: z.string(), input: z.unknown() }),
  'tool.after': z.strictObject({ tool: z.string(), output: z.string(), isError: z.boolean() }),
  'input.admitted': z.strictObject({
    text: z
      .string()
      .refine((t) => t.trim() !== '', 'is empty')
      .refine((t) => Buffer.byteLength(t) <= INPUT_TEXT_BYTES_MAX, `is over ${INPUT_TEXT_BYTES_MAX} bytes`),
    mode: z.enum(['steer', 'queue']).optional(),
  }),
  'permission.ask': z.strictObject({
    tool: z.string(),
    pattern: z.string().min(1).optional(),
    summary: z.string().max(PERMISSION_SUMMARY_CHARS_MAX),
    decision: z.enum(['ask', 'allow', 'deny']),
    message: z.string().max(PERMISSION_MESSAGE_CHARS_MAX).optional(),
  }),
};

/** Why a hook's result is unusable, or undefined when it is fine. */
function problemWith(name: HookName, next: unknown, before: unknown): string | undefined {
  const parsed = validators[name].safeParse(next);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 ? `"${issue.path.join('.')}": ` : '';
    const key = issue.code === 'unrecognized_keys' ? `"${issue.keys.join(', ')}": ` : '';
    return `${field}${key}${issue.code === 'unrecognized_keys' ? 'is not a field of this draft' : issue.message}`;
  }
  const tool = (before as { tool?: unknown }).tool;
  if (tool !== undefined && (next as { tool?: unknown }).tool !== tool) return '"tool": is read-only';
  return undefined;
}

// ---- the registry -------------------------------------------------------------------------------

/** Drafts are never frozen: the session keeps using the values hooks return. */
const immer = new Immer({ autoFreeze: false });

interface Entry {
  plugin: string;
  /** The plugin's position in the config (hooks run in this order, then by registration). */
  order: () => number;
  seq: number;
  fn: HookFn<any>;
}

export interface HookRegistryOptions {
  /** Per hook call (default PLUGIN_HOOK_TIMEOUT_MS). */
  timeoutMs?: number;
  /**
   * What hooks must wait for before they run (the plugin host: its config being read and its
   * `required` plugins loading); undefined when nothing is pending, which keeps `run` free.
   */
  gate?: () => Promise<void> | undefined;
  /** Records a failure when `run` was given no `report` (the runtime records an event). */
  report?: (failure: HookFailure) => void;
  /** Removes known secrets from failure messages. */
  scrub?: (text: string) => string;
}

/** The hooks of every plugin in this process. */
export class HookRegistry implements Hooks {
  private readonly entries = new Map<HookName, Entry[]>();
  private seq = 0;

  constructor(private readonly options: HookRegistryOptions = {}) {}

  /** Adds a hook for `plugin`; returns the function that removes it. Throws for an unknown name. */
  add<N extends HookName>(plugin: { name: string; order: () => number }, name: N, fn: HookFn<N>): () => void {
    if (!(HOOK_NAMES as readonly string[]).includes(name)) throw new Error(`unknown hook "${String(name)}"; hooks: ${HOOK_NAMES.join(', ')}`);
    if (typeof fn !== 'function') throw new Error(`the ${name} hook must be a function`);
    const entry: Entry = { plugin: plugin.name, order: plugin.order, seq: this.seq++, fn };
    const list = [...(this.entries.get(name) ?? []), entry];
    this.entries.set(name, list);
    return () => {
      const now = this.entries.get(name) ?? [];
      const rest = now.filter((e) => e !== entry);
      if (rest.length === 0) this.entries.delete(name);
      else this.entries.set(name, rest);
    };
  }

  /** True when hooks of `name` are registered, or may be once what the gate waits for has loaded. */
  has(name: HookName): boolean {
    return this.entries.has(name) || this.options.gate?.() !== undefined;
  }

  async run<N extends HookName>(name: N, value: HookDrafts[N], ctx: HookContext, report?: (failure: HookFailure) => void): Promise<HookDrafts[N]> {
    const pending = this.options.gate?.();
    if (pending) await pending;
    const list = this.entries.get(name);
    if (list === undefined) return value;
    const ordered = list.length === 1 ? list : [...list].sort((a, b) => a.order() - b.order() || a.seq - b.seq);
    const seen = Object.freeze({ ...ctx });
    const timeoutMs = this.options.timeoutMs ?? PLUGIN_HOOK_TIMEOUT_MS;
    let current = value;
    for (const entry of ordered) {
      const fail = (message: string) => {
        const failure: HookFailure = { plugin: entry.plugin, hook: name, message: errorMessage(message, this.options.scrub), ctx };
        try {
          (report ?? this.options.report)?.(failure);
        } catch {
          // recording the failure failed (the store closed): the run goes on regardless
        }
      };
      const draft = immer.createDraft(current as Objectish) as Draft<HookDrafts[N]>;
      let next: HookDrafts[N];
      try {
        await withTimeout(Promise.resolve().then(() => entry.fn(draft, seen)), timeoutMs, `the ${name} hook`);
        next = immer.finishDraft(draft) as HookDrafts[N];
      } catch (error) {
        fail(errorMessage(error));
        continue;
      }
      if (next === current) continue;
      const problem = problemWith(name, next, current);
      if (problem !== undefined) {
        fail(`left an invalid draft: ${problem}`);
        continue;
      }
      current = next;
    }
    return current;
  }
}

// ---- recording failures -------------------------------------------------------------------------

/** The `plugin.hook.failed` request for a failure that concerns a session. */
export function hookFailedEvent(sessionId: string, failure: HookFailure): AppendRequest {
  return {
    sessionId,
    type: 'plugin.hook.failed',
    data: { plugin: failure.plugin, hook: failure.hook, message: failure.message, ...(failure.ctx.callId === undefined ? {} : { callId: failure.ctx.callId }) },
  };
}

/**
 * Records a hook failure: in the session's log when the hook ran for a session that exists, else as
 * a `plugin.failed` system event (stage `hook`). Any process may record it (it is a request).
 */
export function recordHookFailure(store: Store, failure: HookFailure, module = failure.plugin): void {
  const sessionId = failure.ctx.sessionId;
  if (sessionId !== undefined && store.queries.session(sessionId)) {
    store.append(hookFailedEvent(sessionId, failure));
    return;
  }
  store.append({ sessionId: null, type: 'plugin.failed', data: { plugin: failure.plugin, module, stage: 'hook', message: failure.message, hook: failure.hook } });
}

// ---- the admission path -------------------------------------------------------------------------

/**
 * Runs the `input.admitted` hooks over an input about to be admitted and returns the request to
 * admit. Failures go to `report` (default: recorded in the session's log at once); a caller that
 * creates the session in the same transaction collects them and records them after it.
 */
export async function runInputHooks(hooks: Hooks, ctx: HookContext, request: AdmitWithPolicyRequest, report?: (failure: HookFailure) => void): Promise<AdmitWithPolicyRequest> {
  if (!hooks.has('input.admitted')) return request;
  const draft = await hooks.run('input.admitted', { text: request.text, ...(request.mode === undefined ? {} : { mode: request.mode }) }, ctx, report);
  const { mode: _mode, ...rest } = request;
  return { ...rest, text: draft.text, ...(draft.mode === undefined ? {} : { mode: draft.mode }) };
}

/**
 * Admits an input the way every surface does (store/admission.ts `admitWithPolicy`), after the
 * plugins' `input.admitted` hooks: what the hooks leave is what is stored. A hook failure is
 * recorded in the session's log (before the input). Throws what admitWithPolicy throws.
 */
export async function admitWithHooks(store: Store, hooks: Hooks, sessionId: string, request: AdmitWithPolicyRequest): Promise<Admission> {
  if (!hooks.has('input.admitted')) return admitWithPolicy(store, sessionId, request);
  const session = store.queries.session(sessionId);
  const ctx: HookContext = {
    sessionId,
    ...(session ? { location: session.location, model: session.model } : {}),
    ...(request.source === undefined ? {} : { source: request.source }),
  };
  return admitWithPolicy(store, sessionId, await runInputHooks(hooks, ctx, request));
}
