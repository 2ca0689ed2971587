import { resolve } from 'node:path';
import { prune, type RetentionPolicy } from '../../ops/retention.js';
import { loadConfig } from '../../services/config.js';
import { backupDatabase, DatabaseMaintenanceError, vacuumDatabase } from '../../store/index.js';
import { printConfigNote } from '../configNotes.js';
import { EXIT, UsageError } from '../exit.js';
import { openStore } from '../runtime.js';

/** `loom db backup FILE`: an online backup of $LOOM_HOME/loom.db (store/maintenance.ts), checked after writing. */
export async function dbBackup(file: string, opts: { json?: boolean }): Promise<number> {
  const target = resolve(file);
  const { store } = openStore();
  try {
    let result;
    try {
      result = await backupDatabase(store, target);
    } catch (error) {
      if (error instanceof DatabaseMaintenanceError) throw new UsageError(error.message);
      throw error;
    }
    if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stdout.write(`backed up ${store.path} to ${result.path}: ${result.bytes} bytes, ${result.sessions} session(s), checked\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}

/** `loom db vacuum`: gives back the space of removed data (VACUUM, then a truncating WAL checkpoint). */
export async function dbVacuum(opts: { json?: boolean }): Promise<number> {
  const { store } = openStore();
  try {
    const result = vacuumDatabase(store);
    if (opts.json) process.stdout.write(`${JSON.stringify({ path: store.path, ...result })}\n`);
    else process.stdout.write(`vacuumed ${store.path}: ${result.before} → ${result.after} bytes\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}

/**
 * `loom db prune [--dry-run]`: one retention pass (ops/retention.ts) with the global config's
 * `retention` and `checkpoints` limits, or the days given as flags. Checkpoint retention always
 * applies (its limits have defaults); sessions and saved outputs only when configured or given.
 */
export async function dbPrune(opts: { dryRun?: boolean; sessionsDays?: string; toolOutputDays?: string; checkpointsDays?: string; json?: boolean }): Promise<number> {
  const { home, store } = openStore();
  try {
    const loaded = await loadConfig({ home });
    for (const note of loaded.notes) printConfigNote(note);
    const configured = loaded.config.retention ?? {};
    const policy: RetentionPolicy = {
      ...configured,
      ...(opts.sessionsDays === undefined ? {} : { sessionsDays: days('--sessions-days', opts.sessionsDays) }),
      ...(opts.toolOutputDays === undefined ? {} : { toolOutputDays: days('--tool-output-days', opts.toolOutputDays) }),
      checkpoints: {
        retentionDays: opts.checkpointsDays === undefined ? loaded.config.checkpoints.retentionDays : days('--checkpoints-days', opts.checkpointsDays),
        maxBytes: loaded.config.checkpoints.maxBytes,
      },
    };
    const report = await prune(store, home, policy, { dryRun: opts.dryRun });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ policy, ...report })}\n`);
      return EXIT.ok;
    }
    const verb = report.dryRun ? 'would remove' : 'removed';
    for (const s of report.sessions) process.stdout.write(`${verb} session ${s.sessionId} (last event ${s.updatedAt}${s.events === undefined ? '' : `, ${s.events} events`})\n`);
    for (const s of report.skipped) process.stdout.write(`kept session ${s.sessionId}: ${s.reason}\n`);
    for (const f of report.files) process.stdout.write(`${verb} ${f.path} (${f.bytes} bytes)\n`);
    const c = report.checkpoints;
    if (c && c.blobs > 0) {
      process.stdout.write(`${verb} ${c.blobs} kept checkpoint content file(s) (${c.bytes} bytes)${c.expiredBefore ? `; checkpoints before ${c.expiredBefore} expired by checkpoints.maxBytes` : ''}\n`);
    }
    const rules = [
      policy.sessionsDays === undefined ? null : `sessions idle over ${policy.sessionsDays} days`,
      policy.toolOutputDays === undefined ? null : `saved outputs over ${policy.toolOutputDays} days`,
      `checkpoints over ${policy.checkpoints!.retentionDays} days or past ${policy.checkpoints!.maxBytes} bytes`,
    ].filter(Boolean);
    process.stderr.write(
      `prune (${rules.join(', ')})${report.dryRun ? ' [dry run]' : ''}: ${report.sessions.length} session(s), ${report.files.length} file(s), ${report.bytes} bytes` +
        `, ${c?.blobs ?? 0} checkpoint blob(s) (${c?.keptBytes ?? 0} bytes kept)` +
        `${report.more ? '; more remain for the next pass' : ''}${!report.dryRun && report.sessions.length > 0 ? '; loom db vacuum gives the space back' : ''}\n`,
    );
    return EXIT.ok;
  } finally {
    store.close();
  }
}

function days(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} ${value}: expected a positive number of days`);
  return n;
}
