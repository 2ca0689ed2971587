import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { LOOM_APPLICATION_ID } from './db.js';
import { StoreError } from './errors.js';
import type { Store } from './store.js';

/** `loom db backup` / `loom db vacuum` could not do their job; nothing was changed. */
export class DatabaseMaintenanceError extends StoreError {
  override name = 'DatabaseMaintenanceError';
}

export interface BackupResult {
  path: string;
  bytes: number;
  /** Pages copied (the whole database). */
  pages: number;
  /** Sessions in the copy (read back from it). */
  sessions: number;
}

/**
 * Copies the live database to `target` with SQLite's online backup (better-sqlite3 `db.backup`):
 * other processes keep reading and writing meanwhile, and the copy is one consistent moment of the
 * database (the backup restarts on its own when a writer changes pages it already copied). The
 * copy is then opened read-only and checked (`quick_check`, the Loom application id) before this
 * returns. An existing `target` is refused, never overwritten. Restore by putting the copy in
 * place of `$LOOM_HOME/loom.db` while no Loom process runs.
 */
export async function backupDatabase(store: Store, target: string): Promise<BackupResult> {
  if (existsSync(target)) throw new DatabaseMaintenanceError(`${target} already exists; choose a new file (a backup never overwrites)`);
  store.flushDeltas();
  let pages = 0;
  try {
    const done = await store.db.backup(target, {
      progress: ({ totalPages }) => {
        pages = totalPages;
        return 1_000; // pages per step: other connections get the database between steps
      },
    });
    pages = done.totalPages;
  } catch (error) {
    throw new DatabaseMaintenanceError(`backup to ${target} failed: ${(error as Error).message}`);
  }
  const copy = new Database(target, { readonly: true, fileMustExist: true });
  try {
    const check = copy.pragma('quick_check', { simple: true });
    const appId = copy.pragma('application_id', { simple: true });
    if (check !== 'ok' || appId !== LOOM_APPLICATION_ID) throw new DatabaseMaintenanceError(`the backup ${target} does not check out (quick_check: ${String(check)}); keep the original`);
    const sessions = (copy.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n;
    return { path: target, bytes: statSync(target).size, pages, sessions };
  } finally {
    copy.close();
  }
}

export interface VacuumResult {
  /** Bytes of the database file and its WAL before and after. */
  before: number;
  after: number;
}

/**
 * Rebuilds the database file without its free pages (`VACUUM`, then a WAL checkpoint that
 * truncates the WAL), giving back the space removed sessions left. It takes the write lock for its
 * duration (other writers wait up to the busy timeout, then fail) and needs free disk space about
 * the size of the database. Run it after `loom db prune` or `loom session rm`.
 */
export function vacuumDatabase(store: Store): VacuumResult {
  store.flushDeltas();
  const before = fileBytes(store.path);
  try {
    store.db.exec('VACUUM');
    store.db.pragma('wal_checkpoint(TRUNCATE)');
  } catch (error) {
    throw new DatabaseMaintenanceError(`vacuum of ${store.path} failed: ${(error as Error).message}`);
  }
  return { before, after: fileBytes(store.path) };
}

function fileBytes(path: string): number {
  let total = 0;
  for (const p of [path, `${path}-wal`]) {
    try {
      total += statSync(p).size;
    } catch {
      // no WAL file
    }
  }
  return total;
}
