import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupDatabase, DatabaseMaintenanceError, deleteSession, Store, vacuumDatabase } from '../../store/index.js';
import { DIST, onCleanup, tempDir, tempStore } from '../helpers.js';

function session(store: Store, text = 'hello'): string {
  const sessionId = store.ids.next('ses');
  store.append({ sessionId, type: 'session.created', data: { location: '/tmp', model: 'openai/test' } });
  store.admitInput(sessionId, { mode: 'queue', text });
  return sessionId;
}

describe('database maintenance', () => {
  it('db backup - copies the database while another process writes; the copy is a consistent Loom database', async () => {
    const store = tempStore();
    const sessionId = session(store);
    for (let i = 0; i < 50; i++) session(store, 'x'.repeat(10_000)); // some pages to copy
    const child = spawn(process.execPath, [join(DIST, 'test/fixtures/store-child.js'), 'append', store.path, sessionId, '3000'], {
      env: { ...process.env, LOOM_CHILD_NO_WAIT: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    onCleanup(() => child.kill());
    const target = join(tempDir(), 'backup.db');
    const result = await backupDatabase(store, target);
    await once(child, 'exit');
    expect(result).toMatchObject({ path: target, sessions: 51 });
    expect(result.bytes).toBeGreaterThan(500_000);

    const copy = Store.open(target);
    onCleanup(() => copy.close());
    const seqs = (copy.db.prepare('SELECT seq FROM events WHERE session_id = ? ORDER BY seq').all(sessionId) as { seq: number }[]).map((r) => r.seq);
    // One moment of the log: a prefix of what the writer appended, with no gap.
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(seqs.length).toBeGreaterThanOrEqual(2);
    expect(store.queries.session(sessionId)!.lastSeq).toBe(2 + 3000);
    expect(copy.queries.sessions()).toHaveLength(51);
  });

  it('db backup - refuses an existing target and leaves it untouched', async () => {
    const store = tempStore();
    session(store);
    const target = join(tempDir(), 'exists.db');
    writeFileSync(target, 'precious');
    await expect(backupDatabase(store, target)).rejects.toBeInstanceOf(DatabaseMaintenanceError);
    await expect(backupDatabase(store, target)).rejects.toThrow(/already exists; choose a new file/);
  });

  it('db vacuum - gives back the pages of removed sessions', () => {
    const store = tempStore();
    const ids = Array.from({ length: 40 }, () => session(store, 'y'.repeat(50_000)));
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    for (const id of ids) deleteSession(store, id);
    const result = vacuumDatabase(store);
    expect(result.after).toBeLessThan(result.before / 4);
    expect(store.queries.sessions()).toEqual([]);
    session(store); // still writable
  });
});
