import path from 'node:path';
import {
  CONFIG_VERSION_CURRENT,
  configJsonSchema,
  configOrigins,
  configPaths,
  legacyCredentialIds,
  loadConfig,
  providerKeyVariable,
  publicConfig,
  resolveLoomHome,
  type ConfigScope,
} from '../../services/config.js';
import { migrateConfigFile, type MigrateFileResult } from '../../services/configMigrate.js';
import { printConfigNote } from '../configNotes.js';
import { EXIT, UsageError } from '../exit.js';
import { resolveLocation } from '../runtime.js';
import { colorsFor } from '../style.js';

/**
 * `loom config show [--dir D] [--json]`: the config in force for D (default `.`): the global file
 * merged with D's `.loom/config.jsonc`, defaults filled in, with the files read and where each
 * setting comes from. Nothing secret is printed (version 1 keys carried in memory are named, never shown).
 */
export async function configShow(opts: { dir?: string; json?: boolean }): Promise<number> {
  const home = resolveLoomHome();
  const location = resolveLocation(opts.dir ?? '.');
  const loaded = await loadConfig({ home, location });
  for (const note of loaded.notes) printConfigNote(note);
  const read = new Map(loaded.files.map((f) => [f.file, f]));
  const files = configPaths({ home, location }).map(({ file, scope }) => {
    const f = read.get(file);
    return { file, scope, exists: f !== undefined, ...(f === undefined ? {} : { version: f.version }) };
  });
  const origins = configOrigins(loaded.files, loaded.config);
  const legacy = legacyCredentialIds(loaded.config);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ home, location, files, config: publicConfig(loaded.config), origins, legacyCredentials: legacy })}\n`);
    return EXIT.ok;
  }
  const c = colorsFor(process.stdout);
  const out: string[] = [c.bold('files') + c.dim(' (later ones win)')];
  for (const f of files) {
    const state = !f.exists
      ? c.dim('not present')
      : f.version === CONFIG_VERSION_CURRENT
        ? `version ${f.version}`
        : `version ${f.version} ${c.yellow(`(read as ${CONFIG_VERSION_CURRENT}; \`loom config migrate ${f.scope === 'global' ? '--global' : `--dir ${location}`}\` rewrites it)`)}`;
    out.push(`  ${f.scope.padEnd(8)} ${f.file}  ${state}`);
  }
  out.push('', c.bold('settings') + c.dim(' (key, value, source)'));
  const flat = flatten(publicConfig(loaded.config));
  const rows = Object.entries(flat).filter(([key]) => key !== 'version');
  const width = Math.max(...rows.map(([key]) => key.length), 10);
  const valueWidth = Math.min(48, Math.max(...rows.map(([, v]) => v.length), 5));
  for (const [key, value] of rows) {
    const origin = origins[key] ?? 'default';
    const source = origin === 'default' ? c.dim('default') : shortSource(origin, files);
    out.push(`  ${key.padEnd(width)}  ${value.padEnd(valueWidth)}  ${source}`);
  }
  for (const id of legacy) {
    const variable = providerKeyVariable(id);
    out.push(`  ${`providers.${id}.apiKey`.padEnd(width)}  ${c.yellow(`(a version 1 key, used from memory: move it with \`loom auth set ${id}\`${variable ? ` or ${variable}` : ''})`)}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return EXIT.ok;
}

/** `global` / `project` for the files read, the path otherwise. */
function shortSource(file: string, files: { file: string; scope: ConfigScope }[]): string {
  return files.find((f) => f.file === file)?.scope ?? file;
}

/** Leaf key path → printable value; permission rules one per line. */
function flatten(value: unknown, at = '', out: Record<string, string> = {}): Record<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [key, v] of Object.entries(value)) flatten(v, at === '' ? key : /^[A-Za-z0-9_$-]+$/.test(key) ? `${at}.${key}` : `${at}[${JSON.stringify(key)}]`, out);
  } else if (at === 'permission.rules' && Array.isArray(value)) {
    value.forEach((rule, i) => (out[`${at}.${i}`] = JSON.stringify(rule)));
  } else {
    out[at] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

/**
 * `loom config migrate [--dir D] [--global] [--drop-credentials] [--json]`: rewrites config files
 * at the current version, each with a timestamped backup next to it. Without --dir or --global:
 * the global file and the current directory's project file (those that exist).
 */
export async function configMigrate(opts: { dir?: string; global?: boolean; dropCredentials?: boolean; json?: boolean }): Promise<number> {
  const home = resolveLoomHome();
  const explicit = opts.dir !== undefined || opts.global === true;
  const location = opts.dir !== undefined || !explicit ? resolveLocation(opts.dir ?? '.') : undefined;
  const targets = configPaths({ home, location }).filter((p) => (p.scope === 'global' ? opts.global || !explicit : true));
  const results: MigrateFileResult[] = [];
  for (const { file, scope } of targets) {
    const result = await migrateConfigFile(file, scope, { dropCredentials: opts.dropCredentials });
    results.push(result);
    if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stdout.write(describe(result));
  }
  if (explicit && results.every((r) => r.status === 'missing')) {
    throw new UsageError(`no config file to migrate: ${targets.map((t) => t.file).join(', ')} does not exist`);
  }
  return EXIT.ok;
}

function describe(result: MigrateFileResult): string {
  const c = colorsFor(process.stdout);
  switch (result.status) {
    case 'missing':
      return c.dim(`${result.file}: not present\n`);
    case 'current':
      return `${result.file}: already version ${result.version}; nothing to do\n`;
    case 'migrated': {
      const lines = [
        `${c.green('migrated')} ${result.file} from version ${result.from} to ${result.to}`,
        ...result.notes.filter((n) => !/apiKey: credentials/.test(n)).map((n) => `  - ${n}`),
        ...result.droppedCredentials.map((id) => `  - providers.${id}.apiKey removed from the file (the backup still has it: delete the backup once the key is stored elsewhere)`),
        `  ${result.rewrite === 'edited' ? 'comments and layout kept (comments on removed or renamed keys went with them)' : 'the file was printed afresh (its comments could not be kept)'}`,
        `  backup: ${path.basename(result.backup)} (next to it)`,
      ];
      return `${lines.join('\n')}\n`;
    }
  }
}

/** `loom config schema`: the JSON Schema of the current config version, for `"$schema"` in an editor. */
export async function configSchema(): Promise<number> {
  process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  return EXIT.ok;
}
