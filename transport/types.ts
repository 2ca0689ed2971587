import type { AnyEnvelope } from '../store/schemas.js';

/** A signal about one session: `wake` (eligible input may wait) or `cancel` (a cancel was recorded). */
export interface SessionSignal {
  kind: 'wake' | 'cancel';
  sessionId: string;
}

export interface EventFilter {
  /** Only this session's events; omit for every session (and system events). */
  sessionId?: string;
  /** Only these types (exact, or a prefix ending in `.`: `tool.` selects every tool event). */
  types?: string[];
}

/**
 * How processes tell each other things (DESIGN §6). The log in SQLite stays the truth: signals
 * only make an owner look at the log sooner, and published events are copies of committed ones.
 * The in-process implementation is the embedded default; NATS plugs into the same interface.
 */
export interface Transport {
  /** Asks the owner of a session to look at its inbox now. */
  wake(sessionId: string): Promise<void>;
  /** Tells the owner of a session that a cancel was recorded. */
  cancel(sessionId: string): Promise<void>;
  /** Publishes a committed event to subscribers. */
  publish(event: AnyEnvelope): Promise<void>;
  /** Receives committed events matching the filter; returns the unsubscribe function. */
  subscribe(filter: EventFilter, handler: (event: AnyEnvelope) => void): () => void;
  /** Receives wake and cancel signals; returns the unsubscribe function. */
  onSignal(handler: (signal: SessionSignal) => void): () => void;
  close(): Promise<void>;
}

export function matchesFilter(filter: EventFilter, event: AnyEnvelope): boolean {
  if (filter.sessionId !== undefined && event.sessionId !== filter.sessionId) return false;
  if (!filter.types || filter.types.length === 0) return true;
  return filter.types.some((t) => (t.endsWith('.') ? event.type.startsWith(t) : event.type === t));
}
