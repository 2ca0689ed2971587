import { z } from 'zod';
import {
  BUDGET_COST_USD_MAX,
  BUDGET_TOKENS_MAX,
  AGENT_NAME_CHARS_MAX,
  CHECKPOINT_EVENT_FILES_MAX,
  CHECKPOINT_PATH_CHARS_MAX,
  CHECKPOINT_REASON_CHARS_MAX,
  EVENT_DATA_BYTES_MAX,
  INPUT_ATTACHMENT_NAME_CHARS_MAX,
  INPUT_ATTACHMENTS_MAX,
  PERMISSION_MESSAGE_CHARS_MAX,
  PERMISSION_SUMMARY_CHARS_MAX,
  PLUGIN_ERROR_MESSAGE_CHARS_MAX,
} from '../core/limits.js';
import { InvalidEventError, LimitExceededError, UnknownEventTypeError } from './errors.js';

/**
 * Every session and system event type: its zod schema, its current version, its kind, and the
 * upcasters that turn older stored versions into the current shape on read.
 *
 * - `request` events may be appended by any process; they are checked against state, not epoch.
 * - `owner` events are appended only by the session's owner and are fenced by its epoch.
 * - `system` events are not about one session (sessionId null).
 */
export type EventKind = 'request' | 'owner' | 'system';

const providerMetadata = z.record(z.string(), z.unknown()).optional();
const id = z.string().min(1);

/**
 * A model catalog entry in `model.*` system events. Only `model` was in the first schema; the rest
 * is optional so those events still read. Never a secret: ids, limits and prices only.
 */
const modelEventData = z.object({
  /** `provider/model`. */
  model: z.string(),
  /** Who registered the entry in force: builtin, config, plugin, cli, http, provider. */
  source: z.string().optional(),
  name: z.string().optional(),
  capabilities: z.object({ toolCalling: z.boolean(), reasoning: z.boolean() }).optional(),
  limits: z.object({ context: z.number().int().positive().optional(), output: z.number().int().positive().optional() }).optional(),
  /** US dollars per million tokens. */
  cost: z
    .object({ input: z.number().nonnegative(), output: z.number().nonnegative(), cacheRead: z.number().nonnegative().optional(), cacheWrite: z.number().nonnegative().optional() })
    .optional(),
});

/** `provider.loaded`: only `provider` was in the first schema; the outcome fields are optional. */
const providerLoadedData = z.object({
  provider: z.string(),
  /** The provider kind (openai, openai-responses, anthropic, or a plugin's). */
  kind: z.string().optional(),
  ok: z.boolean().optional(),
  /** Why it failed (secrets scrubbed, bounded by PROVIDER_ERROR_CHARS_MAX). */
  error: z.string().optional(),
  /** Models it registered into the catalog. */
  models: z.number().int().nonnegative().optional(),
  /** What made it load: a config entry, environment variables, or stored credentials. */
  origin: z.enum(['config', 'env', 'credentials']).optional(),
});

export const activityStatus = z.enum([
  'completed',
  'failed',
  'cancelled',
  'turn_limit',
  'budget_exceeded',
  'abandoned',
]);
export type ActivityStatus = z.infer<typeof activityStatus>;

export const toolStatus = z.enum(['ok', 'error', 'denied', 'interrupted']);
export type ToolStatus = z.infer<typeof toolStatus>;

/** How a background job ended (DESIGN §1 "job"). `lost`: its process was gone after a restart and left no exit status. */
export const jobStatus = z.enum(['ok', 'failed', 'cancelled', 'timed_out', 'lost']);
export type JobStatus = z.infer<typeof jobStatus>;

const usage = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  reasoningTokens: z.number().int().nonnegative().optional(),
  cachedInputTokens: z.number().int().nonnegative().optional(),
});

/**
 * A spending cap (DESIGN §3 "budget_exceeded"): tokens (input + output, every turn counted) and/or
 * US dollars (priced from the model catalog). At least one is set.
 */
export const budgetLimit = z
  .strictObject({
    tokens: z.number().int().positive().max(BUDGET_TOKENS_MAX).optional(),
    costUsd: z.number().positive().max(BUDGET_COST_USD_MAX).optional(),
  })
  .refine((b) => b.tokens !== undefined || b.costUsd !== undefined, { message: 'sets neither tokens nor costUsd' });
export type BudgetLimit = z.infer<typeof budgetLimit>;

/**
 * The budgets an input or run request carries, recorded with it so whichever process owns the
 * session enforces them: `activity` caps the activity the request opens or joins (the tightest of
 * its requests wins), `session` caps the session's totals (the last one recorded is in force).
 */
export const requestBudget = z.strictObject({ activity: budgetLimit.optional(), session: budgetLimit.optional() });
export type RequestBudget = z.infer<typeof requestBudget>;

/** Usage summed over turns: tokens, and dollars when the model's price was known (`costUsd` absent: no priced turn). */
export const usageTotals = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative().optional(),
});
export type UsageTotals = z.infer<typeof usageTotals>;

/**
 * A file or URL attached to an input, resolved at admission (tools/attachments.ts): the stored
 * text is what the model sees, so nothing is fetched or read again later.
 */
export const inputAttachment = z.object({
  kind: z.enum(['file', 'url']),
  /** The path (relative to the session directory) or the URL as given. */
  name: z.string().min(1).max(INPUT_ATTACHMENT_NAME_CHARS_MAX),
  mediaType: z.string(),
  text: z.string(),
  /** UTF-8 bytes of `text`. */
  bytes: z.number().int().nonnegative(),
});
export type InputAttachment = z.infer<typeof inputAttachment>;

/**
 * A file's state in a checkpoint: the SHA-256 (hex) of its content, kept under
 * `$LOOM_HOME/checkpoints/blobs/`; `null` when the file did not exist; or `{ uncaptured }` when it
 * existed but its content was not kept (too large, beyond a scan's bound, unreadable) — such a
 * file can be shown as changed but not restored.
 */
export const checkpointFileState = z.union([
  z.string().regex(/^[0-9a-f]{64}$/, 'expected a SHA-256 in hex'),
  z.null(),
  z.object({ uncaptured: z.string().min(1).max(CHECKPOINT_REASON_CHARS_MAX) }),
]);
export type CheckpointFileState = z.infer<typeof checkpointFileState>;

/** One file a tool call changed: its state before the call's first change and after the call. */
export const checkpointFile = z.object({
  /** Relative to the session directory, `/`-separated. */
  path: z.string().min(1).max(CHECKPOINT_PATH_CHARS_MAX),
  before: checkpointFileState,
  after: checkpointFileState,
  /** Permission bits of the file before the change (restored with it), when it existed. */
  mode: z.number().int().min(0).max(0o7777).optional(),
});
export type CheckpointFile = z.infer<typeof checkpointFile>;

const deltaV2 = z.object({ activityId: id, attemptId: id, partId: id, delta: z.string() });
const doneV1 = z.object({ activityId: id, attemptId: id, partId: id, text: z.string(), providerMetadata });

interface Definition {
  kind: EventKind;
  version: number;
  schema: z.ZodType;
  /** upcast[v] turns data stored at version v into version v + 1. */
  upcast?: Record<number, (data: any) => unknown>;
}

export const eventDefinitions = {
  // ---- requests (any process) ----
  'session.created': {
    kind: 'request',
    version: 1,
    schema: z.object({
      location: z.string().min(1),
      model: z.string().min(1),
      title: z.string().optional(),
      parentId: z.string().optional(),
      doubleTexting: z.enum(['steer', 'queue', 'interrupt', 'reject']).optional(),
      // A subagent (the `task` tool): the parent's tool call that runs this session, and the agent
      // profile it asked for. Forks have a parentId and no parentCallId.
      parentCallId: z.string().min(1).optional(),
      agent: z.string().min(1).optional(),
    }),
  },
  'input.admitted': {
    kind: 'request',
    version: 1,
    schema: z.object({
      inputId: id,
      clientId: z.string().min(1).optional(),
      mode: z.enum(['steer', 'queue']),
      text: z.string(),
      source: z.string().optional(),
      attachments: z.array(inputAttachment).max(INPUT_ATTACHMENTS_MAX).optional(),
      budget: requestBudget.optional(),
      /** The agent profile the activity this input opens runs with (checked at admission). */
      agent: z.string().min(1).max(AGENT_NAME_CHARS_MAX).optional(),
    }),
  },
  'input.cancelled': {
    kind: 'request',
    version: 1,
    schema: z.object({ inputId: id, reason: z.string().optional() }),
  },
  'cancel.requested': {
    kind: 'request',
    version: 1,
    schema: z
      .object({ activityId: id.optional(), jobId: id.optional(), reason: z.string().optional() })
      .refine((d) => d.activityId !== undefined || d.jobId !== undefined, {
        message: 'names neither activityId nor jobId',
        path: ['activityId'],
      }),
  },
  // `loom compact` (any process): the owner compacts at its next safe point (actors/compaction.ts).
  'compaction.requested': { kind: 'request', version: 1, schema: z.object({ reason: z.string().optional() }) },
  'permission.replied': {
    kind: 'request',
    version: 1,
    // A reject's message is what the model is told; `once`/`always` may carry one too.
    schema: z.object({ requestId: id, reply: z.enum(['once', 'always', 'reject']), message: z.string().max(PERMISSION_MESSAGE_CHARS_MAX).optional() }),
  },
  // Removes the session's `always` grants of `tool` (only the one with `pattern` when given).
  'permission.revoked': { kind: 'request', version: 1, schema: z.object({ tool: id, pattern: z.string().optional() }) },
  'recovery.decided': {
    kind: 'request',
    version: 1,
    // retry: send the interrupted turn again; continue: resume a safe continuation (no ambiguous
    // request in flight); abandon: settle the activity as abandoned.
    schema: z.object({ activityId: id, decision: z.enum(['retry', 'continue', 'abandon']), reason: z.string().optional(), automatic: z.boolean().optional() }),
  },
  // A plugin's hook threw, timed out or left an invalid draft while it ran for this session: its
  // draft was discarded and the run went on (services/hooks.ts). A request, not an owner event:
  // `input.admitted` hooks run in the admitting process, which need not own the session.
  'plugin.hook.failed': {
    kind: 'request',
    version: 1,
    schema: z.object({
      plugin: z.string().min(1),
      hook: z.enum(['chat.params', 'chat.headers', 'tool.before', 'tool.after', 'input.admitted', 'permission.ask']),
      message: z.string().max(PLUGIN_ERROR_MESSAGE_CHARS_MAX),
      /** The tool call the hook ran for (tool.before, tool.after, permission.ask). */
      callId: id.optional(),
    }),
  },
  'run.requested': { kind: 'request', version: 1, schema: z.object({ runId: id, budget: requestBudget.optional(), agent: z.string().min(1).max(AGENT_NAME_CHARS_MAX).optional() }) },

  // ---- owner events (fenced) ----
  'input.assigned': { kind: 'owner', version: 1, schema: z.object({ inputId: id, activityId: id }) },
  'input.consumed': { kind: 'owner', version: 1, schema: z.object({ inputId: id, activityId: id, attemptId: id }) },
  'input.released': {
    kind: 'owner',
    version: 1,
    schema: z.object({ inputId: id, activityId: id, reason: z.string(), mode: z.enum(['steer', 'queue']).optional() }),
  },
  'activity.opened': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      trigger: z.enum(['input', 'run', 'wake']),
      inputIds: z.array(id),
      turnLimit: z.number().int().positive(),
      /** The agent profile the activity runs with, its model, and that model's context window in tokens. */
      agent: z.string().min(1).max(AGENT_NAME_CHARS_MAX).optional(),
      model: z.string().min(1).optional(),
      contextWindow: z.number().int().positive().optional(),
    }),
  },
  'turn.started': {
    kind: 'owner',
    version: 1,
    schema: z.object({ activityId: id, turnId: id, turn: z.number().int().positive() }),
  },
  'attempt.dispatched': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      turnId: id,
      attemptId: id,
      attempt: z.number().int().positive(),
      model: z.string().min(1),
      inputIds: z.array(id),
    }),
  },
  'text.delta': {
    kind: 'owner',
    version: 2,
    schema: deltaV2,
    // v1 stored `{ partId, text }` before deltas carried their activity and attempt.
    upcast: { 1: (d: any) => ({ activityId: d.activityId ?? 'unknown', attemptId: d.attemptId ?? 'unknown', partId: d.partId, delta: d.text }) },
  },
  'reasoning.delta': { kind: 'owner', version: 1, schema: deltaV2 },
  'text.done': { kind: 'owner', version: 1, schema: doneV1 },
  'reasoning.done': { kind: 'owner', version: 1, schema: doneV1 },
  'tool.called': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      attemptId: id,
      callId: id,
      providerCallId: z.string(),
      tool: z.string(),
      input: z.string(),
      providerMetadata,
    }),
  },
  'tool.started': { kind: 'owner', version: 1, schema: z.object({ callId: id }) },
  'tool.settled': {
    kind: 'owner',
    version: 1,
    schema: z.object({ callId: id, status: toolStatus, output: z.string(), truncated: z.boolean().optional() }),
  },
  'permission.asked': {
    kind: 'owner',
    version: 1,
    // pattern: the scope an `always` reply grants (absent: every call of the tool); summary: the
    // call's input, bounded, so any process can show what is asked.
    schema: z.object({
      requestId: id,
      callId: id,
      tool: z.string(),
      pattern: z.string().optional(),
      summary: z.string().max(PERMISSION_SUMMARY_CHARS_MAX).optional(),
    }),
  },
  'attempt.failed': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      attemptId: id,
      error: z.object({ kind: z.string(), message: z.string(), status: z.number().optional(), retryAfterMs: z.number().optional() }),
      retryable: z.boolean(),
      receivedChunks: z.boolean(),
      discardedParts: z.array(id),
      /** False when the attempt failed before its request was dispatched (nothing was sent). */
      dispatched: z.boolean().optional(),
    }),
  },
  // A retryable failure the machine decided to retry: the next attempt waits `delayMs` (exponential
  // backoff with jitter, at least the provider's retry-after), drawn by the owner and recorded so a
  // replay of the log waits the same.
  'attempt.retrying': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      failedAttemptId: id,
      /** The number of the attempt about to be made (2 for the first retry). */
      nextAttempt: z.number().int().positive(),
      delayMs: z.number().int().nonnegative(),
      /** The failure retried, as `kind: message`. */
      reason: z.string(),
      retryAfterMs: z.number().int().nonnegative().optional(),
    }),
  },
  'turn.finished': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      turnId: id,
      attemptId: id,
      finishReason: z.string(),
      usage,
      toolCalls: z.number().int().nonnegative(),
      /** What the turn cost in US dollars, from the model catalog's price; absent when no price is known. */
      costUsd: z.number().nonnegative().optional(),
      providerMetadata,
    }),
  },
  'activity.settled': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      status: activityStatus,
      reason: z.string().optional(),
      turns: z.number().int().nonnegative(),
      /** Tokens (and cost) of every finished turn of the activity. */
      usage: usageTotals.optional(),
    }),
  },
  'recovery.detected': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      reason: z.string(),
      attemptId: id.optional(),
      restarts: z.number().int().nonnegative(),
      // ambiguous: a request may or may not have reached the provider; safe: nothing was in flight;
      // tools: the stream finished and tool calls were left unsettled; crash_loop: too many restarts.
      classification: z.enum(['ambiguous', 'safe', 'tools', 'crash_loop']).optional(),
    }),
  },
  // ---- compaction (owner events; issue 9, context management) ----
  // A compaction replaces the conversation up to a boundary with a summary in later requests.
  'compaction.started': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      compactionId: id,
      /** auto: the next request neared the window; requested: `compaction.requested`; overflow: the provider said the context is too long. */
      reason: z.enum(['auto', 'requested', 'overflow']),
      /** The activity it runs in (absent between activities). */
      activityId: id.optional(),
      /** The estimate that triggered it and the window it was compared with, in tokens. */
      estimatedTokens: z.number().int().nonnegative().optional(),
      windowTokens: z.number().int().positive().optional(),
      /** Times it was started again after its process was lost mid-summary (0 the first time). */
      restarts: z.number().int().nonnegative().optional(),
    }),
  },
  'compaction.finished': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      compactionId: id,
      summary: z.string().min(1),
      /** Messages with seq <= throughSeq are covered by the summary; later ones are sent verbatim. */
      throughSeq: z.number().int().nonnegative(),
      /** Messages this summary covers beyond the previous one's, and the turns kept verbatim after it. */
      coveredMessages: z.number().int().nonnegative(),
      keptTurns: z.number().int().nonnegative(),
      /** Estimated tokens of the conversation as the next request sends it. */
      estimatedTokens: z.number().int().nonnegative(),
      model: z.string().min(1),
      usage: usage.optional(),
    }),
  },
  'compaction.failed': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      compactionId: id,
      /** nothing_to_compact, provider (the summary request failed), empty (no summary text), cancelled, forked, crash_loop. */
      kind: z.string().min(1),
      reason: z.string(),
    }),
  },
  // ---- background jobs (owner events) ----
  'job.started': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      jobId: id,
      kind: z.enum(['bash', 'task']),
      /** The activity and tool call that started it (absent for jobs started outside a tool call). */
      activityId: id.optional(),
      callId: id.optional(),
      /** The command (bash) or the prompt (task), cut to JOB_SUMMARY_CHARS_MAX characters. */
      summary: z.string(),
      description: z.string().optional(),
      /** The process group leader (bash): its pid, its pgid (= pid) and its start time from /proc (field 22). */
      pid: z.number().int().positive().optional(),
      pgid: z.number().int().positive().optional(),
      processStartTime: z.number().int().nonnegative().optional(),
      /** Where the job's output goes (written by the process itself); `<jobId>.exit` beside it gets the exit code. */
      outputPath: z.string().min(1),
      /** Running-time bound; the deadline is `startedAt + timeoutMs`, re-armed after a restart. */
      timeoutMs: z.number().int().positive(),
      startedAt: z.string().min(1),
    }),
  },
  'job.output': {
    kind: 'owner',
    version: 1,
    // Bytes [offset, offset + chunk) of the output file; `skippedBytes` before `offset` were not reported.
    schema: z.object({ jobId: id, offset: z.number().int().nonnegative(), chunk: z.string(), skippedBytes: z.number().int().nonnegative().optional() }),
  },
  'job.settled': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      jobId: id,
      status: jobStatus,
      exitCode: z.number().int().optional(),
      signal: z.string().optional(),
      /** The last JOB_OUTPUT_TAIL_BYTES_MAX bytes of the output file, and its size. */
      outputTail: z.string(),
      outputBytes: z.number().int().nonnegative(),
      reason: z.string().optional(),
    }),
  },

  // ---- file checkpoints (owner events; issue 9) ----
  // What one tool call changed in the session directory, recorded with its settlement (or right
  // after it, when the call was settled early while the tool still ran). `incomplete` says why the
  // capture is not the whole story (a bash scan past its bounds, a background job, a tool still
  // running); `omittedFiles` counts changed files past CHECKPOINT_EVENT_FILES_MAX.
  'checkpoint.recorded': {
    kind: 'owner',
    version: 1,
    schema: z.object({
      activityId: id,
      callId: id,
      tool: z.string().min(1),
      files: z.array(checkpointFile).max(CHECKPOINT_EVENT_FILES_MAX),
      incomplete: z.string().min(1).max(CHECKPOINT_REASON_CHARS_MAX).optional(),
      omittedFiles: z.number().int().positive().optional(),
    }),
  },
  // Files put back (`loom undo`: the files an activity changed, to before it; `loom session fork
  // --restore-files`: the directory to its state at the fork point). `from` is what the file held
  // (the recorded after-state, verified), `to` what it holds now. `skipped` names files not
  // restored (an undo with --partial: their prior content was not captured).
  'checkpoint.restored': {
    kind: 'owner',
    version: 1,
    schema: z
      .object({
        reason: z.enum(['undo', 'fork']),
        activityId: id.optional(),
        atSeq: z.number().int().positive().optional(),
        sourceId: id.optional(),
        files: z
          .array(z.object({ path: z.string().min(1).max(CHECKPOINT_PATH_CHARS_MAX), from: checkpointFileState, to: checkpointFileState }))
          .max(CHECKPOINT_EVENT_FILES_MAX),
        skipped: z.array(z.object({ path: z.string().min(1).max(CHECKPOINT_PATH_CHARS_MAX), reason: z.string().max(CHECKPOINT_REASON_CHARS_MAX) })).max(CHECKPOINT_EVENT_FILES_MAX).optional(),
      })
      .refine((d) => (d.reason === 'undo' ? d.activityId !== undefined : d.atSeq !== undefined), {
        message: 'an undo names its activityId, a fork restore its atSeq',
        path: ['reason'],
      }),
  },

  // ---- system events ----
  'config.updated': {
    kind: 'system',
    version: 1,
    schema: z.object({
      /** The file whose change was applied. */
      source: z.string(),
      /** Dotted paths of the settings that changed (never values). */
      keys: z.array(z.string()),
      /** The session directory whose config in force changed; absent for the global config alone. */
      location: z.string().optional(),
      /** The files in force after the change, global first. */
      files: z.array(z.string()).optional(),
      /** Changed keys beyond CONFIG_UPDATED_KEYS_MAX, counted only. */
      more: z.number().int().positive().optional(),
    }),
  },
  // A changed config file that could not be applied (the last good config stays in force).
  'config.rejected': {
    kind: 'system',
    version: 1,
    schema: z.object({
      file: z.string(),
      /** The whole error, as the CLI prints it (file:line:column: "key": what is wrong). */
      message: z.string(),
      key: z.string().optional(),
      line: z.number().int().positive().optional(),
      column: z.number().int().positive().optional(),
    }),
  },
  // A provider plugin finished loading (llm/providers.ts): ok, or the error (never a secret).
  'provider.loaded': { kind: 'system', version: 1, schema: providerLoadedData },
  // The model catalog changed (llm/catalog.ts): the entry as it is now (removed: as it was).
  'model.added': { kind: 'system', version: 1, schema: modelEventData },
  'model.updated': { kind: 'system', version: 1, schema: modelEventData },
  'model.removed': { kind: 'system', version: 1, schema: modelEventData },
  // `source`: where the tool comes from (`mcp:<server>`, `plugin:<name>`; absent for built-ins);
  // `reason`: why it left (an MCP server went down, its tool list changed, it was removed from config).
  'registry.tool.added': { kind: 'system', version: 1, schema: z.object({ tool: z.string(), source: z.string().optional() }) },
  'registry.tool.removed': { kind: 'system', version: 1, schema: z.object({ tool: z.string(), source: z.string().optional(), reason: z.string().optional() }) },
  // auth: a provider's credential in $LOOM_HOME/auth.json was set, removed or refreshed. Never the
  // secret, nor any part of it: the provider id and what happened only. `origin` says whether Loom
  // made the change (`loom auth set|rm`, a token refresh) or it was found edited by hand.
  'auth.updated': {
    kind: 'system',
    version: 1,
    schema: z.strictObject({ provider: z.string().min(1), change: z.enum(['set', 'removed', 'refreshed']), origin: z.enum(['loom', 'edit']) }),
  },
  // Plugins (services/plugins.ts): loaded in the background by every process that runs sessions.
  // `module` is the specifier as the config names it; nothing of a plugin's options is recorded.
  'plugin.loaded': {
    kind: 'system',
    version: 1,
    schema: z.object({
      plugin: z.string().min(1),
      module: z.string().min(1),
      /** What it registered while loading (names, bounded by PLUGIN_LOADED_NAMES_MAX each). */
      tools: z.array(z.string()),
      models: z.array(z.string()),
      hooks: z.array(z.string()),
      /** Time from the start of its import to the end of its function, in milliseconds. */
      ms: z.number().nonnegative(),
    }),
  },
  'plugin.failed': {
    kind: 'system',
    version: 1,
    schema: z.object({
      plugin: z.string().min(1),
      module: z.string().min(1),
      // import: the module could not be imported (or has no plugin function); init: its function
      // threw or timed out; listener: a `loom.on` handler failed (first failure per subscription);
      // hook: a hook failed where no session was concerned.
      stage: z.enum(['import', 'init', 'listener', 'hook']),
      message: z.string().max(PLUGIN_ERROR_MESSAGE_CHARS_MAX),
      hook: z.string().optional(),
    }),
  },
  // A loaded plugin was taken out (removed from the config, or its entry changed): its tools,
  // models, hooks and listeners are gone.
  'plugin.unloaded': { kind: 'system', version: 1, schema: z.object({ plugin: z.string().min(1), module: z.string().min(1), reason: z.string() }) },
  // A session and everything stored about it were removed (`loom session rm`, `DELETE /sessions/:id`,
  // retention): its log is gone, so the removal is told in the system log.
  'session.removed': {
    kind: 'system',
    version: 1,
    schema: z.object({ sessionId: id, reason: z.enum(['rm', 'retention']), events: z.number().int().nonnegative(), forced: z.boolean().optional() }),
  },
} satisfies Record<string, Definition>;

export type EventType = keyof typeof eventDefinitions;
export type EventData<T extends EventType> = z.infer<(typeof eventDefinitions)[T]['schema']>;

/** The envelope, the same in the store, CLI `--json`, SSE and NATS. */
export interface Envelope<T extends EventType = EventType> {
  sessionId: string | null;
  seq: number;
  gseq: number;
  type: T;
  version: number;
  at: string;
  data: EventData<T>;
}

/** An envelope typed by its `type`, so `switch (e.type)` narrows `data`. */
export type AnyEnvelope = { [T in EventType]: Envelope<T> }[EventType];

export function definitionOf(type: string): Definition {
  const def = (eventDefinitions as Record<string, Definition>)[type];
  if (!def) throw new UnknownEventTypeError(type);
  return def;
}

/** Validates data for writing at the current version; returns the parsed data and its JSON. */
export function validateForWrite(type: string, data: unknown): { data: unknown; json: string; def: Definition } {
  const def = definitionOf(type);
  const parsed = def.schema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 ? issue.path.join('.') : '(data)';
    throw new InvalidEventError(type, field, issue.message);
  }
  const json = JSON.stringify(parsed.data);
  if (json.length > EVENT_DATA_BYTES_MAX && Buffer.byteLength(json) > EVENT_DATA_BYTES_MAX) {
    throw new LimitExceededError('EVENT_DATA_BYTES_MAX', `${type} data is ${Buffer.byteLength(json)} bytes`);
  }
  return { data: parsed.data, json, def };
}

/** Brings stored data of `version` up to the current version of `type`; unknown ones fail loudly. */
export function upcast(type: string, version: number, data: unknown): unknown {
  const def = definitionOf(type);
  if (version === def.version) return data;
  if (version > def.version || version < 1) throw new UnknownEventTypeError(type, version);
  let current = data;
  for (let v = version; v < def.version; v++) {
    const step = def.upcast?.[v];
    if (!step) throw new UnknownEventTypeError(type, version);
    current = step(current);
  }
  return current;
}
