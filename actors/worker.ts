/**
 * `loom worker`: a long-lived process that runs sessions for everyone (DESIGN §6). Several workers
 * share one database; a session is run by whichever worker wins its lease (the compare-and-swap in
 * store/owners.ts), so sessions spread across workers and never have two owners. The epoch the
 * lease carries fences every owner event, so a worker that lost a lease it still believes it holds
 * (stopped, paused, partitioned) gets none of its appends accepted.
 */
import { hostname } from 'node:os';
import { DRAIN_TIMEOUT_MS, WORKER_CLAIM_BATCH_MAX, WORKER_LOCAL_OWNERS_MAX, WORKER_QUIET_MEMO_MAX, WORKER_SCAN_INTERVAL_MS } from '../core/limits.js';
import { ownerProcessGone } from '../core/liveness.js';
import { stateName } from '../machines/stateName.js';
import { Claims, type ClaimCandidate } from '../store/claims.js';
import type { Coordinator } from './coordinator.js';
import { discoverUnsettled } from './discovery.js';
import type { SessionActor } from './session.js';

/** What a worker reports, one line each (NDJSON with `loom worker --json`). */
export type WorkerEvent =
  | { event: 'started'; workerId: string; pid: number; capacity: number }
  /**
   * Took the lease: `how` is `free` (nobody held it; `discovery` when found unsettled at startup),
   * `expired` (its holder let it lapse: stopped, paused, on another host) or `dead-owner` (its
   * holder was a process on this host that is gone: taken at once, before expiry).
   */
  | { event: 'taken'; sessionId: string; epoch: number; how: 'discovery' | 'free' | 'expired' | 'dead-owner'; from?: string }
  | { event: 'settled'; sessionId: string; activityId: string; status: string }
  /** Quiet but kept: waiting for a recovery decision, a permission reply, its background jobs, or (parked after a cancel) new input. */
  | { event: 'holding'; sessionId: string; for: 'recovery' | 'permission' | 'jobs' | 'input' }
  | { event: 'released'; sessionId: string; epoch: number }
  /** Stopped on an operating failure: a lost lease, a stale epoch, a broken store. */
  | { event: 'lost'; sessionId: string; error: string }
  /** Could not be restored (it is skipped until something new is appended to it). */
  | { event: 'failed'; sessionId: string; error: string }
  | { event: 'draining'; sessions: number }
  | { event: 'stopped'; released: number };

export interface WorkerOptions {
  coordinator: Coordinator;
  /** Sessions run at once (held quiet sessions do not count). */
  capacity: number;
  /** Runs before a session is owned (loads the config of its directory). */
  prepare: (sessionId: string) => Promise<void>;
  log: (event: WorkerEvent) => void;
  scanIntervalMs?: number;
}

/**
 * Claims sessions that want work (an unsettled activity, or pending input) and have no live owner,
 * runs each until quiet, and releases it when it is idle with nothing pending. Quiet sessions that
 * still want something (a recovery decision, a permission reply, their background jobs, new input
 * after a cancel) stay owned, so the reply, result or input reaches their actor.
 *
 * Claims happen in passes, one at a time: at start (after startup discovery), whenever another
 * process commits (the store's change detector, polling `data_version`), when a signal arrives on
 * the transport, when a run ends (capacity freed), and every `scanIntervalMs` (a lease expiring
 * changes nothing in the database). A pass reads at most WORKER_CLAIM_BATCH_MAX candidates.
 */
export class Worker {
  private readonly claims: Claims;
  /** Sessions being run until quiet (counted against capacity). */
  private readonly running = new Map<string, Promise<void>>();
  /** Owned and quiet, kept for a decision or input (see the class comment). */
  private readonly holding = new Set<string>();
  /** Sessions that failed to restore, with the last seq seen then (skipped until it moves). */
  private readonly failedAt = new Map<string, number>();
  private readonly detach: (() => void)[] = [];
  /** Unowned sessions named by wakes since the last pass (at most WORKER_CLAIM_BATCH_MAX; the scan finds the rest). */
  private readonly woken = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | null = null;
  private again = false;
  private state: 'new' | 'running' | 'draining' | 'stopped' = 'new';
  private draining: Promise<void> | null = null;
  private readonly stopping = new AbortController();
  private discovery: ReturnType<typeof discoverUnsettled> | undefined;
  private readonly hostPrefix = `${hostname()}:`;

  constructor(private readonly options: WorkerOptions) {
    this.claims = new Claims(options.coordinator.store.db);
  }

  private get coordinator(): Coordinator {
    return this.options.coordinator;
  }

  /** Sessions this worker owns now (running or held). */
  owned(): string[] {
    return [...this.running.keys(), ...this.holding];
  }

  /** Starts discovery and the claim passes; resolves once discovery is done. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('a worker starts once');
    this.state = 'running';
    const { store, transport } = this.coordinator;
    this.options.log({ event: 'started', workerId: this.coordinator.ownerId, pid: process.pid, capacity: this.options.capacity });
    this.detach.push(
      store.onAppended((events) => {
        let heldMoved = false;
        for (const e of events) {
          // Only the owner writes `activity.settled`: every one this store commits is ours.
          if (e.type === 'activity.settled') this.options.log({ event: 'settled', sessionId: e.sessionId!, activityId: e.data.activityId, status: e.data.status });
          if (e.sessionId !== null && this.holding.has(e.sessionId)) heldMoved = true;
        }
        // A held session wrote something here (a background job settled): run it again if busy.
        if (heldMoved) this.kick();
      }),
      store.changes.subscribeExternal(() => this.kick()),
      // A wake for a session nobody here owns (an admission elsewhere, over NATS): look now.
      transport.onSignal((signal) => {
        if (signal.kind !== 'wake' || this.coordinator.get(signal.sessionId)) return;
        if (this.woken.size < WORKER_CLAIM_BATCH_MAX) this.woken.add(signal.sessionId);
        this.kick();
      }),
    );
    // The worker lives until drained: this timer keeps the process running.
    this.timer = setInterval(() => this.kick(), this.options.scanIntervalMs ?? WORKER_SCAN_INTERVAL_MS);
    // The lease each session had just before discovery owned it, to say how it was taken.
    const before = new Map<string, ReturnType<typeof store.owners.get>>();
    const prepare = async (sessionId: string) => {
      await this.options.prepare(sessionId);
      before.set(sessionId, store.owners.get(sessionId, store.clock.now()));
    };
    this.discovery = discoverUnsettled(this.coordinator, { prepare, max: this.options.capacity, signal: this.stopping.signal });
    const report = await this.discovery;
    for (const id of report.owned) {
      const actor = this.coordinator.get(id);
      if (!actor) continue;
      if (this.state !== 'running') {
        this.holding.add(id); // owned by the slice that ran as the drain began: drained with the rest
        continue;
      }
      this.options.log(takenEvent(id, actor, before.get(id) ?? null, 'discovery'));
      this.supervise(id);
    }
    for (const f of report.failed) this.restoreFailed(f.sessionId, f.error);
    this.kick();
  }

  /** Starts a claim pass, or asks the running one to go again. Never throws. */
  kick(): void {
    if (this.state !== 'running') return;
    if (this.pass) {
      this.again = true;
      return;
    }
    this.pass = (async () => {
      do {
        this.again = false;
        await this.claimPass();
      } while (this.again && this.state === 'running');
    })()
      .catch((error) => this.options.log({ event: 'failed', sessionId: '-', error: `claim pass: ${message(error)}` }))
      .finally(() => {
        this.pass = null;
      });
  }

  private async claimPass(): Promise<void> {
    this.refreshHeld();
    if (this.options.capacity - this.running.size <= 0) return;
    const now = this.coordinator.store.clock.now();
    // Sessions a wake named come first (an admission elsewhere, over NATS), then the oldest others.
    const woken = [...this.woken].flatMap((id) => this.claims.one(id, now) ?? []);
    this.woken.clear();
    const candidates = [...woken, ...this.claims.unowned(now, WORKER_CLAIM_BATCH_MAX), ...this.deadLocalCandidates(now)];
    for (const c of candidates) {
      if (this.state !== 'running' || this.running.size >= this.options.capacity) return;
      if (this.coordinator.get(c.sessionId) || this.failedAt.get(c.sessionId) === c.lastSeq) continue;
      await this.claim(c);
    }
  }

  /**
   * Sessions wanting work whose lease looks live but whose holder is a process on this host that no
   * longer exists (killed): `Coordinator.own` takes those over at once rather than at expiry.
   */
  private deadLocalCandidates(now: number): ClaimCandidate[] {
    const out: ClaimCandidate[] = [];
    for (const ownerId of this.claims.liveOwners(this.hostPrefix, now, WORKER_LOCAL_OWNERS_MAX)) {
      if (ownerId !== this.coordinator.ownerId && ownerProcessGone(ownerId)) out.push(...this.claims.ownedBy(ownerId, WORKER_CLAIM_BATCH_MAX));
    }
    return out;
  }

  /** Tries to own one candidate; another worker may win the lease first (then nothing happens). */
  private async claim(c: ClaimCandidate): Promise<void> {
    const { store } = this.coordinator;
    try {
      await this.options.prepare(c.sessionId);
      if (this.state !== 'running' || this.coordinator.get(c.sessionId)) return;
      const before = store.owners.get(c.sessionId, store.clock.now());
      const actor = this.coordinator.own(c.sessionId);
      if (!actor) return; // another worker won the race
      this.options.log(takenEvent(c.sessionId, actor, before, 'free'));
      this.failedAt.delete(c.sessionId);
      this.supervise(c.sessionId);
    } catch (error) {
      this.restoreFailed(c.sessionId, error);
    }
  }

  private restoreFailed(sessionId: string, error: unknown): void {
    const lastSeq = this.coordinator.store.queries.session(sessionId)?.lastSeq ?? 0;
    this.failedAt.delete(sessionId);
    this.failedAt.set(sessionId, lastSeq);
    if (this.failedAt.size > WORKER_QUIET_MEMO_MAX) this.failedAt.delete(this.failedAt.keys().next().value!);
    this.options.log({ event: 'failed', sessionId, error: message(error) });
  }

  /** Runs an owned session until quiet, then releases or holds it. */
  private supervise(sessionId: string): void {
    if (this.running.has(sessionId)) return;
    this.holding.delete(sessionId);
    const run = this.coordinator
      .runUntilQuiet(sessionId)
      .catch(() => undefined) // a failure is reported through onSessionFailure (see lost)
      .then(() => {
        this.running.delete(sessionId);
        if (this.state === 'running') {
          this.settle(sessionId);
          this.kick(); // capacity freed
        }
      });
    this.running.set(sessionId, run);
  }

  /**
   * A session went quiet: release it when it is idle with nothing pending, hold it when it waits for
   * something. The check and the release are one transaction, so an input admitted meanwhile is
   * either seen here (the session runs on) or committed after the release (and claimed again).
   */
  private settle(sessionId: string): void {
    const { store } = this.coordinator;
    const actor = this.coordinator.get(sessionId);
    if (!actor) return; // stopped on a failure (reported as lost)
    let outcome: 'busy' | 'released' | WorkerEvent & { event: 'holding' } = 'busy';
    let epoch = actor.lease.epoch;
    try {
      outcome = store.transaction(() => {
        actor.catchUp();
        if (!actor.isQuiet()) return 'busy' as const;
        const waitingFor = holdReason(actor);
        if (waitingFor) return { event: 'holding' as const, sessionId, for: waitingFor };
        epoch = actor.lease.epoch;
        this.coordinator.release(sessionId);
        return 'released' as const;
      });
    } catch (error) {
      this.options.log({ event: 'lost', sessionId, error: message(error) });
      this.coordinator.release(sessionId);
      return;
    }
    if (outcome === 'busy') this.supervise(sessionId);
    else if (outcome === 'released') this.options.log({ event: 'released', sessionId, epoch });
    else {
      this.holding.add(sessionId);
      this.options.log(outcome);
    }
  }

  /** Held sessions that moved (a reply, a decision, new input arrived): run them again. */
  private refreshHeld(): void {
    for (const id of [...this.holding]) {
      const actor = this.coordinator.get(id);
      if (!actor) {
        this.holding.delete(id);
        continue;
      }
      try {
        actor.catchUp();
      } catch {
        // the failure is reported through onSessionFailure
      }
      if (!this.coordinator.get(id)) this.holding.delete(id);
      else if (!actor.isQuiet()) this.supervise(id);
    }
  }

  /** A session stopped on an operating failure (told by the coordinator). */
  lost(sessionId: string, error: unknown): void {
    this.holding.delete(sessionId);
    // A failed step is reported by the actor and again by whoever called the step: once is enough.
    if (typeof error === 'object' && error !== null) {
      if (this.reported.has(error)) return;
      this.reported.add(error);
    }
    this.options.log({ event: 'lost', sessionId, error: message(error) });
  }

  private readonly reported = new WeakSet<object>();

  /**
   * Stops taking sessions, lets each owned session reach a safe point (`SessionActor.drain`: streams
   * and tools in flight finish, nothing new is dispatched), then releases every lease. Bounded by
   * `timeoutMs`; sessions not drained by then are stopped unsettled and recovered by their next owner.
   */
  drain(timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    this.draining ??= this.drainNow(timeoutMs);
    return this.draining;
  }

  private async drainNow(timeoutMs: number): Promise<void> {
    this.state = 'draining';
    this.stopping.abort(); // startup discovery stops between slices
    if (this.timer) clearInterval(this.timer);
    const ids = this.owned();
    this.options.log({ event: 'draining', sessions: ids.length });
    await Promise.all([this.pass, this.discovery?.catch(() => undefined)]);
    const owned = this.owned();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.all(owned.map((id) => this.coordinator.get(id)?.drain())), timeout]);
    clearTimeout(timer);
    let released = 0;
    for (const id of owned) {
      const actor = this.coordinator.get(id);
      if (!actor) continue;
      const epoch = actor.lease.epoch;
      this.coordinator.release(id);
      released++;
      this.options.log({ event: 'released', sessionId: id, epoch });
    }
    this.running.clear();
    this.holding.clear();
    for (const d of this.detach.splice(0)) d();
    this.state = 'stopped';
    this.options.log({ event: 'stopped', released });
  }
}

/** How a lease was taken, from the row just before: free (or `discovery` at startup), expired, or a dead holder's. */
function takenEvent(sessionId: string, actor: SessionActor, before: { held: boolean; live: boolean; ownerId: string } | null, free: 'free' | 'discovery'): WorkerEvent {
  const how = !before?.held ? free : before.live ? 'dead-owner' : 'expired';
  return { event: 'taken', sessionId, epoch: actor.lease.epoch, how, ...(before?.held ? { from: before.ownerId } : {}) };
}

/** Why a quiet session is kept rather than released; undefined when it is idle with nothing pending. */
function holdReason(actor: SessionActor): 'recovery' | 'permission' | 'jobs' | 'input' | undefined {
  const snap = actor.snapshot();
  if (snap.value === 'recovering') return 'recovery';
  if (actor.waitingForPermission()) return 'permission';
  // A background job's completion comes back as the session's input: stay its owner meanwhile.
  if (actor.unsettledJobs().length > 0) return 'jobs';
  if (stateName(snap.value) === 'idle' && snap.context.parked && (snap.context.steers.length > 0 || snap.context.queued.length > 0)) return 'input';
  return undefined;
}

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
