/**
 * `loom config migrate`: rewriting a config file at the current version on disk, with a backup.
 *
 * Loading never needs this (older files are converted in memory at every load); it makes the
 * conversion permanent and ends the notes. The file is edited rather than printed afresh where
 * possible (services/jsonc.ts editJsonc): unchanged keys keep their comments and layout; a
 * removed or renamed key loses the comments on its own line and the lines directly above it.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { CONFIG_BACKUP_NAMES_MAX } from '../core/limits.js';
import { CONFIG_VERSION_CURRENT, ConfigError, formatConfigPath, parseConfigText, providerKeyVariable, readConfigFile, type ConfigScope, type ConfigV2 } from './config.js';
import { editJsonc } from './jsonc.js';

export interface MigrateFileOptions {
  /** Remove version 1 API keys from the file (the user has moved them); without it such a file is refused. */
  dropCredentials?: boolean;
  /** The backup's timestamp. Default now. */
  now?: Date;
}

export type MigrateFileResult =
  | { file: string; status: 'missing' }
  | { file: string; status: 'current'; version: number }
  | {
      file: string;
      status: 'migrated';
      from: number;
      to: number;
      /** The original, byte for byte, next to the file (mode 0600). */
      backup: string;
      /** `edited`: comments and layout kept around the changes; `rewritten`: printed afresh. */
      rewrite: 'edited' | 'rewritten';
      /** What changed, one sentence each. */
      notes: string[];
      /** Providers whose version 1 key was removed from the file. */
      droppedCredentials: string[];
    };

/**
 * Rewrites `file` at the current version. The file must be valid in its own version (else the
 * ConfigError of loading it, with line and key); a file newer than this Loom is refused; a
 * current file is left alone. A version 1 file holding API keys is refused unless
 * `dropCredentials` (the key would otherwise stop working). The original is copied to
 * `<file>.v<from>-<timestamp>.bak` first; the new text replaces the file atomically (same mode),
 * and only if the file did not change while this ran.
 */
export async function migrateConfigFile(file: string, scope: ConfigScope, options: MigrateFileOptions = {}): Promise<MigrateFileResult> {
  const read = await readConfigFile(file, scope);
  if (read === undefined) return { file, status: 'missing' };
  if (read.version === CONFIG_VERSION_CURRENT) return { file, status: 'current', version: read.version };
  const credentials = Object.keys(read.legacyApiKeys);
  if (credentials.length > 0 && !options.dropCredentials) {
    const id = credentials[0];
    const at = ['providers', id, 'apiKey'];
    const variable = providerKeyVariable(id);
    throw new ConfigError(
      file,
      `holds an API key, which version ${CONFIG_VERSION_CURRENT} keeps out of config files. Move it first (\`loom auth set ${id}\`${variable ? ` or ${variable}` : ''}), ` +
        'then run `loom config migrate --drop-credentials` to remove it from the file (the backup keeps a copy, readable only by you)',
      { field: formatConfigPath(at), ...read.locate(at) },
    );
  }
  const target = ordered(read.config);
  const edited = editJsonc(read.text, read.raw, target);
  const text = edited ?? `${JSON.stringify(target, null, 2)}\n`;
  // The new text must load as exactly what the old one loaded as (minus the dropped keys).
  const check = parseConfigText(text, file, scope);
  if (!isDeepStrictEqual(check.config, read.config) || check.version !== CONFIG_VERSION_CURRENT) {
    throw new Error(`migrating ${file} produced a file that does not load as the same config`);
  }
  const original = await fs.readFile(file);
  const stat = await fs.stat(file);
  const backup = await writeBackup(file, original, read.version, options.now ?? new Date());
  await replaceAtomically(file, text, stat.mode & 0o777, original);
  return {
    file,
    status: 'migrated',
    from: read.version,
    to: CONFIG_VERSION_CURRENT,
    backup,
    rewrite: edited === undefined ? 'rewritten' : 'edited',
    notes: read.notes,
    droppedCredentials: credentials,
  };
}

/** `$schema` and `version` first, the rest in the order migration produced. */
function ordered(config: ConfigV2): ConfigV2 {
  const { $schema, version, ...rest } = config;
  return { ...($schema === undefined ? {} : { $schema }), version, ...rest } as ConfigV2;
}

/** Copies the original next to the file under a name no other file has; mode 0600 (it may hold a key). */
async function writeBackup(file: string, bytes: Buffer, version: number, now: Date): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  for (let n = 0; n < CONFIG_BACKUP_NAMES_MAX; n++) {
    const name = `${file}.v${version}-${stamp}${n === 0 ? '' : `-${n}`}.bak`;
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(name, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new ConfigError(file, `cannot write its backup ${name}: ${(error as Error).message}`);
    }
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return name;
  }
  throw new ConfigError(file, `cannot name its backup: ${CONFIG_BACKUP_NAMES_MAX} names are taken`);
}

/** Writes a temporary file beside it and renames it over the file, unless the file changed since it was read. */
async function replaceAtomically(file: string, text: string, mode: number, expected: Buffer): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      await handle.chmod(mode); // exactly the old mode, whatever the umask
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    const now = await fs.readFile(file);
    if (!now.equals(expected)) throw new ConfigError(file, 'changed while it was being migrated; nothing was written: run `loom config migrate` again');
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(path.dirname(file));
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not every filesystem lets a directory be synced; the rename is done either way.
  }
}
