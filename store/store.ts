import type { Statement } from 'better-sqlite3';
import { systemClock, type Clock } from '../core/clock.js';
import { failpoint, failpointsArmed } from '../core/failpoints.js';
import { randomIds, type IdGenerator } from '../core/ids.js';
import {
  APPEND_BATCH_EVENTS_MAX,
  DELTA_FLUSH_INTERVAL_MS,
  INBOX_PENDING_MAX,
  INPUT_ATTACHMENT_BYTES_MAX,
  INPUT_ATTACHMENTS_BYTES_MAX,
  INPUT_ATTACHMENTS_MAX,
  INPUT_TEXT_BYTES_MAX,
  READ_PAGE_EVENTS_DEFAULT,
  READ_PAGE_EVENTS_MAX,
  REBUILD_PAGE_EVENTS,
} from '../core/limits.js';
import { ChangeDetector } from './changes.js';
import { openDatabase, type Db } from './db.js';
import { DeltaBuffer, type Delta, type Segment } from './deltas.js';
import { InvalidEventError, LimitExceededError, SessionNotFoundError, StaleOwnerError } from './errors.js';
import { PROJECTION_TABLES } from './migrations.js';
import { Owners } from './owners.js';
import { Projector } from './projections.js';
import { Queries } from './queries.js';
import { upcast, validateForWrite, type AnyEnvelope, type Envelope, type EventData, type EventType, type InputAttachment, type RequestBudget } from './schemas.js';

/** One event to append. Owner events carry the appender's epoch; requests and system events don't. */
export type AppendRequest = {
  [T in EventType]: { sessionId: string | null; type: T; data: EventData<T>; epoch?: number };
}[EventType];

/** The session machine's persisted control state (DESIGN §5): never messages, never children. */
export interface Snapshot {
  sessionId: string;
  seq: number;
  machineVersion: string;
  value: unknown;
  context: unknown;
}

export interface AppendOptions {
  /** Commit with synchronous=FULL: made immediately before an external side effect. */
  barrier?: boolean;
  /** Snapshot written in the same transaction, tagged with the session's last appended seq. */
  snapshot?: Omit<Snapshot, 'seq'>;
}

export interface StoreOptions {
  clock?: Clock;
  ids?: IdGenerator;
  /** Called when a timed delta flush fails (for example a stale owner); the deltas are dropped. */
  onFlushError?: (error: unknown, sessionId: string) => void;
}

interface EventRow {
  gseq: number;
  session_id: string | null;
  seq: number;
  type: string;
  version: number;
  at: string;
  data: string;
}

export interface AdmitInput {
  mode: 'steer' | 'queue';
  text: string;
  clientId?: string;
  source?: string;
  /** Resolved attachments (tools/attachments.ts `materializeAttachments`), stored with the input. */
  attachments?: InputAttachment[];
  /** Budgets recorded with the input (services/budget.ts): enforced by whichever process owns the session. */
  budget?: RequestBudget;
  /** The agent profile the activity it opens runs with (the caller checks the name exists). */
  agent?: string;
}

export interface InputRow {
  inputId: string;
  sessionId: string;
  clientId: string | null;
  mode: 'steer' | 'queue';
  text: string;
  source: string | null;
  status: 'pending' | 'assigned' | 'consumed' | 'cancelled';
  activityId: string | null;
  attemptId: string | null;
  admittedSeq: number;
  attachments: InputAttachment[];
  /** The agent profile it asked for (null: the session's). */
  agent: string | null;
}

/**
 * The durable store: event log, ownership, inbox, snapshots and projections in one SQLite file.
 * One Store per process per file (one writer connection). All writes are short `BEGIN IMMEDIATE`
 * transactions; `seq` is computed inside them, so no process caches it.
 */
export class Store {
  readonly db: Db;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly owners: Owners;
  readonly changes: ChangeDetector;
  readonly queries: Queries;
  private readonly projector: Projector;
  private readonly deltas = new DeltaBuffer();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly onFlushError: NonNullable<StoreOptions['onFlushError']>;
  private readonly q: Record<string, Statement>;
  private readonly appendedListeners = new Set<(events: AnyEnvelope[]) => void>();
  /** One transaction wrapper, made once: nested calls become savepoints. */
  private readonly run;

  private constructor(db: Db, readonly path: string, options: StoreOptions) {
    this.db = db;
    this.clock = options.clock ?? systemClock;
    this.ids = options.ids ?? randomIds;
    this.owners = new Owners(db);
    this.changes = new ChangeDetector(db);
    this.projector = new Projector(db);
    this.queries = new Queries(db);
    this.onFlushError = options.onFlushError ?? (() => {});
    this.run = db.transaction((fn: () => unknown) => fn());
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      maxSeq: p(`SELECT max(seq) AS seq FROM events WHERE ifnull(session_id, '') = ?`),
      insert: p('INSERT INTO events (session_id, seq, type, version, at, data) VALUES (?, ?, ?, ?, ?, ?)'),
      read: p(`SELECT * FROM events WHERE ifnull(session_id, '') = ? AND seq > ? ORDER BY seq LIMIT ?`),
      readAll: p('SELECT * FROM events WHERE gseq > ? ORDER BY gseq LIMIT ?'),
      changedSince: p('SELECT session_id, max(gseq) AS g FROM events WHERE gseq > ? GROUP BY session_id'),
      maxGseq: p('SELECT max(gseq) AS g FROM events'),
      snapshotPut: p(`INSERT INTO snapshots (session_id, seq, machine_version, value, context) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (session_id) DO UPDATE SET seq = excluded.seq, machine_version = excluded.machine_version,
        value = excluded.value, context = excluded.context`),
      snapshotGet: p('SELECT * FROM snapshots WHERE session_id = ?'),
      inputByClient: p('SELECT * FROM session_input WHERE session_id = ? AND client_id = ?'),
      inputById: p('SELECT * FROM session_input WHERE input_id = ?'),
      inputsByStatus: p('SELECT * FROM session_input WHERE session_id = ? AND status = ? ORDER BY admitted_seq'),
      inputsOpen: p(`SELECT count(*) AS n FROM session_input WHERE session_id = ? AND status IN ('pending', 'assigned')`),
      inputsAll: p('SELECT * FROM session_input WHERE session_id = ? ORDER BY admitted_seq'),
      sessionExists: p('SELECT 1 FROM sessions WHERE session_id = ?'),
    };
  }

  /** Opens (creating and migrating when needed) the store at `path`. See `openDatabase`. */
  static open(path: string, options: StoreOptions & { onMigrated?: (applied: number) => void } = {}): Store {
    return new Store(openDatabase(path, { onMigrated: options.onMigrated }), path, options);
  }

  // ---- writing -----------------------------------------------------------------------------

  /**
   * Appends events in one transaction: validates each against its schema, fences owner events by
   * epoch, assigns `seq` per session, updates projections, and writes the optional snapshot.
   * Buffered deltas of the same sessions are written first, in the same transaction.
   * Throws (writing nothing) on invalid data, a stale epoch, or a projection that refuses.
   */
  append(requests: AppendRequest | AppendRequest[], options: AppendOptions = {}): AnyEnvelope[] {
    const list = Array.isArray(requests) ? requests : [requests];
    if (list.length > APPEND_BATCH_EVENTS_MAX) {
      throw new LimitExceededError('APPEND_BATCH_EVENTS_MAX', `append of ${list.length} events`);
    }
    const validated = list.map((r) => ({ r, ...validateForWrite(r.type, r.data) }));
    const sessions = new Set(list.map((r) => r.sessionId).filter((s): s is string => s !== null));
    if (options.snapshot) sessions.add(options.snapshot.sessionId);
    const taken = new Map<string, Segment[]>();
    for (const sid of sessions) if (this.deltas.has(sid)) taken.set(sid, this.deltas.take(sid));
    try {
      return this.commit(options.barrier === true, () => {
        const out: AnyEnvelope[] = [];
        const next = new Map<string, number>();
        for (const [sid, segments] of taken) out.push(...this.writeSegments(sid, segments, next));
        for (const v of validated) out.push(this.writeOne(v.r, v.def.kind, v.def.version, v.json, v.data, next));
        if (options.snapshot) this.writeSnapshot(options.snapshot, next);
        return out;
      });
    } catch (error) {
      for (const [sid, segments] of taken) this.deltas.restore(sid, segments);
      throw error;
    }
  }

  /** Runs `fn` in one IMMEDIATE transaction (FULL sync when `barrier`), then notifies listeners. */
  /**
   * Calls `listener` with the envelopes of every transaction this store commits (after the commit,
   * outermost only), including timed delta flushes. For publishing copies of committed events.
   */
  onAppended(listener: (events: AnyEnvelope[]) => void): () => void {
    this.appendedListeners.add(listener);
    return () => void this.appendedListeners.delete(listener);
  }

  private pending: AnyEnvelope[] = [];

  private commit<T>(barrier: boolean, fn: () => T): T {
    // `synchronous` cannot change inside a transaction: a barrier must be the outermost commit.
    if (barrier && this.db.inTransaction) throw new Error('a barrier commit cannot nest inside another transaction');
    if (barrier) this.db.pragma('synchronous = FULL');
    try {
      const outermost = !this.db.inTransaction;
      let result: T;
      try {
        result = this.run.immediate(fn) as T;
      } catch (error) {
        if (outermost) this.pending = [];
        throw error;
      }
      if (outermost) {
        const committed = this.pending;
        this.pending = [];
        this.changes.notify();
        if (failpointsArmed) for (const e of committed) failpoint('after', e.type);
        if (committed.length > 0) for (const l of [...this.appendedListeners]) l(committed);
      }
      return result;
    } finally {
      if (barrier) this.db.pragma('synchronous = NORMAL');
    }
  }

  private nextSeq(sid: string | null, next: Map<string, number>): number {
    const key = sid ?? '';
    let seq = next.get(key);
    if (seq === undefined) seq = ((this.q.maxSeq!.get(key) as { seq: number | null }).seq ?? 0) + 1;
    next.set(key, seq + 1);
    return seq;
  }

  private writeOne(
    r: AppendRequest,
    kind: string,
    version: number,
    json: string,
    data: unknown,
    next: Map<string, number>,
  ): AnyEnvelope {
    const sid = r.sessionId;
    if (kind === 'system' && sid !== null) throw new InvalidEventError(r.type, 'sessionId', 'must be null for a system event');
    if (kind !== 'system' && sid === null) throw new InvalidEventError(r.type, 'sessionId', 'is required for a session event');
    if (kind === 'owner') this.fence(sid!, r.type, r.epoch);
    if (failpointsArmed) failpoint('before', r.type);
    const seq = this.nextSeq(sid, next);
    const at = new Date(this.clock.now()).toISOString();
    const { lastInsertRowid } = this.q.insert!.run(sid, seq, r.type, version, at, json);
    const envelope = { sessionId: sid, seq, gseq: Number(lastInsertRowid), type: r.type, version, at, data } as AnyEnvelope;
    this.projector.apply(envelope);
    this.pending.push(envelope);
    return envelope;
  }

  private fence(sessionId: string, type: string, epoch: number | undefined): void {
    if (epoch === undefined) throw new InvalidEventError(type, 'epoch', 'is required: this is an owner event');
    const current = this.owners.heldEpoch(sessionId);
    if (current !== epoch) throw new StaleOwnerError(sessionId, epoch, current);
  }

  private writeSnapshot(s: Omit<Snapshot, 'seq'>, next: Map<string, number>): void {
    const seq = this.nextSeq(s.sessionId, next) - 1;
    next.set(s.sessionId, seq + 1);
    this.q.snapshotPut!.run(s.sessionId, seq, s.machineVersion, JSON.stringify(s.value), JSON.stringify(s.context));
  }

  private writeSegments(sid: string, segments: Segment[], next: Map<string, number>): AnyEnvelope[] {
    return segments.map((s) => {
      const data = { activityId: s.activityId, attemptId: s.attemptId, partId: s.partId, delta: s.text };
      const v = validateForWrite(s.type, data);
      return this.writeOne({ sessionId: sid, type: s.type, data, epoch: s.epoch } as AppendRequest, 'owner', v.def.version, v.json, data, next);
    });
  }

  // ---- deltas ------------------------------------------------------------------------------

  /**
   * Buffers one delta (one provider chunk's text). It reaches the log when its session's buffer
   * fills, when the flush interval passes, or before any other event of that session from this
   * store, whichever comes first. Live readers see it once flushed.
   */
  bufferDelta(delta: Delta): void {
    const due = this.deltas.add(delta);
    if (due === 'flush-session') this.flushSession(delta.sessionId);
    else if (due === 'flush-all') this.flushDeltas();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flushDeltas();
      }, DELTA_FLUSH_INTERVAL_MS);
      this.flushTimer.unref();
    }
  }

  /**
   * Writes every buffered delta now, in one transaction with a savepoint per session: a session
   * whose flush fails (a stale owner) is reported and dropped without affecting the others.
   */
  flushDeltas(): void {
    const sessions = this.deltas.sessionIds();
    if (sessions.length === 0) return;
    this.commit(false, () => {
      for (const sid of sessions) {
        const segments = this.deltas.take(sid);
        try {
          this.run(() => this.writeSegments(sid, segments, new Map()));
        } catch (error) {
          this.onFlushError(error, sid);
        }
      }
    });
  }

  /** Writes one session's buffered deltas now (the caller's own events flush them implicitly). */
  flushSession(sessionId: string): void {
    const segments = this.deltas.take(sessionId);
    if (segments.length === 0) return;
    try {
      this.commit(false, () => this.writeSegments(sessionId, segments, new Map()));
    } catch (error) {
      this.onFlushError(error, sessionId);
    }
  }

  // ---- reading -----------------------------------------------------------------------------

  /** One page of a session's events after `after` (a seq), oldest first; bounded by READ_PAGE_EVENTS_MAX. */
  read(sessionId: string, options: { after?: number; limit?: number } = {}): AnyEnvelope[] {
    const rows = this.q.read!.all(sessionId, options.after ?? 0, pageSize(options.limit)) as EventRow[];
    return rows.map(toEnvelope);
  }

  /** One page of the system log (events with sessionId null) after `after`. */
  readSystem(options: { after?: number; limit?: number } = {}): AnyEnvelope[] {
    const rows = this.q.read!.all('', options.after ?? 0, pageSize(options.limit)) as EventRow[];
    return rows.map(toEnvelope);
  }

  /** The newest seq of the system log (0 when it is empty): a cursor for following it from now. */
  systemSeq(): number {
    return (this.q.maxSeq!.get('') as { seq: number | null }).seq ?? 0;
  }

  /** One page of every event after `afterGseq`, in global order. */
  readAll(options: { afterGseq?: number; limit?: number } = {}): AnyEnvelope[] {
    const rows = this.q.readAll!.all(options.afterGseq ?? 0, pageSize(options.limit)) as EventRow[];
    return rows.map(toEnvelope);
  }

  /**
   * Follows a log from a cursor: history first, then live events, with no gap and no duplicate.
   * It subscribes to changes before reading, and always reads after its own cursor, so an append
   * racing with the read is picked up by the next read rather than lost or repeated. Other
   * processes' appends are noticed by polling. Ends when `signal` aborts.
   */
  async *tail(
    filter: { sessionId: string; after?: number } | { all: true; afterGseq?: number },
    options: { signal?: AbortSignal; limit?: number } = {},
  ): AsyncGenerator<AnyEnvelope> {
    let cursor = 'sessionId' in filter ? (filter.after ?? 0) : (filter.afterGseq ?? 0);
    let dirty = true;
    let wake: (() => void) | undefined;
    const onChange = () => {
      dirty = true;
      wake?.();
    };
    const unsubscribe = this.changes.subscribe(onChange, { keepAlive: true });
    options.signal?.addEventListener('abort', onChange);
    try {
      while (!options.signal?.aborted) {
        dirty = false;
        const page =
          'sessionId' in filter
            ? this.read(filter.sessionId, { after: cursor, limit: options.limit })
            : this.readAll({ afterGseq: cursor, limit: options.limit });
        for (const e of page) {
          cursor = 'sessionId' in filter ? e.seq : e.gseq;
          yield e;
          if (options.signal?.aborted) return;
        }
        if (page.length > 0 || dirty) continue;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      unsubscribe();
      options.signal?.removeEventListener('abort', onChange);
    }
  }

  /**
   * Which sessions have events after `afterGseq`, and the newest gseq: lets a process with many
   * live sessions wake only the ones another process wrote to.
   */
  sessionsChangedSince(afterGseq: number): { sessionIds: string[]; maxGseq: number } {
    const rows = this.q.changedSince!.all(afterGseq) as { session_id: string | null; g: number }[];
    let maxGseq = afterGseq;
    const sessionIds: string[] = [];
    for (const r of rows) {
      maxGseq = Math.max(maxGseq, r.g);
      if (r.session_id !== null) sessionIds.push(r.session_id);
    }
    return { sessionIds, maxGseq };
  }

  /** The newest gseq in the log (0 when empty). */
  maxGseq(): number {
    return (this.q.maxGseq!.get() as { g: number | null }).g ?? 0;
  }

  // ---- inbox -------------------------------------------------------------------------------

  /**
   * Admits an input into the session's inbox (a request: any process may call it). Idempotent by
   * `clientId`: a second admission with the same id returns the first one, unchanged.
   */
  admitInput(sessionId: string, input: AdmitInput): { input: InputRow; admitted: boolean } {
    if (Buffer.byteLength(input.text) > INPUT_TEXT_BYTES_MAX) {
      throw new LimitExceededError('INPUT_TEXT_BYTES_MAX', `input text is ${Buffer.byteLength(input.text)} bytes`);
    }
    checkAttachments(input.attachments ?? []);
    const inputId = this.ids.next('in');
    const txn = () => {
      if (input.clientId !== undefined) {
        const existing = this.q.inputByClient!.get(sessionId, input.clientId) as InputDbRow | undefined;
        if (existing) return { input: toInput(existing), admitted: false };
      }
      if (!this.q.sessionExists!.get(sessionId)) throw new SessionNotFoundError(sessionId);
      const open = (this.q.inputsOpen!.get(sessionId) as { n: number }).n;
      if (open >= INBOX_PENDING_MAX) throw new LimitExceededError('INBOX_PENDING_MAX', `session ${sessionId} has ${open} inputs waiting`);
      const attachments = input.attachments !== undefined && input.attachments.length > 0 ? input.attachments : undefined;
      const data = { inputId, mode: input.mode, text: input.text, clientId: input.clientId, source: input.source, attachments, budget: input.budget, agent: input.agent };
      const v = validateForWrite('input.admitted', data);
      this.writeOne({ sessionId, type: 'input.admitted', data } as AppendRequest, 'request', v.def.version, v.json, v.data, new Map());
      return { input: toInput(this.q.inputById!.get(inputId) as InputDbRow), admitted: true };
    };
    return this.commit(false, txn);
  }

  /** Inputs of a session with the given status, in admission order. */
  inputs(sessionId: string, status?: InputRow['status']): InputRow[] {
    const rows = (status ? this.q.inputsByStatus!.all(sessionId, status) : this.q.inputsAll!.all(sessionId)) as InputDbRow[];
    return rows.map(toInput);
  }

  input(inputId: string): InputRow | undefined {
    const row = this.q.inputById!.get(inputId) as InputDbRow | undefined;
    return row && toInput(row);
  }

  // ---- snapshots ---------------------------------------------------------------------------

  getSnapshot(sessionId: string): Snapshot | undefined {
    const row = this.q.snapshotGet!.get(sessionId) as
      | { session_id: string; seq: number; machine_version: string; value: string; context: string }
      | undefined;
    if (!row) return undefined;
    return {
      sessionId: row.session_id,
      seq: row.seq,
      machineVersion: row.machine_version,
      value: JSON.parse(row.value),
      context: JSON.parse(row.context),
    };
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction; appends inside it join it (as savepoints). With
   * `barrier`, the commit is made with synchronous=FULL (switched outside the transaction).
   */
  transaction<T>(fn: () => T, options: { barrier?: boolean } = {}): T {
    return this.commit(options.barrier === true, fn);
  }

  /** Writes a snapshot by itself (normally it rides on `append`), tagged with the current last seq. */
  putSnapshot(snapshot: Omit<Snapshot, 'seq'>): void {
    this.commit(false, () => this.writeSnapshot(snapshot, new Map()));
  }

  // ---- maintenance -------------------------------------------------------------------------

  /** Empties every projection and replays the whole log through the projector, in one transaction. */
  rebuildProjections(): void {
    this.flushDeltas();
    this.commit(false, () => {
      for (const table of PROJECTION_TABLES) this.db.exec(`DELETE FROM ${table}`);
      let after = 0;
      for (;;) {
        const page = this.q.readAll!.all(after, REBUILD_PAGE_EVENTS) as EventRow[];
        if (page.length === 0) break;
        for (const row of page) this.projector.apply(toEnvelope(row));
        after = page[page.length - 1]!.gseq;
      }
    });
  }

  /** Flushes buffered deltas and closes the connection. */
  close(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.flushDeltas();
    this.changes.stop();
    this.db.close();
  }
}

interface InputDbRow {
  input_id: string;
  session_id: string;
  client_id: string | null;
  mode: 'steer' | 'queue';
  text: string;
  source: string | null;
  status: InputRow['status'];
  activity_id: string | null;
  attempt_id: string | null;
  admitted_seq: number;
  attachments: string | null;
  agent: string | null;
}

/** Attachments are resolved before admission; the store re-checks their bounds (a caller may skip the helper). */
function checkAttachments(attachments: readonly InputAttachment[]): void {
  if (attachments.length > INPUT_ATTACHMENTS_MAX) {
    throw new LimitExceededError('INPUT_ATTACHMENTS_MAX', `the input has ${attachments.length} attachments`);
  }
  let total = 0;
  for (const a of attachments) {
    const bytes = Buffer.byteLength(a.text);
    if (bytes > INPUT_ATTACHMENT_BYTES_MAX) throw new LimitExceededError('INPUT_ATTACHMENT_BYTES_MAX', `attachment "${a.name}" is ${bytes} bytes`);
    total += bytes;
  }
  if (total > INPUT_ATTACHMENTS_BYTES_MAX) throw new LimitExceededError('INPUT_ATTACHMENTS_BYTES_MAX', `the attachments are ${total} bytes together`);
}

function toInput(r: InputDbRow): InputRow {
  return {
    inputId: r.input_id,
    sessionId: r.session_id,
    clientId: r.client_id,
    mode: r.mode,
    text: r.text,
    source: r.source,
    status: r.status,
    activityId: r.activity_id,
    attemptId: r.attempt_id,
    admittedSeq: r.admitted_seq,
    attachments: r.attachments === null ? [] : (JSON.parse(r.attachments) as InputAttachment[]),
    agent: r.agent ?? null,
  };
}

function pageSize(limit: number | undefined): number {
  return Math.max(1, Math.min(limit ?? READ_PAGE_EVENTS_DEFAULT, READ_PAGE_EVENTS_MAX));
}

function toEnvelope(row: EventRow): AnyEnvelope {
  return {
    sessionId: row.session_id,
    seq: row.seq,
    gseq: row.gseq,
    type: row.type,
    version: row.version,
    at: row.at,
    data: upcast(row.type, row.version, JSON.parse(row.data)),
  } as AnyEnvelope;
}

export type { Envelope, AnyEnvelope, EventType, EventData, Delta };
