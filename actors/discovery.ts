import { DISCOVERY_BATCH_SESSIONS, DISCOVERY_SESSIONS_MAX } from '../core/limits.js';
import type { Coordinator } from './coordinator.js';

export interface DiscoveryReport {
  /** Unsettled sessions found in the log (active or recovering). */
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
 * safe, resumed. Runs in the background of long-lived processes: sessions are owned in batches of
 * DISCOVERY_BATCH_SESSIONS with a yield to the event loop between batches, so new work is served
 * meanwhile. `prepare` runs before each session is owned (loading its config, for example).
 */
export async function discoverUnsettled(
  coordinator: Coordinator,
  options: { signal?: AbortSignal; prepare?: (sessionId: string) => Promise<void> | void } = {},
): Promise<DiscoveryReport> {
  const ids = coordinator.store.queries.unsettledSessions(DISCOVERY_SESSIONS_MAX);
  const report: DiscoveryReport = { found: ids.length, owned: [], skipped: [], failed: [] };
  for (let i = 0; i < ids.length && !options.signal?.aborted; i += DISCOVERY_BATCH_SESSIONS) {
    for (const sessionId of ids.slice(i, i + DISCOVERY_BATCH_SESSIONS)) {
      try {
        await options.prepare?.(sessionId);
        if (coordinator.own(sessionId)) report.owned.push(sessionId);
        else report.skipped.push(sessionId);
      } catch (error) {
        report.failed.push({ sessionId, error });
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return report;
}
