import { hostname } from 'node:os';
import { APPEND_BATCH_EVENTS_MAX, OWNER_LEASE_TTL_MS, READ_PAGE_EVENTS_MAX } from '../core/limits.js';
import { SessionNotFoundError, StoreError } from './errors.js';
import type { AnyEnvelope, AppendRequest, Store } from './store.js';

/**
 * Forking a session (time travel for debugging and retrying from a point): a new session whose log
 * is the source's log up to a seq, with every globally keyed id replaced by a fresh one.
 *
 * The copy goes through the normal `store.append`, so every event is validated and projected as if
 * it had happened in the fork; the projections (inbox, messages, parts, tool calls, activities)
 * of the fork therefore equal the source's as of `atSeq`, up to ids and timestamps (`at` is the
 * time of the copy).
 *
 * A fork never pretends to be live. When `atSeq` falls inside an activity that had not settled by
 * then, the fork closes it the way an explicit stop would: unsettled tool calls settle
 * `interrupted`, an attempt that was in flight fails (its partial parts are discarded, so they are
 * never sent back to the model), inputs assigned but not yet consumed are released to pending,
 * and the activity settles `abandoned` with the reason `forked at seq N`. The fork is then idle.
 * Inputs that were pending at `atSeq` (or released by this closing) stay pending in the fork and
 * run with its next activity; forking itself runs nothing.
 */
export interface ForkResult {
  /** The new session. */
  sessionId: string;
  sourceId: string;
  atSeq: number;
  /** Events copied from the source (seq 2..atSeq). */
  copied: number;
  /** The fork's last seq (copied events, plus the closing events, after its own session.created). */
  lastSeq: number;
  /** The activity that was unsettled at `atSeq` and was settled `abandoned` in the fork, if any. */
  abandonedActivityId: string | null;
}

export interface ForkOptions {
  /**
   * Events to append to the fork at the end of its copy, in the same transaction, under its lease
   * (`loom session fork --restore-files` records its `checkpoint.restored` here).
   */
  append?: (sessionId: string, epoch: number) => AppendRequest[];
}

/** `atSeq` is not a seq of the source's log. */
export class InvalidForkPointError extends StoreError {
  override name = 'InvalidForkPointError';
  constructor(readonly sessionId: string, readonly atSeq: number, readonly lastSeq: number) {
    super(`cannot fork session ${sessionId} at seq ${atSeq}: its log has seq 1..${lastSeq}`);
  }
}

/** The data keys that name an id the projections key globally, and the prefix a fresh one gets. */
const ID_KEYS: Record<string, string> = {
  inputId: 'in',
  activityId: 'act',
  attemptId: 'att',
  partId: 'prt',
  callId: 'call',
  turnId: 'turn',
  requestId: 'perm',
  runId: 'run',
  jobId: 'job',
  compactionId: 'cmp',
};
/** Arrays of such ids. */
const ID_ARRAY_KEYS: Record<string, string> = {
  inputIds: 'in',
  discardedParts: 'prt',
};
/** Opaque fields, kept byte for byte (DESIGN §4: sent back to the provider unchanged). */
const OPAQUE_KEYS = new Set(['providerMetadata']);

/**
 * Rewrites ids consistently: the first time an id is seen it gets a fresh one from `store.ids`,
 * and every later occurrence (in any event, under any of the keys) gets the same one.
 */
export class IdMap {
  private readonly map = new Map<string, string>();
  constructor(private readonly store: Store) {}

  id(old: string, prefix: string): string {
    let fresh = this.map.get(old);
    if (fresh === undefined) this.map.set(old, (fresh = this.store.ids.next(prefix)));
    return fresh;
  }

  /** A copy of `value` with every id under ID_KEYS / ID_ARRAY_KEYS rewritten (opaque fields untouched). */
  rewrite(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.rewrite(v));
    if (value === null || typeof value !== 'object') return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (OPAQUE_KEYS.has(k)) out[k] = v;
      else if (typeof v === 'string' && k in ID_KEYS) out[k] = this.id(v, ID_KEYS[k]!);
      else if (Array.isArray(v) && k in ID_ARRAY_KEYS) out[k] = v.map((x) => (typeof x === 'string' ? this.id(x, ID_ARRAY_KEYS[k]!) : x));
      else out[k] = this.rewrite(v);
    }
    return out;
  }
}

/** The words a copy's closing events carry (fork and import say where the copy ended). */
export interface ClosingReasons {
  /** `activity.settled` abandoned and `input.released`. */
  activity: string;
  /** The output of a tool call settled `interrupted`. */
  toolCall: string;
  /** The `attempt.failed` error of an attempt that was in flight. */
  attemptKind: string;
  attempt: string;
  /** The reason of a job recorded `lost`. */
  job: string;
}

/**
 * What was open in the fork's log as it was copied (fork ids), to close it at the end: the open
 * activity, its in-flight attempt and the attempt's parts, unsettled tool calls, and inputs
 * assigned but not consumed (with their mode).
 */
export class OpenWork {
  activity: { id: string; turns: number } | null = null;
  attempt: { id: string; activityId: string; parts: Set<string> } | null = null;
  readonly calls = new Set<string>();
  readonly assigned = new Map<string, string>(); // inputId -> activityId
  readonly modes = new Map<string, 'steer' | 'queue'>();
  /** Background jobs started and not settled: their processes belong to the source session. */
  readonly jobs = new Set<string>();
  /** A compaction started and not finished (the copy records it failed: its summary was never written). */
  compaction: string | null = null;

  track(e: AnyEnvelope): void {
    switch (e.type) {
      case 'input.admitted':
        this.modes.set(e.data.inputId, e.data.mode);
        return;
      case 'input.assigned':
        this.assigned.set(e.data.inputId, e.data.activityId);
        return;
      case 'input.consumed':
      case 'input.released':
        this.assigned.delete(e.data.inputId);
        return;
      case 'activity.opened':
        this.activity = { id: e.data.activityId, turns: 0 };
        return;
      case 'turn.started':
        if (this.activity?.id === e.data.activityId) this.activity.turns++;
        return;
      case 'attempt.dispatched':
        this.attempt = { id: e.data.attemptId, activityId: e.data.activityId, parts: new Set() };
        return;
      case 'text.delta':
      case 'reasoning.delta':
      case 'text.done':
      case 'reasoning.done':
        if (this.attempt?.id === e.data.attemptId) this.attempt.parts.add(e.data.partId);
        return;
      case 'turn.finished':
      case 'attempt.failed':
        if (this.attempt?.id === e.data.attemptId) this.attempt = null;
        return;
      case 'tool.called':
        this.calls.add(e.data.callId);
        return;
      case 'tool.settled':
        this.calls.delete(e.data.callId);
        return;
      case 'job.started':
        this.jobs.add(e.data.jobId);
        return;
      case 'job.settled':
        this.jobs.delete(e.data.jobId);
        return;
      case 'compaction.started':
        this.compaction = e.data.compactionId;
        return;
      case 'compaction.finished':
      case 'compaction.failed':
        if (this.compaction === e.data.compactionId) this.compaction = null;
        return;
      case 'activity.settled':
        if (this.activity?.id === e.data.activityId) this.activity = null;
        if (this.attempt?.activityId === e.data.activityId) this.attempt = null;
        return;
      default:
        return;
    }
  }

  /**
   * The events that close the open activity (the same shape the runtime records for a stop), and
   * jobs left running: their processes belong to the source, so the copy records them `lost` and no
   * owner of the copy ever watches or stops them.
   */
  closing(sessionId: string, epoch: number, why: ClosingReasons): AppendRequest[] {
    const out: AppendRequest[] = [...this.jobs].map(
      (jobId) =>
        ({
          sessionId,
          epoch,
          type: 'job.settled',
          data: { jobId, status: 'lost', outputTail: '', outputBytes: 0, reason: why.job },
        }) as AppendRequest,
    );
    if (this.compaction !== null) {
      out.push({ sessionId, epoch, type: 'compaction.failed', data: { compactionId: this.compaction, kind: 'forked', reason: `${why.activity}: the summary was not finished` } });
    }
    const a = this.activity;
    if (!a) return out;
    const reason = why.activity;
    for (const callId of this.calls) {
      out.push({ sessionId, epoch, type: 'tool.settled', data: { callId, status: 'interrupted', output: why.toolCall } });
    }
    const at = this.attempt;
    if (at && at.activityId === a.id) {
      out.push({
        sessionId,
        epoch,
        type: 'attempt.failed',
        data: {
          activityId: a.id,
          attemptId: at.id,
          error: { kind: why.attemptKind, message: why.attempt },
          retryable: false,
          receivedChunks: at.parts.size > 0,
          discardedParts: [...at.parts],
        },
      });
    }
    for (const [inputId, activityId] of this.assigned) {
      if (activityId !== a.id) continue;
      out.push({ sessionId, epoch, type: 'input.released', data: { inputId, activityId, reason, mode: this.modes.get(inputId) ?? 'steer' } });
    }
    out.push({ sessionId, epoch, type: 'activity.settled', data: { activityId: a.id, status: 'abandoned', reason, turns: a.turns } });
    return out;
  }
}

/**
 * Makes a new session whose history is `sourceId`'s up to `atSeq` (see the module comment), in one
 * transaction: `session.created` (same location, model and double-texting policy, `parentId` the
 * source, title `fork of SOURCE at SEQ`), then the source's events 2..atSeq with fresh ids, then
 * the closing events of an activity left open at `atSeq`. Owner events are appended under the
 * fork's own lease, taken for the copy and released at the end (the fork is left unowned).
 *
 * Throws SessionNotFoundError for an unknown source and InvalidForkPointError when `atSeq` is not
 * an integer in 1..the source's last seq; nothing is written then.
 */
export function forkSession(store: Store, sourceId: string, atSeq: number, options: ForkOptions = {}): ForkResult {
  // Deltas this process still buffers for the source belong before the fork point.
  store.flushSession(sourceId);
  return store.transaction(() => {
    const source = store.queries.session(sourceId);
    if (!source) throw new SessionNotFoundError(sourceId);
    if (!Number.isInteger(atSeq) || atSeq < 1 || atSeq > source.lastSeq) throw new InvalidForkPointError(sourceId, atSeq, source.lastSeq);
    const first = store.read(sourceId, { after: 0, limit: 1 })[0];
    if (!first || first.type !== 'session.created') throw new SessionNotFoundError(sourceId);

    const sessionId = store.ids.next('ses');
    const created = first.data;
    store.append({
      sessionId,
      type: 'session.created',
      data: {
        location: created.location,
        model: created.model,
        title: `fork of ${sourceId} at ${atSeq}`,
        parentId: sourceId,
        ...(created.doubleTexting ? { doubleTexting: created.doubleTexting } : {}),
        ...(created.agent ? { agent: created.agent } : {}),
      },
    });
    const lease = store.owners.acquire(sessionId, `${hostname()}:${process.pid}:fork`, OWNER_LEASE_TTL_MS, store.clock.now());
    if (!lease) throw new Error(`fork: could not take the lease of the new session ${sessionId}`);
    const epoch = lease.epoch;

    const ids = new IdMap(store);
    const open = new OpenWork();
    let copied = 0;
    let batch: AppendRequest[] = [];
    const flush = () => {
      if (batch.length === 0) return;
      for (const e of store.append(batch)) open.track(e);
      batch = [];
    };
    for (let after = 1; after < atSeq; ) {
      const page = store.read(sourceId, { after, limit: Math.min(READ_PAGE_EVENTS_MAX, atSeq - after) });
      if (page.length === 0) break;
      for (const e of page) {
        batch.push({ sessionId, type: e.type, data: ids.rewrite(e.data), epoch } as AppendRequest);
        copied++;
        if (batch.length >= APPEND_BATCH_EVENTS_MAX) flush();
      }
      after = page[page.length - 1]!.seq;
    }
    flush();
    const closing = open.closing(sessionId, epoch, {
      activity: `forked at seq ${atSeq}`,
      toolCall: 'The tool call was interrupted before it finished: the session was forked at this point.',
      attemptKind: 'forked',
      attempt: `the session was forked at seq ${atSeq} while this attempt was in flight`,
      job: `forked at seq ${atSeq}; the job belongs to session ${sourceId}`,
    });
    const abandonedActivityId = open.activity?.id ?? null;
    if (closing.length > 0) store.append(closing);
    const extra = options.append?.(sessionId, epoch) ?? [];
    if (extra.length > 0) store.append(extra);
    store.owners.release(lease);
    return { sessionId, sourceId, atSeq, copied, lastSeq: 1 + copied + closing.length + extra.length, abandonedActivityId };
  });
}
