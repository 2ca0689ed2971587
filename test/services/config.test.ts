import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ACTIVITY_RESTARTS_MAX,
  CHECKPOINT_RETENTION_DAYS_DEFAULT,
  CHECKPOINT_STORE_BYTES_DEFAULT,
  COMPACTION_FALLBACK_WINDOW_TOKENS,
  COMPACTION_KEEP_RECENT_TURNS_DEFAULT,
  COMPACTION_THRESHOLD_DEFAULT,
  RECOVERY_RETRY_BUDGET_DEFAULT,
} from '../../core/limits.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CONFIG_FILE_BYTES_MAX,
  TOOL_CALLS_PER_TURN_MAX,
  TOOL_CONCURRENCY_PER_SESSION_MAX,
  TOOL_TIMEOUT_DEFAULT_MS,
  TURN_LIMIT_DEFAULT,
} from '../../core/limits.js';
import {
  changedConfigKeys,
  CONFIG_VERSION_CURRENT,
  ConfigError,
  configJsonSchema,
  configOrigins,
  formatConfigPath,
  globalConfigPath,
  loadConfig,
  migrateConfig,
  projectConfigPath,
  publicConfig,
  resolveConfig,
  resolveLoomHome,
} from '../../services/config.js';

let root: string;
let home: string;
let location: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-config-'));
  home = path.join(root, 'home');
  location = path.join(root, 'project');
  fs.mkdirSync(home);
  fs.mkdirSync(location);
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function writeGlobal(text: string): string {
  const file = globalConfigPath(home);
  fs.writeFileSync(file, text);
  return file;
}

function writeProject(text: string): string {
  const file = projectConfigPath(location);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

async function loadError(): Promise<ConfigError> {
  const error = await loadConfig({ home, location }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('loadConfig', () => {
  it('loadConfig - fills every limit with its default when no file exists', async () => {
    const { config, sources } = await loadConfig({ home, location });
    expect(sources).toEqual([]);
    expect(config).toEqual({
      version: 2,
      limits: {
        turnLimit: TURN_LIMIT_DEFAULT,
        toolCallsPerTurn: TOOL_CALLS_PER_TURN_MAX,
        toolConcurrency: TOOL_CONCURRENCY_PER_SESSION_MAX,
        toolTimeoutMs: TOOL_TIMEOUT_DEFAULT_MS,
      },
      permission: { rules: [] },
      providers: {},
      recovery: { autoResume: true, retryBudget: RECOVERY_RETRY_BUDGET_DEFAULT, restartsMax: ACTIVITY_RESTARTS_MAX },
      jobs: { deliver: 'queue', onRestart: 'reattach' },
      mcp: { servers: {} },
      agents: {},
      compaction: {
        auto: true,
        threshold: COMPACTION_THRESHOLD_DEFAULT,
        keepRecentTurns: COMPACTION_KEEP_RECENT_TURNS_DEFAULT,
        fallbackWindowTokens: COMPACTION_FALLBACK_WINDOW_TOKENS,
      },
      checkpoints: { enabled: true, bash: true, retentionDays: CHECKPOINT_RETENTION_DAYS_DEFAULT, maxBytes: CHECKPOINT_STORE_BYTES_DEFAULT },
    });
  });

  it('loadConfig - checkpoints: a project may turn them off; their storage limits are global only', async () => {
    writeProject(`{ "version": 1, "checkpoints": { "enabled": false, "bash": false } }`);
    expect((await loadConfig({ home, location })).config.checkpoints).toMatchObject({ enabled: false, bash: false });
    writeProject(`{ "version": 1, "checkpoints": { "maxBytes": 1000 } }`);
    const error = await loadConfig({ home, location }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('checkpoints.maxBytes');
    expect((error as Error).message).toMatch(/may not be set in a project config/);
    writeProject(`{ "version": 1, "checkpoints": { "retentionDays": -1 } }`);
    expect(((await loadConfig({ home, location }).catch((e: unknown) => e)) as ConfigError).field).toBe('checkpoints.retentionDays');
  });

  it('loadConfig - reads the background-job settings and refuses a value they do not have', async () => {
    writeProject(`{ "version": 2, "jobs": { "deliver": "steer", "onRestart": "kill" } }`);
    expect((await loadConfig({ home, location })).config.jobs).toEqual({ deliver: 'steer', onRestart: 'kill' });
    writeProject(`{ "version": 2, "jobs": { "onRestart": "rerun" } }`);
    const error = await loadConfig({ home, location }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('jobs.onRestart');
  });

  it('loadConfig - lets the project file override the global one, deep-merged', async () => {
    const global = writeGlobal(`{
      "version": 2,
      "model": "openai/gpt-4o",
      "limits": { "turnLimit": 10, "toolConcurrency": 2 },
      "providers": { "openai": { "baseURL": "https://api.example.com/v1", "idempotent": true } }
    }`);
    const project = writeProject(`{
      "version": 2,
      "model": "openai/gpt-4o-mini",
      "limits": { "turnLimit": 40 },
      "providers": { "openai": { "idempotent": false } }
    }`);
    const { config, sources } = await loadConfig({ home, location });
    expect(sources).toEqual([global, project]);
    expect(config.model).toBe('openai/gpt-4o-mini');
    expect(config.limits).toEqual({
      turnLimit: 40,
      toolConcurrency: 2,
      toolCallsPerTurn: TOOL_CALLS_PER_TURN_MAX,
      toolTimeoutMs: TOOL_TIMEOUT_DEFAULT_MS,
    });
    expect(config.providers.openai).toEqual({ baseURL: 'https://api.example.com/v1', idempotent: false });
  });

  it('loadConfig - concatenates permission rules, global first', async () => {
    writeGlobal(`{ "version": 2, "permission": { "default": "deny", "rules": [{ "tool": "bash", "action": "deny" }] } }`);
    writeProject(`{ "version": 2, "permission": { "rules": [{ "tool": "bash", "pattern": "npm test", "action": "allow" }] } }`);
    const { config } = await loadConfig({ home, location });
    expect(config.permission).toEqual({
      default: 'deny',
      rules: [
        { tool: 'bash', action: 'deny' },
        { tool: 'bash', pattern: 'npm test', action: 'allow' },
      ],
    });
  });

  it('loadConfig - reads only the global file when no location is given', async () => {
    const global = writeGlobal('{ "version": 2, "model": "openai/gpt-4o" }');
    writeProject('{ "version": 2, "model": "openai/other" }');
    const { config, sources } = await loadConfig({ home });
    expect(sources).toEqual([global]);
    expect(config.model).toBe('openai/gpt-4o');
  });

  it('loadConfig - accepts comments and trailing commas', async () => {
    writeGlobal(`// Loom settings
      {
        "version": 2, /* the format */
        "limits": {
          "turnLimit": 7, // fewer turns
        },
      }`);
    const { config } = await loadConfig({ home, location });
    expect(config.limits.turnLimit).toBe(7);
  });

  it('loadConfig - accepts a $schema key for editors', async () => {
    writeGlobal('{ "$schema": "https://example.com/loom.schema.json", "version": 2 }');
    const { config } = await loadConfig({ home, location });
    expect(config).not.toHaveProperty('$schema');
  });

  it('loadConfig - migrates a version 0 file to the current version and says what changed', async () => {
    const file = writeGlobal('{ "defaultModel": "openai/gpt-4o", "turnLimit": 12 }');
    const { config, notes } = await loadConfig({ home, location });
    expect(notes).toEqual([{ file, scope: 'global', from: 0, to: CONFIG_VERSION_CURRENT, changes: ['defaultModel → model', 'turnLimit → limits.turnLimit'] }]);
    expect(config.version).toBe(2);
    expect(config.model).toBe('openai/gpt-4o');
    expect(config.limits.turnLimit).toBe(12);
  });

  it('loadConfig - merges a version 0 global file with a version 1 project file', async () => {
    writeGlobal('{ "defaultModel": "openai/gpt-4o", "turnLimit": 12 }');
    writeProject('{ "version": 1, "limits": { "toolTimeoutMs": 5000 } }');
    const { config } = await loadConfig({ home, location });
    expect(config.model).toBe('openai/gpt-4o');
    expect(config.limits.turnLimit).toBe(12);
    expect(config.limits.toolTimeoutMs).toBe(5_000);
  });

  it('loadConfig - refuses a version newer than it knows', async () => {
    const file = writeGlobal('{\n  "version": 3,\n  "model": "openai/gpt-4o"\n}');
    const error = await loadError();
    expect(error.file).toBe(file);
    expect(error.field).toBe('version');
    expect(error.line).toBe(2);
    expect(error.message).toMatch(/config version 3 is newer than this Loom understands \(up to 2\)/);
  });

  it('loadConfig - refuses a version that is not a whole number', async () => {
    writeGlobal('{ "version": "1" }');
    const error = await loadError();
    expect(error.field).toBe('version');
  });

  it('loadConfig - refuses an unknown top-level key and names it and the file', async () => {
    const file = writeProject('{ "version": 2, "modle": "openai/gpt-4o" }');
    const error = await loadError();
    expect(error.file).toBe(file);
    expect(error.field).toBe('modle');
    expect(error.message).toContain(file);
    expect(error.message).toContain('"modle": unknown key');
  });

  it('loadConfig - refuses a nested unknown key and names its path', async () => {
    writeGlobal('{ "version": 2, "limits": { "turnLimt": 3 } }');
    const error = await loadError();
    expect(error.field).toBe('limits.turnLimt');
  });

  it('loadConfig - refuses an unknown key in a version 0 file', async () => {
    writeGlobal('{ "defaultModel": "openai/gpt-4o", "theme": "dark" }');
    const error = await loadError();
    expect(error.field).toBe('theme');
  });

  it('loadConfig - refuses a bad value and names its field', async () => {
    writeGlobal('{ "version": 2, "permission": { "rules": [{ "tool": "bash", "action": "maybe" }] } }');
    const error = await loadError();
    expect(error.field).toBe('permission.rules.0.action');
  });

  it('loadConfig - refuses a model without a provider', async () => {
    writeGlobal('{ "version": 2, "model": "gpt-4o" }');
    const error = await loadError();
    expect(error.field).toBe('model');
    expect(error.message).toMatch(/provider\/model/);
  });

  it('loadConfig - refuses a limit above its bound', async () => {
    writeGlobal('{ "version": 2, "limits": { "toolConcurrency": 100000 } }');
    const error = await loadError();
    expect(error.field).toBe('limits.toolConcurrency');
  });

  it('loadConfig - refuses a base URL that is not http or https', async () => {
    writeGlobal('{ "version": 2, "providers": { "openai": { "baseURL": "file:///etc/passwd" } } }');
    const error = await loadError();
    expect(error.field).toBe('providers.openai.baseURL');
  });

  it('loadConfig - reports a syntax error with file, line and column', async () => {
    const file = writeGlobal('{\n  "version": 2,\n  "model" "openai/gpt-4o"\n}');
    const error = await loadError();
    expect(error.file).toBe(file);
    expect(error.line).toBe(3);
    expect(error.column).toBe(11);
    expect(error.message).toBe(`${file}:3:11: invalid JSONC: colon expected`);
  });

  it('loadConfig - refuses an empty file', async () => {
    writeGlobal('// nothing here\n');
    const error = await loadError();
    expect(error.message).toMatch(/invalid JSONC/);
  });

  it('loadConfig - refuses a file whose root is not an object', async () => {
    writeGlobal('[1, 2]');
    const error = await loadError();
    expect(error.message).toMatch(/must be a JSON object/);
  });

  it('loadConfig - refuses a file over the size bound', async () => {
    writeGlobal(`{ "version": 2 }${' '.repeat(CONFIG_FILE_BYTES_MAX)}`);
    const error = await loadError();
    expect(error.message).toMatch(/at most/);
  });

  it('loadConfig - refuses a config path that is a directory', async () => {
    fs.mkdirSync(globalConfigPath(home));
    const error = await loadError();
    expect(error.message).toMatch(/not a regular file/);
  });
});

describe('migrateConfig', () => {
  it('migrateConfig - turns an empty version 0 object into a bare current config', () => {
    expect(migrateConfig({})).toEqual({ config: { version: 2 }, version: 0, notes: [], legacyApiKeys: {} });
  });

  it('migrateConfig - accepts an explicit version 0 and notes the renamed key', () => {
    expect(migrateConfig({ version: 0, defaultModel: 'a/b' })).toMatchObject({ config: { version: 2, model: 'a/b' }, notes: ['defaultModel → model'] });
  });

  it('migrateConfig - leaves a valid current config as it is, with no notes', () => {
    const v2 = { version: 2, model: 'a/b', limits: { turnLimit: 3 } };
    expect(migrateConfig(v2)).toEqual({ config: v2, version: 2, notes: [], legacyApiKeys: {} });
  });

  it('migrateConfig - carries a version 1 API key in memory only and tells the user to move it', () => {
    const v1 = { version: 1, providers: { openai: { apiKey: 'sk-carried-0001', baseURL: 'http://127.0.0.1:1/v1' } } };
    const migrated = migrateConfig(v1);
    expect(migrated.config).toEqual({ version: 2, providers: { openai: { baseURL: 'http://127.0.0.1:1/v1' } } });
    expect(JSON.stringify(migrated.config)).not.toContain('sk-carried');
    expect(migrated.legacyApiKeys).toEqual({ openai: 'sk-carried-0001' });
    expect(migrated.notes).toHaveLength(1);
    expect(migrated.notes[0]).toMatch(/^providers\.openai\.apiKey: credentials no longer live in config.*`loom auth set openai`/);
    expect(migrated.notes[0]).not.toContain('sk-carried');
  });

  it('migrateConfig - names the legacy field when a legacy value is invalid', () => {
    expect(() => migrateConfig({ turnLimit: 0 }, 'legacy.jsonc')).toThrow(/legacy\.jsonc: "turnLimit"/);
  });

  it('migrateConfig - refuses an API key in a version 2 file, saying where credentials go', () => {
    expect(() => migrateConfig({ version: 2, providers: { anthropic: { apiKey: 'k' } } }, 'f.jsonc')).toThrow(
      /f\.jsonc: "providers\.anthropic\.apiKey": unknown key: credentials do not live in config since version 2; use `loom auth set anthropic` or ANTHROPIC_API_KEY/,
    );
  });
});

describe('config fixtures of every version', () => {
  const dir = path.join(import.meta.dirname, '..', 'fixtures', 'config');
  const fixtures = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonc'));

  it('fixtures - every version up to the current one has a fixture, and every fixture its expectations', () => {
    const versions = new Set(fixtures.map((f) => Number(/^v(\d+)-/.exec(f)?.[1])));
    for (let v = 0; v <= CONFIG_VERSION_CURRENT; v++) expect(versions.has(v), `a fixture test/fixtures/config/v${v}-*.jsonc`).toBe(true);
    for (const f of fixtures) expect(fs.existsSync(path.join(dir, f.replace(/\.jsonc$/, '.expected.json'))), `${f} has an .expected.json`).toBe(true);
  });

  for (const name of fixtures) {
    it(`fixtures - ${name} loads as the current version with the expected settings and notes`, async () => {
      const expected = JSON.parse(fs.readFileSync(path.join(dir, name.replace(/\.jsonc$/, '.expected.json')), 'utf8')) as {
        version: number;
        config: unknown;
        notes: string[];
        legacyApiKeys: string[];
      };
      fs.copyFileSync(path.join(dir, name), globalConfigPath(home));
      const { config, files, notes } = await loadConfig({ home });
      expect(files[0].version).toBe(expected.version);
      expect(files[0].config).toEqual(expected.config);
      expect(files[0].notes).toEqual(expected.notes);
      expect(Object.keys(files[0].legacyApiKeys)).toEqual(expected.legacyApiKeys);
      expect(Object.keys(config.legacyApiKeys ?? {})).toEqual(expected.legacyApiKeys);
      expect(notes).toHaveLength(expected.version < CONFIG_VERSION_CURRENT ? 1 : 0);
      // Keys carried from version 1 never show in what can be printed or sent.
      for (const id of expected.legacyApiKeys) expect(JSON.stringify(publicConfig(config))).not.toContain(config.legacyApiKeys![id]);
      expect(JSON.stringify(config)).not.toMatch(/sk-/);
    });
  }
});

describe('config errors name file, line and key', () => {
  it('loadConfig - an unknown nested key is reported at its own line', async () => {
    const file = writeGlobal('{\n  "version": 2,\n  "limits": {\n    "turnLimit": 3,\n    "turnLimt": 4\n  }\n}\n');
    const error = await loadError();
    expect({ file: error.file, line: error.line, field: error.field }).toEqual({ file, line: 5, field: 'limits.turnLimt' });
    expect(error.message).toBe(`${file}:5:5: "limits.turnLimt": unknown key`);
  });

  it('loadConfig - a bad value is reported at the line of its key', async () => {
    writeGlobal('{\n  "version": 2,\n  "permission": {\n    "rules": [\n      { "tool": "bash", "action": "maybe" }\n    ]\n  }\n}\n');
    const error = await loadError();
    expect(error.field).toBe('permission.rules.0.action');
    expect(error.line).toBe(5);
  });

  it('loadConfig - a bad value in a version 1 file is reported with the version 1 key and its line', async () => {
    writeGlobal('{\n  "version": 1,\n  "providers": {\n    "openai": { "apiKey": "" }\n  }\n}\n');
    const error = await loadError();
    expect(error.field).toBe('providers.openai.apiKey');
    expect(error.line).toBe(4);
  });

  it('loadConfig - a custom provider without a kind is refused, naming the file, line and key', async () => {
    const file = writeGlobal('{\n  "version": 2,\n  "providers": {\n    "local": { "baseURL": "http://127.0.0.1:11434/v1" }\n  }\n}\n');
    const error = await loadError();
    expect({ file: error.file, line: error.line, field: error.field }).toEqual({ file, line: 4, field: 'providers.local.kind' });
    expect(error.message).toMatch(/is required for a provider id other than openai, openai-responses, anthropic/);
  });

  it('loadConfig - a provider id that cannot be written in "provider/model" is refused', async () => {
    writeGlobal('{ "version": 2, "providers": { "my provider": { "kind": "openai" } } }');
    const error = await loadError();
    expect(error.field).toBe('providers["my provider"]');
    expect(error.message).toMatch(/a provider id is 1 to 64 letters/);
  });

  it('loadConfig - a header that looks like a credential is refused (credentials belong to loom auth)', async () => {
    writeGlobal('{ "version": 2, "providers": { "local": { "kind": "openai", "headers": { "Authorization": "Bearer x" } } } }');
    const error = await loadError();
    expect(error.field).toBe('providers.local.headers.Authorization');
    expect(error.message).toMatch(/looks like a credential.*loom auth set/);
    expect(error.message).not.toContain('Bearer x');
  });
});

describe('config version 2 providers', () => {
  it('loadConfig - reads custom providers with kind, headers and models, and leaves built-in ids without kind', async () => {
    writeGlobal(fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'config', 'v2-custom-providers.jsonc'), 'utf8'));
    const { config } = await loadConfig({ home, location });
    expect(config.providers.local).toMatchObject({ kind: 'openai', headers: { 'X-Team': 'loom' } });
    expect(config.providers.local.models!['qwen2.5-coder']).toMatchObject({ context: 32768, cost: { input: 0, output: 0 } });
    expect(config.providers.openai).toEqual({ idempotent: false });
  });

  it('loadConfig - a project file may not add models (the model catalog is one per process, shared by every project)', async () => {
    writeGlobal('{ "version": 2, "providers": { "local": { "kind": "openai", "baseURL": "http://127.0.0.1:1/v1" } } }');
    writeProject('{ "version": 2, "providers": { "local": { "models": { "tiny": { "context": 4096 } } } } }');
    await expect(loadConfig({ home, location })).rejects.toThrow(/"providers\.local\.models": may not be set in a project config/);
  });

  for (const key of ['kind', 'baseURL', 'headers'] as const) {
    it(`loadConfig - a project file may not set providers.*.${key}`, async () => {
      const value = { kind: '"openai"', baseURL: '"http://evil.example/v1"', headers: '{ "X-Team": "a" }' }[key];
      const file = writeProject(`{\n  "version": 2,\n  "providers": {\n    "anthropic": { "${key}": ${value} }\n  }\n}`);
      const error = await loadError();
      expect({ file: error.file, field: error.field, line: error.line }).toEqual({ file, field: `providers.anthropic.${key}`, line: 4 });
      expect(error.message).toMatch(/may not be set in a project config/);
    });
  }

  it('loadConfig - a project directory whose .loom is $LOOM_HOME reads the global file once, as global', async () => {
    const homeInside = path.join(location, '.loom');
    fs.mkdirSync(homeInside);
    fs.writeFileSync(globalConfigPath(homeInside), '{ "version": 2, "providers": { "openai": { "baseURL": "http://127.0.0.1:1/v1" } }, "retention": { "sessionsDays": 3 } }');
    const { sources, config } = await loadConfig({ home: homeInside, location });
    expect(sources).toEqual([globalConfigPath(homeInside)]);
    expect(config.retention).toEqual({ sessionsDays: 3 });
  });
});

describe('config helpers', () => {
  it('changedConfigKeys - names changed leaves as dotted paths, arrays as a whole, never values', () => {
    const before = resolveConfig({ version: 2, limits: { turnLimit: 5 }, permission: { rules: [{ tool: 'read', action: 'allow' }] } });
    const after = resolveConfig(
      { version: 2, limits: { turnLimit: 6 }, permission: { rules: [] }, providers: { local: { kind: 'openai', models: { 'gpt-4.1': { context: 5 } } } } },
      { legacyApiKeys: { openai: 'sk-secret-new' } },
    );
    const keys = changedConfigKeys(before, after);
    // An added provider is named once, by its own path; a version 1 key by its version 1 name.
    expect(keys).toEqual(['limits.turnLimit', 'permission.rules', 'providers.local', 'providers.openai.apiKey']);
    const more = resolveConfig({ version: 2, limits: { turnLimit: 6 }, permission: { rules: [] }, providers: { local: { kind: 'openai', models: { 'gpt-4.1': { context: 6 } } } } });
    expect(changedConfigKeys(after, more)).toEqual(['providers.local.models["gpt-4.1"].context', 'providers.openai.apiKey']);
    expect(JSON.stringify(keys)).not.toContain('sk-secret');
    expect(changedConfigKeys(after, resolveConfig({ ...after }, { legacyApiKeys: { openai: 'sk-secret-new' } }))).toEqual([]);
  });

  it('resolveConfig - legacy keys are invisible to JSON, spreads and key listings', () => {
    const config = resolveConfig({ version: 2 }, { legacyApiKeys: { openai: 'sk-hidden-0001' } });
    expect(config.legacyApiKeys).toEqual({ openai: 'sk-hidden-0001' });
    expect(JSON.stringify(config)).not.toContain('sk-hidden');
    expect(JSON.stringify({ ...config })).not.toContain('sk-hidden');
    expect(Object.keys(config)).not.toContain('legacyApiKeys');
  });

  it('formatConfigPath - quotes keys that are not plain names', () => {
    expect(formatConfigPath(['permission', 'rules', 0, 'action'])).toBe('permission.rules.0.action');
    expect(formatConfigPath(['providers', 'my.host', 'models', 'a b'])).toBe('providers["my.host"].models["a b"]');
  });

  it('configOrigins - names the file that set each setting, default for the rest, and each permission rule', async () => {
    const global = writeGlobal('{ "version": 2, "limits": { "turnLimit": 9 }, "permission": { "rules": [{ "tool": "bash", "action": "deny" }] } }');
    const project = writeProject('{ "version": 2, "model": "openai/x", "permission": { "rules": [{ "tool": "read", "action": "allow" }] } }');
    const loaded = await loadConfig({ home, location });
    const origins = configOrigins(loaded.files, loaded.config);
    expect(origins).toMatchObject({
      model: project,
      'limits.turnLimit': global,
      'limits.toolConcurrency': 'default',
      'permission.rules.0': global,
      'permission.rules.1': project,
      'jobs.deliver': 'default',
    });
  });

  it('configJsonSchema - describes the current version for editors (providers as a map, no credentials)', () => {
    const schema = configJsonSchema() as { $schema: string; properties: Record<string, any>; additionalProperties: boolean; required: string[] };
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.properties.version.const).toBe(2);
    expect(schema.required).toEqual(['version']);
    expect(schema.additionalProperties).toBe(false);
    const provider = schema.properties.providers.additionalProperties;
    expect(Object.keys(provider.properties)).toEqual(['kind', 'baseURL', 'idempotent', 'headers', 'enabled', 'models']);
    expect(provider.properties.kind.enum).toEqual(['openai', 'openai-responses', 'anthropic']);
    expect(JSON.stringify(schema)).not.toContain('apiKey');
  });
});

describe('resolveLoomHome', () => {
  it('resolveLoomHome - uses LOOM_HOME when set', () => {
    expect(resolveLoomHome({ LOOM_HOME: '/srv/loom' })).toBe('/srv/loom');
  });

  it('resolveLoomHome - falls back to ~/.loom', () => {
    expect(resolveLoomHome({})).toBe(path.join(os.homedir(), '.loom'));
  });
});

describe('config - project files and credentials', () => {
  it('loadConfig - refuses a provider baseURL in a project config, naming the file and field', async () => {
    writeProject('{ "version": 2, "providers": { "openai": { "baseURL": "http://evil.example/v1" } } }');
    await expect(loadConfig({ home, location })).rejects.toThrow(/"providers.openai.baseURL": may not be set in a project config/);
  });

  it('loadConfig - refuses a version 1 anthropic key in a project config and accepts providers.anthropic globally', async () => {
    writeGlobal('{ "version": 1, "providers": { "anthropic": { "baseURL": "http://127.0.0.1:9/" } } }');
    const loaded = await loadConfig({ home, location });
    expect(loaded.config.providers.anthropic).toEqual({ baseURL: 'http://127.0.0.1:9/' });
    const file = writeProject('{\n  "version": 1,\n  "providers": { "anthropic": { "apiKey": "sk-ant-planted" } }\n}');
    const error = await loadError();
    expect(error.message).toMatch(/"providers.anthropic.apiKey": may not be set in a project config/);
    expect({ file: error.file, line: error.line }).toEqual({ file, line: 3 });
    expect(error.message).not.toContain('sk-ant-planted');
  });

  it('loadConfig - refuses retention in a project config', async () => {
    writeProject('{ "version": 2, "retention": { "sessionsDays": 1 } }');
    const error = await loadError();
    expect(error.field).toBe('retention');
  });
});

describe('config - mcp servers (global only)', () => {
  it('loadConfig - reads MCP servers from the global config', async () => {
    writeGlobal(`{
      "version": 1,
      "mcp": { "servers": {
        "files": { "type": "stdio", "command": "npx", "args": ["-y", "some-mcp-server"], "env": { "TOKEN": "\${FILES_TOKEN}" }, "idempotentTools": ["read_file"] },
        "web": { "type": "http", "url": "https://mcp.example.com/mcp", "headers": { "Authorization": "Bearer \${WEB_TOKEN}" }, "timeoutMs": 5000, "enabled": false }
      } }
    }`);
    const { config } = await loadConfig({ home, location });
    expect(config.mcp.servers).toEqual({
      files: { type: 'stdio', command: 'npx', args: ['-y', 'some-mcp-server'], env: { TOKEN: '${FILES_TOKEN}' }, idempotentTools: ['read_file'] },
      web: { type: 'http', url: 'https://mcp.example.com/mcp', headers: { Authorization: 'Bearer ${WEB_TOKEN}' }, timeoutMs: 5000, enabled: false },
    });
  });

  it('loadConfig - refuses a stdio MCP server in a project config, naming its command', async () => {
    const file = writeProject(`{ "version": 1, "mcp": { "servers": { "evil": { "type": "stdio", "command": "./install.sh" } } } }`);
    const error = await loadError();
    expect(error.file).toBe(file);
    expect(error.field).toBe('mcp.servers.evil.command');
    expect(error.message).toContain('a cloned repository must not start programs ("./install.sh")');
  });

  it('loadConfig - refuses an HTTP MCP server in a project config too', async () => {
    writeProject(`{ "version": 1, "mcp": { "servers": { "web": { "type": "http", "url": "http://127.0.0.1:9/mcp" } } } }`);
    const error = await loadError();
    expect(error.field).toBe('mcp.servers.web');
    expect(error.message).toMatch(/may not be set in a project config/);
  });

  it('loadConfig - refuses an MCP server name that cannot be part of a tool name', async () => {
    writeGlobal(`{ "version": 1, "mcp": { "servers": { "my server": { "type": "stdio", "command": "x" } } } }`);
    const error = await loadConfig({ home }).then(() => undefined, (e: unknown) => e as ConfigError);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.message).toMatch(/mcp\.servers/);
  });

  it('loadConfig - refuses an unknown transport and a relative cwd, naming the field', async () => {
    writeGlobal(`{ "version": 1, "mcp": { "servers": { "a": { "type": "sse", "url": "http://x" } } } }`);
    await expect(loadConfig({ home })).rejects.toThrow(/"mcp.servers.a.type"/);
    writeGlobal(`{ "version": 1, "mcp": { "servers": { "a": { "type": "stdio", "command": "x", "cwd": "relative/dir" } } } }`);
    await expect(loadConfig({ home })).rejects.toThrow(/"mcp.servers.a.cwd": must be an absolute path/);
  });
});

describe('config - provider models (catalog)', () => {
  it('loadConfig - providers.<id>.models are validated field by field and kept', async () => {
    writeGlobal('{ "version": 1, "providers": { "openai": { "models": { "gpt-4o": { "context": 64000, "cost": { "input": 2, "output": 8 } } } } } }');
    const { config } = await loadConfig({ home });
    expect(config.providers.openai?.models).toEqual({ 'gpt-4o': { context: 64_000, cost: { input: 2, output: 8 } } });
    writeGlobal('{ "version": 1, "providers": { "openai": { "models": { "gpt-4o": { "cost": { "input": -1, "output": 8 } } } } } }');
    await expect(loadConfig({ home })).rejects.toThrow(/"providers.openai.models.gpt-4o.cost.input"/);
    writeGlobal('{ "version": 1, "providers": { "openai": { "models": { "gpt-4o": { "window": 1 } } } } }');
    await expect(loadConfig({ home })).rejects.toThrow(/"providers.openai.models.gpt-4o.window": unknown key/);
  });

  it('loadConfig - refuses providers.<id>.models in a project config (the catalog is shared by every project)', async () => {
    fs.mkdirSync(path.join(location, '.loom'));
    fs.writeFileSync(projectConfigPath(location), '{ "version": 1, "providers": { "anthropic": { "models": { "claude-x": { "context": 1000 } } } } }');
    await expect(loadConfig({ home, location })).rejects.toThrow(/"providers.anthropic.models": may not be set in a project config/);
  });
});

describe('config - agents and compaction', () => {
  it('loadConfig - reads custom agent profiles (project entries merged over global ones) and the compaction settings', async () => {
    writeGlobal(`{ "version": 1, "agents": { "review": { "description": "reviews", "tools": { "bash": false } } }, "compaction": { "threshold": 0.7 } }`);
    writeProject(`{ "version": 1, "agents": { "review": { "model": "openai/gpt-4o" } }, "compaction": { "keepRecentTurns": 4, "auto": false } }`);
    const { config } = await loadConfig({ home, location });
    expect(config.agents).toEqual({ review: { description: 'reviews', tools: { bash: false }, model: 'openai/gpt-4o' } });
    expect(config.compaction).toEqual({ auto: false, threshold: 0.7, keepRecentTurns: 4, fallbackWindowTokens: COMPACTION_FALLBACK_WINDOW_TOKENS });
  });

  it('loadConfig - refuses an agent with an unknown key, a bad name, or a tool switch that is not a boolean, naming the field', async () => {
    writeProject(`{ "version": 1, "agents": { "review": { "tools": { "bash": "no" } } } }`);
    expect((await loadError()).field).toBe('agents.review.tools.bash');
    writeProject(`{ "version": 1, "agents": { "review": { "temperature": 1 } } }`);
    expect((await loadError()).field).toBe('agents.review.temperature');
    writeProject(`{ "version": 1, "agents": { "no spaces": {} } }`);
    expect((await loadError()).message).toContain('agents');
  });

  it('loadConfig - refuses a compaction threshold or window outside its bounds', async () => {
    writeProject(`{ "version": 1, "compaction": { "threshold": 1.5 } }`);
    expect((await loadError()).field).toBe('compaction.threshold');
    writeProject(`{ "version": 1, "compaction": { "fallbackWindowTokens": 10 } }`);
    expect((await loadError()).field).toBe('compaction.fallbackWindowTokens');
  });
});
