import { SSE_HUB_PAGE_EVENTS } from '../core/limits.js';
import type { AnyEnvelope, Store } from '../store/index.js';

export type HubListener = (events: readonly AnyEnvelope[]) => void;

/**
 * Fans committed events out to the server's SSE connections with one read per change, whatever
 * the number of connections. It follows the global log by `gseq`: on every change the store
 * notices (a commit of this process at once; another process's commit by the `data_version`
 * poll) it reads every event after its cursor, in pages, and hands each page to every listener.
 * Reading after a cursor, never taking events from the commit callback, keeps this process's
 * events and other processes' events in one global order with no gap (gseq is assigned inside the
 * serialised write transaction, so a reader never sees N+1 committed before N).
 *
 * It runs only while someone listens, starting at the newest gseq at that moment: a listener pages
 * its own history first (subscribe-before-history, see server/sse.ts) and drops duplicates.
 */
export class EventHub {
  private readonly listeners = new Set<HubListener>();
  private cursor = 0;
  private unsubscribe: (() => void) | undefined;
  private scheduled = false;

  constructor(
    private readonly store: Store,
    private readonly pageEvents = SSE_HUB_PAGE_EVENTS,
  ) {}

  get size(): number {
    return this.listeners.size;
  }

  /** Calls `listener` with every event committed after now, in gseq order; returns the unsubscribe function. */
  subscribe(listener: HubListener): () => void {
    if (this.listeners.size === 0) this.start();
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  private start(): void {
    this.cursor = this.store.maxGseq();
    this.unsubscribe = this.store.changes.subscribe(() => this.schedule());
  }

  private stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Many commits in one tick are read once. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** Reads and delivers everything after the cursor (bounded pages; no iterator held open). */
  pump(): void {
    while (this.listeners.size > 0) {
      let page: AnyEnvelope[];
      try {
        page = this.store.readAll({ afterGseq: this.cursor, limit: this.pageEvents });
      } catch {
        return; // the store is closing; listeners are ended by the server
      }
      if (page.length === 0) return;
      this.cursor = page[page.length - 1]!.gseq;
      for (const l of [...this.listeners]) l(page);
      if (page.length < this.pageEvents) return;
    }
  }
}
