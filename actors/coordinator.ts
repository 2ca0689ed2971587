import { hostname } from 'node:os';
import { OWNER_LEASE_TTL_MS, OWNER_RENEW_BEFORE_MS, OWNER_STOP_MARGIN_MS, LIVE_SESSIONS_MAX } from '../core/limits.js';
import { LimitExceededError, type Lease, type Store } from '../store/index.js';
import { createInProcessTransport } from '../transport/inprocess/index.js';
import type { Transport } from '../transport/types.js';
import { SessionActor, SessionLogic, type SessionDeps } from './session.js';
import { createSubagentRunner } from './subagent.js';

export type SessionDepsFactory = (sessionId: string) => Omit<SessionDeps, 'store' | 'lease' | 'sessionId' | 'onFailure' | 'logic'>;

export interface CoordinatorOptions {
  store: Store;
  deps: SessionDepsFactory;
  ownerId?: string;
  leaseTtlMs?: number;
  /** Carries wakes, cancels and committed events; the in-process transport by default. */
  transport?: Transport;
  /** Told when a live session stops on an operating failure (lost lease, broken store). */
  onSessionFailure?: (sessionId: string, error: unknown) => void;
  /**
   * Told after a lease is acquired, renewed or released here (to mirror owners elsewhere, e.g.
   * NATS KV). Best effort and synchronous: it must not throw or block; the SQLite row stays the truth.
   */
  onLease?: (kind: 'acquired' | 'renewed' | 'released', lease: Lease) => void;
}

interface Live {
  actor: SessionActor;
  lease: Lease;
  /** Monotonic time of the last successful acquire or renew. */
  renewedAt: number;
}

/**
 * The process-wide coordinator: takes and renews owner leases, keeps one live actor per owned
 * session, joins concurrent runs of one session, and notices other processes' requests (by
 * polling `data_version` through the store's change detector; with NATS also by wakes).
 *
 * Wakes cannot be lost: a session step reads every committed event of its session inside its own
 * transaction, so a wake or admission that races with a settlement is seen by the step after it.
 */
export class Coordinator {
  readonly ownerId: string;
  private readonly live = new Map<string, Live>();
  private readonly runs = new Map<string, Promise<void>>();
  private readonly ttl: number;
  private renewTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  readonly transport: Transport;
  /** One machine with implementations for every session this coordinator runs. */
  private readonly logic = new SessionLogic();
  private readonly detach: (() => void)[] = [];
  /** Runs `task` subagents as child sessions owned by this coordinator; every session's tools get it. */
  readonly subagents = createSubagentRunner(this);

  constructor(private readonly options: CoordinatorOptions) {
    this.ownerId = options.ownerId ?? `${hostname()}:${process.pid}:${options.store.ids.next('own')}`;
    this.ttl = options.leaseTtlMs ?? OWNER_LEASE_TTL_MS;
    this.transport = options.transport ?? createInProcessTransport();
    // Copies of committed events go out on the transport; signals make owned sessions look now.
    this.detach.push(
      options.store.onAppended((events) => {
        const touched = new Map<string, number>();
        for (const e of events) {
          void this.transport.publish(e);
          if (e.sessionId !== null) touched.set(e.sessionId, e.seq);
        }
        // Only sessions written to need to look; a session's own steps have delivered theirs already.
        for (const [id, seq] of touched) this.catchUpSafely(id, seq);
      }),
      this.transport.onSignal((signal) => {
        const actor = this.get(signal.sessionId);
        if (!actor) return;
        actor.catchUp();
        if (signal.kind === 'wake') actor.wake();
      }),
    );
  }

  get store(): Store {
    return this.options.store;
  }

  /** The live actor of a session this process owns. */
  get(sessionId: string): SessionActor | undefined {
    return this.live.get(sessionId)?.actor;
  }

  /** Every live actor this process owns now (subagents' sessions included). */
  liveActors(): SessionActor[] {
    return [...this.live.values()].map((entry) => entry.actor);
  }

  /**
   * Takes ownership of a session and restores its actor, or returns null when another live owner
   * holds it. Owning an already-owned session returns the same actor.
   */
  own(sessionId: string): SessionActor | null {
    const existing = this.live.get(sessionId);
    if (existing) return existing.actor;
    if (this.live.size >= LIVE_SESSIONS_MAX) throw new LimitExceededError('LIVE_SESSIONS_MAX', `${this.live.size} sessions are live in this process`);
    const store = this.options.store;
    const lease = store.owners.acquire(sessionId, this.ownerId, this.ttl, store.clock.now()) ?? this.takeOverDeadOwner(sessionId);
    if (!lease) return null;
    let actor: SessionActor;
    try {
      // Built before it is registered: its first step commits, and listeners must not see a half-made entry.
      const deps = this.options.deps(sessionId);
      actor = new SessionActor({
        ...deps,
        // Background jobs and subagents are children of the session actor: this coordinator's runtime starts them.
        toolServices: { subagents: this.subagents, jobs: this.logic.jobs, ...deps.toolServices },
        store,
        lease,
        sessionId,
        onFailure: (error) => this.onFailure(sessionId, error),
        logic: this.logic,
      });
    } catch (error) {
      store.owners.release(lease);
      throw error;
    }
    if (actor.failure !== undefined) throw actor.failure;
    this.live.set(sessionId, { actor, lease, renewedAt: store.clock.monotonic() });
    this.tellLease('acquired', lease);
    this.startBackground();
    return actor;
  }

  /**
   * A lease held by a process on this host that no longer exists (killed, crashed) need not be
   * waited out: owner ids start with `host:pid:`, and a dead pid's lease is taken over at once.
   */
  private takeOverDeadOwner(sessionId: string): Lease | null {
    const store = this.options.store;
    const current = store.owners.get(sessionId, store.clock.now());
    if (!current?.live) return null;
    const [host, pid] = current.ownerId.split(':');
    if (host !== hostname() || !pid || !/^\d+$/.test(pid) || Number(pid) === process.pid || processAlive(Number(pid))) return null;
    return store.owners.takeOver(sessionId, current.ownerId, current.epoch, this.ownerId, this.ttl, store.clock.now());
  }

  /**
   * Runs a session until it is quiet (idle with nothing eligible, parked, or waiting for a
   * recovery decision). Concurrent calls for one session join the same run.
   */
  runUntilQuiet(sessionId: string, options: { jobs?: boolean } = {}): Promise<void> {
    // With `jobs`: also until its background jobs have settled and their results were answered.
    const key = options.jobs ? `${sessionId}\u0000jobs` : sessionId;
    const running = this.runs.get(key);
    if (running) return running;
    const actor = this.get(sessionId);
    if (!actor) return Promise.reject(new Error(`session ${sessionId} is not owned by this process`));
    const run = actor.whenQuiet(options).finally(() => this.runs.delete(key));
    this.runs.set(key, run);
    return run;
  }

  /** An advisory wake for an owned session (coalesced: a wake while busy changes nothing). */
  wake(sessionId: string): void {
    this.get(sessionId)?.wake();
  }

  /** Stops a session's actor (aborting its children) and releases its lease. */
  release(sessionId: string): void {
    const entry = this.live.get(sessionId);
    if (!entry) return;
    this.live.delete(sessionId);
    entry.actor.stop();
    this.options.store.flushSession(sessionId);
    if (this.options.store.owners.release(entry.lease)) this.tellLease('released', entry.lease);
    if (this.live.size === 0) this.stopBackground();
  }

  /** Releases every session. */
  shutdown(): void {
    for (const id of [...this.live.keys()]) this.release(id);
    this.stopBackground();
    for (const d of this.detach.splice(0)) d();
  }

  private seenGseq = 0;

  private tellLease(kind: 'acquired' | 'renewed' | 'released', lease: Lease): void {
    try {
      this.options.onLease?.(kind, { ...lease });
    } catch {
      // a mirror's failure is not the owner's
    }
  }

  private catchUpSafely(sessionId: string, knownSeq?: number): void {
    const entry = this.live.get(sessionId);
    if (!entry) return;
    try {
      entry.actor.catchUp(knownSeq);
    } catch (error) {
      this.onFailure(sessionId, error);
    }
  }

  private onFailure(sessionId: string, error: unknown): void {
    const entry = this.live.get(sessionId);
    if (entry) {
      this.live.delete(sessionId);
      try {
        this.options.store.owners.release(entry.lease);
      } catch {
        // the lease may be gone already
      }
    }
    this.options.onSessionFailure?.(sessionId, error);
  }

  private startBackground(): void {
    if (!this.unsubscribe) {
      const store = this.options.store;
      this.seenGseq = store.maxGseq();
      // Another process committed: wake only the live sessions it wrote to.
      this.unsubscribe = store.changes.subscribeExternal(() => {
        const { sessionIds, maxGseq } = store.sessionsChangedSince(this.seenGseq);
        this.seenGseq = maxGseq;
        for (const id of sessionIds) this.catchUpSafely(id);
      });
    }
    if (!this.renewTimer) {
      this.renewTimer = setInterval(() => this.renewAll(), leaseTickMs(this.ttl));
      this.renewTimer.unref();
    }
  }

  private stopBackground(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }

  /**
   * Renews every lease (run by a timer; public for tests). A session whose lease was taken or
   * released is stopped at once; one whose renewal keeps failing (a busy database) is stopped once
   * it has gone unrenewed for `stopAfterMs(ttl)`, before the lease expires, so no actor of this
   * process acts on a lease another process may take next.
   */
  renewAll(): void {
    const now = this.options.store.clock.monotonic();
    const due = [...this.live].filter(([, entry]) => now - entry.renewedAt >= renewIntervalMs(this.ttl));
    if (due.length === 0) return;
    try {
      // One transaction for every lease due (each renew joins it as a savepoint).
      this.options.store.transaction(() => this.renewEach(due));
    } catch {
      this.renewEach(due); // the database was busy: renew one by one, each in its own transaction
    }
  }

  private renewEach(due: [string, Live][]): void {
    const store = this.options.store;
    for (const [id, entry] of due) {
      if (this.live.get(id) !== entry) continue; // released or stopped meanwhile
      let outcome: 'renewed' | 'lost' | 'busy';
      try {
        outcome = store.owners.renew(entry.lease, this.ttl, store.clock.now()) ? 'renewed' : 'lost';
      } catch {
        outcome = 'busy'; // try again next tick unless the margin is gone
      }
      if (outcome === 'renewed') {
        entry.renewedAt = store.clock.monotonic();
        this.tellLease('renewed', entry.lease);
      }
      else if (outcome === 'lost' || store.clock.monotonic() - entry.renewedAt > stopAfterMs(this.ttl)) {
        this.live.delete(id);
        entry.actor.stop();
        const why = outcome === 'lost' ? 'another owner took it or it was released' : `it could not be renewed for ${Math.round(store.clock.monotonic() - entry.renewedAt)} ms`;
        this.options.onSessionFailure?.(id, new LeaseLostError(id, entry.lease.epoch, why));
      }
    }
  }
}

/**
 * A lease is renewed when OWNER_RENEW_BEFORE_MS of it is left, or every third of it for leases
 * shorter than that allows (tests and workers may choose short leases).
 */
export function renewIntervalMs(ttl: number): number {
  return Math.max(50, ttl - OWNER_RENEW_BEFORE_MS, ttl / 3);
}

/** How often the coordinator looks at its leases: often enough to stop within the stop margin. */
export function leaseTickMs(ttl: number): number {
  return Math.max(25, Math.min(renewIntervalMs(ttl), (ttl - stopAfterMs(ttl)) / 2));
}

/** How long a lease may go unrenewed before its actors stop: OWNER_STOP_MARGIN_MS (at most a quarter of it) before expiry. */
export function stopAfterMs(ttl: number): number {
  return ttl - Math.min(OWNER_STOP_MARGIN_MS, ttl / 4);
}

/** An owner stopped a session because its lease was lost, or could not be renewed in time. */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(
    readonly sessionId: string,
    readonly epoch: number,
    why: string,
  ) {
    super(`lost the lease of session ${sessionId} (epoch ${epoch}): ${why}`);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
