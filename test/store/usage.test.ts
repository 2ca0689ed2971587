import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../store/migrations.js';
import { LOOM_APPLICATION_ID, SCHEMA_VERSION, Store, type AppendRequest } from '../../store/index.js';
import { onCleanup, tempDir, tempStore } from '../helpers.js';

/**
 * Usage projections: `turn.finished` adds its tokens (and cost, when priced) to its session and
 * its activity; a database from before the usage columns gets its activities' token totals from
 * the log when it is migrated.
 */

/** The index of the usage migration, found by its content (the lead may reorder migrations at merge). */
const USAGE_MIGRATION = MIGRATIONS.findIndex((m) => m.includes('ALTER TABLE activities ADD COLUMN input_tokens'));

function seed(store: Store, sessionId: string, turns: { activityId: string; usage: [number, number]; costUsd?: number }[]): void {
  store.append({ sessionId, type: 'session.created', data: { location: '/p', model: 'openai/m' } });
  const epoch = store.owners.acquire(sessionId, 'owner', 60_000, Date.now())!.epoch;
  const owner = (r: Omit<AppendRequest, 'sessionId' | 'epoch'>) => ({ ...r, sessionId, epoch }) as AppendRequest;
  const opened = new Set<string>();
  turns.forEach((t, i) => {
    if (!opened.has(t.activityId)) {
      opened.add(t.activityId);
      store.append(owner({ type: 'activity.opened', data: { activityId: t.activityId, trigger: 'run', inputIds: [], turnLimit: 25 } }));
    }
    const attemptId = `att_${sessionId}_${i}`;
    store.append(owner({ type: 'attempt.dispatched', data: { activityId: t.activityId, turnId: `turn_${i}`, attemptId, attempt: 1, model: 'openai/m', inputIds: [] } }));
    store.append(
      owner({
        type: 'turn.finished',
        data: { activityId: t.activityId, turnId: `turn_${i}`, attemptId, finishReason: 'stop', usage: { inputTokens: t.usage[0], outputTokens: t.usage[1] }, toolCalls: 0, ...(t.costUsd === undefined ? {} : { costUsd: t.costUsd }) },
      }),
    );
  });
}

describe('store - usage projections', () => {
  it('usage - turns add tokens to their session and activity; cost only when priced, null when no turn was', () => {
    const store = tempStore();
    seed(store, 'ses_a', [
      { activityId: 'act_1', usage: [100, 10], costUsd: 0.25 },
      { activityId: 'act_1', usage: [200, 20] },
      { activityId: 'act_2', usage: [1, 1], costUsd: 0.5 },
    ]);
    seed(store, 'ses_b', [{ activityId: 'act_3', usage: [7, 3] }]);
    expect(store.queries.session('ses_a')).toMatchObject({ inputTokens: 301, outputTokens: 31, costUsd: 0.75, turns: 3 });
    expect(store.queries.activity('act_1')).toMatchObject({ inputTokens: 300, outputTokens: 30, costUsd: 0.25 });
    expect(store.queries.activity('act_2')).toMatchObject({ inputTokens: 1, outputTokens: 1, costUsd: 0.5 });
    expect(store.queries.session('ses_b')).toMatchObject({ inputTokens: 7, outputTokens: 3, costUsd: null });
    expect(store.queries.activity('act_3')!.costUsd).toBeNull();
    const live = [store.queries.session('ses_a'), store.queries.activities('ses_a')];
    store.rebuildProjections();
    expect([store.queries.session('ses_a'), store.queries.activities('ses_a')]).toEqual(live);
  });

  it('migration - a database from before the usage columns gets its activities\' token totals from the log', () => {
    expect(USAGE_MIGRATION).toBeGreaterThan(0);
    const path = join(tempDir(), 'loom.db');
    // Build the database with this Loom, then take it back to the schema before the usage migration.
    const store = Store.open(path);
    seed(store, 'ses_old', [
      { activityId: 'act_1', usage: [100, 10] },
      { activityId: 'act_1', usage: [50, 5] },
      { activityId: 'act_2', usage: [9, 1] },
    ]);
    store.close();
    const db = new Database(path);
    db.exec(`
      ALTER TABLE sessions DROP COLUMN cost_usd;
      ALTER TABLE activities DROP COLUMN input_tokens;
      ALTER TABLE activities DROP COLUMN output_tokens;
      ALTER TABLE activities DROP COLUMN cost_usd;
      -- and what the migrations after it added (they run again)
      ALTER TABLE sessions DROP COLUMN agent;
      ALTER TABLE session_input DROP COLUMN agent;
      DROP TABLE checkpoint_files;
      DROP TABLE checkpoints;
    `);
    db.pragma(`user_version = ${USAGE_MIGRATION}`);
    expect(db.pragma('application_id', { simple: true })).toBe(LOOM_APPLICATION_ID);
    db.close();

    const migrated = Store.open(path);
    onCleanup(() => migrated.db.open && migrated.close());
    expect(migrated.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(migrated.queries.activity('act_1')).toMatchObject({ inputTokens: 150, outputTokens: 15, costUsd: null });
    expect(migrated.queries.activity('act_2')).toMatchObject({ inputTokens: 9, outputTokens: 1 });
    expect(migrated.queries.session('ses_old')).toMatchObject({ inputTokens: 159, outputTokens: 16, costUsd: null });
  });
});
