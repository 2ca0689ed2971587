import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ACTIVITY_RESTARTS_MAX, CHECKPOINT_RETENTION_DAYS_DEFAULT, CHECKPOINT_STORE_BYTES_DEFAULT, RECOVERY_RETRY_BUDGET_DEFAULT } from '../../core/limits.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CONFIG_FILE_BYTES_MAX,
  TOOL_CALLS_PER_TURN_MAX,
  TOOL_CONCURRENCY_PER_SESSION_MAX,
  TOOL_TIMEOUT_DEFAULT_MS,
  TURN_LIMIT_DEFAULT,
} from '../../core/limits.js';
import {
  ConfigError,
  globalConfigPath,
  loadConfig,
  migrateConfig,
  projectConfigPath,
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
      version: 1,
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
    writeProject(`{ "version": 1, "jobs": { "deliver": "steer", "onRestart": "kill" } }`);
    expect((await loadConfig({ home, location })).config.jobs).toEqual({ deliver: 'steer', onRestart: 'kill' });
    writeProject(`{ "version": 1, "jobs": { "onRestart": "rerun" } }`);
    const error = await loadConfig({ home, location }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('jobs.onRestart');
  });

  it('loadConfig - lets the project file override the global one, deep-merged', async () => {
    const global = writeGlobal(`{
      "version": 1,
      "model": "openai/gpt-4o",
      "limits": { "turnLimit": 10, "toolConcurrency": 2 },
      "providers": { "openai": { "baseURL": "https://api.example.com/v1", "idempotent": true } }
    }`);
    const project = writeProject(`{
      "version": 1,
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
    writeGlobal(`{ "version": 1, "permission": { "default": "deny", "rules": [{ "tool": "bash", "action": "deny" }] } }`);
    writeProject(`{ "version": 1, "permission": { "rules": [{ "tool": "bash", "pattern": "npm test", "action": "allow" }] } }`);
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
    const global = writeGlobal('{ "version": 1, "model": "openai/gpt-4o" }');
    writeProject('{ "version": 1, "model": "openai/other" }');
    const { config, sources } = await loadConfig({ home });
    expect(sources).toEqual([global]);
    expect(config.model).toBe('openai/gpt-4o');
  });

  it('loadConfig - accepts comments and trailing commas', async () => {
    writeGlobal(`// Loom settings
      {
        "version": 1, /* the format */
        "limits": {
          "turnLimit": 7, // fewer turns
        },
      }`);
    const { config } = await loadConfig({ home, location });
    expect(config.limits.turnLimit).toBe(7);
  });

  it('loadConfig - accepts a $schema key for editors', async () => {
    writeGlobal('{ "$schema": "https://example.com/loom.schema.json", "version": 1 }');
    const { config } = await loadConfig({ home, location });
    expect(config).not.toHaveProperty('$schema');
  });

  it('loadConfig - migrates a version 0 file to version 1', async () => {
    writeGlobal('{ "defaultModel": "openai/gpt-4o", "turnLimit": 12 }');
    const { config } = await loadConfig({ home, location });
    expect(config.version).toBe(1);
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
    const file = writeGlobal('{ "version": 2, "model": "openai/gpt-4o" }');
    const error = await loadError();
    expect(error.file).toBe(file);
    expect(error.field).toBe('version');
    expect(error.message).toMatch(/config version 2 is newer than this Loom understands/);
  });

  it('loadConfig - refuses a version that is not a whole number', async () => {
    writeGlobal('{ "version": "1" }');
    const error = await loadError();
    expect(error.field).toBe('version');
  });

  it('loadConfig - refuses an unknown top-level key and names it and the file', async () => {
    const file = writeProject('{ "version": 1, "modle": "openai/gpt-4o" }');
    const error = await loadError();
    expect(error.file).toBe(file);
    expect(error.field).toBe('modle');
    expect(error.message).toContain(file);
    expect(error.message).toContain('"modle": unknown key');
  });

  it('loadConfig - refuses a nested unknown key and names its path', async () => {
    writeGlobal('{ "version": 1, "limits": { "turnLimt": 3 } }');
    const error = await loadError();
    expect(error.field).toBe('limits.turnLimt');
  });

  it('loadConfig - refuses an unknown key in a version 0 file', async () => {
    writeGlobal('{ "defaultModel": "openai/gpt-4o", "theme": "dark" }');
    const error = await loadError();
    expect(error.field).toBe('theme');
  });

  it('loadConfig - refuses a bad value and names its field', async () => {
    writeGlobal('{ "version": 1, "permission": { "rules": [{ "tool": "bash", "action": "maybe" }] } }');
    const error = await loadError();
    expect(error.field).toBe('permission.rules.0.action');
  });

  it('loadConfig - refuses a model without a provider', async () => {
    writeGlobal('{ "version": 1, "model": "gpt-4o" }');
    const error = await loadError();
    expect(error.field).toBe('model');
    expect(error.message).toMatch(/provider\/model/);
  });

  it('loadConfig - refuses a limit above its bound', async () => {
    writeGlobal('{ "version": 1, "limits": { "toolConcurrency": 100000 } }');
    const error = await loadError();
    expect(error.field).toBe('limits.toolConcurrency');
  });

  it('loadConfig - refuses a base URL that is not http or https', async () => {
    writeGlobal('{ "version": 1, "providers": { "openai": { "baseURL": "file:///etc/passwd" } } }');
    const error = await loadError();
    expect(error.field).toBe('providers.openai.baseURL');
  });

  it('loadConfig - reports a syntax error with file, line and column', async () => {
    const file = writeGlobal('{\n  "version": 1,\n  "model" "openai/gpt-4o"\n}');
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
    writeGlobal(`{ "version": 1 }${' '.repeat(CONFIG_FILE_BYTES_MAX)}`);
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
  it('migrateConfig - turns an empty version 0 object into a bare version 1', () => {
    expect(migrateConfig({})).toEqual({ version: 1 });
  });

  it('migrateConfig - accepts an explicit version 0', () => {
    expect(migrateConfig({ version: 0, defaultModel: 'a/b' })).toEqual({ version: 1, model: 'a/b' });
  });

  it('migrateConfig - leaves a valid version 1 config as it is', () => {
    const v1 = { version: 1, model: 'a/b', limits: { turnLimit: 3 } };
    expect(migrateConfig(v1)).toEqual(v1);
  });

  it('migrateConfig - names the legacy field when a legacy value is invalid', () => {
    expect(() => migrateConfig({ turnLimit: 0 }, 'legacy.jsonc')).toThrow(/legacy\.jsonc: "turnLimit"/);
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
  it('loadConfig - refuses providers in a project config, naming the file and field', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadConfig } = await import('../../services/config.js');
    const home = mkdtempSync(join(tmpdir(), 'loom-cfg-home-'));
    const project = mkdtempSync(join(tmpdir(), 'loom-cfg-proj-'));
    mkdirSync(join(project, '.loom'));
    writeFileSync(join(project, '.loom', 'config.jsonc'), '{ "version": 1, "providers": { "openai": { "baseURL": "http://evil.example/v1" } } }');
    await expect(loadConfig({ home, location: project })).rejects.toThrow(/"providers.openai.baseURL": may not be set in a project config/);
  });

  it('loadConfig - refuses an anthropic key in a project config and accepts providers.anthropic globally', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadConfig } = await import('../../services/config.js');
    const home = mkdtempSync(join(tmpdir(), 'loom-cfg-home-'));
    const project = mkdtempSync(join(tmpdir(), 'loom-cfg-proj-'));
    writeFileSync(join(home, 'config.jsonc'), '{ "version": 1, "providers": { "anthropic": { "baseURL": "http://127.0.0.1:9/" } } }');
    const loaded = await loadConfig({ home, location: project });
    expect(loaded.config.providers.anthropic).toEqual({ baseURL: 'http://127.0.0.1:9/' });
    mkdirSync(join(project, '.loom'));
    writeFileSync(join(project, '.loom', 'config.jsonc'), '{ "version": 1, "providers": { "anthropic": { "apiKey": "sk-ant-planted" } } }');
    await expect(loadConfig({ home, location: project })).rejects.toThrow(/"providers.anthropic.apiKey": may not be set in a project config/);
  });
});
