import { MCP_STARTUP_WAIT_MS, WORKER_CAPACITY_DEFAULT, WORKER_CAPACITY_MAX } from '../../core/limits.js';
import { Worker, type WorkerEvent } from '../../actors/worker.js';
import { EXIT, UsageError } from '../exit.js';
import { openRuntime } from '../runtime.js';

export interface WorkerCommandOptions {
  capacity?: string;
  leaseTtl?: string;
  json?: boolean;
}

/** Shortest `--lease-ttl`: renewals every third of it must fit between SQLite's busy waits. */
const LEASE_TTL_MIN_MS = 1_000;
/** Longest `--lease-ttl`: a killed worker's sessions on another host wait this long. */
const LEASE_TTL_MAX_MS = 10 * 60_000;

/**
 * `loom worker`: runs sessions for everyone until SIGTERM or SIGINT (DESIGN §6). Several workers
 * may share one $LOOM_HOME; each session is run by one of them at a time. Asks for permission wait
 * durably for `loom permit` (a worker asks no one). One line per session taken, settled, held,
 * released or lost; NDJSON with --json. A signal drains: sessions stop at safe points and their
 * leases are released (a second signal exits at once).
 */
export async function workerCommand(opts: WorkerCommandOptions): Promise<number> {
  const capacity = intOption('--capacity', opts.capacity, WORKER_CAPACITY_DEFAULT, 1, WORKER_CAPACITY_MAX);
  const leaseTtlMs = opts.leaseTtl === undefined ? undefined : intOption('--lease-ttl', opts.leaseTtl, 0, LEASE_TTL_MIN_MS, LEASE_TTL_MAX_MS);
  let worker: Worker | undefined;
  const rt = await openRuntime({ durableAsks: true, mcp: 'eager', leaseTtlMs, onSessionFailure: (id, error) => worker?.lost(id, error) });
  const log = opts.json ? jsonLine(() => rt.store.clock.now()) : humanLine;
  worker = new Worker({
    coordinator: rt.coordinator,
    capacity,
    log,
    prepare: async (sessionId) => {
      const session = rt.store.queries.session(sessionId);
      if (session) await rt.configFor(session.location);
    },
  });
  const w = worker;
  let signals = 0;
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const stopped = new Promise<number>((resolve) => {
    onSignal = (signal) => {
      if (++signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143); // leases lapse or are taken over
      void w.drain().then(() => resolve(EXIT.ok));
    };
  });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await rt.mcp.ready(MCP_STARTUP_WAIT_MS); // restored sessions find the MCP servers' tools (a slow server joins later)
    await w.start();
    return await stopped;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    rt.close();
  }
}

function intOption(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} ${value}: expected a whole number from ${min} to ${max}`);
  return n;
}

function jsonLine(now: () => number): (e: WorkerEvent) => void {
  return (e) => process.stdout.write(`${JSON.stringify({ at: new Date(now()).toISOString(), ...e })}\n`);
}

function humanLine(e: WorkerEvent): void {
  process.stdout.write(`${describe(e)}\n`);
}

function describe(e: WorkerEvent): string {
  switch (e.event) {
    case 'started':
      return `worker ${e.workerId} started (capacity ${e.capacity})`;
    case 'taken':
      return `took ${e.sessionId} (epoch ${e.epoch}, ${e.how}${e.from ? ` from ${e.from}` : ''})`;
    case 'settled':
      return `settled ${e.sessionId} ${e.activityId} ${e.status}`;
    case 'holding':
      return e.for === 'recovery'
        ? `holding ${e.sessionId}: waiting for a recovery decision (loom recover ${e.sessionId} --retry|--abandon)`
        : e.for === 'permission'
          ? `holding ${e.sessionId}: waiting for a permission reply (loom permit ${e.sessionId})`
          : e.for === 'jobs'
            ? `holding ${e.sessionId}: waiting for its background jobs (loom jobs ${e.sessionId})`
            : `holding ${e.sessionId}: parked after a cancel until new input arrives`;
    case 'released':
      return `released ${e.sessionId}`;
    case 'lost':
      return `lost ${e.sessionId}: ${e.error}`;
    case 'failed':
      return `failed ${e.sessionId}: ${e.error}`;
    case 'draining':
      return `draining ${e.sessions} session(s)`;
    case 'stopped':
      return `stopped (released ${e.released})`;
  }
}
