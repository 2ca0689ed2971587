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
 * Versions: a file without `version` is version 0 (`{ defaultModel, turnLimit }`). Each version
 * below the current one has one migration step in `migrations`; a new version adds a step and a
 * schema, and old files keep working unchanged on disk. A version newer than this Loom knows is
 * refused rather than guessed at.
 */
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { z } from 'zod';
import {
  CONFIG_FILE_BYTES_MAX,
  CONFIG_PERMISSION_RULES_MAX,
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
  CHECKPOINT_RETENTION_DAYS_DEFAULT,
  CHECKPOINT_STORE_BYTES_DEFAULT,
  CONFIG_CHECKPOINT_STORE_BYTES_MAX,
} from '../core/limits.js';
import { permissionActionSchema, permissionRuleSchema, type PermissionAction, type PermissionRule } from '../tools/permission.js';

/** The config version this Loom writes and reads natively. */
export const CONFIG_VERSION_CURRENT = 1;

/** Name of the config file in `$LOOM_HOME` and in a project's `.loom/` directory. */
export const CONFIG_FILE_NAME = 'config.jsonc';

/** Where in a file a config problem is; every ConfigError names the file. */
export interface ConfigErrorLocation {
  /** Dotted path of the offending key (`limits.turnLimit`, `permission.rules.0.action`). */
  field?: string;
  /** 1-based line and column, for syntax errors. */
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
    detail: string,
    where: ConfigErrorLocation = {},
  ) {
    super(`${file}${where.line === undefined ? '' : `:${where.line}:${where.column ?? 1}`}: ${where.field === undefined ? '' : `"${where.field}": `}${detail}`);
    this.field = where.field;
    this.line = where.line;
    this.column = where.column;
  }
}

// ---- schemas -----------------------------------------------------------------------------------

const modelSchema = z.string().regex(/^[^/\s]+\/\S+$/, 'expected "provider/model", for example "openai/gpt-4o"');

const turnLimitSchema = z.number().int().min(1).max(CONFIG_TURN_LIMIT_MAX);

const limitsSchema = z.strictObject({
  turnLimit: turnLimitSchema.optional(),
  toolCallsPerTurn: z.number().int().min(1).max(CONFIG_TOOL_CALLS_PER_TURN_MAX).optional(),
  toolConcurrency: z.number().int().min(1).max(CONFIG_TOOL_CONCURRENCY_MAX).optional(),
  toolTimeoutMs: z.number().int().min(1).max(CONFIG_TOOL_TIMEOUT_MAX_MS).optional(),
});

const openaiProviderSchema = z.strictObject({
  baseURL: z.url({ protocol: /^https?$/ }).optional(),
  /** Prefer the environment (OPENAI_API_KEY): a key in a file ends up in backups and screenshots. */
  apiKey: z.string().min(1).optional(),
  /** The endpoint de-duplicates requests, so an ambiguous attempt may be retried automatically. */
  idempotent: z.boolean().optional(),
});

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

/** Version 1, the current version. */
export const configV1Schema = z.strictObject({
  /** Editors use it for completion; Loom ignores it. */
  $schema: z.string().optional(),
  version: z.literal(1),
  model: modelSchema.optional(),
  limits: limitsSchema.optional(),
  permission: z
    .strictObject({
      default: permissionActionSchema.optional(),
      rules: z.array(permissionRuleSchema).max(CONFIG_PERMISSION_RULES_MAX).optional(),
    })
    .optional(),
  providers: z
    .strictObject({
      openai: openaiProviderSchema.optional(),
      /** Same fields as `openai`; the key is preferably ANTHROPIC_API_KEY. */
      anthropic: openaiProviderSchema.optional(),
    })
    .optional(),
  recovery: z
    .strictObject({
      /** Continue safe continuations (nothing ambiguous in flight) on restore without asking. */
      autoResume: z.boolean().optional(),
      /** Automatic retries of an ambiguous attempt when the provider is idempotent (per activity). */
      retryBudget: z.number().int().min(0).max(CONFIG_RECOVERY_RETRY_BUDGET_MAX).optional(),
      /** Restarts of one activity before it settles `failed` (crash-loop stop). */
      restartsMax: z.number().int().min(1).max(CONFIG_RECOVERY_RESTARTS_MAX).optional(),
    })
    .optional(),
  jobs: z
    .strictObject({
      /** How a finished background job's result enters the session: queued (default) or as a steer. */
      deliver: z.enum(['queue', 'steer']).optional(),
      /** A job still running when a new owner restores its session: watch it again (default) or stop it. */
      onRestart: z.enum(['reattach', 'kill']).optional(),
    })
    .optional(),
  /** Global only: how long old sessions and saved tool outputs are kept (`loom db prune`, serve/worker). */
  retention: z
    .strictObject({
      /** Sessions idle (no event) for longer than this many days are removed with their files. */
      sessionsDays: z.number().positive().max(CONFIG_RETENTION_DAYS_MAX).optional(),
      /** Saved tool outputs and finished jobs' output files older than this many days are removed. */
      toolOutputDays: z.number().positive().max(CONFIG_RETENTION_DAYS_MAX).optional(),
    })
    .optional(),
  /** File checkpoints (issue 9): prior content of files tools change, for `loom diff` and `loom undo`. */
  checkpoints: checkpointsConfigSchema.optional(),
});

export type ConfigV1 = z.infer<typeof configV1Schema>;

/** Version 0, the legacy format. Its values are checked as strictly as their v1 homes. */
const configV0Schema = z.strictObject({
  version: z.literal(0).optional(),
  defaultModel: modelSchema.optional(),
  turnLimit: turnLimitSchema.optional(),
});

type ConfigV0 = z.infer<typeof configV0Schema>;

/** The merged config with every limit filled in. */
export interface ResolvedConfig {
  version: typeof CONFIG_VERSION_CURRENT;
  model?: string;
  limits: { turnLimit: number; toolCallsPerTurn: number; toolConcurrency: number; toolTimeoutMs: number };
  permission: { default?: PermissionAction; rules: PermissionRule[] };
  providers: NonNullable<ConfigV1['providers']>;
  recovery: { autoResume: boolean; retryBudget: number; restartsMax: number };
  jobs: { deliver: 'queue' | 'steer'; onRestart: 'reattach' | 'kill' };
  /** Unset: nothing is removed by age. */
  retention?: { sessionsDays?: number; toolOutputDays?: number };
  checkpoints: { enabled: boolean; bash: boolean; retentionDays: number; maxBytes: number };
}

// ---- migrations --------------------------------------------------------------------------------

/** One step from version `from` to `from + 1`: the schema `from` is checked against, and the conversion. */
interface ConfigMigration {
  schema: z.ZodType;
  up(config: unknown): unknown;
}

const migrations: ReadonlyMap<number, ConfigMigration> = new Map([
  [
    0,
    {
      schema: configV0Schema,
      up(config: unknown) {
        const v0 = config as ConfigV0;
        return {
          version: 1,
          ...(v0.defaultModel === undefined ? {} : { model: v0.defaultModel }),
          ...(v0.turnLimit === undefined ? {} : { limits: { turnLimit: v0.turnLimit } }),
        };
      },
    },
  ],
]);

/**
 * Brings a parsed config file of any known version to the current one and validates it. `file`
 * names the source in errors. Throws ConfigError for a version newer than CONFIG_VERSION_CURRENT,
 * an unknown key (named by its dotted path) or a bad value. Problems are reported against the
 * version the file was written in, so the field names match the file.
 */
export function migrateConfig(raw: unknown, file = '<config>'): ConfigV1 {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, 'the config must be a JSON object');
  }
  let version = versionOf(raw as Record<string, unknown>, file);
  let config: unknown = raw;
  while (version < CONFIG_VERSION_CURRENT) {
    const step = migrations.get(version);
    if (step === undefined) throw new Error(`no config migration from version ${version}`);
    config = step.up(validate(step.schema, config, file));
    version++;
  }
  return validate(configV1Schema, config, file);
}

function versionOf(raw: Record<string, unknown>, file: string): number {
  const version = raw.version;
  if (version === undefined) return 0;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    throw new ConfigError(file, 'must be a whole number (the config format version)', { field: 'version' });
  }
  if (version > CONFIG_VERSION_CURRENT) {
    throw new ConfigError(
      file,
      `config version ${version} is newer than this Loom understands (up to ${CONFIG_VERSION_CURRENT}); upgrade Loom or use a version ${CONFIG_VERSION_CURRENT} file`,
      { field: 'version' },
    );
  }
  return version;
}

function validate<T>(schema: z.ZodType<T>, value: unknown, file: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const others = parsed.error.issues.length - 1;
  const more = others > 0 ? ` (and ${others} more problem${others === 1 ? '' : 's'})` : '';
  const base = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const field = [...base, issue.keys[0]].join('.');
    return fail(file, `unknown key${more}`, field);
  }
  return fail(file, `${issue.message}${more}`, base.length === 0 ? undefined : base.join('.'));
}

function fail(file: string, detail: string, field: string | undefined): never {
  throw new ConfigError(file, detail, { field });
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

/**
 * Reads and migrates one config file; undefined when it does not exist. Throws ConfigError when
 * it is unreadable, over CONFIG_FILE_BYTES_MAX, not valid JSONC (with line and column) or invalid.
 */
export async function readConfigFile(file: string): Promise<ConfigV1 | undefined> {
  const text = await readBounded(file);
  if (text === undefined) return undefined;
  return migrateConfig(parseJsonc(text, file), file);
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

/** The first `size` bytes (the size fstat saw), so a file growing meanwhile cannot grow memory. */
async function readUpTo(handle: FileHandle, size: number): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  let filled = 0;
  while (filled < size) {
    const { bytesRead } = await handle.read(buffer, filled, size - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/** JSON with comments and trailing commas. The first syntax error is reported with line and column. */
function parseJsonc(text: string, file: string): unknown {
  const errors: ParseError[] = [];
  let value: unknown;
  try {
    value = parse(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  } catch (err) {
    if (err instanceof RangeError) throw new ConfigError(file, 'is nested too deeply to parse');
    throw err;
  }
  if (errors.length > 0) {
    const first = errors[0];
    const { line, column } = lineAndColumn(text, first.offset);
    throw new ConfigError(file, `invalid JSONC: ${describeParseError(first)}`, { line, column });
  }
  return value;
}

function describeParseError(error: ParseError): string {
  // "CommaExpected" → "comma expected"
  return printParseErrorCode(error.error)
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase();
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

// ---- merging and defaults ----------------------------------------------------------------------

/** `over` wins key by key through nested objects; permission rules are concatenated, `base` first. */
export function mergeConfigs(base: ConfigV1, over: ConfigV1): ConfigV1 {
  const merged = deepMerge(base, over) as ConfigV1;
  const rules = [...(base.permission?.rules ?? []), ...(over.permission?.rules ?? [])];
  if (base.permission !== undefined || over.permission !== undefined) merged.permission = { ...merged.permission, rules };
  return merged;
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value !== undefined) merged[key] = deepMerge(base[key], value);
  }
  return merged;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Fills every limit the config leaves out with its default from core/limits.ts. */
export function resolveConfig(config: ConfigV1): ResolvedConfig {
  const limits = config.limits ?? {};
  return {
    version: CONFIG_VERSION_CURRENT,
    ...(config.model === undefined ? {} : { model: config.model }),
    limits: {
      turnLimit: limits.turnLimit ?? TURN_LIMIT_DEFAULT,
      toolCallsPerTurn: limits.toolCallsPerTurn ?? TOOL_CALLS_PER_TURN_MAX,
      toolConcurrency: limits.toolConcurrency ?? TOOL_CONCURRENCY_PER_SESSION_MAX,
      toolTimeoutMs: limits.toolTimeoutMs ?? TOOL_TIMEOUT_DEFAULT_MS,
    },
    permission: {
      ...(config.permission?.default === undefined ? {} : { default: config.permission.default }),
      rules: config.permission?.rules ?? [],
    },
    providers: config.providers ?? {},
    recovery: {
      autoResume: config.recovery?.autoResume ?? true,
      retryBudget: config.recovery?.retryBudget ?? RECOVERY_RETRY_BUDGET_DEFAULT,
      restartsMax: config.recovery?.restartsMax ?? ACTIVITY_RESTARTS_MAX,
    },
    jobs: {
      deliver: config.jobs?.deliver ?? 'queue',
      onRestart: config.jobs?.onRestart ?? 'reattach',
    },
    ...(config.retention === undefined ? {} : { retention: { ...config.retention } }),
    checkpoints: {
      enabled: config.checkpoints?.enabled ?? true,
      bash: config.checkpoints?.bash ?? true,
      retentionDays: config.checkpoints?.retentionDays ?? CHECKPOINT_RETENTION_DAYS_DEFAULT,
      maxBytes: config.checkpoints?.maxBytes ?? CHECKPOINT_STORE_BYTES_DEFAULT,
    },
  };
}

export interface LoadConfigOptions {
  /** `$LOOM_HOME` (see resolveLoomHome). */
  home: string;
  /** The session's directory; its `.loom/config.jsonc` overrides the global file. */
  location?: string;
}

export interface LoadedConfig {
  config: ResolvedConfig;
  /** The files that existed and were applied, global first. */
  sources: string[];
}

/**
 * Loads the global and project config files (either may be missing), migrates, validates, merges
 * and fills defaults. Throws ConfigError naming the file (and field, or line and column) of the
 * first problem; nothing is half-applied.
 *
 * Gotcha: the project file comes from the directory being worked on. A cloned repository can
 * therefore loosen permissions or point `providers.openai.baseURL` elsewhere; callers that open
 * untrusted directories should confirm a project config before honouring it.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const files = [globalConfigPath(options.home)];
  if (options.location !== undefined) files.push(projectConfigPath(options.location));
  let merged: ConfigV1 = { version: CONFIG_VERSION_CURRENT };
  const sources: string[] = [];
  for (const file of files) {
    const config = await readConfigFile(file);
    if (config === undefined) continue;
    if (file !== files[0]) {
      // A cloned repository must not redirect credentials: provider endpoints and keys are global only.
      for (const id of ['openai', 'anthropic'] as const) {
        const provider = config.providers?.[id];
        if (provider?.baseURL === undefined && provider?.apiKey === undefined) continue;
        const field = provider.baseURL !== undefined ? `providers.${id}.baseURL` : `providers.${id}.apiKey`;
        throw new ConfigError(file, 'may not be set in a project config (the endpoint would receive your credentials); set it in $LOOM_HOME/config.jsonc', { field });
      }
    }
    if (file !== files[0] && config.retention !== undefined) {
      // Retention removes sessions of every directory: one project must not decide it for all.
      throw new ConfigError(file, 'may not be set in a project config (it removes sessions of every directory); set it in $LOOM_HOME/config.jsonc', { field: 'retention' });
    }
    if (file !== files[0]) {
      // Kept content is shared by every directory (content-addressed): its retention is global.
      for (const key of ['retentionDays', 'maxBytes'] as const) {
        if (config.checkpoints?.[key] === undefined) continue;
        throw new ConfigError(file, 'may not be set in a project config (checkpoint storage is shared by every directory); set it in $LOOM_HOME/config.jsonc', { field: `checkpoints.${key}` });
      }
    }
    merged = mergeConfigs(merged, config);
    sources.push(file);
  }
  return { config: resolveConfig(merged), sources };
}
