import { describe, expect, it } from 'vitest';
import { createOwnerMirror, KvRevisionConflictError, ownerKey } from '../../../transport/nats/index.js';
import { natsClient, natsServer, natsTransport } from './helpers.js';

describe('transport/nats - KV owner mirror', () => {
  it('mirror - put, get, list and delete owners across two connections', async () => {
    const server = await natsServer();
    const a = createOwnerMirror({ connection: natsTransport(server.url) });
    const b = createOwnerMirror({ connection: await natsClient(server.url) });
    const r1 = await a.put('ses_1', { ownerId: 'host:1:a', epoch: 1, expiresAt: 1_000 });
    await a.put('ses_2', { ownerId: 'host:1:a', epoch: 4, expiresAt: 2_000 });
    expect(await b.get('ses_1')).toEqual({ sessionId: 'ses_1', ownerId: 'host:1:a', epoch: 1, expiresAt: 1_000, revision: r1 });
    const r2 = await a.put('ses_1', { ownerId: 'host:1:a', epoch: 1, expiresAt: 5_000 }); // a renewal
    expect(r2).toBeGreaterThan(r1);
    expect((await b.list()).map((o) => [o.sessionId, o.epoch, o.expiresAt])).toEqual([
      ['ses_1', 1, 5_000],
      ['ses_2', 4, 2_000],
    ]);
    await b.delete('ses_1', { ownerId: 'someone-else', epoch: 1 }); // not the owner shown: stays
    expect(await b.get('ses_1')).not.toBeNull();
    await a.delete('ses_1', { ownerId: 'host:1:a', epoch: 1 });
    expect(await b.get('ses_1')).toBeNull();
    // a released session is owned again later: created anew over the delete marker
    await b.put('ses_1', { ownerId: 'host:2:b', epoch: 2, expiresAt: 9_000 });
    expect(await a.get('ses_1')).toMatchObject({ ownerId: 'host:2:b', epoch: 2 });
  });

  it('mirror - compare-and-swap: a stale revision is refused (JetStream 10071), and so is create over an existing key', async () => {
    const server = await natsServer();
    const a = createOwnerMirror({ connection: natsTransport(server.url) });
    const b = createOwnerMirror({ connection: natsTransport(server.url) });
    const r1 = await a.compareAndSet('ses_1', { ownerId: 'a', epoch: 1, expiresAt: 1 }, 0);
    await expect(b.compareAndSet('ses_1', { ownerId: 'b', epoch: 2, expiresAt: 2 }, 0)).rejects.toBeInstanceOf(KvRevisionConflictError);
    const r2 = await b.compareAndSet('ses_1', { ownerId: 'b', epoch: 2, expiresAt: 2 }, r1);
    const stale = a.compareAndSet('ses_1', { ownerId: 'a', epoch: 1, expiresAt: 3 }, r1);
    await expect(stale).rejects.toThrow(KvRevisionConflictError);
    await expect(stale).rejects.toThrow(/10071/);
    expect(await a.get('ses_1')).toMatchObject({ ownerId: 'b', epoch: 2, revision: r2 });
  });

  it('mirror - put never hides a newer owner: an older epoch with a stale revision is refused', async () => {
    const server = await natsServer();
    const old = createOwnerMirror({ connection: natsTransport(server.url) });
    const taker = createOwnerMirror({ connection: natsTransport(server.url) });
    await old.put('ses_1', { ownerId: 'old', epoch: 3, expiresAt: 1 });
    await taker.put('ses_1', { ownerId: 'new', epoch: 4, expiresAt: 2 }); // took over after expiry: its first put re-reads
    await expect(old.put('ses_1', { ownerId: 'old', epoch: 3, expiresAt: 3 })).rejects.toBeInstanceOf(KvRevisionConflictError);
    expect(await taker.get('ses_1')).toMatchObject({ ownerId: 'new', epoch: 4 });
    await old.delete('ses_1', { ownerId: 'old', epoch: 3 }); // the old owner's release leaves the new entry
    expect(await taker.get('ses_1')).toMatchObject({ ownerId: 'new', epoch: 4 });
  });

  it('mirror - keys: Loom ids as they are, other ids encoded into valid KV keys', () => {
    expect(ownerKey('ses_abc-1')).toBe('ses_abc-1');
    expect(ownerKey('ses_call.1 x')).toMatch(/^[-/_=.a-zA-Z0-9]+$/);
  });
});
