import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prune, startRetention } from '../../ops/retention.js';
import type { Store } from '../../store/index.js';
import { tempDir, tempStore } from '../helpers.js';

const DAY = 24 * 60 * 60_000;

function session(store: Store): string {
  const sessionId = store.ids.next('ses');
  store.append({ sessionId, type: 'session.created', data: { location: '/tmp', model: 'openai/test' } });
  return sessionId;
}

/** A file whose mtime is `daysAgo` days before now. */
function file(path: string, daysAgo: number, text = 'output\n'): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  const t = (Date.now() - daysAgo * DAY) / 1000;
  utimesSync(path, t, t);
  return path;
}

/** A home with sessions and files of several ages; `now` is 10 days from now, so every session is 10 days old. */
function fixture() {
  const store = tempStore();
  const home = tempDir();
  const idle = session(store);
  const owned = session(store);
  store.owners.acquire(owned, 'someone', 60_000, Date.now());
  const withJob = session(store);
  const lease = store.owners.acquire(withJob, 'starter', 60_000, Date.now())!;
  store.append({
    sessionId: withJob,
    epoch: lease.epoch,
    type: 'job.started',
    data: { jobId: 'job_running', kind: 'bash', summary: 'sleep', outputPath: join(home, 'jobs', 'job_running.out'), timeoutMs: 60_000, startedAt: new Date().toISOString() },
  });
  store.owners.release(lease);
  const files = {
    oldOutput: file(join(home, 'tool-output', idle, 'call_old.txt'), 40),
    newOutput: file(join(home, 'tool-output', owned, 'call_new.txt'), 1),
    lonelyOld: file(join(home, 'tool-output', 'ses_gone', 'call_x.txt'), 40),
    oldJob: file(join(home, 'jobs', 'job_done.out'), 40),
    oldJobExit: file(join(home, 'jobs', 'job_done.exit'), 40, '0\n'),
    runningJob: file(join(home, 'jobs', 'job_running.out'), 40),
    unrelated: file(join(home, 'jobs', 'README'), 40),
  };
  return { store, home, idle, owned, withJob, files, now: Date.now() + 10 * DAY };
}

describe('retention', () => {
  it('prune - removes sessions idle past sessionsDays, keeping those with a live owner or a running job', async () => {
    const f = fixture();
    const report = await prune(f.store, f.home, { sessionsDays: 7 }, { now: f.now });
    expect(report.sessions.map((s) => s.sessionId)).toEqual([f.idle]);
    expect(report.skipped).toEqual([
      { sessionId: f.owned, reason: 'a live owner holds it' },
      { sessionId: f.withJob, reason: 'a background job is still running' },
    ]);
    expect(f.store.queries.session(f.idle)).toBeUndefined();
    expect(f.store.queries.session(f.owned)).toBeDefined();
    expect(existsSync(f.files.oldOutput)).toBe(false); // the removed session's saved outputs went with it
    expect(f.store.readSystem().at(-1)).toMatchObject({ type: 'session.removed', data: { sessionId: f.idle, reason: 'retention' } });
  });

  it('prune - keeps sessions younger than sessionsDays', async () => {
    const f = fixture();
    const report = await prune(f.store, f.home, { sessionsDays: 30 }, { now: f.now });
    expect(report.sessions).toEqual([]);
    expect(f.store.queries.sessions()).toHaveLength(3);
  });

  it('prune - deletes saved tool outputs and finished jobs\' files older than toolOutputDays, never a running job\'s', async () => {
    const f = fixture();
    const report = await prune(f.store, f.home, { toolOutputDays: 30 });
    expect(report.files.map((x) => x.path).sort()).toEqual([f.files.lonelyOld, f.files.oldJob, f.files.oldJobExit, f.files.oldOutput].sort());
    expect(report.bytes).toBe(report.files.reduce((n, x) => n + x.bytes, 0));
    for (const gone of [f.files.lonelyOld, f.files.oldJob, f.files.oldJobExit, f.files.oldOutput]) expect(existsSync(gone)).toBe(false);
    for (const kept of [f.files.newOutput, f.files.runningJob, f.files.unrelated]) expect(existsSync(kept)).toBe(true);
    expect(existsSync(join(f.home, 'tool-output', 'ses_gone'))).toBe(false); // emptied directories go too
    expect(f.store.queries.sessions()).toHaveLength(3); // no session rule: sessions stay
  });

  it('prune --dry-run - reports what would go and removes nothing', async () => {
    const f = fixture();
    const report = await prune(f.store, f.home, { sessionsDays: 7, toolOutputDays: 30 }, { now: f.now, dryRun: true });
    expect(report.dryRun).toBe(true);
    expect(report.sessions.map((s) => s.sessionId)).toEqual([f.idle]);
    expect(report.files).toHaveLength(4);
    expect(f.store.queries.sessions()).toHaveLength(3);
    for (const path of Object.values(f.files)) expect(existsSync(path)).toBe(true);
  });

  it('startRetention - runs a pass at start and on demand, reads the policy each time, and stops', async () => {
    const f = fixture();
    let policy: { toolOutputDays?: number } | undefined;
    const reports: unknown[] = [];
    const task = startRetention(f.store, f.home, () => policy, { intervalMs: 60_000, onReport: (r) => reports.push(r) });
    expect(await task.runNow()).toBeUndefined(); // nothing configured: nothing done
    policy = { toolOutputDays: 30 };
    const report = await task.runNow();
    expect(report?.files).toHaveLength(4);
    expect(reports).toHaveLength(1);
    task.stop();
    expect(await task.runNow()).toBeUndefined();
  });
});
