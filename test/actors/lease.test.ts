import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { LeaseLostError, leaseTickMs, renewIntervalMs, stopAfterMs } from '../../actors/coordinator.js';
import { createManualClock } from '../../core/clock.js';
import { OWNER_LEASE_TTL_MS, OWNER_STOP_MARGIN_MS } from '../../core/limits.js';
import { StaleOwnerError } from '../../store/index.js';
import { onCleanup, tempStore } from '../helpers.js';
import { createHarness } from './harness.js';

/** A harness whose store runs on a clock the test moves; the coordinator's timer is left alone (renewAll is called by hand). */
async function leased() {
  const clock = createManualClock();
  const failures: unknown[] = [];
  const h = await createHarness({ store: tempStore({ clock }), onSessionFailure: (_id, error) => failures.push(error) });
  const actor = h.coordinator.own(h.sessionId)!;
  const lease = { ...actor.lease };
  return { h, clock, actor, lease, failures };
}

describe('Coordinator - lease renewal', () => {
  it('renews a lease before it expires and keeps the session', async () => {
    const { h, clock, actor, lease } = await leased();
    clock.advance(renewIntervalMs(OWNER_LEASE_TTL_MS));
    h.coordinator.renewAll();
    expect(h.coordinator.get(h.sessionId)).toBe(actor);
    expect(actor.lease.expiresAt).toBe(clock.now() + OWNER_LEASE_TTL_MS);
    expect(actor.lease.expiresAt).toBeGreaterThan(lease.expiresAt);
  });

  it('stops a session whose lease cannot be renewed (busy database) before the lease expires', async () => {
    const { h, clock, actor, lease, failures } = await leased();
    // Another connection holds the write lock; renewals fail at once instead of waiting.
    h.store.db.pragma('busy_timeout = 0');
    const other = new Database(h.store.db.name);
    onCleanup(() => other.close());
    other.exec('BEGIN IMMEDIATE');
    clock.advance(renewIntervalMs(OWNER_LEASE_TTL_MS));
    h.coordinator.renewAll();
    expect(h.coordinator.get(h.sessionId)).toBe(actor); // still within the margin: try again later
    clock.advance(stopAfterMs(OWNER_LEASE_TTL_MS) - renewIntervalMs(OWNER_LEASE_TTL_MS) + 1);
    h.coordinator.renewAll();
    expect(h.coordinator.get(h.sessionId)).toBeUndefined();
    expect(actor.snapshot().status).toBe('stopped');
    // Stopped before the lease it could not renew expires, by the stop margin.
    expect(clock.now()).toBeLessThan(lease.expiresAt);
    expect(lease.expiresAt - clock.now()).toBeGreaterThanOrEqual(OWNER_STOP_MARGIN_MS - 1);
    expect(failures[0]).toBeInstanceOf(LeaseLostError);
    expect((failures[0] as Error).message).toMatch(/could not be renewed/);
    other.exec('ROLLBACK');
  });

  it('stops a session at once when its lease was taken by another owner, and that owner fences its appends', async () => {
    const { h, clock, actor, lease, failures } = await leased();
    const taken = h.store.owners.takeOver(h.sessionId, lease.ownerId, lease.epoch, 'elsewhere:1:own_x', OWNER_LEASE_TTL_MS, clock.now());
    expect(taken?.epoch).toBe(lease.epoch + 1);
    clock.advance(renewIntervalMs(OWNER_LEASE_TTL_MS)); // far from the stop margin
    h.coordinator.renewAll();
    expect(h.coordinator.get(h.sessionId)).toBeUndefined();
    expect(actor.snapshot().status).toBe('stopped');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(LeaseLostError);
    expect((failures[0] as Error).message).toMatch(/another owner took it/);
    // An owner event under the old epoch writes nothing.
    const before = h.store.queries.session(h.sessionId)!.lastSeq;
    expect(() =>
      h.store.append({ sessionId: h.sessionId, epoch: lease.epoch, type: 'activity.opened', data: { activityId: 'act_stale', trigger: 'run', inputIds: [], turnLimit: 1 } }),
    ).toThrow(StaleOwnerError);
    expect(h.store.queries.session(h.sessionId)!.lastSeq).toBe(before);
  });
});

describe('Coordinator - lease timings', () => {
  it('keeps the default lease timings: renew with 10 s left, stop 2 s before expiry, look every second', () => {
    expect(renewIntervalMs(15_000)).toBe(5_000);
    expect(stopAfterMs(15_000)).toBe(13_000);
    expect(leaseTickMs(15_000)).toBe(1_000);
  });

  it('scales the timings for short leases: renewals fit inside the lease, the stop comes before expiry', () => {
    for (const ttl of [1_000, 2_000, 3_000, 8_000]) {
      expect(renewIntervalMs(ttl)).toBeLessThan(stopAfterMs(ttl));
      expect(stopAfterMs(ttl)).toBeLessThan(ttl);
      expect(leaseTickMs(ttl)).toBeLessThanOrEqual((ttl - stopAfterMs(ttl)) / 2);
      expect(leaseTickMs(ttl)).toBeGreaterThan(0);
    }
  });
});
