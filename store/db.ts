import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { SQLITE_BUSY_TIMEOUT_MS, WAL_SWITCH_RETRY_MS } from '../core/limits.js';
import { ForeignDatabaseError, NewerSchemaError } from './errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/** `PRAGMA application_id` of every Loom database: ASCII "LOOM". */
export const LOOM_APPLICATION_ID = 0x4c4f4f4d;

export const SCHEMA_VERSION = MIGRATIONS.length;

const SQLITE_HEADER = 'SQLite format 3\u0000';

/**
 * Opens (creating if needed) a Loom database and migrates it.
 *
 * Order matters: the file is identified before anything is written to it. A file that is not
 * SQLite, a SQLite file of another application, or a Loom file from a newer schema is refused
 * with a typed error, and its bytes stay as they were (switching to WAL alone would write).
 */
export function openDatabase(path: string, options: { onMigrated?: (applied: number) => void } = {}): Db {
  if (path !== ':memory:') assertNotForeignFile(path);
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    identify(db, path);
    switchToWal(db);
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    const applied = migrate(db, path);
    options.onMigrated?.(applied);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Switches the file to WAL. Two processes opening a brand-new file at once can collide here:
 * SQLite does not call the busy handler for this switch, so SQLITE_BUSY is retried (every
 * WAL_SWITCH_RETRY_MS, at most SQLITE_BUSY_TIMEOUT_MS in all) like busy_timeout would.
 */
function switchToWal(db: Db): void {
  const deadline = Date.now() + SQLITE_BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
      Atomics.wait(pause, 0, 0, WAL_SWITCH_RETRY_MS);
    }
  }
}

function assertNotForeignFile(path: string): void {
  if (!existsSync(path)) return;
  const size = statSync(path).size;
  if (size === 0) return;
  const header = Buffer.alloc(16);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (header.toString('latin1') !== SQLITE_HEADER) throw new ForeignDatabaseError(path, 'not a SQLite file');
}

/** Read-only checks: a non-Loom application id, or tables without one, means a foreign file. */
function identify(db: Db, path: string): void {
  // One read transaction, so the id and the table count come from the same moment: another
  // process may be committing the first migration in between two separate reads.
  db.transaction(() => identifyNow(db, path)).deferred();
}

function identifyNow(db: Db, path: string): void {
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (appId === LOOM_APPLICATION_ID) {
    if (version > SCHEMA_VERSION) throw new NewerSchemaError(path, version, SCHEMA_VERSION);
    return;
  }
  if (appId !== 0) throw new ForeignDatabaseError(path, `application_id is 0x${appId.toString(16)}`);
  const tables = (db.prepare('SELECT count(*) AS n FROM sqlite_master').get() as { n: number }).n;
  if (tables > 0) throw new ForeignDatabaseError(path, 'it holds tables of another application');
}

/** Applies pending migrations under the write lock, re-reading the version once it is held. */
function migrate(db: Db, path: string): number {
  const apply = db.transaction((): number => {
    const appId = db.pragma('application_id', { simple: true }) as number;
    const version = db.pragma('user_version', { simple: true }) as number;
    if (appId !== LOOM_APPLICATION_ID && appId !== 0) throw new ForeignDatabaseError(path, `application_id is 0x${appId.toString(16)}`);
    if (version > SCHEMA_VERSION) throw new NewerSchemaError(path, version, SCHEMA_VERSION);
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    if (appId === 0) db.pragma(`application_id = ${LOOM_APPLICATION_ID}`);
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return Math.max(0, SCHEMA_VERSION - version);
  });
  return apply.immediate();
}

/** Number of migrations applied to `db` (its `user_version`). */
export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}
