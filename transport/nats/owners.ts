import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { NATS_REQUEST_TIMEOUT_MS, NATS_SIGNAL_WAIT_MS, OWNERS_KV_LIST_MAX, OWNERS_KV_TTL_MS } from '../../core/limits.js';
import { describe, jetStreamCode, JS_WRONG_LAST_SEQUENCE, KvRevisionConflictError } from './errors.js';
import { OWNERS_BUCKET } from './subjects.js';

/** A session's owner as the mirror shows it (SQLite's `session_owner` row is the truth). */
export interface MirroredOwner {
  sessionId: string;
  ownerId: string;
  epoch: number;
  /** Wall-clock epoch milliseconds. */
  expiresAt: number;
  /** The KV revision of this entry (the compare-and-swap token). */
  revision: number;
}

const OwnerValue = z.object({
  sessionId: z.string(),
  ownerId: z.string(),
  epoch: z.number().int().nonnegative(),
  expiresAt: z.number(),
});

export interface OwnerMirrorOptions {
  /** Where to get the connection: a NATS transport (`connection(waitMs)`), or a connection. */
  connection: { connection(waitMs?: number): Promise<NatsConnection> } | NatsConnection;
  bucket?: string;
  /** Entries not written for this long expire (nats-server 2.9 fires no watch event then). */
  ttlMs?: number;
  /** How long an operation waits for a first connection. */
  waitMs?: number;
}

/**
 * The KV mirror of session owners (bucket `loom_owners`, key = session id, value
 * `{ sessionId, ownerId, epoch, expiresAt }`), for visibility across processes and machines. The
 * SQLite lease and epoch stay the fencing truth; the mirror never decides anything.
 *
 * Writes are compare-and-swap by KV revision: `put` creates the key when absent and otherwise
 * updates it with the revision it last saw; when that revision is stale (JetStream 10071) it
 * re-reads, and overwrites only an entry whose epoch is not newer than the one it writes — a
 * stale owner can never hide a newer one. `compareAndSet` is the raw operation.
 *
 * Takeover after expiry POLLS: on nats-server 2.9 an entry that expires by TTL fires no watch
 * event, so a process waiting to take a session over re-reads (SQLite `owners.get`, or `get`
 * here) on its renew interval instead of waiting for a KV watch.
 *
 * For the coordinator: call `put(sessionId, lease)` after each acquire and renew, and
 * `delete(sessionId, lease)` after release; they are best effort (fire and forget, catch errors):
 * NATS being down must not stop a session.
 */
export interface OwnerMirror {
  put(sessionId: string, lease: { ownerId: string; epoch: number; expiresAt: number }): Promise<number>;
  /** Removes the entry if it still shows this lease's owner and epoch (a newer owner's entry stays). */
  delete(sessionId: string, lease: { ownerId: string; epoch: number }): Promise<void>;
  get(sessionId: string): Promise<MirroredOwner | null>;
  /** Every entry, at most OWNERS_KV_LIST_MAX. */
  list(): Promise<MirroredOwner[]>;
  /**
   * Writes `owner` only if the entry's revision is `revision` (0: only if absent); returns the new
   * revision or throws KvRevisionConflictError.
   */
  compareAndSet(sessionId: string, owner: { ownerId: string; epoch: number; expiresAt: number }, revision: number): Promise<number>;
}

/** The KV key of a session: Loom's ids as they are; other bytes as `=HH` (KV keys allow `[-/_=.a-zA-Z0-9]`). */
export function ownerKey(sessionId: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(sessionId)) return sessionId;
  let out = '';
  for (const byte of Buffer.from(sessionId, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `=${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function createOwnerMirror(options: OwnerMirrorOptions): OwnerMirror {
  const bucket = options.bucket ?? OWNERS_BUCKET;
  const waitMs = options.waitMs ?? NATS_SIGNAL_WAIT_MS;
  const source = options.connection;
  const revisions = new Map<string, number>();
  let opened: { nc: NatsConnection; kv: Promise<KV> } | undefined;

  const connection = (): Promise<NatsConnection> =>
    'connection' in source && typeof source.connection === 'function' ? source.connection(waitMs) : Promise.resolve(source as NatsConnection);

  const kv = async (): Promise<KV> => {
    const nc = await connection();
    if (opened?.nc === nc) return opened.kv;
    const made = new Kvm(nc).create(bucket, { ttl: options.ttlMs ?? OWNERS_KV_TTL_MS, history: 1, timeout: NATS_REQUEST_TIMEOUT_MS });
    opened = { nc, kv: made };
    made.catch(() => {
      if (opened?.kv === made) opened = undefined;
    });
    return made;
  };

  const read = async (sessionId: string): Promise<MirroredOwner | null> => {
    const entry = await (await kv()).get(ownerKey(sessionId));
    if (!entry || entry.operation !== 'PUT') return null;
    const parsed = OwnerValue.safeParse(safeJson(entry.string()));
    if (!parsed.success) return null;
    return { ...parsed.data, revision: entry.revision };
  };

  const compareAndSet: OwnerMirror['compareAndSet'] = async (sessionId, owner, revision) => {
    const store = await kv();
    const key = ownerKey(sessionId);
    const value = JSON.stringify({ sessionId, ownerId: owner.ownerId, epoch: owner.epoch, expiresAt: owner.expiresAt });
    try {
      const next = revision === 0 ? await store.create(key, value) : await store.update(key, value, revision);
      revisions.set(sessionId, next);
      return next;
    } catch (error) {
      const code = jetStreamCode(error);
      if (code === JS_WRONG_LAST_SEQUENCE || /wrong last sequence|key exists/i.test(describe(error))) {
        throw new KvRevisionConflictError(bucket, key, revision, code !== undefined ? `JetStream code ${code}` : describe(error));
      }
      throw error;
    }
  };

  return {
    compareAndSet,

    async put(sessionId, lease) {
      try {
        return await compareAndSet(sessionId, lease, revisions.get(sessionId) ?? 0);
      } catch (error) {
        if (!(error instanceof KvRevisionConflictError)) throw error;
        // Our revision was stale (another process wrote, or this one restarted): look, and only
        // overwrite an entry that is not from a newer epoch.
        const current = await read(sessionId);
        if (current && current.epoch > lease.epoch) throw error;
        return compareAndSet(sessionId, lease, current?.revision ?? 0); // 0: create (a deleted key's marker is replaced)
      }
    },

    async delete(sessionId, lease) {
      const current = await read(sessionId);
      revisions.delete(sessionId);
      if (!current || current.ownerId !== lease.ownerId || current.epoch !== lease.epoch) return;
      try {
        await (await kv()).delete(ownerKey(sessionId), { previousSeq: current.revision });
      } catch (error) {
        if (jetStreamCode(error) === JS_WRONG_LAST_SEQUENCE) return; // someone wrote since: theirs stays
        throw error;
      }
    },

    get: read,

    async list() {
      const keys: string[] = [];
      for await (const k of await (await kv()).keys()) {
        keys.push(k);
        if (keys.length >= OWNERS_KV_LIST_MAX) break;
      }
      const out: MirroredOwner[] = [];
      for (const k of keys) {
        const entry = await (await kv()).get(k);
        if (!entry || entry.operation !== 'PUT') continue;
        const parsed = OwnerValue.safeParse(safeJson(entry.string()));
        if (parsed.success) out.push({ ...parsed.data, revision: entry.revision });
      }
      return out.sort((a, b) => a.sessionId.localeCompare(b.sessionId));
    },
  };
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
