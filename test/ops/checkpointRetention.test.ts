import { existsSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../core/clock.js';
import { CHECKPOINT_BLOB_GRACE_MS } from '../../core/limits.js';
import { pruneCheckpoints } from '../../ops/checkpointRetention.js';
import { diffSession } from '../../ops/checkpoints.js';
import { prune } from '../../ops/retention.js';
import type { CheckpointFileState, Store } from '../../store/index.js';
import { BlobStore } from '../../tools/checkpoints/blobs.js';
import { tempDir, tempStore } from '../helpers.js';

const DAY = 24 * 60 * 60_000;

/** A session with one activity whose calls record checkpoints at the clock's times. */
function setup() {
  const clock = createManualClock(Date.UTC(2026, 0, 1));
  const store = tempStore({ clock });
  const home = tempDir();
  const blobs = new BlobStore(home);
  const sessionId = store.ids.next('ses');
  store.append({ sessionId, type: 'session.created', data: { location: tempDir(), model: 'openai/test' } });
  const lease = store.owners.acquire(sessionId, 'test', 10 * 365 * DAY, clock.now())!;
  let n = 0;
  const record = (activityId: string, files: { path: string; before: CheckpointFileState; after: CheckpointFileState }[]) =>
    store.append({ sessionId, epoch: lease.epoch, type: 'checkpoint.recorded', data: { activityId, callId: `call_${++n}`, tool: 'write', files } });
  /** A blob whose file time is `ageMs` before the clock. */
  const blob = async (text: string, ageMs = 2 * CHECKPOINT_BLOB_GRACE_MS) => {
    const hash = await blobs.put(Buffer.from(text));
    const t = (clock.now() - ageMs) / 1000;
    utimesSync(blobs.pathOf(hash), t, t);
    return hash;
  };
  return { clock, store, home, blobs, sessionId, record, blob };
}

async function pruneAt(store: Store, home: string, now: number, policy: { retentionDays: number; maxBytes: number }, dryRun = false) {
  return pruneCheckpoints(store, home, policy, { now, dryRun });
}

describe('checkpoint retention', () => {
  it('prune - removes content only expired checkpoints refer to, keeps what unexpired ones refer to, and spares young unreferenced blobs', async () => {
    const s = setup();
    const oldBefore = await s.blob('old before\n');
    const shared = await s.blob('shared between an old and a new checkpoint\n');
    s.record('act_old', [
      { path: 'a.txt', before: oldBefore, after: shared },
    ]);
    s.clock.advance(20 * DAY);
    const newAfter = await s.blob('new after\n');
    s.record('act_new', [{ path: 'a.txt', before: shared, after: newAfter }]);
    const orphanOld = await s.blob('a scan kept me long ago\n');
    const orphanYoung = await s.blob('a scan kept me just now\n', 0);

    // Now 20 days after the first record: with 10 days' retention only the newer checkpoint is unexpired.
    const dry = await pruneAt(s.store, s.home, s.clock.now(), { retentionDays: 10, maxBytes: 1 << 30 }, true);
    expect(dry.blobs).toBe(2);
    expect(existsSync(s.blobs.pathOf(oldBefore))).toBe(true);
    const report = await pruneAt(s.store, s.home, s.clock.now(), { retentionDays: 10, maxBytes: 1 << 30 });
    expect(report).toMatchObject({ blobs: 2, keptBlobs: 3, more: false });
    expect(existsSync(s.blobs.pathOf(oldBefore))).toBe(false); // only the expired checkpoint needed it
    expect(existsSync(s.blobs.pathOf(orphanOld))).toBe(false); // nothing refers to it, and it is old
    for (const kept of [shared, newAfter, orphanYoung]) expect(existsSync(s.blobs.pathOf(kept))).toBe(true);

    // The expired checkpoint's diff says its content is gone; the unexpired one still diffs.
    const oldDiff = await diffSession(s.store, s.blobs, s.sessionId, { activity: 'act_old' });
    expect(oldDiff.files[0]!.note).toMatch(/before: its content is no longer kept \(checkpoint retention\)/);
    const newDiff = await diffSession(s.store, s.blobs, s.sessionId, { activity: 'act_new' });
    expect(newDiff.files[0]!.patch).toContain('+new after');
  });

  it('prune - past maxBytes, content of the oldest checkpoints expires first until the rest fits', async () => {
    const s = setup();
    const a = await s.blob('a'.repeat(100));
    s.record('act_1', [{ path: 'one.txt', before: null, after: a }]);
    s.clock.advance(DAY);
    const b = await s.blob('b'.repeat(100));
    s.record('act_2', [{ path: 'two.txt', before: null, after: b }]);
    s.clock.advance(DAY);
    const c = await s.blob('c'.repeat(100));
    s.record('act_3', [{ path: 'three.txt', before: null, after: c }]);
    const report = await pruneAt(s.store, s.home, s.clock.now(), { retentionDays: 30, maxBytes: 250 });
    expect(report).toMatchObject({ blobs: 1, bytes: 100, keptBytes: 200, expiredBefore: new Date(Date.UTC(2026, 0, 1)).toISOString() });
    expect(existsSync(s.blobs.pathOf(a))).toBe(false);
    expect(existsSync(s.blobs.pathOf(b))).toBe(true);
    expect(existsSync(s.blobs.pathOf(c))).toBe(true);
  });

  it('prune - the retention pass includes checkpoints when the policy has them; stale temporary files go too', async () => {
    const s = setup();
    const kept = await s.blob('kept');
    s.record('act_1', [{ path: 'x', before: null, after: kept }]);
    const orphan = await s.blob('orphan');
    mkdirSync(join(s.home, 'checkpoints', 'tmp'), { recursive: true });
    const temp = join(s.home, 'checkpoints', 'tmp', `${'0'.repeat(64)}.1.abc`);
    writeFileSync(temp, 'half written');
    const t = (s.clock.now() - 2 * CHECKPOINT_BLOB_GRACE_MS) / 1000;
    utimesSync(temp, t, t);
    const report = await prune(s.store, s.home, { checkpoints: { retentionDays: 30, maxBytes: 1 << 30 } }, { now: s.clock.now() });
    expect(report.checkpoints).toMatchObject({ blobs: 1, keptBlobs: 1 });
    expect(existsSync(s.blobs.pathOf(orphan))).toBe(false);
    expect(existsSync(s.blobs.pathOf(kept))).toBe(true);
    expect(existsSync(temp)).toBe(false);
  });
});
