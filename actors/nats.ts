import { OUTBOX_DRAIN_TIMEOUT_MS } from '../core/limits.js';
import type { Store } from '../store/index.js';
import { createNatsTransport, createOwnerMirror, type NatsTransport, type NatsTransportOptions, type OwnerMirror } from '../transport/nats/index.js';
import { OutboxPublisher } from './outbox.js';

/** The NATS server a process uses: `LOOM_NATS_URL` (the CLI's `--nats URL` sets it), or none (in-process). */
export function natsUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = env.LOOM_NATS_URL?.trim();
  return url ? url : undefined;
}

/** What a process runs when NATS is configured. */
export interface NatsServices {
  /** Give it to the Coordinator (`new Coordinator({ store, deps, transport: nats.transport })`). */
  transport: NatsTransport;
  /** Publishes this database's events into LOOM_EVENTS (one publisher per database holds the lease). */
  outbox: OutboxPublisher;
  /**
   * The KV mirror of session owners, for visibility. Call `owners.put(sessionId, lease)` after
   * every acquire and renew and `owners.delete(sessionId, lease)` after release — best effort:
   * `void nats.owners.put(id, lease).catch(() => {})`. SQLite stays the fencing truth.
   */
  owners: OwnerMirror;
  /**
   * Stops the outbox — publishing what is committed first, at most `drainMs` — then closes the
   * connection. Call it after the coordinator's shutdown and before `store.close()`.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

export interface StartNatsOptions extends Omit<NatsTransportOptions, 'url' | 'connection'> {
  store: Store;
  url: string;
  /** Run the outbox publisher in this process (default true; a pure reader such as `loom tail` does not). */
  outbox?: boolean;
  /** Operating failures of the background parts (NATS down, a refused publish); they retry by themselves. */
  onError?: (error: unknown) => void;
}

/**
 * Starts NATS for a process: the transport (connecting in the background — nothing here waits
 * for the server), the outbox publisher on the store, and the owner mirror. The factory a
 * coordinator-running process (`loom run`, `loom worker`, `loom serve`) calls when
 * `natsUrlFromEnv()` names a server:
 *
 *     const nats = url ? startNats({ store, url, name: `loom worker ${process.pid}` }) : undefined;
 *     const coordinator = new Coordinator({ store, deps, transport: nats?.transport });
 *     …
 *     coordinator.shutdown(); await nats?.close(); store.close();
 */
export function startNats(options: StartNatsOptions): NatsServices {
  const { store, url, onError, outbox: runOutbox = true, ...transportOptions } = options;
  const transport = createNatsTransport({ url, ...transportOptions });
  const outbox = new OutboxPublisher({ store, sink: transport, onError });
  if (runOutbox) outbox.start();
  const owners = createOwnerMirror({ connection: transport });
  let closing: Promise<void> | undefined;
  return {
    transport,
    outbox,
    owners,
    close(closeOptions = {}) {
      closing ??= (async () => {
        try {
          await outbox.stop({ drainMs: closeOptions.drainMs ?? OUTBOX_DRAIN_TIMEOUT_MS });
        } finally {
          await transport.close();
        }
      })();
      return closing;
    },
  };
}
