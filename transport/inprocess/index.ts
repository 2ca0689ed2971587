import { TRANSPORT_SUBSCRIBERS_MAX } from '../../core/limits.js';
import type { AnyEnvelope } from '../../store/schemas.js';
import { matchesFilter, type EventFilter, type SessionSignal, type Transport } from '../types.js';

/**
 * The embedded default: signals and events stay inside this process, delivered synchronously to
 * subscribers. Other processes sharing the SQLite file still see everything, by polling
 * `data_version` (store/changes.ts). A subscriber that throws is isolated from the others.
 */
export function createInProcessTransport(): Transport {
  const subscribers = new Set<{ filter: EventFilter; handler: (e: AnyEnvelope) => void }>();
  const signalHandlers = new Set<(s: SessionSignal) => void>();
  const guard = (fn: () => void) => {
    try {
      fn();
    } catch {
      // one subscriber's failure is not the publisher's
    }
  };
  const signal = async (s: SessionSignal) => {
    for (const h of [...signalHandlers]) guard(() => h(s));
  };
  const bounded = <T>(set: Set<T>, item: T) => {
    if (set.size >= TRANSPORT_SUBSCRIBERS_MAX) throw new Error(`too many transport subscribers (limit TRANSPORT_SUBSCRIBERS_MAX = ${TRANSPORT_SUBSCRIBERS_MAX})`);
    set.add(item);
    return () => void set.delete(item);
  };
  return {
    wake: (sessionId) => signal({ kind: 'wake', sessionId }),
    cancel: (sessionId) => signal({ kind: 'cancel', sessionId }),
    async publish(event) {
      for (const s of [...subscribers]) if (matchesFilter(s.filter, event)) guard(() => s.handler(event));
    },
    subscribe: (filter, handler) => bounded(subscribers, { filter, handler }),
    onSignal: (handler) => bounded(signalHandlers, handler),
    async close() {
      subscribers.clear();
      signalHandlers.clear();
    },
  };
}
