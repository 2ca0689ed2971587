import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMA_VERSION, Store } from '../../store/index.js';
import { DIST, tempDir } from '../helpers.js';

const CHILD = join(DIST, 'test/fixtures/store-child.js');
const TRIALS = 20;
const PROCESSES = 4;

/** Starts children, lets them all load, then releases them at once with "go" on stdin. */
async function race(argsFor: (i: number) => string[]): Promise<any[]> {
  const children = Array.from({ length: PROCESSES }, (_, i) => spawn(process.execPath, [CHILD, ...argsFor(i)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const outputs = children.map(
    (child) =>
      new Promise<any>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.on('error', reject);
        child.on('close', () => {
          try {
            resolve(JSON.parse(out.trim().split('\n').pop()!));
          } catch (error) {
            reject(new Error(`child printed ${JSON.stringify(out)}`));
          }
        });
      }),
  );
  await new Promise((r) => setTimeout(r, 150));
  for (const c of children) c.stdin.end('go\n');
  return Promise.all(outputs);
}

describe('store - across processes', () => {
  it(`migrations - ${PROCESSES} processes opening one new file apply each migration exactly once and all succeed (${TRIALS} trials)`, async () => {
    const dir = tempDir();
    for (let t = 0; t < TRIALS; t++) {
      const path = join(dir, `race-${t}.db`);
      const results = await race(() => ['migrate', path]);
      for (const r of results) expect(r.error).toBeUndefined();
      expect(results.reduce((n, r) => n + r.applied, 0)).toBe(SCHEMA_VERSION);
      const store = Store.open(path);
      expect(store.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      store.close();
    }
  }, 120_000);

  it(`lease - ${PROCESSES} processes racing for one session's lease: exactly one wins, epoch 1 (${TRIALS} trials)`, async () => {
    const dir = tempDir();
    for (let t = 0; t < TRIALS; t++) {
      const path = join(dir, `lease-${t}.db`);
      Store.open(path).close();
      const results = await race((i) => ['acquire', path, 'ses_1', `owner-${i}`, '60000']);
      for (const r of results) expect(r.error).toBeUndefined();
      const winners = results.filter((r) => r.lease !== null);
      expect(winners).toHaveLength(1);
      expect(winners[0].lease.epoch).toBe(1);
      const store = Store.open(path);
      expect(store.owners.get('ses_1', Date.now())!.ownerId).toBe(winners[0].lease.ownerId);
      store.close();
    }
  }, 120_000);

  it(`lease - after expiry, racing processes take over exactly once with the epoch bumped (${TRIALS} trials)`, async () => {
    const dir = tempDir();
    for (let t = 0; t < TRIALS; t++) {
      const path = join(dir, `takeover-${t}.db`);
      const store = Store.open(path);
      store.owners.acquire('ses_1', 'dead-owner', 1, Date.now() - 10_000); // long expired
      store.close();
      const results = await race((i) => ['acquire', path, 'ses_1', `owner-${i}`, '60000']);
      const winners = results.filter((r) => r.lease !== null);
      expect(winners).toHaveLength(1);
      expect(winners[0].lease.epoch).toBe(2);
    }
  }, 120_000);

  it('tail - sees every event of other processes appending concurrently, with no gap and no duplicate', async () => {
    const path = join(tempDir(), 'tail.db');
    const store = Store.open(path);
    store.append({ sessionId: 'ses_t', type: 'session.created', data: { location: '/tmp', model: 'openai/x' } });
    const ac = new AbortController();
    const seen: number[] = [];
    const gseqs: number[] = [];
    const reader = (async () => {
      for await (const e of store.tail({ sessionId: 'ses_t', after: 0 }, { signal: ac.signal, limit: 7 })) {
        seen.push(e.seq);
        gseqs.push(e.gseq);
        if (seen.length === 1 + PROCESSES * 50 + 20) ac.abort();
      }
    })();
    const writers = race(() => ['append', path, 'ses_t', '50']);
    for (let i = 0; i < 20; i++) {
      store.append({ sessionId: 'ses_t', type: 'compaction.requested', data: { reason: `parent ${i}` } });
      await new Promise((r) => setTimeout(r, 2));
    }
    await writers;
    await reader;
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => i + 1));
    expect(new Set(gseqs).size).toBe(gseqs.length);
    store.close();
  }, 60_000);
});
