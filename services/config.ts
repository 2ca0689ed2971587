/**
 * Configuration: versioned JSONC files, migrated to the current version in memory, validated
 * strictly, merged, and completed with the defaults from core/limits.ts.
 *
 * Files, later ones overriding earlier ones:
 * - `$LOOM_HOME/config.jsonc` (global);
 * - `<session directory>/.loom/config.jsonc` (project).
 * Objects merge key by key; permission rules are concatenated (global first, so project rules win
 * under "last matching rule wins").
 *
 * Versions: a file without `version` is version 0 (`{ defaultModel, turnLimit }`); version 1 kept
 * provider credentials in the file; version 2 (current) makes `providers` a map of provider id →
 * settings and holds no credentials. Each version below the current one has one migration step
 * in `migrations` that also says, in sentences, what it changed; a new version adds a step and
 * a schema, and old files keep working unchanged on disk (`loom config migrate` rewrites them).
 * A version newer than this Loom knows is refused rather than guessed at.
 *
 * The current version is made of *sections*, one per top-level key: a schema, the defaults that
 * complete it, and optionally how it merges and what a project file may not set. Adding a key is
 * one line in `sections` plus its self-contained section block.
 *
 * The live, watched version of this (hot reload) is services/configService.ts.
 */
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import {
  CONFIG_FILE_BYTES_MAX,
  CONFIG_MODEL_COST_MAX,
  CONFIG_MODEL_TOKENS_MAX,
  CONFIG_PERMISSION_RULES_MAX,
  CONFIG_PROVIDER_HEADER_CHARS_MAX,
  CONFIG_PROVIDER_HEADERS_MAX,
  CONFIG_PROVIDER_MODELS_MAX,
  CONFIG_PROVIDERS_MAX,
  CONFIG_TOOL_CALLS_PER_TURN_MAX,
  CONFIG_TOOL_CONCURRENCY_MAX,
  CONFIG_TOOL_TIMEOUT_MAX_MS,
  CONFIG_TURN_LIMIT_MAX,
  TOOL_CALLS_PER_TURN_MAX,
  TOOL_CONCURRENCY_PER_SESSION_MAX,
  TOOL_TIMEOUT_DEFAULT_MS,
  TURN_LIMIT_DEFAULT,
  ACTIVITY_RESTARTS_MAX,
  CONFIG_RECOVERY_RESTARTS_MAX,
  CONFIG_RECOVERY_RETRY_BUDGET_MAX,
  RECOVERY_RETRY_BUDGET_DEFAULT,
  CONFIG_RETENTION_DAYS_MAX,
  PLUGINS_MAX,
  PLUGIN_LOAD_TIMEOUT_MAX_MS,
  MCP_ARGS_MAX,
  MCP_ENV_ENTRIES_MAX,
  MCP_SERVER_NAME_CHARS_MAX,
  MCP_SERVERS_MAX,
  MCP_TOOLS_PER_SERVER_MAX,
  MODEL_ID_CHARS_MAX,
  AGENT_DESCRIPTION_CHARS_MAX,
  AGENT_NAME_CHARS_MAX,
  AGENT_PROMPT_CHARS_MAX,
  AGENT_TOOL_SWITCHES_MAX,
  AGENTS_MAX,
  COMPACTION_FALLBACK_WINDOW_TOKENS,
  COMPACTION_KEEP_RECENT_TURNS_DEFAULT,
  COMPACTION_KEEP_RECENT_TURNS_MAX,
  COMPACTION_THRESHOLD_DEFAULT,
  COMPACTION_THRESHOLD_MAX,
  COMPACTION_THRESHOLD_MIN,
  COMPACTION_WINDOW_TOKENS_MAX,
  COMPACTION_WINDOW_TOKENS_MIN,
  CHECKPOINT_RETENTION_DAYS_DEFAULT,
  CHECKPOINT_STORE_BYTES_DEFAULT,
  CONFIG_CHECKPOINT_STORE_BYTES_MAX,
} from '../core/limits.js';
import { readUpTo } from '../core/files.js';
import { requestBudget, type RequestBudget } from '../store/schemas.js';
import { permissionActionSchema, permissionRuleSchema, type PermissionAction, type PermissionRule } from '../tools/permission.js';
import { locateJsonPath, parseJsonc, type TextPosition } from './jsonc.js';

/** The config version this Loom writes and reads natively. */
export const CONFIG_VERSION_CURRENT = 2;

/** Name of the config file in `$LOOM_HOME` and in a project's `.loom/` directory. */
export const CONFIG_FILE_NAME = 'config.jsonc';

/** Where in a file a config problem is; every ConfigError names the file. */
export interface ConfigErrorLocation {
  /** Dotted path of the offending key (`limits.turnLimit`, `permission.rules.0.action`). */
  field?: string;
  /** 1-based line and column: of a syntax error, or of the offending key (or its nearest written parent). */
  line?: number;
  column?: number;
}

/** A config file that cannot be used: unreadable, too big, not JSONC, or not valid for its version. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly field?: string;
  readonly line?: number;
  readonly column?: number;
  constructor(
    readonly file: string,
    readonly detail: string,
    where: ConfigErrorLocation = {},
  ) {
    super(`${file}${where.line === undefined ? '' : `:${where.line}:${where.column ?? 1}`}: ${where.field === undefined ? '' : `"${where.field}": `}${detail}`);
    this.field = where.field;
    this.line = where.line;
    this.column = where.column;
  }
}

/** Finds where a key path is written in the file being read (undefined when it is not). */
export type ConfigLocator = (path: readonly (string | number)[]) => TextPosition | undefined;

/**
 * A key path as users read it: `limits.turnLimit`, `permission.rules.0.action`; a key that is
 * not a plain name is quoted in brackets (`providers.openai.models["gpt-4.1"]`).
 */
export function formatConfigPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) {
    const key = String(s);
    if (typeof s === 'number' || /^[A-Za-z0-9_$-]+$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

// ---- shared field schemas ----------------------------------------------------------------------

const modelSchema = z.string().regex(/^[^/\s]+\/\S+$/, 'expected "provider/model", for example "openai/gpt-4o"');

const turnLimitSchema = z.number().int().min(1).max(CONFIG_TURN_LIMIT_MAX);

const limitsSchema = z.strictObject({
  turnLimit: turnLimitSchema.optional().describe('Turns one activity may take before it settles turn_limit.'),
  toolCallsPerTurn: z.number().int().min(1).max(CONFIG_TOOL_CALLS_PER_TURN_MAX).optional().describe('Tool calls one turn may make; later calls get an error result.'),
  toolConcurrency: z.number().int().min(1).max(CONFIG_TOOL_CONCURRENCY_MAX).optional().describe('Tool calls of one session running at once.'),
  toolTimeoutMs: z.number().int().min(1).max(CONFIG_TOOL_TIMEOUT_MAX_MS).optional().describe('Running-time bound of a tool call without its own, in milliseconds.'),
});

const baseURLSchema = z.url({ protocol: /^https?$/ });

const permissionSchema = z.strictObject({
  default: permissionActionSchema.optional().describe('What a tool call no rule matches does: allow, deny or ask.'),
  rules: z.array(permissionRuleSchema).max(CONFIG_PERMISSION_RULES_MAX).optional().describe('Rules by tool and pattern; the last matching rule wins.'),
});

const recoverySchema = z.strictObject({
  /** Continue safe continuations (nothing ambiguous in flight) on restore without asking. */
  autoResume: z.boolean().optional().describe('Continue safe continuations on restore without asking.'),
  /** Automatic retries of an ambiguous attempt when the provider is idempotent (per activity). */
  retryBudget: z.number().int().min(0).max(CONFIG_RECOVERY_RETRY_BUDGET_MAX).optional().describe('Automatic retries of an ambiguous attempt when the provider is idempotent.'),
  /** Restarts of one activity before it settles `failed` (crash-loop stop). */
  restartsMax: z.number().int().min(1).max(CONFIG_RECOVERY_RESTARTS_MAX).optional().describe('Restarts of one activity before it settles failed.'),
});

const jobsSchema = z.strictObject({
  /** How a finished background job's result enters the session: queued (default) or as a steer. */
  deliver: z.enum(['queue', 'steer']).optional().describe('How a finished background job\'s result enters the session.'),
  /** A job still running when a new owner restores its session: watch it again (default) or stop it. */
  onRestart: z.enum(['reattach', 'kill']).optional().describe('A job still running when a new owner restores its session: reattach or kill.'),
});

const retentionSchema = z.strictObject({
  /** Sessions idle (no event) for longer than this many days are removed with their files. */
  sessionsDays: z.number().positive().max(CONFIG_RETENTION_DAYS_MAX).optional(),
  /** Saved tool outputs and finished jobs' output files older than this many days are removed. */
  toolOutputDays: z.number().positive().max(CONFIG_RETENTION_DAYS_MAX).optional(),
});

// ---- providers (version 2) ---------------------------------------------------------------------

/** The wire protocols Loom speaks; a provider entry's `kind`. */
export const PROVIDER_KINDS = ['openai', 'openai-responses', 'anthropic'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

const providerIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a provider id is 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit');

/** Header names that carry credentials: those belong in the credentials file (`loom auth set`). */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie|x-api-key|api-key)$|token|secret|password|passwd|api[-_]?key|auth/i;

const headerNameSchema = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/, 'not a valid HTTP header name')
  .refine((name) => !CREDENTIAL_HEADER.test(name), 'this header looks like a credential; credentials do not live in config: use `loom auth set <provider>`');

const headerValueSchema = z
  .string()
  .max(CONFIG_PROVIDER_HEADER_CHARS_MAX)
  .regex(/^[^\r\n\0]*$/, 'a header value may not contain line breaks');

const modelNameSchema = z.string().regex(/^\S{1,200}$/, 'a model name is 1 to 200 characters without spaces');

const tokensSchema = z.number().int().positive().max(CONFIG_MODEL_TOKENS_MAX);
const priceSchema = z.number().nonnegative().max(CONFIG_MODEL_COST_MAX);

/** One model of a provider, as the model catalog reads it (llm/modelInfo.ts). */
export const modelSettingsSchema = z.strictObject({
  name: z.string().min(1).max(200).optional().describe('A display name.'),
  toolCalling: z.boolean().optional().describe('The model can call tools.'),
  reasoning: z.boolean().optional().describe('The model reasons before answering.'),
  context: tokensSchema.optional().describe('Context window in tokens (input + output).'),
  output: tokensSchema.optional().describe('Most output tokens of one response.'),
  cost: z
    .strictObject({ input: priceSchema, output: priceSchema, cacheRead: priceSchema.optional(), cacheWrite: priceSchema.optional() })
    .optional()
    .describe('Price in US dollars per million tokens.'),
});
export type ModelSettings = z.infer<typeof modelSettingsSchema>;

/** One provider entry: `providers.<id>`. */
export const providerSettingsSchema = z.strictObject({
  kind: z.enum(PROVIDER_KINDS).optional().describe('The API it speaks; defaults to the id when the id is openai, openai-responses or anthropic, required otherwise.'),
  baseURL: baseURLSchema.optional().describe('The API base URL (global config only).'),
  /** The endpoint de-duplicates requests, so an ambiguous attempt may be retried automatically. */
  idempotent: z.boolean().optional().describe('The endpoint de-duplicates requests, so an ambiguous attempt may be retried automatically.'),
  headers: z
    .record(headerNameSchema, headerValueSchema)
    .refine((h) => Object.keys(h).length <= CONFIG_PROVIDER_HEADERS_MAX, `at most ${CONFIG_PROVIDER_HEADERS_MAX} headers`)
    .optional()
    .describe('Extra request headers that are not secret (global config only).'),
  enabled: z.boolean().optional().describe('false: the provider is not loaded and its models are refused.'),
  models: z
    .record(modelNameSchema, modelSettingsSchema)
    .refine((m) => Object.keys(m).length <= CONFIG_PROVIDER_MODELS_MAX, `at most ${CONFIG_PROVIDER_MODELS_MAX} models per provider`)
    .optional()
    .describe('Models of this provider for the model catalog, by the name used in "provider/model".'),
});
export type ProviderSettings = z.infer<typeof providerSettingsSchema>;

const providersSchema = z
  .record(providerIdSchema, providerSettingsSchema)
  .refine((p) => Object.keys(p).length <= CONFIG_PROVIDERS_MAX, `at most ${CONFIG_PROVIDERS_MAX} providers`);

/** The kind of a provider entry: its `kind`, else its id when that is a kind; undefined otherwise. */
export function providerKind(id: string, settings: ProviderSettings | undefined): ProviderKind | undefined {
  if (settings?.kind !== undefined) return settings.kind;
  return (PROVIDER_KINDS as readonly string[]).includes(id) ? (id as ProviderKind) : undefined;
}

/** The environment variable that holds a built-in provider's key (environment wins over every file). */
export function providerKeyVariable(id: string): string | undefined {
  if (id === 'openai' || id === 'openai-responses') return 'OPENAI_API_KEY';
  if (id === 'anthropic') return 'ANTHROPIC_API_KEY';
  return undefined;
}

// ---- sections of the current version -----------------------------------------------------------

/** What a project file tried to set that only the global file may: the key path and why. */
interface ProjectRefusal {
  path: (string | number)[];
  why: string;
}

/** One top-level key of the current config version. */
interface ConfigSection<S extends z.ZodType, R> {
  schema: S;
  /** The value in force, defaults filled in, from the merged value (undefined: no file set it). */
  resolve(value: z.output<S> | undefined): R;
  /** How a later file's value combines with an earlier one's (default: key by key, later wins). */
  merge?(base: z.output<S>, over: z.output<S>): z.output<S>;
  /** A project file is read from the directory being worked on: what it may not set here. */
  projectRefusal?(value: z.output<S>): ProjectRefusal | undefined;
}

function section<S extends z.ZodType, R>(s: ConfigSection<S, R>): ConfigSection<S, R> {
  return s;
}

// plugins (issue 8): global only, see loadConfig. Resolved against $LOOM_HOME by services/plugins.ts.
/**
 * One plugin: a module path (relative to the config file's directory, absolute, or a `file:` URL),
 * or a package name installed under `$LOOM_HOME/node_modules`; the object form adds options for
 * the plugin's function, a load timeout and a name.
 */
export const pluginEntrySchema = z.union([
  z.string().min(1),
  z.strictObject({
    module: z.string().min(1),
    /** Passed to the plugin's function as its second argument (never recorded in an event). */
    options: z.record(z.string(), z.unknown()).optional(),
    /** Time to import and run the plugin function (default PLUGIN_LOAD_TIMEOUT_DEFAULT_MS). */
    timeoutMs: z.number().int().min(1).max(PLUGIN_LOAD_TIMEOUT_MAX_MS).optional(),
    /**
     * Sessions of a process wait for this plugin (at most its timeoutMs) before their first hook
     * or provider request, so its hooks and tools are never missed (a redaction or policy plugin).
     * Default false: nothing waits for it.
     */
    required: z.boolean().optional(),
    /** The name events and errors use (default: the module's file name without extension). */
    name: z.string().regex(/^[A-Za-z0-9@._\/-]{1,100}$/, 'letters, digits and @ . _ / - (at most 100)').optional(),
  }),
]);
export type PluginEntry = z.infer<typeof pluginEntrySchema>;

// ---- mcp (issue 10): MCP servers whose tools join the registry. Global config only. ----

/**
 * An MCP server's name: it becomes part of its tools' names (`mcp_<name>_<tool>`), so it is kept to
 * the characters tool names allow.
 */
const mcpServerNameSchema = z
  .string()
  .regex(new RegExp(`^[A-Za-z0-9_-]{1,${MCP_SERVER_NAME_CHARS_MAX}}$`), `must be 1-${MCP_SERVER_NAME_CHARS_MAX} characters of A-Z, a-z, 0-9, _ or -`);

/** `${NAME}` in an env or header value is replaced by Loom's own environment variable NAME when the server starts. */
const mcpEntriesSchema = z
  .record(z.string().min(1), z.string())
  .refine((entries) => Object.keys(entries).length <= MCP_ENV_ENTRIES_MAX, `at most ${MCP_ENV_ENTRIES_MAX} entries`);

const mcpCommonFields = {
  /** Running-time bound of each tool call of this server (default: the built-in tools' default). */
  timeoutMs: z.number().int().min(1).max(CONFIG_TOOL_TIMEOUT_MAX_MS).optional(),
  /** The server's tool names (as the server names them) that are safe to run again after a crash; every other tool is not. */
  idempotentTools: z.array(z.string().min(1)).max(MCP_TOOLS_PER_SERVER_MAX).optional(),
  /** false: keep the entry but do not connect. */
  enabled: z.boolean().optional(),
};

export const mcpServerConfigSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('stdio'),
    /** The program (looked up in PATH) and its arguments; no shell. */
    command: z.string().min(1),
    args: z.array(z.string()).max(MCP_ARGS_MAX).optional(),
    /** Added to a minimal inherited environment (PATH, HOME, …): the server does not see Loom's keys unless named here. */
    env: mcpEntriesSchema.optional(),
    /** The server's working directory (absolute); default: the directory Loom was started in. */
    cwd: z.string().min(1).refine((dir) => path.isAbsolute(dir), 'must be an absolute path').optional(),
    ...mcpCommonFields,
  }),
  z.strictObject({
    type: z.literal('http'),
    /** The Streamable HTTP endpoint. */
    url: z.url({ protocol: /^https?$/ }),
    /** Sent with every request (an `Authorization` header, for example; prefer `${VAR}` over a literal token). */
    headers: mcpEntriesSchema.optional(),
    ...mcpCommonFields,
  }),
]);

export type McpServerConfig = z.infer<typeof mcpServerConfigSchema>;

const mcpSchema = z.strictObject({
  servers: z
    .record(mcpServerNameSchema, mcpServerConfigSchema)
    .refine((servers) => Object.keys(servers).length <= MCP_SERVERS_MAX, `at most ${MCP_SERVERS_MAX} servers`)
    .optional(),
});

// ---- agents and compaction (issue 9, context management) ----

/** A profile's name: what `--agent NAME`, the HTTP `agent` field and the `task` tool's `agent` say. */
export const agentNameSchema = z
  .string()
  .min(1)
  .max(AGENT_NAME_CHARS_MAX)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'expected a name of letters, digits, "_", "-" or ".", for example "review"');

/** One entry of `agents`: a custom profile, or changes to a built-in one (services/agents.ts). */
const agentConfigSchema = z.strictObject({
  description: z.string().min(1).max(AGENT_DESCRIPTION_CHARS_MAX).optional(),
  /** `provider/model` for this profile's requests (default: the session's model). */
  model: modelSchema.optional(),
  /** Its part of the system prompt (default: the `build` profile's). */
  prompt: z.string().min(1).max(AGENT_PROMPT_CHARS_MAX).optional(),
  /** `false` hides a tool from the model and denies it if called anyway. */
  tools: z
    .record(z.string().min(1), z.boolean())
    .refine((t) => Object.keys(t).length <= AGENT_TOOL_SWITCHES_MAX, `at most ${AGENT_TOOL_SWITCHES_MAX} tool switches`)
    .optional(),
  /** Permission rules applied after the config's (last match wins). */
  permission: z.array(permissionRuleSchema).max(CONFIG_PERMISSION_RULES_MAX).optional(),
});

export type AgentConfig = z.infer<typeof agentConfigSchema>;

const agentsConfigSchema = z
  .record(agentNameSchema, agentConfigSchema)
  .refine((agents) => Object.keys(agents).length <= AGENTS_MAX, `at most ${AGENTS_MAX} agents`);

const compactionConfigSchema = z.strictObject({
  /** Compact automatically when the next request nears the model's window (default true). */
  auto: z.boolean().optional(),
  /** The fraction of the window that triggers it (default COMPACTION_THRESHOLD_DEFAULT). */
  threshold: z.number().min(COMPACTION_THRESHOLD_MIN).max(COMPACTION_THRESHOLD_MAX).optional(),
  /** Recent turns kept verbatim after a compaction (default COMPACTION_KEEP_RECENT_TURNS_DEFAULT). */
  keepRecentTurns: z.number().int().min(0).max(COMPACTION_KEEP_RECENT_TURNS_MAX).optional(),
  /** The window assumed for a model the catalog does not know, in tokens (default COMPACTION_FALLBACK_WINDOW_TOKENS). */
  fallbackWindowTokens: z.number().int().min(COMPACTION_WINDOW_TOKENS_MIN).max(COMPACTION_WINDOW_TOKENS_MAX).optional(),
});

// ---- end of agents and compaction ----

/**
 * `checkpoints`: whether tool calls keep the prior content of the files they change (`enabled`),
 * whether bash commands are scanned for changes (`bash`), and (global file only) how long kept
 * content lives: `retentionDays` and `maxBytes` for `loom db prune` and the periodic retention.
 */
const checkpointsConfigSchema = z.strictObject({
  enabled: z.boolean().optional(),
  bash: z.boolean().optional(),
  retentionDays: z.number().positive().max(CONFIG_RETENTION_DAYS_MAX).optional(),
  maxBytes: z.number().int().positive().max(CONFIG_CHECKPOINT_STORE_BYTES_MAX).optional(),
});

const GLOBAL_ONLY_PROVIDER_KEYS = ['kind', 'baseURL', 'headers'] as const;

const sections = {
  model: section({
    schema: modelSchema.describe('The model sessions use when none is given, as "provider/model".'),
    resolve: (model) => model,
  }),

  limits: section({
    schema: limitsSchema.describe('Bounds of one activity and its tool calls.'),
    resolve: (limits = {}) => ({
      turnLimit: limits.turnLimit ?? TURN_LIMIT_DEFAULT,
      toolCallsPerTurn: limits.toolCallsPerTurn ?? TOOL_CALLS_PER_TURN_MAX,
      toolConcurrency: limits.toolConcurrency ?? TOOL_CONCURRENCY_PER_SESSION_MAX,
      toolTimeoutMs: limits.toolTimeoutMs ?? TOOL_TIMEOUT_DEFAULT_MS,
    }),
  }),

  permission: section({
    schema: permissionSchema.describe('Which tool calls run, are refused or ask first.'),
    resolve: (permission): { default?: PermissionAction; rules: PermissionRule[] } => ({
      ...(permission?.default === undefined ? {} : { default: permission.default }),
      rules: permission?.rules ?? [],
    }),
    // Rules are concatenated, global first, so the project's rules win under "last match wins".
    merge: (base, over) => ({ ...base, ...dropUndefined(over), rules: [...(base.rules ?? []), ...(over.rules ?? [])] }),
  }),

  providers: section({
    schema: providersSchema.describe('Providers by id (the part before "/" in "provider/model"): openai, openai-responses, anthropic, or your own with a kind.'),
    resolve: (providers = {}): Record<string, ProviderSettings> => providers,
    // A cloned repository must not redirect credentials: where requests go, and what they carry, is global only.
    projectRefusal: (providers) => {
      for (const [id, settings] of Object.entries(providers)) {
        const key = GLOBAL_ONLY_PROVIDER_KEYS.find((k) => settings[k] !== undefined);
        if (key !== undefined) return { path: [id, key], why: 'may not be set in a project config (the endpoint would receive your credentials); set it in $LOOM_HOME/config.jsonc' };
        // The model catalog is one per process, shared by every directory's sessions.
        if (settings.models !== undefined) return { path: [id, 'models'], why: 'may not be set in a project config (the model catalog is shared by every project); set it in $LOOM_HOME/config.jsonc' };
      }
      return undefined;
    },
  }),

  recovery: section({
    schema: recoverySchema.describe('What happens to an activity left unsettled by a lost process.'),
    resolve: (recovery) => ({
      autoResume: recovery?.autoResume ?? true,
      retryBudget: recovery?.retryBudget ?? RECOVERY_RETRY_BUDGET_DEFAULT,
      restartsMax: recovery?.restartsMax ?? ACTIVITY_RESTARTS_MAX,
    }),
  }),

  jobs: section({
    schema: jobsSchema.describe('Background jobs (bash with background: true).'),
    resolve: (jobs): { deliver: 'queue' | 'steer'; onRestart: 'reattach' | 'kill' } => ({
      deliver: jobs?.deliver ?? 'queue',
      onRestart: jobs?.onRestart ?? 'reattach',
    }),
  }),

  /** Global only: how long old sessions and saved tool outputs are kept (`loom db prune`, serve/worker). Unset: nothing is removed by age. */
  retention: section({
    schema: retentionSchema.describe('Global only: how long old sessions and saved tool outputs are kept.'),
    resolve: (retention) => (retention === undefined ? undefined : { ...retention }),
    // Retention removes sessions of every directory: one project must not decide it for all.
    projectRefusal: () => ({ path: [], why: 'may not be set in a project config (it removes sessions of every directory); set it in $LOOM_HOME/config.jsonc' }),
  }),

  /** Global only: modules loaded into every loom process that runs sessions (services/plugins.ts). Unset: no plugins. */
  plugins: section({
    schema: z.array(pluginEntrySchema).max(PLUGINS_MAX).describe('Global only: plugin modules loaded into every loom process that runs sessions.'),
    resolve: (plugins): PluginEntry[] | undefined => (plugins === undefined ? undefined : [...plugins]),
    // A plugin runs code in every loom process: a cloned repository must not run code.
    merge: (_base, over) => over,
    projectRefusal: () => ({ path: [], why: 'may not be set in a project config (a plugin runs code in every loom process; a cloned repository must not run code); set it in $LOOM_HOME/config.jsonc' }),
  }),
  /**
   * Spending caps (README "Budgets and usage"): `activity` for each activity a `run`, `prompt` or
   * HTTP request opens (flags and request bodies override it), `session` for a session's totals.
   * Each takes `tokens` and/or `costUsd`; a cost cap needs the model's price in the model catalog.
   * Unset: no budget unless a flag or request sets one.
   */
  budget: section({
    schema: requestBudget.describe('Spending caps per activity and per session (tokens, costUsd).'),
    resolve: (budget): RequestBudget | undefined => (budget === undefined ? undefined : budget),
  }),

  /** Agent profiles: custom ones, or changes to `build` and `plan` (services/agents.ts merges them). */
  agents: section({
    schema: agentsConfigSchema.describe('Agent profiles by name: model, prompt, tools, permission rules.'),
    resolve: (agents): Record<string, AgentConfig> => agents ?? {},
  }),

  /** Context management: when and how the conversation is summarised (actors/compaction.ts). */
  compaction: section({
    schema: compactionConfigSchema.describe('When and how the conversation is summarised to fit the context window.'),
    resolve: (compaction): { auto: boolean; threshold: number; keepRecentTurns: number; fallbackWindowTokens: number } => ({
      auto: compaction?.auto ?? true,
      threshold: compaction?.threshold ?? COMPACTION_THRESHOLD_DEFAULT,
      keepRecentTurns: compaction?.keepRecentTurns ?? COMPACTION_KEEP_RECENT_TURNS_DEFAULT,
      fallbackWindowTokens: compaction?.fallbackWindowTokens ?? COMPACTION_FALLBACK_WINDOW_TOKENS,
    }),
  }),

  /** File checkpoints: prior content of files tools change, for `loom diff` and `loom undo`. */
  checkpoints: section({
    schema: checkpointsConfigSchema.describe('File checkpoints for loom diff and loom undo; retentionDays and maxBytes are global only.'),
    resolve: (checkpoints): { enabled: boolean; bash: boolean; retentionDays: number; maxBytes: number } => ({
      enabled: checkpoints?.enabled ?? true,
      bash: checkpoints?.bash ?? true,
      retentionDays: checkpoints?.retentionDays ?? CHECKPOINT_RETENTION_DAYS_DEFAULT,
      maxBytes: checkpoints?.maxBytes ?? CHECKPOINT_STORE_BYTES_DEFAULT,
    }),
    // Kept content is shared by every directory (content-addressed): its retention is global.
    projectRefusal: (checkpoints) => {
      const key = (['retentionDays', 'maxBytes'] as const).find((k) => checkpoints[k] !== undefined);
      return key === undefined ? undefined : { path: [key], why: 'may not be set in a project config (checkpoint storage is shared by every directory); set it in $LOOM_HOME/config.jsonc' };
    },
  }),

  /** Global only: MCP servers whose tools every session may call (README "MCP servers"). */
  mcp: section({
    schema: mcpSchema.describe('Global only: MCP servers whose tools join the tool registry.'),
    resolve: (mcp): { servers: Record<string, McpServerConfig> } => ({ servers: { ...mcp?.servers } }),
    // A cloned repository must not start programs, nor put tools of its choosing in front of the model.
    projectRefusal: (mcp) => {
      const [name, server] = Object.entries(mcp.servers ?? {})[0] ?? [];
      if (name !== undefined && server?.type === 'stdio') {
        return { path: ['servers', name, 'command'], why: `may not be set in a project config: a cloned repository must not start programs ("${server.command}"); add the server to $LOOM_HOME/config.jsonc` };
      }
      return { path: name === undefined ? [] : ['servers', name], why: 'may not be set in a project config (MCP servers serve every session of this Loom); set it in $LOOM_HOME/config.jsonc' };
    },
  }),
};

type Sections = typeof sections;
type SectionShape = { [K in keyof Sections]: z.ZodOptional<Sections[K]['schema']> };
const sectionShape = Object.fromEntries(Object.entries(sections).map(([key, s]) => [key, s.schema.optional()])) as unknown as SectionShape;

/** Version 2, the current version. */
export const configV2Schema = z
  .strictObject({
    /** Editors use it for completion (`loom config schema` prints the schema); Loom ignores it. */
    $schema: z.string().optional().describe('The JSON Schema editors check this file against (`loom config schema` prints it).'),
    version: z.literal(2).describe('The config format version.'),
    ...sectionShape,
  })
  .meta({ title: 'Loom config', description: 'Loom configuration ($LOOM_HOME/config.jsonc or <project>/.loom/config.jsonc), version 2.' });

export type ConfigV2 = z.infer<typeof configV2Schema>;
/** The current config version's file contents. */
export type Config = ConfigV2;

/**
 * The JSON Schema of the current version (draft-07, which editors support best), for a file's
 * `$schema`. Constraints zod cannot express in JSON Schema are checked by Loom only.
 */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configV2Schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

type ResolvedSections = { [K in keyof Sections]: ReturnType<Sections[K]['resolve']> };

/** The merged config with every limit filled in. */
export interface ResolvedConfig extends ResolvedSections {
  version: typeof CONFIG_VERSION_CURRENT;
  /**
   * API keys read from a version 1 file (`providers.<id>.apiKey`), by provider id, so an old setup
   * keeps working until the key is moved (`loom auth set <id>`). Kept in memory only, and not
   * enumerable: JSON, spreads and key diffs never see it.
   */
  readonly legacyApiKeys?: Readonly<Record<string, string>>;
}

// ---- legacy versions ---------------------------------------------------------------------------

const openaiProviderV1Schema = z.strictObject({
  baseURL: baseURLSchema.optional(),
  /** Prefer the environment (OPENAI_API_KEY): a key in a file ends up in backups and screenshots. */
  apiKey: z.string().min(1).optional(),
  /** The endpoint de-duplicates requests, so an ambiguous attempt may be retried automatically. */
  idempotent: z.boolean().optional(),
  /**
   * Models of this provider for the model catalog, by the name the API takes: capabilities,
   * context and output limits, price per million tokens. Fields left out keep Loom's built-in
   * values (the prices shipped with Loom are a snapshot; override them here).
   */
  models: z.record(z.string().min(1).max(MODEL_ID_CHARS_MAX).regex(/^\S+$/, 'a model name has no spaces'), modelSettingsSchema).optional(),
});

/** Version 1 (frozen: new keys go into the current version's `sections`). */
export const configV1Schema = z.strictObject({
  $schema: z.string().optional(),
  version: z.literal(1),
  model: modelSchema.optional(),
  limits: limitsSchema.optional(),
  permission: permissionSchema.optional(),
  providers: z
    .strictObject({
      openai: openaiProviderV1Schema.optional(),
      /** Same fields as `openai`; the key is preferably ANTHROPIC_API_KEY. */
      anthropic: openaiProviderV1Schema.optional(),
    })
    .optional(),
  recovery: recoverySchema.optional(),
  jobs: jobsSchema.optional(),
  retention: retentionSchema.optional(),
  /** Global only: modules loaded into every loom process that runs sessions (services/plugins.ts). */
  plugins: z.array(pluginEntrySchema).max(PLUGINS_MAX).optional(),
  /** Global only: MCP servers whose tools every session may call (README "MCP servers"). */
  mcp: mcpSchema.optional(),
  /**
   * Spending caps (README "Budgets and usage"): `activity` for each activity a `run`, `prompt` or
   * HTTP request opens (flags and request bodies override it), `session` for a session's totals.
   * Each takes `tokens` and/or `costUsd`; a cost cap needs the model's price in the model catalog.
   */
  budget: requestBudget.optional(),
  /** Agent profiles: custom ones, or changes to `build` and `plan` (services/agents.ts). */
  agents: agentsConfigSchema.optional(),
  /** Context management: when and how the conversation is summarised (actors/compaction.ts). */
  compaction: compactionConfigSchema.optional(),
  /** File checkpoints (issue 9): prior content of files tools change, for `loom diff` and `loom undo`. */
  checkpoints: checkpointsConfigSchema.optional(),
});

export type ConfigV1 = z.infer<typeof configV1Schema>;

/** Version 0, the legacy format. Its values are checked as strictly as their later homes. */
const configV0Schema = z.strictObject({
  version: z.literal(0).optional(),
  defaultModel: modelSchema.optional(),
  turnLimit: turnLimitSchema.optional(),
});

type ConfigV0 = z.infer<typeof configV0Schema>;

// ---- migrations --------------------------------------------------------------------------------

/** What a migration step can do besides converting: tell the user, and carry a key in memory. */
interface MigrationContext {
  /** One sentence for the user about a change (`defaultModel → model`). */
  note(text: string): void;
  /** A credential found in the file: used by this process, never written back. */
  carryApiKey(providerId: string, key: string): void;
}

/** One step from version `from` to `from + 1`: the schema `from` is checked against, and the conversion. */
interface ConfigMigration {
  schema: z.ZodType;
  up(config: unknown, context: MigrationContext): unknown;
}

const migrations: ReadonlyMap<number, ConfigMigration> = new Map<number, ConfigMigration>([
  [
    0,
    {
      schema: configV0Schema,
      up(config, context) {
        const v0 = config as ConfigV0;
        if (v0.defaultModel !== undefined) context.note('defaultModel → model');
        if (v0.turnLimit !== undefined) context.note('turnLimit → limits.turnLimit');
        return {
          version: 1,
          ...(v0.defaultModel === undefined ? {} : { model: v0.defaultModel }),
          ...(v0.turnLimit === undefined ? {} : { limits: { turnLimit: v0.turnLimit } }),
        };
      },
    },
  ],
  [
    1,
    {
      schema: configV1Schema,
      up(config, context) {
        const { providers, ...rest } = config as ConfigV1;
        const out: Record<string, unknown> = { ...rest, version: 2 };
        const entries: Record<string, ProviderSettings> = {};
        for (const [id, settings] of Object.entries(providers ?? {})) {
          if (settings === undefined) continue;
          const { apiKey, ...kept } = settings;
          if (apiKey !== undefined) {
            context.carryApiKey(id, apiKey);
            context.note(
              `providers.${id}.apiKey: credentials no longer live in config. The key is still used (from memory) for now; ` +
                `move it with \`loom auth set ${id}\` (or set ${providerKeyVariable(id)}), then \`loom config migrate --drop-credentials\` removes it from the file`,
            );
          }
          if (Object.keys(kept).length > 0) entries[id] = kept;
        }
        if (Object.keys(entries).length > 0) out.providers = entries;
        return out;
      },
    },
  ],
]);

/** A file's contents brought to the current version, with what the migration said and carried. */
export interface MigratedConfig {
  config: ConfigV2;
  /** The version the file was written in. */
  version: number;
  /** What changed, one sentence each, for the user; empty when the file was current. */
  notes: string[];
  /** Version 1 API keys by provider id: for this process only, never written anywhere. */
  legacyApiKeys: Record<string, string>;
}

/**
 * Brings a parsed config file of any known version to the current one and validates it. `file`
 * names the source in errors; `locate` (the file's text) adds the line of the offending key.
 * Throws ConfigError for a version newer than CONFIG_VERSION_CURRENT, an unknown key (named by
 * its dotted path) or a bad value. Problems are reported against the version the file was
 * written in, so the key names match the file.
 */
export function migrateConfig(raw: unknown, file = '<config>', locate?: ConfigLocator): MigratedConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, 'the config must be a JSON object', locate?.([]) ?? {});
  }
  const from = versionOf(raw as Record<string, unknown>, file, locate);
  const notes: string[] = [];
  const legacyApiKeys: Record<string, string> = {};
  const context: MigrationContext = {
    note: (text) => notes.push(text),
    carryApiKey: (id, key) => void (legacyApiKeys[id] = key),
  };
  let config: unknown = raw;
  for (let version = from; version < CONFIG_VERSION_CURRENT; version++) {
    const step = migrations.get(version);
    if (step === undefined) throw new Error(`no config migration from version ${version}`);
    config = step.up(validate(step.schema, config, file, locate), context);
  }
  return { config: validate(configV2Schema, config, file, locate), version: from, notes, legacyApiKeys };
}

function versionOf(raw: Record<string, unknown>, file: string, locate?: ConfigLocator): number {
  const version = raw.version;
  if (version === undefined) return 0;
  const where = { field: 'version', ...locate?.(['version']) };
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    throw new ConfigError(file, 'must be a whole number (the config format version)', where);
  }
  if (version > CONFIG_VERSION_CURRENT) {
    throw new ConfigError(
      file,
      `config version ${version} is newer than this Loom understands (up to ${CONFIG_VERSION_CURRENT}); upgrade Loom or use a version ${CONFIG_VERSION_CURRENT} file`,
      where,
    );
  }
  return version;
}

function validate<T>(schema: z.ZodType<T>, value: unknown, file: string, locate?: ConfigLocator): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const others = parsed.error.issues.length - 1;
  const more = others > 0 ? ` (and ${others} more problem${others === 1 ? '' : 's'})` : '';
  let at: PropertyKey[] = issue.path;
  let detail = issue.message;
  if (issue.code === 'unrecognized_keys') {
    at = [...at, issue.keys[0]];
    detail = unknownKeyDetail(at);
  } else if (issue.code === 'invalid_key') {
    detail = issue.issues[0]?.message ?? detail;
  }
  const segments = at.map((s) => (typeof s === 'symbol' ? String(s) : s));
  throw new ConfigError(file, `${detail}${more}`, {
    field: segments.length === 0 ? undefined : formatConfigPath(segments),
    ...locate?.(segments),
  });
}

/** An unknown key, with a hint where one is known (a version 1 key in a version 2 file). */
function unknownKeyDetail(at: PropertyKey[]): string {
  if (at.length === 3 && at[0] === 'providers' && at[2] === 'apiKey') {
    return `unknown key: credentials do not live in config since version 2; use \`loom auth set ${String(at[1])}\`${providerKeyVariable(String(at[1])) ? ` or ${providerKeyVariable(String(at[1]))}` : ''}`;
  }
  return 'unknown key';
}

// ---- files -------------------------------------------------------------------------------------

/** `$LOOM_HOME`, or `~/.loom` when it is unset or empty. */
export function resolveLoomHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.LOOM_HOME;
  return home !== undefined && home !== '' ? path.resolve(home) : path.join(os.homedir(), '.loom');
}

export function globalConfigPath(home: string): string {
  return path.join(home, CONFIG_FILE_NAME);
}

export function projectConfigPath(location: string): string {
  return path.join(location, '.loom', CONFIG_FILE_NAME);
}

/** Global files may set everything; project files (from the directory worked on) may not redirect providers or set retention. */
export type ConfigScope = 'global' | 'project';

/** One config file read, migrated and checked for its scope. */
export interface ConfigFile extends MigratedConfig {
  file: string;
  scope: ConfigScope;
  /** The text as read (for `loom config migrate`, which edits it). */
  text: string;
  /** The parsed text, before migration. */
  raw: unknown;
  /** Where a key path is written in this file. */
  locate: ConfigLocator;
}

/**
 * Reads, migrates and checks one config file; undefined when it does not exist. Throws
 * ConfigError (with the line of the offending key where it is written) when it is unreadable,
 * over CONFIG_FILE_BYTES_MAX, not valid JSONC, invalid, or — for a project file — sets what only
 * the global file may.
 */
export async function readConfigFile(file: string, scope: ConfigScope = 'global'): Promise<ConfigFile | undefined> {
  const text = await readBounded(file);
  if (text === undefined) return undefined;
  return parseConfigText(text, file, scope);
}

/** readConfigFile for text already in hand. */
export function parseConfigText(text: string, file: string, scope: ConfigScope = 'global'): ConfigFile {
  let parsed: ReturnType<typeof parseJsonc>;
  try {
    parsed = parseJsonc(text);
  } catch (err) {
    if (err instanceof RangeError) throw new ConfigError(file, 'is nested too deeply to parse');
    throw err;
  }
  if (parsed.error !== undefined) {
    const { line, column, detail } = parsed.error;
    throw new ConfigError(file, `invalid JSONC: ${detail}`, { line, column });
  }
  const locate: ConfigLocator = (at) => locateJsonPath(text, at);
  const migrated = migrateConfig(parsed.value, file, locate);
  if (scope === 'project') checkProjectFile(migrated, file, locate);
  return { ...migrated, file, scope, text, raw: parsed.value, locate };
}

function checkProjectFile(migrated: MigratedConfig, file: string, locate: ConfigLocator): void {
  const legacy = Object.keys(migrated.legacyApiKeys)[0];
  if (legacy !== undefined) {
    const at = ['providers', legacy, 'apiKey'];
    throw new ConfigError(file, 'may not be set in a project config (credentials never live in a project); use `loom auth set`', { field: formatConfigPath(at), ...locate(at) });
  }
  const config = migrated.config as Record<string, unknown>;
  for (const [key, s] of Object.entries(sections) as [string, ConfigSection<z.ZodType, unknown>][]) {
    if (config[key] === undefined || s.projectRefusal === undefined) continue;
    const refusal = s.projectRefusal(config[key]);
    if (refusal === undefined) continue;
    const at = [key, ...refusal.path];
    throw new ConfigError(file, refusal.why, { field: formatConfigPath(at), ...locate(at) });
  }
}

async function readBounded(file: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO in place of the file must not hang startup.
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ConfigError(file, `cannot be opened: ${(err as Error).message}`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new ConfigError(file, 'is not a regular file');
    if (stat.size > CONFIG_FILE_BYTES_MAX) {
      throw new ConfigError(file, `is ${stat.size} bytes; a config file may have at most ${CONFIG_FILE_BYTES_MAX}`);
    }
    const bytes = await readUpTo(handle, stat.size);
    const text = bytes.toString('utf8');
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  } finally {
    await handle.close();
  }
}


// ---- merging and defaults ----------------------------------------------------------------------

/** `over` wins key by key through nested objects; sections with their own `merge` (permission rules) use it. */
export function mergeConfigs(base: ConfigV2, over: ConfigV2): ConfigV2 {
  const merged: Record<string, unknown> = { ...base, ...dropUndefined(over) };
  const b = base as Record<string, unknown>;
  const o = over as Record<string, unknown>;
  for (const [key, s] of Object.entries(sections) as [string, ConfigSection<z.ZodType, unknown>][]) {
    if (b[key] === undefined || o[key] === undefined) continue;
    merged[key] = s.merge ? s.merge(b[key], o[key]) : deepMerge(b[key], o[key]);
  }
  return merged as ConfigV2;
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value !== undefined) merged[key] = deepMerge(base[key], value);
  }
  return merged;
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Input of resolveConfig: a current-version config (the version number itself is not looked at). */
export type ConfigInput = Omit<ConfigV2, 'version' | '$schema'> & { version?: number; $schema?: string };

/**
 * Fills every setting the config leaves out with its default from core/limits.ts. `legacyApiKeys`
 * (from a version 1 file) ride along, hidden from JSON (see ResolvedConfig.legacyApiKeys).
 */
export function resolveConfig(config: ConfigInput, extras: { legacyApiKeys?: Record<string, string> } = {}): ResolvedConfig {
  const out: Record<string, unknown> = { version: CONFIG_VERSION_CURRENT };
  const input = config as Record<string, unknown>;
  for (const [key, s] of Object.entries(sections) as [string, ConfigSection<z.ZodType, unknown>][]) out[key] = s.resolve(input[key]);
  const legacy = extras.legacyApiKeys;
  if (legacy !== undefined && Object.keys(legacy).length > 0) {
    Object.defineProperty(out, 'legacyApiKeys', { value: Object.freeze({ ...legacy }), enumerable: false });
  }
  return out as unknown as ResolvedConfig;
}

/** A JSON-safe copy without anything secret (for `loom config show`, `GET /config`). */
export function publicConfig(config: ResolvedConfig): Record<string, unknown> {
  return JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
}

/** Providers whose key still comes from a version 1 file (tell the user to move it). */
export function legacyCredentialIds(config: ResolvedConfig): string[] {
  return Object.keys(config.legacyApiKeys ?? {});
}

/**
 * The keys whose value differs between two resolved configs, as dotted paths
 * (`limits.turnLimit`, `permission.rules`, `providers.local.baseURL`): objects are compared key by
 * key, arrays as a whole; an object added or removed whole is named once (`providers.local`).
 * Never values. A version 1 key that changed is named `providers.<id>.apiKey`.
 */
export function changedConfigKeys(before: ResolvedConfig, after: ResolvedConfig): string[] {
  const keys: string[] = [];
  collectChanges([], before, after, keys);
  const a = before.legacyApiKeys ?? {};
  const b = after.legacyApiKeys ?? {};
  for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (a[id] !== b[id]) keys.push(formatConfigPath(['providers', id, 'apiKey']));
  }
  return keys;
}

function collectChanges(at: string[], a: unknown, b: unknown, out: string[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) collectChanges([...at, key], a[key], b[key], out);
    return;
  }
  if (!isDeepStrictEqual(a, b)) out.push(formatConfigPath(at));
}

// ---- loading -----------------------------------------------------------------------------------

export interface LoadConfigOptions {
  /** `$LOOM_HOME` (see resolveLoomHome). */
  home: string;
  /** The session's directory; its `.loom/config.jsonc` overrides the global file. */
  location?: string;
}

/** What a migration changed in one file, for the user. */
export interface ConfigNote {
  file: string;
  scope: ConfigScope;
  /** The version the file is written in. */
  from: number;
  to: number;
  /** One sentence per change. */
  changes: string[];
}

export interface LoadedConfig {
  config: ResolvedConfig;
  /** The files that existed and were applied, global first. */
  sources: string[];
  /** The files themselves (contents as migrated). */
  files: ConfigFile[];
  /** One per file written in an older version: what was converted in memory. */
  notes: ConfigNote[];
}

/** The config files of a location, global first (the project file is skipped when it is the global file). */
export function configPaths(options: LoadConfigOptions): { file: string; scope: ConfigScope }[] {
  const global = globalConfigPath(options.home);
  const paths: { file: string; scope: ConfigScope }[] = [{ file: global, scope: 'global' }];
  if (options.location !== undefined) {
    const project = projectConfigPath(options.location);
    // `loom run --dir ~` with LOOM_HOME=~/.loom: the "project" file is the global one.
    if (path.resolve(project) !== path.resolve(global)) paths.push({ file: project, scope: 'project' });
  }
  return paths;
}

/**
 * Loads the global and project config files (either may be missing), migrates, validates, merges
 * and fills defaults. Throws ConfigError naming the file (and key with its line, or the line and
 * column of a syntax error) of the first problem; nothing is half-applied.
 *
 * Gotcha: the project file comes from the directory being worked on. A cloned repository can
 * therefore loosen permissions; it cannot redirect providers (`kind`, `baseURL`, `headers`) nor
 * set retention. Callers that open untrusted directories should confirm a project config before
 * honouring it.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const files: ConfigFile[] = [];
  for (const { file, scope } of configPaths(options)) {
    const read = await readConfigFile(file, scope);
    if (read !== undefined) files.push(read);
  }
  return { config: mergeConfigFiles(files), sources: files.map((f) => f.file), files, notes: notesOf(files) };
}

/**
 * Merges files already read (global first) into the config in force, after checking that every
 * provider id Loom does not know has a `kind` once merged. Throws ConfigError naming the file
 * that mentions such a provider.
 */
export function mergeConfigFiles(files: readonly ConfigFile[]): ResolvedConfig {
  let merged: ConfigV2 = { version: CONFIG_VERSION_CURRENT };
  const legacyApiKeys: Record<string, string> = {};
  for (const f of files) {
    merged = mergeConfigs(merged, f.config);
    Object.assign(legacyApiKeys, f.legacyApiKeys);
  }
  for (const [id, settings] of Object.entries(merged.providers ?? {})) {
    if (providerKind(id, settings) !== undefined) continue;
    const file = [...files].reverse().find((f) => f.config.providers?.[id] !== undefined)!;
    const at = ['providers', id, 'kind'];
    throw new ConfigError(file.file, `is required for a provider id other than ${PROVIDER_KINDS.join(', ')}: the API it speaks, one of those three`, {
      field: formatConfigPath(at),
      ...file.locate(at),
    });
  }
  return resolveConfig(merged, { legacyApiKeys });
}

/** What each older file's migration changed (empty for current files). */
export function notesOf(files: readonly ConfigFile[]): ConfigNote[] {
  return files
    .filter((f) => f.version < CONFIG_VERSION_CURRENT)
    .map((f) => ({ file: f.file, scope: f.scope, from: f.version, to: CONFIG_VERSION_CURRENT, changes: [...f.notes] }));
}

/**
 * Where each setting in force comes from: leaf key path → the file that set it last, or
 * `default`. Permission rules are listed one by one (`permission.rules.3`), from the file that
 * holds each rule. For `loom config show`.
 */
export function configOrigins(files: readonly ConfigFile[], config: ResolvedConfig): Record<string, string> {
  const origins: Record<string, string> = {};
  const rulesFrom = files.flatMap((f) => (f.config.permission?.rules ?? []).map(() => f.file));
  const visit = (at: string[], value: unknown): void => {
    if (at.length === 2 && at[0] === 'permission' && at[1] === 'rules' && Array.isArray(value)) {
      value.forEach((_, i) => (origins[formatConfigPath([...at, i])] = rulesFrom[i] ?? 'default'));
      return;
    }
    if (isPlainObject(value) && Object.keys(value).length > 0) {
      for (const [key, v] of Object.entries(value)) if (v !== undefined) visit([...at, key], v);
      return;
    }
    const from = [...files].reverse().find((f) => valueAt(f.config, at) !== undefined);
    origins[formatConfigPath(at)] = from?.file ?? 'default';
  };
  visit([], publicConfig(config));
  delete origins.version;
  return origins;
}

function valueAt(value: unknown, at: readonly string[]): unknown {
  let v = value;
  for (const key of at) {
    if (!isPlainObject(v)) return undefined;
    v = v[key];
  }
  return v;
}

/**
 * MCP servers are global only. A project config comes with the directory being worked on: a cloned
 * repository naming a stdio server would run a program of its choosing the moment Loom opens it,
 * and an HTTP server would put tools of its choosing in front of the model. The supervisor is also
 * one per process, shared by sessions of every directory. So `mcp` in a project file is refused,
 * naming the first server (and its command, for stdio).
 */
function refuseProjectMcp(file: string, mcp: NonNullable<ConfigV1['mcp']>): never {
  const [name, server] = Object.entries(mcp.servers ?? {})[0] ?? [];
  if (name !== undefined && server?.type === 'stdio') {
    throw new ConfigError(file, `may not be set in a project config: a cloned repository must not start programs ("${server.command}"); add the server to $LOOM_HOME/config.jsonc`, {
      field: `mcp.servers.${name}.command`,
    });
  }
  throw new ConfigError(file, 'may not be set in a project config (MCP servers serve every session of this Loom); set it in $LOOM_HOME/config.jsonc', {
    field: name === undefined ? 'mcp' : `mcp.servers.${name}`,
  });
}
