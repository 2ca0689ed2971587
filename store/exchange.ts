import { closeSync, openSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { IMPORT_EVENTS_MAX, IMPORT_LINE_BYTES_MAX, IMPORT_READ_CHUNK_BYTES, OWNER_LEASE_TTL_MS } from '../core/limits.js';
import { SessionNotFoundError, StoreError } from './errors.js';
import { IdMap, OpenWork } from './fork.js';
import { definitionOf, upcast, type EventData } from './schemas.js';
import type { AnyEnvelope, AppendRequest, Store } from './store.js';

/**
 * Moving a session between databases: `exportSession` writes its event log as NDJSON envelopes
 * (the same envelope as the store, `--json` and SSE); `importSession` replays such a file into a
 * NEW session of this store.
 *
 * The import goes through the normal `store.append`, event by event, so every event is validated
 * and projected as if it happened here; every id the projections key globally is rewritten to a
 * fresh one (store/fork.ts `IdMap`), so a log can be imported twice, or into the database it came
 * from. `at` is the time of the import. An activity the export ends inside is closed the way a
 * fork closes one (unsettled calls `interrupted`, an attempt in flight failed with its parts
 * discarded, unconsumed inputs released, the activity settled `abandoned`), and a job still running
 * is recorded `lost` (its process belongs to the exporting installation). The whole import is one
 * transaction: any bad line is refused with an error naming it, and nothing is stored.
 */

export interface ExportResult {
  sessionId: string;
  /** Events written (seq 1..lastSeq as of the start of the export). */
  events: number;
}

/**
 * Writes session `sessionId`'s events, oldest first, one JSON envelope per line, up to the last seq
 * it had when the export started (a live session keeps growing; the export is a consistent prefix).
 * Pages through the log (bounded memory) and waits for `out` to drain when it is full.
 */
export async function exportSession(store: Store, sessionId: string, out: NodeJS.WritableStream): Promise<ExportResult> {
  store.flushSession(sessionId);
  const session = store.queries.session(sessionId);
  if (!session) throw new SessionNotFoundError(sessionId);
  const last = session.lastSeq;
  let events = 0;
  for (let after = 0; after < last; ) {
    const page = store.read(sessionId, { after }).filter((e) => e.seq <= last);
    if (page.length === 0) break;
    const chunk = page.map((e) => `${JSON.stringify(e)}\n`).join('');
    events += page.length;
    after = page[page.length - 1]!.seq;
    if (!out.write(chunk)) await drained(out);
  }
  return { sessionId, events };
}

/** Resolves when `out` drains; rejects when it fails or closes first (a reader that went away). */
function drained(out: NodeJS.WritableStream): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (error?: unknown) => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (error: unknown) => done(error);
    const onClose = () => done(Object.assign(new Error('the output closed before the export was written'), { code: 'EPIPE' }));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

/** A line of an import file that is not an event this store can take; nothing was imported. */
export class InvalidImportError extends StoreError {
  override name = 'InvalidImportError';
  constructor(readonly file: string, readonly line: number, detail: string) {
    super(`${file}:${line}: ${detail}; nothing was imported`);
  }
}

export interface ImportOptions {
  /** The new session's directory instead of the exported one (another machine, a moved checkout). */
  location?: string;
}

export interface ImportResult {
  /** The new session. */
  sessionId: string;
  /** The session id the export was made from. */
  sourceId: string;
  /** Events read from the file and appended. */
  imported: number;
  /** The new session's last seq (imported events plus the closing ones). */
  lastSeq: number;
  /** The activity the export ended inside, settled `abandoned` in the new session. */
  abandonedActivityId: string | null;
  location: string;
}

/**
 * Replays the export in `file` into a new session (see the module comment). Throws
 * InvalidImportError naming the first bad line (not JSON, not an envelope, a system event, a seq
 * out of order, another session's event, an unknown type or version, data its schema refuses, a
 * transition the projections refuse, over IMPORT_LINE_BYTES_MAX or IMPORT_EVENTS_MAX); nothing is
 * stored then. Reads the file synchronously inside the transaction, a chunk at a time.
 */
export function importSession(store: Store, file: string, options: ImportOptions = {}): ImportResult {
  const fd = openImportFile(file);
  try {
    return store.transaction(() => {
      const ids = new IdMap(store);
      const open = new OpenWork();
      let sessionId = '';
      let sourceId = '';
      let location = '';
      let epoch = 0;
      let lease: ReturnType<Store['owners']['acquire']> = null;
      let prevSeq = 0;
      let imported = 0;
      for (const { lineNo, text } of readLines(fd, file)) {
        const bad = (detail: string) => new InvalidImportError(file, lineNo, detail);
        const e = parseEnvelope(text, bad);
        if (imported === 0) {
          if (e.type !== 'session.created' || e.seq !== 1) throw bad(`the first event must be session.created at seq 1, found ${e.type} at seq ${e.seq}`);
          sourceId = e.sessionId;
        } else {
          if (e.sessionId !== sourceId) throw bad(`sessionId ${e.sessionId} differs from the first line's ${sourceId}: an export holds one session`);
          if (e.seq !== prevSeq + 1) throw bad(`seq ${e.seq} follows seq ${prevSeq}: events are missing or out of order`);
        }
        if (++imported > IMPORT_EVENTS_MAX) throw bad(`more than IMPORT_EVENTS_MAX (${IMPORT_EVENTS_MAX}) events`);
        prevSeq = e.seq;
        const data = currentData(e, bad);
        if (imported === 1) {
          const created = data as EventData<'session.created'>;
          sessionId = store.ids.next('ses');
          location = options.location ?? created.location;
          appendLine(store, bad, e.type, { sessionId, type: 'session.created', data: { ...created, location, title: created.title ?? `import of ${sourceId}` } });
          lease = store.owners.acquire(sessionId, `${hostname()}:${process.pid}:import`, OWNER_LEASE_TTL_MS, store.clock.now());
          if (!lease) throw new Error(`import: could not take the lease of the new session ${sessionId}`);
          epoch = lease.epoch;
          continue;
        }
        const envelope = appendLine(store, bad, e.type, { sessionId, type: e.type, data: ids.rewrite(data), epoch } as AppendRequest);
        open.track(envelope);
      }
      if (imported === 0) throw new InvalidImportError(file, 1, 'the file holds no events');
      const closing = open.closing(sessionId, epoch, {
        activity: `imported from ${sourceId}: the export ended inside this activity`,
        toolCall: 'The tool call was interrupted before it finished: the session was imported from an export that ended here.',
        attemptKind: 'imported',
        attempt: `the export of ${sourceId} ended while this attempt was in flight`,
        job: `imported from an export of ${sourceId}; the job's process belongs to the installation it was exported from`,
      });
      if (closing.length > 0) store.append(closing);
      store.owners.release(lease!);
      return { sessionId, sourceId, imported, lastSeq: imported + closing.length, abandonedActivityId: open.activity?.id ?? null, location };
    });
  } finally {
    closeSync(fd);
  }
}

interface ParsedLine {
  sessionId: string;
  seq: number;
  type: string;
  version: number;
  data: unknown;
}

function parseEnvelope(text: string, bad: (detail: string) => InvalidImportError): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw bad(`not JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('not an event envelope (expected a JSON object)');
  const v = value as Record<string, unknown>;
  if (typeof v.type !== 'string' || v.type === '') throw bad('field "type" is missing or not a string');
  if (typeof v.sessionId !== 'string' || v.sessionId === '') {
    throw bad(v.sessionId === null ? `${v.type} is a system event; an export holds one session's events` : 'field "sessionId" is missing or not a string');
  }
  if (!Number.isSafeInteger(v.seq) || (v.seq as number) < 1) throw bad('field "seq" is missing or not a positive integer');
  if (!Number.isSafeInteger(v.version) || (v.version as number) < 1) throw bad('field "version" is missing or not a positive integer');
  if (v.data === null || typeof v.data !== 'object' || Array.isArray(v.data)) throw bad('field "data" is missing or not an object');
  return { sessionId: v.sessionId, seq: v.seq as number, type: v.type, version: v.version as number, data: v.data };
}

/** The event's data at its type's current version; unknown types, versions and system events are refused. */
function currentData(e: ParsedLine, bad: (detail: string) => InvalidImportError): unknown {
  try {
    if (definitionOf(e.type).kind === 'system') throw bad(`${e.type} is a system event; an export holds one session's events`);
    return upcast(e.type, e.version, e.data);
  } catch (error) {
    if (error instanceof InvalidImportError) throw error;
    throw bad((error as Error).message);
  }
}

/** Appends one event; any refusal (schema, projection, limit) becomes an error naming the line. */
function appendLine(store: Store, bad: (detail: string) => InvalidImportError, type: string, request: AppendRequest): AnyEnvelope {
  try {
    return store.append(request)[0]!;
  } catch (error) {
    throw bad(`${type}: ${(error as Error).message}`);
  }
}

function openImportFile(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (error) {
    throw new InvalidImportError(file, 0, `cannot be opened (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/**
 * The file's non-empty lines, read synchronously a chunk at a time (the import runs inside one
 * transaction, which cannot await). A line over IMPORT_LINE_BYTES_MAX is refused before it is kept.
 */
function* readLines(fd: number, file: string): Generator<{ lineNo: number; text: string }> {
  const chunk = Buffer.alloc(IMPORT_READ_CHUNK_BYTES);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNo = 0;
  const take = (tail: Buffer): string => {
    const whole = pending.length === 0 ? tail : Buffer.concat([...pending, tail]);
    pending = [];
    pendingBytes = 0;
    return whole.toString('utf8');
  };
  for (;;) {
    const n = readSync(fd, chunk, 0, chunk.length, null);
    if (n === 0) break;
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1 && nl < n; nl = chunk.indexOf(10, start)) {
      lineNo++;
      if (pendingBytes + (nl - start) > IMPORT_LINE_BYTES_MAX) throw new InvalidImportError(file, lineNo, `line longer than IMPORT_LINE_BYTES_MAX (${IMPORT_LINE_BYTES_MAX} bytes)`);
      const text = take(chunk.subarray(start, nl));
      start = nl + 1;
      if (text.trim() !== '') yield { lineNo, text };
    }
    if (start < n) {
      if (pendingBytes + (n - start) > IMPORT_LINE_BYTES_MAX) throw new InvalidImportError(file, lineNo + 1, `line longer than IMPORT_LINE_BYTES_MAX (${IMPORT_LINE_BYTES_MAX} bytes)`);
      pending.push(Buffer.from(chunk.subarray(start, n)));
      pendingBytes += n - start;
    }
  }
  if (pendingBytes > 0) {
    const text = take(Buffer.alloc(0));
    if (text.trim() !== '') yield { lineNo: lineNo + 1, text };
  }
}
