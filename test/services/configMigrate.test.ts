import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VERSION_CURRENT, ConfigError, globalConfigPath, loadConfig, projectConfigPath, readConfigFile } from '../../services/config.js';
import { migrateConfigFile } from '../../services/configMigrate.js';
import { tempDir } from '../helpers.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'config');
const NOW = new Date('2026-11-26T10:15:00.123Z');

/** A fresh $LOOM_HOME holding the fixture as its global config. */
function homeWith(fixture: string): { home: string; file: string; original: Buffer } {
  const home = tempDir('loom-migrate-');
  const file = globalConfigPath(home);
  fs.copyFileSync(path.join(FIXTURES, fixture), file);
  return { home, file, original: fs.readFileSync(file) };
}

function backupsOf(file: string): string[] {
  return fs.readdirSync(path.dirname(file)).filter((n) => n.startsWith(`${path.basename(file)}.v`) && n.endsWith('.bak'));
}

describe('migrateConfigFile', () => {
  const old = fs.readdirSync(FIXTURES).filter((f) => /^v\d+-.*\.jsonc$/.test(f) && Number(/^v(\d+)/.exec(f)![1]) < CONFIG_VERSION_CURRENT);

  for (const fixture of old) {
    it(`migrateConfigFile - ${fixture}: rewrites it at the current version, loading as the same config, with the original kept as a 0600 backup`, async () => {
      const { home, file, original } = homeWith(fixture);
      const before = await loadConfig({ home });
      const result = await migrateConfigFile(file, 'global', { dropCredentials: true, now: NOW });
      if (result.status !== 'migrated') throw new Error(`expected migrated, got ${result.status}`);
      expect(result.to).toBe(CONFIG_VERSION_CURRENT);
      expect(path.basename(result.backup)).toBe(`config.jsonc.v${result.from}-20261126T101500Z.bak`);
      expect(fs.readFileSync(result.backup).equals(original)).toBe(true);
      expect(fs.statSync(result.backup).mode & 0o777).toBe(0o600);
      const after = await loadConfig({ home });
      expect(after.files[0].version).toBe(CONFIG_VERSION_CURRENT);
      expect(after.notes).toEqual([]);
      expect(after.config).toEqual(before.config);
      // The file no longer holds any key; the in-memory config of before still had it.
      expect(fs.readFileSync(file, 'utf8')).not.toMatch(/apiKey|sk-/);
      expect(after.config.legacyApiKeys).toBeUndefined();
      expect(result.rewrite).toBe('edited');
    });
  }

  it('migrateConfigFile - keeps comments and layout of the keys it does not change', async () => {
    const { file } = homeWith('v1-full.jsonc');
    await migrateConfigFile(file, 'global', { dropCredentials: true, now: NOW });
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('// Global Loom config, version 1.');
    expect(text).toContain('"model": "openai/gpt-4o-mini", // everyday model');
    expect(text).toContain('// never read secrets');
    expect(text).toContain('"baseURL": "http://127.0.0.1:8080/v1", // the proxy');
    expect(text).toContain('/* how long sessions are kept */');
    expect(text).toContain('  "version": 2,');
    // The comment that described the removed key went with it.
    expect(text).not.toContain('// the key, from before credentials moved out');
  });

  it('migrateConfigFile - a version 0 file gets its version first and its renamed keys', async () => {
    const { file } = homeWith('v0-legacy.jsonc');
    await migrateConfigFile(file, 'global', { now: NOW });
    const text = fs.readFileSync(file, 'utf8');
    expect(text.startsWith('// Loom settings from before config versions.\n{\n  "version": 2,')).toBe(true);
    expect(text).not.toContain('defaultModel');
    expect((await readConfigFile(file))!.config).toEqual({ version: 2, model: 'openai/gpt-4o', limits: { turnLimit: 12 } });
  });

  it('migrateConfigFile - refuses a file holding a version 1 key unless told to drop it, and writes nothing', async () => {
    const { file, original } = homeWith('v1-full.jsonc');
    const error = await migrateConfigFile(file, 'global', { now: NOW }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('providers.openai.apiKey');
    expect((error as ConfigError).line).toBe(17);
    expect((error as ConfigError).message).toMatch(/loom auth set openai.*--drop-credentials/);
    expect((error as ConfigError).message).not.toContain('sk-fixture');
    expect(fs.readFileSync(file).equals(original)).toBe(true);
    expect(backupsOf(file)).toEqual([]);
  });

  it('migrateConfigFile - leaves a current file alone (no backup)', async () => {
    const { file, original } = homeWith('v2-custom-providers.jsonc');
    expect(await migrateConfigFile(file, 'global', { now: NOW })).toEqual({ file, status: 'current', version: 2 });
    expect(fs.readFileSync(file).equals(original)).toBe(true);
    expect(backupsOf(file)).toEqual([]);
  });

  it('migrateConfigFile - refuses a file newer than this Loom, touching nothing', async () => {
    const home = tempDir();
    const file = globalConfigPath(home);
    fs.writeFileSync(file, '{ "version": 99, "whatever": true }');
    await expect(migrateConfigFile(file, 'global', { now: NOW })).rejects.toThrow(/config version 99 is newer than this Loom understands/);
    expect(fs.readFileSync(file, 'utf8')).toBe('{ "version": 99, "whatever": true }');
    expect(backupsOf(file)).toEqual([]);
  });

  it('migrateConfigFile - refuses an invalid file with file, line and key, touching nothing', async () => {
    const home = tempDir();
    const file = globalConfigPath(home);
    fs.writeFileSync(file, '{\n  "version": 1,\n  "limits": { "turnLimit": 0 }\n}\n');
    const error = (await migrateConfigFile(file, 'global', { now: NOW }).catch((e: unknown) => e)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect([error.file, error.line, error.field]).toEqual([file, 3, 'limits.turnLimit']);
    expect(backupsOf(file)).toEqual([]);
  });

  it('migrateConfigFile - a second backup at the same second gets a new name; the file keeps its mode', async () => {
    const { file } = homeWith('v0-legacy.jsonc');
    fs.chmodSync(file, 0o640);
    const first = await migrateConfigFile(file, 'global', { now: NOW });
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
    fs.copyFileSync(path.join(FIXTURES, 'v0-legacy.jsonc'), file);
    const second = await migrateConfigFile(file, 'global', { now: NOW });
    expect(first.status === 'migrated' && second.status === 'migrated').toBe(true);
    if (first.status !== 'migrated' || second.status !== 'migrated') return;
    expect(path.basename(second.backup)).toBe('config.jsonc.v0-20261126T101500Z-1.bak');
    expect(backupsOf(file).sort()).toEqual([path.basename(first.backup), path.basename(second.backup)].sort());
  });

  it('migrateConfigFile - checks a project file against the project rules', async () => {
    const dir = tempDir();
    const file = projectConfigPath(dir);
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, '{ "version": 1, "retention": { "sessionsDays": 1 } }');
    await expect(migrateConfigFile(file, 'project', { now: NOW })).rejects.toThrow(/"retention": may not be set in a project config/);
    expect(await migrateConfigFile(projectConfigPath(tempDir()), 'project')).toMatchObject({ status: 'missing' });
  });
});
