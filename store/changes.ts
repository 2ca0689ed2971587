import { CHANGE_POLL_INTERVAL_MS } from '../core/limits.js';
import type { Db } from './db.js';

/**
 * Notices writes. Commits made through this process's store notify at once; commits by other
 * connections (other processes, or other stores in this process) are noticed by polling
 * `PRAGMA data_version`, which changes exactly when another connection has committed.
 * The poll runs only while someone listens, and keeps the process alive only for tails.
 */
export class ChangeDetector {
  private readonly listeners = new Set<() => void>();
  private readonly keepAlive = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private lastVersion = -1;

  constructor(
    private readonly db: Db,
    private readonly intervalMs = CHANGE_POLL_INTERVAL_MS,
  ) {}

  /**
   * Calls `listener` after every noticed change; returns the unsubscribe function. With
   * `keepAlive` (a tail someone is waiting on) the poll keeps the process running.
   */
  subscribe(listener: () => void, options: { keepAlive?: boolean } = {}): () => void {
    this.listeners.add(listener);
    if (options.keepAlive) this.keepAlive.add(listener);
    if (!this.timer) this.start();
    this.refTimer();
    return () => {
      this.listeners.delete(listener);
      this.keepAlive.delete(listener);
      if (this.listeners.size === 0) this.stop();
      else this.refTimer();
    };
  }

  private refTimer(): void {
    if (this.keepAlive.size > 0) this.timer?.ref();
    else this.timer?.unref();
  }

  /** Our own commit: tell listeners now. */
  notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Listeners only for commits by other connections (our own arrive through `Store.onAppended`). */
  subscribeExternal(listener: () => void): () => void {
    this.external.add(listener);
    const off = this.subscribe(() => {});
    return () => {
      this.external.delete(listener);
      off();
    };
  }

  private readonly external = new Set<() => void>();

  /** Polls once; true when another connection committed since the last check. */
  poll(): boolean {
    if (!this.db.open) return false;
    const v = this.db.pragma('data_version', { simple: true }) as number;
    const changed = this.lastVersion !== -1 && v !== this.lastVersion;
    this.lastVersion = v;
    if (changed) {
      this.notify();
      for (const l of [...this.external]) l();
    }
    return changed;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private start(): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref();
  }
}
