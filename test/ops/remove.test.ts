import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitPathOf } from '../../actors/job.js';
import { removeSession } from '../../ops/remove.js';
import { SessionHasRunningJobsError, SessionOwnedError, StaleOwnerError, type Store } from '../../store/index.js';
import { groupAlive } from '../../tools/process.js';
import { savedOutputPath } from '../../tools/truncate.js';
import { createHarness, type Harness } from '../actors/harness.js';

/** Rows about `sessionId` in every table that has a session_id column. */
function rowsOf(store: Store, sessionId: string): Record<string, number> {
  const tables = (store.db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[]).map((t) => t.name);
  const out: Record<string, number> = {};
  for (const t of tables) {
    const cols = store.db.prepare('SELECT name FROM pragma_table_info(?)').all(t) as { name: string }[];
    if (!cols.some((c) => c.name === 'session_id')) continue;
    out[t] = (store.db.prepare(`SELECT count(*) AS n FROM "${t}" WHERE session_id = ?`).get(sessionId) as { n: number }).n;
  }
  return out;
}

async function eventually(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A session that ran a background bash job (asked for permission, answered `always`: permission
 * rows and a grant), with a saved tool output, all settled; its lease released.
 */
async function usedSession(options: { store?: Store; home?: string; command?: string } = {}): Promise<Harness & { jobId: string; outputPath: string; saved: string }> {
  const h = await createHarness({
    ...options,
    askPermission: async () => ({ reply: 'always' }),
    script: [{ toolCalls: [{ name: 'bash', arguments: { command: options.command ?? 'echo hi', background: true } }] }, { text: 'started' }],
    respond: () => ({ text: 'the job is done' }),
  });
  h.admit('steer', 'go');
  await h.run();
  const started = h.events().find((e) => e.type === 'job.started')!.data as { jobId: string; outputPath: string };
  const saved = savedOutputPath(h.home, h.sessionId, 'call_big');
  mkdirSync(dirname(saved), { recursive: true });
  writeFileSync(saved, 'a long output\n');
  return Object.assign(h, { jobId: started.jobId, outputPath: started.outputPath, saved });
}

describe('session removal', () => {
  it('session rm - removes the log, every projection, snapshot, owner, job and permission rows and the files, and nothing of another session', async () => {
    const h = await usedSession();
    await eventually(() => h.store.queries.job(h.jobId)?.status !== 'running');
    await h.run(); // the job's result was delivered and answered
    const other = await usedSession({ store: h.store, home: h.home });
    await eventually(() => other.store.queries.job(other.jobId)?.status !== 'running');
    h.coordinator.release(h.sessionId);
    const before = rowsOf(h.store, h.sessionId);
    expect(before).toMatchObject({ events: expect.any(Number), sessions: 1, snapshots: 1, session_owner: 1, jobs: 1, permission_requests: 1, permission_grants: 1 });
    expect(existsSync(h.outputPath) && existsSync(exitPathOf(h.outputPath, h.jobId)) && existsSync(h.saved)).toBe(true);
    const otherBefore = rowsOf(h.store, other.sessionId);

    const removed = (await removeSession(h.store, h.home, h.sessionId))!;
    expect(removed).toMatchObject({ sessionId: h.sessionId, events: before.events, forced: false, stoppedJobs: [] });
    expect(Object.values(rowsOf(h.store, h.sessionId)).every((n) => n === 0)).toBe(true);
    expect(existsSync(dirname(h.saved))).toBe(false);
    expect(existsSync(h.outputPath) || existsSync(exitPathOf(h.outputPath, h.jobId))).toBe(false);
    expect(removed.removedPaths).toEqual(expect.arrayContaining([dirname(h.saved), h.outputPath, exitPathOf(h.outputPath, h.jobId)]));
    // The other session and its files are untouched.
    expect(rowsOf(h.store, other.sessionId)).toEqual(otherBefore);
    expect(existsSync(other.saved) && existsSync(other.outputPath)).toBe(true);
    // The removal is told in the system log.
    expect(h.store.readSystem().at(-1)).toMatchObject({ type: 'session.removed', sessionId: null, data: { sessionId: h.sessionId, reason: 'rm', events: before.events } });
  });

  it('session rm - refuses while a live owner holds the session; --force removes it and the owner\'s next write fails as stale', async () => {
    const h = await usedSession();
    await eventually(() => h.store.queries.job(h.jobId)?.status !== 'running');
    await h.run();
    const actor = h.coordinator.get(h.sessionId)!; // still owned by the harness's coordinator
    const lease = h.store.owners.get(h.sessionId, Date.now())!;
    expect(lease.live).toBe(true);
    await expect(removeSession(h.store, h.home, h.sessionId)).rejects.toBeInstanceOf(SessionOwnedError);
    await expect(removeSession(h.store, h.home, h.sessionId)).rejects.toThrow(/held by a live owner .* force the removal/);
    expect(h.store.queries.session(h.sessionId)).toBeDefined();
    expect(existsSync(h.saved)).toBe(true);

    const removed = (await removeSession(h.store, h.home, h.sessionId, { force: true }))!;
    expect(removed.forced).toBe(true);
    expect(h.store.queries.session(h.sessionId)).toBeUndefined();
    expect(() =>
      h.store.append({ sessionId: h.sessionId, type: 'turn.started', data: { activityId: 'act_x', turnId: 'turn_x', turn: 1 }, epoch: lease.epoch }),
    ).toThrow(StaleOwnerError);
    actor.stop();
  });

  it('session rm - refuses while a background job runs; --force stops its process group first', async () => {
    const h = await usedSession({ command: 'sleep 60' });
    h.coordinator.release(h.sessionId); // detached: the job's process keeps running with no owner
    const job = h.store.queries.job(h.jobId)!;
    expect(job.status).toBe('running');
    expect(groupAlive(job.pgid!)).toBe(true);
    await expect(removeSession(h.store, h.home, h.sessionId)).rejects.toBeInstanceOf(SessionHasRunningJobsError);
    await expect(removeSession(h.store, h.home, h.sessionId)).rejects.toThrow(new RegExp(`running background job \\(${h.jobId}\\).*loom jobs cancel`));

    const removed = (await removeSession(h.store, h.home, h.sessionId, { force: true }))!;
    expect(removed.stoppedJobs).toEqual([h.jobId]);
    expect(groupAlive(job.pgid!)).toBe(false);
    expect(h.store.queries.job(h.jobId)).toBeUndefined();
    expect(existsSync(h.outputPath)).toBe(false);
  });

  it('session rm - never deletes job files outside $LOOM_HOME/jobs, even when an imported log names them', async () => {
    const h = await usedSession();
    await eventually(() => h.store.queries.job(h.jobId)?.status !== 'running');
    await h.run();
    h.coordinator.release(h.sessionId);
    // Another home: the job's files belong to it, not to this one.
    const removed = (await removeSession(h.store, join(h.home, 'elsewhere'), h.sessionId))!;
    expect(removed.removedPaths).toEqual([]);
    expect(existsSync(h.outputPath)).toBe(true);
  });
});
