import { hostname } from 'node:os';
import { ownerProcessGone } from '../core/liveness.js';
import {
  OUTBOX_DRAIN_TIMEOUT_MS,
  OUTBOX_LEASE_TTL_MS,
  OUTBOX_PAGE_EVENTS,
  OUTBOX_RENEW_INTERVAL_MS,
  OUTBOX_RETRY_BACKOFF_MAX_MS,
  OUTBOX_RETRY_BACKOFF_MIN_MS,
} from '../core/limits.js';
import { OutboxCursors, type OutboxLease, type Store } from '../store/index.js';
import type { AnyEnvelope } from '../store/schemas.js';

/** Where the outbox publishes. The NATS transport is one (transport/nats: `createNatsTransport`). */
export interface OutboxSink {
  /**
   * Publishes the events in order and waits for their acknowledgements. `acked` counts the events
   * from the start that are durably stored by the destination (or already were: duplicates).
   */
  publishAcked(events: AnyEnvelope[], options: { dbId: string }): Promise<{ acked: number; error?: unknown }>;
  /** The destination's last stored gseq and the database it came from (for reconciling after a crash). */
  lastPublished?(): Promise<{ gseq: number; dbId: string | null } | null>;
  /** Lets other processes (and local commits) wake this publisher; the handler returns whether it holds the lease. */
  onNudge?(handler: () => boolean): () => void;
  /** Whether the destination is reachable now. A publisher takes the lease only while it is. */
  isConnected?(): boolean;
  /** True while the first connection is under way (a closing publisher waits for it, bounded). */
  connecting?(): boolean;
  /** Called on every (re)connection: a publisher backing off retries at once. */
  onConnect?(handler: () => void): () => void;
}

export interface OutboxOptions {
  store: Store;
  sink: OutboxSink;
  /** The destination's row in the `outbox` table. */
  name?: string;
  /** Lease holder id; `host:pid:…` lets a publisher on the same host take over a dead one's lease at once. */
  ownerId?: string;
  leaseTtlMs?: number;
  renewIntervalMs?: number;
  pageEvents?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Told about operating failures (NATS down, a refused publish, a busy database); publishing retries. */
  onError?: (error: unknown) => void;
}

export interface OutboxStatus {
  /** Holds the publisher lease now. */
  holder: boolean;
  /** The last gseq known published (this process's view; the table holds the truth). */
  cursor: number;
  /** Events this publisher had acknowledged since it started. */
  published: number;
  lastError?: string;
}

/**
 * The outbox publisher (DESIGN §6): publishes committed events from SQLite, never from memory.
 *
 * One publisher per database at a time holds the lease in the `outbox` row; the others wait and
 * take over when it expires (or at once when the holder is a dead process on this host). The
 * holder reads pages of events after the cursor (gseq order), hands each page to the sink, and
 * after the acknowledgements advances the cursor in one short transaction fenced by its epoch.
 * It is woken by this process's commits (`store.onAppended`), by other processes' commits (the
 * change detector's `data_version` poll) and by nudges from other processes through the sink.
 * During an outage it retries with a bounded backoff and, once the destination answers again,
 * catches up in order. A crash between an acknowledgement and the cursor update republishes at
 * most one page; the destination de-duplicates it (JetStream: `Nats-Msg-Id` = gseq), and a new
 * holder first moves the cursor to the destination's last message from this database.
 *
 * Use: `const outbox = startOutbox({ store, sink: natsTransport })`; on shutdown
 * `await outbox.stop()` (publishes what is committed, bounded by OUTBOX_DRAIN_TIMEOUT_MS, then
 * releases the lease).
 */
export class OutboxPublisher {
  private readonly cursors: OutboxCursors;
  private readonly name: string;
  readonly ownerId: string;
  private readonly ttl: number;
  private readonly renewEvery: number;
  private readonly pageEvents: number;
  private readonly backoffMin: number;
  private readonly backoffMax: number;
  private lease: OutboxLease | undefined;
  /** Monotonic time of the last acquire or renew. */
  private renewedAt = 0;
  private cursor = 0;
  private published = 0;
  private lastError: string | undefined;
  private reconciled = false;
  private started = false;
  private stopped = false;
  private readonly stopping: Promise<void>;
  private signalStop!: () => void;
  /** Cuts a backoff short (the destination is back). */
  private endBackoff: (() => void) | undefined;
  /** Monotonic time since which the destination has been unreachable while this publisher holds the lease. */
  private disconnectedSince: number | undefined;
  private dirty = true;
  private wakeLoop: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly detach: (() => void)[] = [];
  private readonly caughtUpWaiters = new Set<{ gseq: number; resolve: () => void }>();

  constructor(private readonly options: OutboxOptions) {
    const store = options.store;
    this.cursors = new OutboxCursors(store.db);
    this.name = options.name ?? 'nats';
    this.ownerId = options.ownerId ?? `${hostname()}:${process.pid}:${store.ids.next('pub')}`;
    this.ttl = options.leaseTtlMs ?? OUTBOX_LEASE_TTL_MS;
    this.renewEvery = options.renewIntervalMs ?? OUTBOX_RENEW_INTERVAL_MS;
    this.pageEvents = options.pageEvents ?? OUTBOX_PAGE_EVENTS;
    this.backoffMin = options.backoffMinMs ?? OUTBOX_RETRY_BACKOFF_MIN_MS;
    this.backoffMax = options.backoffMaxMs ?? OUTBOX_RETRY_BACKOFF_MAX_MS;
    this.stopping = new Promise((resolve) => (this.signalStop = resolve));
  }

  /** Starts publishing (taking the lease when it is free). Idempotent. */
  start(): this {
    if (this.started) return this;
    this.started = true;
    const store = this.options.store;
    this.detach.push(
      store.onAppended(() => this.kick()),
      store.changes.subscribeExternal(() => this.kick()),
    );
    if (this.options.sink.onConnect) {
      this.detach.push(
        this.options.sink.onConnect(() => {
          this.endBackoff?.();
          this.kick();
        }),
      );
    }
    if (this.options.sink.onNudge) {
      this.detach.push(
        this.options.sink.onNudge(() => {
          this.kick();
          return this.lease !== undefined;
        }),
      );
    }
    // Renews the lease, or looks again whether it is free (a dead holder is replaced after expiry).
    this.timer = setInterval(() => this.tick(), this.renewEvery);
    this.timer.unref();
    this.loop = this.run();
    return this;
  }

  /**
   * Something may be waiting: look soon (coalesced). The look runs in a later turn of the event
   * loop (setImmediate), so work already queued by the commit that kicked — a session's next
   * step, its provider dispatch — goes first: publishing a copy never delays the original.
   */
  kick(): void {
    this.dirty = true;
    if (this.kickQueued) return;
    this.kickQueued = true;
    setImmediate(() => {
      this.kickQueued = false;
      this.wakeLoop?.();
    });
  }

  private kickQueued = false;

  status(): OutboxStatus {
    return { holder: this.lease !== undefined, cursor: this.cursor, published: this.published, lastError: this.lastError };
  }

  /**
   * Resolves true once everything committed up to now (the log's max gseq at the call) is
   * published by this publisher, or false after `timeoutMs` (for example while NATS is down, or
   * while another process holds the lease).
   */
  whenCaughtUp(timeoutMs: number = OUTBOX_DRAIN_TIMEOUT_MS): Promise<boolean> {
    const target = this.options.store.maxGseq();
    if (this.lease && this.cursor >= target) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        gseq: target,
        resolve: () => {
          clearTimeout(timer);
          this.caughtUpWaiters.delete(waiter);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.caughtUpWaiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.caughtUpWaiters.add(waiter);
      this.kick();
    });
  }

  /**
   * Stops: first publishes what is committed (at most `drainMs`; 0 skips it), then releases the
   * lease so another publisher takes over at once. What is left stays in SQLite for the next one.
   * Call it before closing the store.
   */
  async stop(options: { drainMs?: number } = {}): Promise<void> {
    if (this.stopped) return;
    const drainMs = options.drainMs ?? OUTBOX_DRAIN_TIMEOUT_MS;
    if (this.started && drainMs > 0 && this.options.store.db.open && this.worthDraining()) await this.whenCaughtUp(drainMs);
    this.stopped = true;
    this.signalStop();
    if (this.timer) clearInterval(this.timer);
    for (const d of this.detach.splice(0)) d();
    this.wakeLoop?.();
    await this.loop;
    if (this.lease && this.options.store.db.open) {
      try {
        this.cursors.release(this.lease, this.options.store.clock.now());
      } catch (error) {
        this.report(error);
      }
    }
    this.lease = undefined;
  }

  /**
   * Whether a closing publisher should wait to publish what is committed: it holds the lease and
   * reaches the destination, or it is (or is about to be) connected and nobody else holds the
   * lease. Waiting for a destination that is down, or for another holder, would only delay the
   * exit: the holder, or the next publisher, catches up.
   */
  private worthDraining(): boolean {
    const sink = this.options.sink;
    const connected = sink.isConnected?.() !== false;
    if (this.lease) return connected;
    if (!connected && sink.connecting?.() !== true) return false;
    try {
      const seen = this.cursors.peek(this.name, this.options.store.clock.now());
      return !seen || !seen.live || seen.ownerId === this.ownerId;
    } catch {
      return false;
    }
  }

  // ---- the loop ----------------------------------------------------------------------------

  private async run(): Promise<void> {
    let backoff = this.backoffMin;
    const retryLater = async (error: unknown) => {
      this.report(error);
      await this.sleep(backoff);
      backoff = Math.min(backoff * 2, this.backoffMax);
    };
    while (!this.stopped) {
      if (!this.holding()) {
        this.dirty = false; // looked: wait for the next commit, nudge or tick
        await this.idle();
        continue;
      }
      const lease = this.lease!;
      if (!this.reconciled) {
        try {
          await this.reconcile(lease);
          this.reconciled = true;
        } catch (error) {
          await retryLater(error); // the destination is down: publishing would fail as well
        }
        continue;
      }
      let page: AnyEnvelope[];
      try {
        this.dirty = false;
        page = this.options.store.readAll({ afterGseq: this.cursor, limit: this.pageEvents });
      } catch (error) {
        await retryLater(error);
        continue;
      }
      if (page.length === 0) {
        this.settleWaiters();
        await this.idle();
        continue;
      }
      const outcome = await this.publish(page);
      if (outcome.acked > 0) {
        if (!this.advance(lease, page[outcome.acked - 1]!.gseq)) continue;
        this.published += outcome.acked;
      }
      if (outcome.error !== undefined) await retryLater(outcome.error);
      else {
        backoff = this.backoffMin;
        this.lastError = undefined;
      }
    }
  }

  private async publish(page: AnyEnvelope[]): Promise<{ acked: number; error?: unknown }> {
    try {
      return await this.options.sink.publishAcked(page, { dbId: this.lease!.dbId });
    } catch (error) {
      return { acked: 0, error };
    }
  }

  /** Moves the cursor under the lease; false when it could not (the lease lost, or a busy database). */
  private advance(lease: OutboxLease, gseq: number): boolean {
    const store = this.options.store;
    try {
      if (!this.cursors.advance(lease, gseq, store.clock.now())) {
        if (this.lease === lease) this.lease = undefined;
        return false;
      }
    } catch (error) {
      // A busy database: the acknowledged page goes out again later, de-duplicated by the sink.
      this.report(error);
      return false;
    }
    this.cursor = Math.max(this.cursor, gseq);
    this.settleWaiters();
    return true;
  }

  private settleWaiters(): void {
    for (const w of [...this.caughtUpWaiters]) if (this.lease && this.cursor >= w.gseq) w.resolve();
  }

  /**
   * Whether this publisher may publish now: it holds a lease renewed recently enough (measured on
   * the monotonic clock, so a process that was paused stops before another can have taken over).
   * Otherwise it takes the lease when a cheap read shows it free, expired, or held by a dead
   * process on this host.
   */
  private holding(): boolean {
    const store = this.options.store;
    if (this.lease && store.clock.monotonic() - this.renewedAt < this.ttl - Math.min(this.renewEvery, this.ttl / 2)) return true;
    this.lease = undefined;
    if (!store.db.open) return false;
    // A publisher that cannot reach the destination does not take the lease from one that might.
    if (this.options.sink.isConnected?.() === false) return false;
    try {
      const now = store.clock.now();
      const seen = this.cursors.peek(this.name, now);
      let lease: OutboxLease | null = null;
      if (!seen || !seen.live || seen.ownerId === this.ownerId) lease = this.cursors.acquire(this.name, this.ownerId, this.ttl, now);
      else if (ownerProcessGone(seen.ownerId!)) lease = this.cursors.takeOver(this.name, seen.ownerId!, seen.epoch, this.ownerId, this.ttl, now);
      if (!lease) return false;
      this.lease = lease;
      this.renewedAt = store.clock.monotonic();
      this.cursor = lease.gseq;
      this.reconciled = false;
      return true;
    } catch (error) {
      this.report(error); // busy: try again at the next kick or tick
      return false;
    }
  }

  /**
   * After taking the lease: when the destination's last message is from this database and newer
   * than the cursor, a previous holder crashed between the ack and the cursor update; skip ahead
   * so nothing is published twice even outside the de-duplication window. Throws when the
   * destination cannot answer (the loop retries before publishing anything).
   */
  private async reconcile(lease: OutboxLease): Promise<void> {
    const sink = this.options.sink;
    if (!sink.lastPublished) return;
    const last = await sink.lastPublished();
    if (!last || last.dbId !== lease.dbId || this.lease !== lease) return;
    if (last.gseq > this.cursor && last.gseq <= this.options.store.maxGseq()) this.advance(lease, last.gseq);
  }

  private tick(): void {
    const store = this.options.store;
    if (this.stopped || !store.db.open) return;
    if (this.lease && this.unreachableTooLong()) {
      // Unreachable for a whole lease: let a publisher that can reach the destination take over.
      try {
        this.cursors.release(this.lease, store.clock.now());
      } catch (error) {
        this.report(error);
      }
      this.lease = undefined;
    }
    if (this.lease) {
      try {
        if (this.cursors.renew(this.lease, this.ttl, store.clock.now())) this.renewedAt = store.clock.monotonic();
        else this.lease = undefined;
      } catch (error) {
        this.report(error); // busy: the margin in `holding` decides
      }
    }
    this.kick();
  }

  private unreachableTooLong(): boolean {
    if (this.options.sink.isConnected?.() !== false) {
      this.disconnectedSince = undefined;
      return false;
    }
    const now = this.options.store.clock.monotonic();
    this.disconnectedSince ??= now;
    return now - this.disconnectedSince > this.ttl;
  }

  private idle(): Promise<void> {
    if (this.dirty || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wakeLoop = () => {
        this.wakeLoop = undefined;
        resolve();
      };
    });
  }

  /**
   * Waits out a backoff; only `stop` and a (re)connection cut it short (new commits do not make a
   * dead server answer sooner).
   */
  private async sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const reconnected = new Promise<void>((resolve) => (this.endBackoff = resolve));
    await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, ms).unref())), this.stopping, reconnected]);
    this.endBackoff = undefined;
    clearTimeout(timer);
  }

  private report(error: unknown): void {
    this.lastError = (error as Error)?.message ?? String(error);
    this.options.onError?.(error);
  }
}

/** Starts an outbox publisher (see OutboxPublisher). */
export function startOutbox(options: OutboxOptions): OutboxPublisher {
  return new OutboxPublisher(options).start();
}
