import { DISCOVERY_BATCH_SESSIONS, DISCOVERY_SESSIONS_MAX, DISCOVERY_SLICE_MS } from '../core/limits.js';
import type { Coordinator } from './coordinator.js';

export interface DiscoveryReport {
  /** Unsettled sessions found in the log (active or recovering, or with a background job not settled). */
  found: number;
  /** Restored and classified here. */
  owned: string[];
  /** Held by another live owner. */
  skipped: string[];
  /** Could not be restored (the error is reported, the pass goes on). */
  failed: { sessionId: string; error: unknown }[];
}

/**
 * Startup discovery (DESIGN §5): restores every unsettled session so it is classified and, where
 * safe, resumed. Runs in the background of long-lived processes: sessions are owned in slices of
 * at most DISCOVERY_BATCH_SESSIONS and DISCOVERY_SLICE_MS, each slice one commit, with a yield to
 * the event loop between slices, so new work is served meanwhile. `prepare` runs before each
 * session is owned (loading its config, for example).
 */
export async function discoverUnsettled(
  coordinator: Coordinator,
  options: {
    signal?: AbortSignal;
    prepare?: (sessionId: string) => Promise<void> | void;
    /** Unsettled sessions this pass looks at (a worker's capacity); at most DISCOVERY_SESSIONS_MAX. */
    max?: number;
  } = {},
): Promise<DiscoveryReport> {
  const store = coordinator.store;
  const ids = store.queries.unsettledSessions(Math.min(options.max ?? DISCOVERY_SESSIONS_MAX, DISCOVERY_SESSIONS_MAX));
  const report: DiscoveryReport = { found: ids.length, owned: [], skipped: [], failed: [] };
  let next = 0;
  while (next < ids.length && !options.signal?.aborted) {
    const chunk = ids.slice(next, next + DISCOVERY_BATCH_SESSIONS);
    for (const sessionId of chunk) await options.prepare?.(sessionId);
    // One commit for the slice (each session's writes are a savepoint in it), ended by a time
    // budget so the event loop, and new work, get their turn.
    const started = performance.now();
    let done = 0;
    store.transaction(() => {
      while (done < chunk.length) {
        ownOne(coordinator, chunk[done++]!, report);
        if (performance.now() - started > DISCOVERY_SLICE_MS) break;
      }
    });
    next += done;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return report;
}

function ownOne(coordinator: Coordinator, sessionId: string, report: DiscoveryReport): void {
  try {
    if (coordinator.own(sessionId)) report.owned.push(sessionId);
    else report.skipped.push(sessionId);
  } catch (error) {
    report.failed.push({ sessionId, error });
  }
}
