import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  NATS_CONNECT_BACKOFF_MAX_MS,
  NATS_CONNECT_TIMEOUT_MS,
  NATS_PING_INTERVAL_MS,
  NATS_PINGS_OUTSTANDING_MAX,
  NATS_RECONNECT_WAIT_MS,
} from '../../core/limits.js';
import { describe, NatsTransportClosedError, NatsUnavailableError } from './errors.js';

/**
 * One NATS connection, opened in the background. Nothing waits for it at construction: a Loom
 * process runs from SQLite whether or not NATS is up. The first connection is retried with a
 * bounded backoff until it succeeds or the connector is closed; after that nats.js reconnects by
 * itself (forever, every NATS_RECONNECT_WAIT_MS), buffering publishes meanwhile.
 *
 * A connection given by the caller is used as it is and never closed here.
 */
export class NatsConnector {
  private nc: NatsConnection | undefined;
  private up = false;
  private closed = false;
  private lastError: unknown;
  private readonly waiters = new Set<() => void>();
  private readonly disconnectWaiters = new Set<() => void>();
  private readonly connectHandlers = new Set<(nc: NatsConnection) => void>();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly owned: boolean;

  constructor(
    readonly url: string,
    options: { connection?: NatsConnection; name?: string } = {},
  ) {
    this.owned = options.connection === undefined;
    if (options.connection) this.adopt(options.connection);
    else void this.attempt(options.name ?? 'loom', NATS_RECONNECT_WAIT_MS);
  }

  /** The connection once opened (it may be reconnecting right now); undefined before the first. */
  current(): NatsConnection | undefined {
    return this.closed ? undefined : this.nc;
  }

  /** True before the first connection attempt has either succeeded or failed. */
  isConnecting(): boolean {
    return !this.closed && this.nc === undefined && this.lastError === undefined;
  }

  /** True while connected (not before the first connection, not while reconnecting). */
  isConnected(): boolean {
    return this.up && !this.closed;
  }

  /**
   * The connection, waiting at most `waitMs` for the first one. Rejects with
   * NatsUnavailableError when none came in time, NatsTransportClosedError after `close`.
   */
  async connection(waitMs: number): Promise<NatsConnection> {
    if (this.closed) throw new NatsTransportClosedError(this.url);
    if (this.nc) return this.nc;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      timer.unref();
      this.waiters.add(done);
    });
    if (this.closed) throw new NatsTransportClosedError(this.url);
    if (!this.nc) throw new NatsUnavailableError(this.url, waitMs, this.lastError === undefined ? undefined : describe(this.lastError));
    return this.nc;
  }

  /**
   * Resolves at the next disconnect (or close); `cancel` drops the wait. Requests sent before a
   * disconnect may never be answered: waiting out their timeout would stall a publisher.
   */
  whenDisconnected(): { promise: Promise<void>; cancel(): void } {
    let done!: () => void;
    const promise = new Promise<void>((resolve) => {
      done = () => {
        this.disconnectWaiters.delete(done);
        resolve();
      };
    });
    if (this.closed || !this.up) done();
    else this.disconnectWaiters.add(done);
    return { promise, cancel: () => this.disconnectWaiters.delete(done) };
  }

  /** Called with the connection on the first connect and on every reconnect; returns the unsubscribe function. */
  onConnect(handler: (nc: NatsConnection) => void): () => void {
    this.connectHandlers.add(handler);
    if (this.nc && this.up) handler(this.nc);
    return () => void this.connectHandlers.delete(handler);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const w of [...this.waiters]) w();
    for (const w of [...this.disconnectWaiters]) w();
    const nc = this.nc;
    if (nc && this.owned && !nc.isClosed()) {
      try {
        await nc.close();
      } catch {
        // closing a broken connection
      }
    }
  }

  private async attempt(name: string, backoffMs: number): Promise<void> {
    if (this.closed) return;
    try {
      const nc = await connect({
        servers: this.url,
        name,
        timeout: NATS_CONNECT_TIMEOUT_MS,
        maxReconnectAttempts: -1,
        reconnectTimeWait: NATS_RECONNECT_WAIT_MS,
        pingInterval: NATS_PING_INTERVAL_MS,
        maxPingOut: NATS_PINGS_OUTSTANDING_MAX,
      });
      if (this.closed) {
        await nc.close().catch(() => {});
        return;
      }
      this.adopt(nc);
    } catch (error) {
      this.lastError = error;
      if (this.closed) return;
      this.retryTimer = setTimeout(() => void this.attempt(name, Math.min(backoffMs * 2, NATS_CONNECT_BACKOFF_MAX_MS)), backoffMs);
      this.retryTimer.unref();
    }
  }

  private adopt(nc: NatsConnection): void {
    this.nc = nc;
    this.up = !nc.isClosed();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.up = false;
          for (const w of [...this.disconnectWaiters]) w();
        }
        else if (s.type === 'reconnect') {
          this.up = true;
          this.announce(nc);
        }
      }
    })().catch(() => {});
    void nc.closed().then((err) => {
      this.up = false;
      for (const w of [...this.disconnectWaiters]) w();
      if (err) this.lastError = err;
    });
    for (const w of [...this.waiters]) w();
    this.announce(nc);
  }

  private announce(nc: NatsConnection): void {
    for (const h of [...this.connectHandlers]) {
      try {
        h(nc);
      } catch {
        // a handler's failure is its own
      }
    }
  }
}
