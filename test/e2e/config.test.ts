import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom } from './loom.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'config');
const SECRET = 'sk-fixture-openai-0123456789';

/** A $LOOM_HOME with the version 1 fixture (it holds an API key) and a project directory. */
function setup(): { home: string; dir: string; env: NodeJS.ProcessEnv; global: string } {
  const home = tempDir('loom-e2e-cfg-home-');
  const dir = tempDir('loom-e2e-cfg-dir-');
  const global = path.join(home, 'config.jsonc');
  fs.copyFileSync(path.join(FIXTURES, 'v1-full.jsonc'), global);
  return { home, dir, global, env: { LOOM_HOME: home, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' } };
}

function writeProject(dir: string, text: string): string {
  const file = path.join(dir, '.loom', 'config.jsonc');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

describe('loom config (real processes)', () => {
  it('loom config show --json - the merged config with its files and origins; the note on stderr once; no secret anywhere', async () => {
    const { dir, env, global } = setup();
    const project = writeProject(dir, '{ "version": 2, "limits": { "turnLimit": 7 } }');
    const r = await runLoom(['config', 'show', '--dir', dir, '--json'], env);
    expect(r.code).toBe(0);
    const shown = JSON.parse(r.stdout);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(shown.files).toEqual([
      { file: global, scope: 'global', exists: true, version: 1 },
      { file: fs.realpathSync(project), scope: 'project', exists: true, version: 2 },
    ]);
    expect(shown.config).toMatchObject({ version: 2, model: 'openai/gpt-4o-mini', limits: { turnLimit: 7, toolCallsPerTurn: 16 }, providers: { openai: { baseURL: 'http://127.0.0.1:8080/v1' } } });
    expect(shown.origins).toMatchObject({ 'limits.turnLimit': fs.realpathSync(project), 'limits.toolCallsPerTurn': global, 'permission.rules.0': global });
    expect(shown.legacyCredentials).toEqual(['openai']);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(r.stderr.match(/is config version 1; it was read as version 2 in memory/g)).toHaveLength(1);
    expect(r.stderr).toContain('providers.openai.apiKey: credentials no longer live in config');
    expect(r.stderr).toContain('`loom config migrate --global`');
  });

  it('loom config show - a readable table: files with versions, settings with their source, the version 1 key named but not shown', async () => {
    const { dir, env } = setup();
    const r = await runLoom(['config', 'show', '--dir', dir], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/global\s+\S+config\.jsonc\s+version 1 \(read as 2; `loom config migrate --global` rewrites it\)/);
    expect(r.stdout).toMatch(/project\s+\S+config\.jsonc\s+not present/);
    expect(r.stdout).toMatch(/limits\.turnLimit\s+30\s+global/);
    expect(r.stdout).toMatch(/limits\.toolTimeoutMs\s+60000\s+global/);
    expect(r.stdout).toMatch(/recovery\.autoResume\s+false\s+global/);
    expect(r.stdout).toMatch(/providers\.openai\.apiKey\s+\(a version 1 key, used from memory: move it with `loom auth set openai` or OPENAI_API_KEY\)/);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });

  it('loom config show - an invalid file exits 2 naming file, line and key', async () => {
    const { dir, env } = setup();
    const project = writeProject(dir, '{\n  "version": 2,\n  "limits": { "turnLimit": "many" }\n}\n');
    const r = await runLoom(['config', 'show', '--dir', dir], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${fs.realpathSync(project)}:3:`);
    expect(r.stderr).toContain('"limits.turnLimit":');
  });

  it('loom config migrate - refuses a file holding a key, then with --drop-credentials rewrites it with a backup; a second run has nothing to do', async () => {
    const { env, global, home } = setup();
    const original = fs.readFileSync(global);
    const refused = await runLoom(['config', 'migrate', '--global'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/"providers\.openai\.apiKey": holds an API key.*loom auth set openai.*--drop-credentials/);
    expect(refused.stderr).not.toContain(SECRET);
    expect(fs.readFileSync(global).equals(original)).toBe(true);

    const r = await runLoom(['config', 'migrate', '--global', '--drop-credentials', '--json'], env);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ file: global, status: 'migrated', from: 1, to: 2, rewrite: 'edited', droppedCredentials: ['openai'] });
    expect(fs.readFileSync(result.backup).equals(original)).toBe(true);
    expect(path.dirname(result.backup)).toBe(home);
    const text = fs.readFileSync(global, 'utf8');
    expect(text).toContain('"version": 2');
    expect(text).toContain('// everyday model');
    expect(text).not.toContain(SECRET);

    const again = await runLoom(['config', 'migrate', '--global'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already version 2; nothing to do');
    const shown = await runLoom(['config', 'show', '--json'], env);
    expect(shown.stderr).not.toContain('note:');
  });

  it('loom config migrate --dir - rewrites a version 0 project file; a file newer than this Loom is refused', async () => {
    const { env, dir } = setup();
    const project = writeProject(dir, '// mine\n{ "defaultModel": "openai/old", "turnLimit": 3 }\n');
    const r = await runLoom(['config', 'migrate', '--dir', dir], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`migrated ${fs.realpathSync(project)} from version 0 to 2`);
    expect(r.stdout).toContain('- defaultModel → model');
    expect(r.stdout).toMatch(/backup: config\.jsonc\.v0-\d{8}T\d{6}Z\.bak/);
    expect(JSON.parse(JSON.stringify(fs.readFileSync(project, 'utf8')))).toContain('"model": "openai/old"');
    writeProject(dir, '{ "version": 3 }');
    const newer = await runLoom(['config', 'migrate', '--dir', dir], env);
    expect(newer.code).toBe(2);
    expect(newer.stderr).toMatch(/config version 3 is newer than this Loom understands/);
  });

  it('loom config schema - prints the JSON Schema of the current version', async () => {
    const r = await runLoom(['config', 'schema'], {});
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.properties.version.const).toBe(2);
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['$schema', 'model', 'limits', 'permission', 'providers', 'recovery', 'jobs', 'retention']));
  });

  it('loom config --help - describes show, migrate and schema and their flags', async () => {
    const top = await runLoom(['config', '--help'], {});
    expect(top.stdout).toMatch(/show[\s\S]*migrate[\s\S]*schema/);
    expect(top.stdout).toContain('LOOM_CONFIG_WATCH');
    const migrate = await runLoom(['config', 'migrate', '--help'], {});
    for (const flag of ['--dir', '--global', '--drop-credentials', '--json']) expect(migrate.stdout).toContain(flag);
    expect((await runLoom(['--help'], {})).stdout).toMatch(/config\s/);
  });

  it('loom run --json - with a version 1 file: stdout stays NDJSON envelopes, the note goes to stderr once, and the carried key is sent', async () => {
    const server = await startScriptedOpenAIServer({ script: [{ text: 'hello' }] });
    onCleanup(() => void server.close());
    const { env, dir, global } = setup();
    // The fixture's provider entry points at the scripted server; its version 1 key is still used.
    fs.writeFileSync(global, fs.readFileSync(global, 'utf8').replace('http://127.0.0.1:8080/v1', `${server.url}`));
    const r = await runLoom(['run', '--json', '--model', 'openai/test', '--dir', dir, 'hi'], env);
    expect(r.code).toBe(0);
    for (const line of r.stdout.trim().split('\n')) expect(JSON.parse(line)).toHaveProperty('type');
    expect(r.stdout).not.toContain('note');
    expect(r.stderr.match(/is config version 1/g)).toHaveLength(1);
    expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });
});
