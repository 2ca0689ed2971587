/**
 * Store suite: the event log's write and replay paths measured in one run beside a raw
 * better-sqlite3 baseline (same columns and index as `events`, same pragmas: WAL,
 * synchronous=NORMAL, and rows of the same size).
 *
 * - single appends: one event per transaction through `store.append` vs a raw one-row INSERT.
 * - batched deltas: 100 interleaved streams through `store.bufferDelta` (flushed by the store's own
 *   size/time triggers, then a final `flushDeltas`) vs raw INSERTs of one row per delta, 100 per
 *   transaction. Loom merges consecutive deltas of a part into one event, which is the point.
 * - the barrier: `append(..., { barrier: true })` (synchronous=FULL) vs a NORMAL append.
 * - replay: paged `store.read` and `store.tail` vs a raw `SELECT ... ORDER BY seq` `.iterate()`;
 *   events/s and peak memory, and 10,000 vs 100,000 events to show memory does not grow with length.
 *
 * Every measurement opens fresh temp SQLite files, warms up, then alternates Loom and baseline
 * runs so both see the same machine noise; figures are medians of the timed runs.
 */
import Database from 'better-sqlite3';
import { DELTA_BATCH_BYTES_MAX, DELTA_FLUSH_INTERVAL_MS, READ_PAGE_EVENTS_MAX } from '../../core/limits.js';
import { Store, type AppendRequest } from '../../store/index.js';
import {
  fmtBytes,
  fmtBytesRate,
  fmtMs,
  fmtNum,
  fmtRatio,
  gcAvailable,
  LiveHeap,
  median,
  MemoryPeak,
  now,
  quantile,
  tempDir,
  yieldToLoop,
  type Suite,
  type SuiteReport,
  type Table,
  type TargetResult,
} from '../lib.js';
import { seededRandom } from '../../test/fixtures/random.js';

// ---- bounds (the whole suite is meant to finish in well under two minutes on 2 cores) ----------

/** Single-event appends: commits per timed run, warm-up commits, timed runs. */
const SINGLE_WARMUP_COMMITS = 500;
const SINGLE_COMMITS = 3_000;
const SINGLE_RUNS = 5;

/** Batched deltas: concurrent streams (one per session), tokens per stream per run, timed runs. */
const DELTA_STREAMS = 100;
const DELTA_WARMUP_TOKENS = 100;
/**
 * Loom: 100 streams x 5,000 tokens = 500,000 deltas per run, long enough (several 50 ms flush
 * intervals) to include the store's timer flushes at steady state rather than one final flush.
 */
const DELTA_TOKENS = 5_000;
/** Raw baseline: 100 x 1,000 = 100,000 rows per run (~1-3 s at raw speed; rates are per second). */
const RAW_DELTA_TOKENS = 1_000;
const DELTA_RUNS = 5;
/** Deltas between event-loop turns, so the store's flush timer can fire as it would in a server. */
const DELTA_YIELD_EVERY = 500;
/** Deltas per window of the sustained-rate measurement (the slowest window is reported). */
const DELTA_WINDOW = 10_000;
const TOKEN_CHARS_MIN = 4;
const TOKEN_CHARS_MAX = 20;
const TOKEN_POOL = 8_192;
/** Raw baseline: rows per transaction (one round of the 100 interleaved streams). */
const RAW_ROWS_PER_TXN = DELTA_STREAMS;

/** Flush cost: rounds of (one segment buffered in each of DELTA_STREAMS sessions, then a flush). */
const FLUSH_WARMUP_ROUNDS = 10;
const FLUSH_ROUNDS = 100;
/** Tokens merged into each session's segment per round (~50 ms of a fast stream). */
const FLUSH_TOKENS_PER_SEGMENT = 5;

/** Paced streaming: provider-like arrival rate, to see what the store costs at a realistic load. */
const PACED_STREAMS = 100;
const PACED_TOKENS_PER_SECOND = 50; // per stream: a fast model's output rate
const PACED_SECONDS = 2;
const PACED_TICK_MS = 10;

/** Barrier vs NORMAL commits. */
const BARRIER_WARMUP_COMMITS = 20;
const BARRIER_COMMITS = 200;
const BARRIER_RUNS = 3;

/** Replay. */
const REPLAY_EVENTS = 100_000;
const REPLAY_SMALL_EVENTS = 10_000;
const REPLAY_PAGE = READ_PAGE_EVENTS_MAX;
const REPLAY_RUNS = 5;
const REPLAY_DELTA_CHARS_MIN = 32;
const REPLAY_DELTA_CHARS_MAX = 256;
/** process.memoryUsage() every this many events during timed replays (peak heap / RSS). */
const MEMORY_SAMPLE_EVERY = 1_000;
/** Full GC + heapUsed every this many events during the (untimed) retained-memory replays. */
const LIVE_SAMPLE_EVERY = 5_000;
/** Memory counts as not growing with log length when the 100k live heap is within this of the 10k one. */
const LIVE_HEAP_GROWTH_SLACK = 2 * 1024 * 1024;

// ---- targets -------------------------------------------------------------------------------------

const TARGET_DELTA_BYTES_RATIO = 0.5;
const TARGET_DELTAS_PER_SECOND = 10_000;
const TARGET_REPLAY_RATIO = 0.5;

// ---- fixtures ------------------------------------------------------------------------------------

const EVENTS_DDL = `
  CREATE TABLE events (
    gseq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    version INTEGER NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL
  );
  CREATE UNIQUE INDEX events_stream_seq ON events (ifnull(session_id, ''), seq);
`;
const INSERT_SQL = 'INSERT INTO events (session_id, seq, type, version, at, data) VALUES (?, ?, ?, ?, ?, ?)';
const OWNER = 'bench-owner';
const LEASE_TTL_MS = 3_600_000;

/** The baseline: a plain better-sqlite3 file with the same table, index and pragmas as the store. */
function openRaw(path: string, options: { index?: boolean } = {}): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(options.index === false ? EVENTS_DDL.replace(/CREATE UNIQUE INDEX[^;]*;/, '') : EVENTS_DDL);
  return db;
}


const ALPHABET = 'abcdefghijklmnopqrstuvwxyz      ,.etaoinshr';

/** ASCII text of a random length in [min, max] (so string length = UTF-8 bytes). */
function randomText(rnd: () => number, min: number, max: number): string {
  const n = min + Math.floor(rnd() * (max - min + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += rnd() < 0.01 ? '\n' : ALPHABET[Math.floor(rnd() * ALPHABET.length)]!;
  return s;
}

/** One provider chunk's text each: 4-20 chars, like a token. */
function tokenPool(seed: number): string[] {
  const rnd = seededRandom(seed);
  return Array.from({ length: TOKEN_POOL }, () => randomText(rnd, TOKEN_CHARS_MIN, TOKEN_CHARS_MAX));
}

function createSession(store: Store, sessionId: string): { epoch: number } {
  store.append({ sessionId, type: 'session.created', data: { location: '/work/bench', model: 'bench/model' } });
  const lease = store.owners.acquire(sessionId, OWNER, LEASE_TTL_MS, store.clock.now());
  if (!lease) throw new Error(`bench: no lease on ${sessionId}`);
  return { epoch: lease.epoch };
}

interface Stream {
  sessionId: string;
  epoch: number;
  activityId: string;
  attemptId: string;
  seq: number; // raw baseline only
}

/** A session with an open activity and a dispatched attempt, ready to stream deltas. */
function openStream(store: Store, sessionId: string): Stream {
  const { epoch } = createSession(store, sessionId);
  const activityId = `act_${sessionId}`;
  const turnId = `turn_${sessionId}`;
  const attemptId = `att_${sessionId}`;
  store.append([
    { sessionId, type: 'activity.opened', data: { activityId, trigger: 'run', inputIds: [], turnLimit: 25 }, epoch },
    { sessionId, type: 'turn.started', data: { activityId, turnId, turn: 1 }, epoch },
    { sessionId, type: 'attempt.dispatched', data: { activityId, turnId, attemptId, attempt: 1, model: 'bench/model', inputIds: [] }, epoch },
  ]);
  return { sessionId, epoch, activityId, attemptId, seq: 0 };
}

function countEvents(db: Database.Database): number {
  return (db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
}

// ---- single appends ------------------------------------------------------------------------------

interface CommitRun {
  perSecond: number;
  p50: number;
  p99: number;
}

function summarize(latencies: number[], elapsedMs: number): CommitRun {
  return { perSecond: latencies.length / (elapsedMs / 1000), p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

/** Median rate over runs, and latency percentiles over every commit of every timed run. */
function combine(runs: { run: CommitRun; latencies: number[] }[]): CommitRun {
  const all = runs.flatMap((r) => r.latencies);
  return { perSecond: median(runs.map((r) => r.run.perSecond)), p50: quantile(all, 0.5), p99: quantile(all, 0.99) };
}

type EventMaker = (i: number) => AppendRequest;

function timeCommits(count: number, commit: (i: number) => void, offset: number): { run: CommitRun; latencies: number[] } {
  const latencies = new Array<number>(count);
  const t0 = now();
  for (let i = 0; i < count; i++) {
    const s = now();
    commit(offset + i);
    latencies[i] = now() - s;
  }
  return { run: summarize(latencies, now() - t0), latencies };
}

interface SingleResult {
  loom: CommitRun;
  raw: CommitRun;
}

/** One event per transaction: store.append vs a raw one-row INSERT of the same row. */
function benchSingle(kind: 'request' | 'owner', log: (l: string) => void): SingleResult {
  const tmp = tempDir();
  try {
    const store = Store.open(tmp.file('loom.db'));
    const raw = openRaw(tmp.file('raw.db'));
    const sessionId = 'ses_single';
    const { epoch } = createSession(store, sessionId);
    const activityId = 'act_single';
    if (kind === 'owner') {
      store.append({ sessionId, type: 'activity.opened', data: { activityId, trigger: 'run', inputIds: [], turnLimit: 25 }, epoch });
    }
    const make: EventMaker =
      kind === 'request'
        ? () => ({ sessionId, type: 'compaction.requested', data: { reason: 'context window 83% full' } })
        : (i) => ({ sessionId, type: 'turn.started', data: { activityId, turnId: `turn_${i}`, turn: i + 1 }, epoch });
    const sample = make(0);
    const rawInsert = raw.prepare(INSERT_SQL);
    const rawTxn = raw.transaction((seq: number, data: string) => {
      rawInsert.run(sessionId, seq, sample.type, 1, new Date().toISOString(), data);
    });
    const loomCommit = (i: number) => void store.append(make(i));
    const rawCommit = (i: number) => rawTxn.immediate(i + 1, JSON.stringify(make(i).data));

    timeCommits(SINGLE_WARMUP_COMMITS, loomCommit, 0);
    timeCommits(SINGLE_WARMUP_COMMITS, rawCommit, 0);
    const loomRuns = [];
    const rawRuns = [];
    let offset = SINGLE_WARMUP_COMMITS;
    for (let r = 0; r < SINGLE_RUNS; r++) {
      rawRuns.push(timeCommits(SINGLE_COMMITS, rawCommit, offset));
      loomRuns.push(timeCommits(SINGLE_COMMITS, loomCommit, offset));
      offset += SINGLE_COMMITS;
    }
    const result = { loom: combine(loomRuns), raw: combine(rawRuns) };
    log(`single ${kind} appends: loom ${fmtNum(result.loom.perSecond)}/s, raw ${fmtNum(result.raw.perSecond)}/s`);
    store.close();
    raw.close();
    return result;
  } finally {
    tmp.cleanup();
  }
}

// ---- batched deltas ------------------------------------------------------------------------------

interface DeltaRun {
  deltas: number;
  bytes: number;
  elapsedMs: number;
  deltasPerSecond: number;
  bytesPerSecond: number;
  slowestWindow: number; // deltas/s of the slowest DELTA_WINDOW-delta window
  commits: number;
  events: number;
}

function deltaRunOf(deltas: number, bytes: number, elapsedMs: number, windows: number[], commits: number, events: number): DeltaRun {
  return {
    deltas,
    bytes,
    elapsedMs,
    deltasPerSecond: deltas / (elapsedMs / 1000),
    bytesPerSecond: bytes / (elapsedMs / 1000),
    slowestWindow: windows.length > 0 ? Math.min(...windows) : deltas / (elapsedMs / 1000),
    commits,
    events,
  };
}

/**
 * 100 interleaved streams (round robin: one token per stream per round). The first quarter of each
 * stream is a reasoning part, the rest a text part. Flushes come from the store itself (its size and
 * time triggers, the latter firing at the event-loop turns), then one final flushDeltas().
 */
async function loomDeltaRun(store: Store, streams: Stream[], tokens: string[], tokensPerStream: number, tag: string): Promise<DeltaRun> {
  const parts = streams.map((s) => ({ reasoning: `prt_${s.sessionId}_${tag}_r`, text: `prt_${s.sessionId}_${tag}_t` }));
  let commits = 0;
  const unsubscribe = store.changes.subscribe(() => commits++);
  const eventsBefore = countEvents(store.db);
  const windows: number[] = [];
  let n = 0;
  let bytes = 0;
  let k = 0;
  const t0 = now();
  let windowStart = t0;
  for (let t = 0; t < tokensPerStream; t++) {
    const reasoning = t < tokensPerStream / 4;
    for (let i = 0; i < streams.length; i++) {
      const s = streams[i]!;
      const text = tokens[k++ % tokens.length]!;
      store.bufferDelta({
        sessionId: s.sessionId,
        epoch: s.epoch,
        type: reasoning ? 'reasoning.delta' : 'text.delta',
        activityId: s.activityId,
        attemptId: s.attemptId,
        partId: reasoning ? parts[i]!.reasoning : parts[i]!.text,
        delta: text,
      });
      bytes += text.length;
      n++;
      if (n % DELTA_YIELD_EVERY === 0) await yieldToLoop();
      if (n % DELTA_WINDOW === 0) {
        const at = now();
        windows.push(DELTA_WINDOW / ((at - windowStart) / 1000));
        windowStart = at;
      }
    }
  }
  store.flushDeltas();
  const elapsed = now() - t0;
  unsubscribe();
  return deltaRunOf(n, bytes, elapsed, windows, commits, countEvents(store.db) - eventsBefore);
}

/** The baseline: one row per delta carrying the same text, 100 rows (one round) per transaction. */
async function rawDeltaRun(raw: Database.Database, streams: Stream[], tokens: string[], tokensPerStream: number, tag: string): Promise<DeltaRun> {
  const insert = raw.prepare(INSERT_SQL);
  const round = raw.transaction((t: number, reasoning: boolean, k: number) => {
    const at = new Date().toISOString();
    const type = reasoning ? 'reasoning.delta' : 'text.delta';
    const version = reasoning ? 1 : 2;
    let bytes = 0;
    for (let i = 0; i < streams.length; i++) {
      const s = streams[i]!;
      const text = tokens[(k + i) % tokens.length]!;
      const partId = `prt_${s.sessionId}_${tag}_${reasoning ? 'r' : 't'}`;
      const data = JSON.stringify({ activityId: s.activityId, attemptId: s.attemptId, partId, delta: text });
      insert.run(s.sessionId, ++s.seq, type, version, at, data);
      bytes += text.length;
    }
    return bytes;
  });
  const windows: number[] = [];
  let n = 0;
  let bytes = 0;
  let k = 0;
  let commits = 0;
  const t0 = now();
  let windowStart = t0;
  for (let t = 0; t < tokensPerStream; t++) {
    bytes += round.immediate(t, t < tokensPerStream / 4, k);
    k += streams.length;
    n += streams.length;
    commits++;
    if (n % DELTA_YIELD_EVERY === 0) await yieldToLoop();
    if (n % DELTA_WINDOW === 0) {
      const at = now();
      windows.push(DELTA_WINDOW / ((at - windowStart) / 1000));
      windowStart = at;
    }
  }
  return deltaRunOf(n, bytes, now() - t0, windows, commits, n);
}

interface DeltaResult {
  loom: DeltaRun;
  raw: DeltaRun;
  rawNoIndex: DeltaRun;
  slowestLoomWindow: number;
  slowestRawWindow: number;
  slowestRawNoIndexWindow: number;
}

function medianRun(runs: DeltaRun[]): DeltaRun {
  const sorted = [...runs].sort((a, b) => a.bytesPerSecond - b.bytesPerSecond);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function benchDeltas(log: (l: string) => void): Promise<DeltaResult> {
  const tmp = tempDir();
  try {
    const store = Store.open(tmp.file('loom.db'));
    const raw = openRaw(tmp.file('raw.db'));
    const rawNoIndex = openRaw(tmp.file('raw-noindex.db'), { index: false });
    const loomStreams = Array.from({ length: DELTA_STREAMS }, (_, i) => openStream(store, `ses_${String(i).padStart(3, '0')}`));
    const rawStreams = loomStreams.map((s) => ({ ...s }));
    const rawNoIndexStreams = loomStreams.map((s) => ({ ...s }));
    const tokens = tokenPool(42);
    if (RAW_ROWS_PER_TXN !== rawStreams.length) throw new Error('bench: raw rows per txn must equal the stream count');

    await loomDeltaRun(store, loomStreams, tokens, DELTA_WARMUP_TOKENS, 'warm');
    await rawDeltaRun(raw, rawStreams, tokens, DELTA_WARMUP_TOKENS, 'warm');
    await rawDeltaRun(rawNoIndex, rawNoIndexStreams, tokens, DELTA_WARMUP_TOKENS, 'warm');
    const loomRuns: DeltaRun[] = [];
    const rawRuns: DeltaRun[] = [];
    const rawNoIndexRuns: DeltaRun[] = [];
    for (let r = 0; r < DELTA_RUNS; r++) {
      rawRuns.push(await rawDeltaRun(raw, rawStreams, tokens, RAW_DELTA_TOKENS, `r${r}`));
      rawNoIndexRuns.push(await rawDeltaRun(rawNoIndex, rawNoIndexStreams, tokens, RAW_DELTA_TOKENS, `r${r}`));
      loomRuns.push(await loomDeltaRun(store, loomStreams, tokens, DELTA_TOKENS, `r${r}`));
    }
    const result = {
      loom: medianRun(loomRuns),
      raw: medianRun(rawRuns),
      rawNoIndex: medianRun(rawNoIndexRuns),
      slowestLoomWindow: Math.min(...loomRuns.map((r) => r.slowestWindow)),
      slowestRawWindow: Math.min(...rawRuns.map((r) => r.slowestWindow)),
      slowestRawNoIndexWindow: Math.min(...rawNoIndexRuns.map((r) => r.slowestWindow)),
    };
    const spread = (rs: DeltaRun[]) => `${fmtNum(Math.min(...rs.map((x) => x.deltasPerSecond)))}–${fmtNum(Math.max(...rs.map((x) => x.deltasPerSecond)))}`;
    log(`batched deltas per run: loom ${spread(loomRuns)}, raw ${spread(rawRuns)}, raw without index ${spread(rawNoIndexRuns)} deltas/s`);
    log(
      `batched deltas: loom ${fmtNum(result.loom.deltasPerSecond)} deltas/s (${fmtBytesRate(result.loom.bytesPerSecond)}), ` +
        `raw ${fmtNum(result.raw.deltasPerSecond)} rows/s (${fmtBytesRate(result.raw.bytesPerSecond)})`,
    );
    store.close();
    raw.close();
    rawNoIndex.close();
    return result;
  } finally {
    tmp.cleanup();
  }
}

// ---- flush cost ----------------------------------------------------------------------------------

interface FlushResult {
  flush: { p50: number; p99: number; commits: number };
  grouped: { p50: number; p99: number; commits: number };
}

/**
 * What one time-triggered flush costs with DELTA_STREAMS busy sessions: `flushDeltas()` (one
 * transaction per session) vs the same merged events written by one `store.append` of all of them
 * (one transaction), i.e. what a group-committed flush would cost. Alternating, on one file.
 */
function benchFlush(log: (l: string) => void): FlushResult {
  const tmp = tempDir();
  try {
    const store = Store.open(tmp.file('loom.db'));
    const streams = Array.from({ length: DELTA_STREAMS }, (_, i) => openStream(store, `ses_${String(i).padStart(3, '0')}`));
    const tokens = tokenPool(43);
    let commits = 0;
    const unsubscribe = store.changes.subscribe(() => commits++);
    let k = 0;
    const segment = () => {
      let text = '';
      for (let i = 0; i < FLUSH_TOKENS_PER_SEGMENT; i++) text += tokens[k++ % tokens.length]!;
      return text;
    };
    const flushLat: number[] = [];
    const groupLat: number[] = [];
    let flushCommits = 0;
    let groupCommits = 0;
    for (let r = 0; r < FLUSH_WARMUP_ROUNDS + FLUSH_ROUNDS; r++) {
      const timed = r >= FLUSH_WARMUP_ROUNDS;
      for (const s of streams) {
        store.bufferDelta({ sessionId: s.sessionId, epoch: s.epoch, type: 'text.delta', activityId: s.activityId, attemptId: s.attemptId, partId: `prt_${s.sessionId}_f${r}`, delta: segment() });
      }
      let c = commits;
      let t = now();
      store.flushDeltas();
      if (timed) {
        flushLat.push(now() - t);
        flushCommits += commits - c;
      }
      const requests: AppendRequest[] = streams.map((s) => ({
        sessionId: s.sessionId,
        type: 'text.delta',
        data: { activityId: s.activityId, attemptId: s.attemptId, partId: `prt_${s.sessionId}_g${r}`, delta: segment() },
        epoch: s.epoch,
      }));
      c = commits;
      t = now();
      store.append(requests);
      if (timed) {
        groupLat.push(now() - t);
        groupCommits += commits - c;
      }
    }
    unsubscribe();
    store.close();
    const result = {
      flush: { p50: quantile(flushLat, 0.5), p99: quantile(flushLat, 0.99), commits: flushCommits / FLUSH_ROUNDS },
      grouped: { p50: quantile(groupLat, 0.5), p99: quantile(groupLat, 0.99), commits: groupCommits / FLUSH_ROUNDS },
    };
    log(`flush of ${DELTA_STREAMS} sessions: flushDeltas p50 ${fmtMs(result.flush.p50)}, one grouped append p50 ${fmtMs(result.grouped.p50)}`);
    return result;
  } finally {
    tmp.cleanup();
  }
}

// ---- paced streaming ----------------------------------------------------------------------------

interface PacedResult {
  deltasPerSecond: number;
  commitsPerSecond: number;
  eventsPerSecond: number;
  cpuShare: number; // CPU time (user + system) / wall time, store and generator together
  idleCpuShare: number; // the same generator loop without the store
}

/**
 * PACED_STREAMS streams each emitting PACED_TOKENS_PER_SECOND tokens, generated on a
 * PACED_TICK_MS timer: the store flushes by its own timer. CPU share is measured with
 * process.cpuUsage() over the wall time, beside the same loop with no store.
 */
async function benchPaced(log: (l: string) => void): Promise<PacedResult> {
  const tmp = tempDir();
  try {
    const store = Store.open(tmp.file('loom.db'));
    const streams = Array.from({ length: PACED_STREAMS }, (_, i) => openStream(store, `ses_${String(i).padStart(3, '0')}`));
    const tokens = tokenPool(44);
    const drive = async (emit: (s: Stream, i: number, text: string) => void) => {
      let emitted = 0;
      let k = 0;
      const cpu0 = process.cpuUsage();
      const t0 = now();
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          const elapsed = Math.min(now() - t0, PACED_SECONDS * 1000);
          const due = Math.floor((elapsed / 1000) * PACED_TOKENS_PER_SECOND);
          while (emitted < due) {
            for (let i = 0; i < streams.length; i++) emit(streams[i]!, i, tokens[k++ % tokens.length]!);
            emitted++;
          }
          if (elapsed >= PACED_SECONDS * 1000) {
            clearInterval(timer);
            resolve();
          }
        }, PACED_TICK_MS);
      });
      const wall = now() - t0;
      const cpu = process.cpuUsage(cpu0);
      return { deltas: emitted * streams.length, wallMs: wall, cpuShare: (cpu.user + cpu.system) / 1000 / wall };
    };
    const idle = await drive(() => {});
    let commits = 0;
    const unsubscribe = store.changes.subscribe(() => commits++);
    const before = countEvents(store.db);
    const loaded = await drive((s, i, text) =>
      store.bufferDelta({ sessionId: s.sessionId, epoch: s.epoch, type: 'text.delta', activityId: s.activityId, attemptId: s.attemptId, partId: `prt_${i}_paced`, delta: text }),
    );
    store.flushDeltas();
    unsubscribe();
    const events = countEvents(store.db) - before;
    store.close();
    const seconds = loaded.wallMs / 1000;
    const result = {
      deltasPerSecond: loaded.deltas / seconds,
      commitsPerSecond: commits / seconds,
      eventsPerSecond: events / seconds,
      cpuShare: loaded.cpuShare,
      idleCpuShare: idle.cpuShare,
    };
    log(`paced: ${fmtNum(result.deltasPerSecond)} deltas/s -> ${fmtNum(result.commitsPerSecond)} commits/s, CPU ${(100 * result.cpuShare).toFixed(0)}% (idle loop ${(100 * result.idleCpuShare).toFixed(0)}%)`);
    return result;
  } finally {
    tmp.cleanup();
  }
}

// ---- barrier -------------------------------------------------------------------------------------

interface BarrierResult {
  normal: CommitRun;
  barrier: CommitRun;
  rawNormal: CommitRun;
  rawFull: CommitRun;
}

async function benchBarrier(log: (l: string) => void): Promise<BarrierResult> {
  const tmp = tempDir();
  try {
    // Loom: the real barrier event, attempt.dispatched, with and without { barrier: true }.
    const loom = (file: string, barrier: boolean) => {
      const store = Store.open(tmp.file(file));
      const s = openStream(store, 'ses_barrier');
      const commit = (i: number) =>
        void store.append(
          {
            sessionId: s.sessionId,
            type: 'attempt.dispatched',
            data: { activityId: s.activityId, turnId: `turn_${i}`, attemptId: `att_${i}`, attempt: 1, model: 'bench/model', inputIds: [] },
            epoch: s.epoch,
          },
          { barrier },
        );
      return { store, commit };
    };
    const raw = (file: string, sync: 'NORMAL' | 'FULL') => {
      const db = openRaw(tmp.file(file));
      db.pragma(`synchronous = ${sync}`);
      const insert = db.prepare(INSERT_SQL);
      const txn = db.transaction((i: number) => {
        const data = JSON.stringify({ activityId: 'act_barrier', turnId: `turn_${i}`, attemptId: `att_${i}`, attempt: 1, model: 'bench/model', inputIds: [] });
        insert.run('ses_barrier', i + 1, 'attempt.dispatched', 1, new Date().toISOString(), data);
      });
      return { db, commit: (i: number) => txn.immediate(i) };
    };
    const normal = loom('normal.db', false);
    const barrier = loom('barrier.db', true);
    const rawNormal = raw('raw-normal.db', 'NORMAL');
    const rawFull = raw('raw-full.db', 'FULL');
    const all = [normal, barrier, rawNormal, rawFull];
    for (const x of all) timeCommits(BARRIER_WARMUP_COMMITS, x.commit, 0);
    const runs = all.map(() => [] as { run: CommitRun; latencies: number[] }[]);
    let offset = BARRIER_WARMUP_COMMITS;
    for (let r = 0; r < BARRIER_RUNS; r++) {
      all.forEach((x, j) => runs[j]!.push(timeCommits(BARRIER_COMMITS, x.commit, offset)));
      offset += BARRIER_COMMITS;
      await yieldToLoop();
    }
    const [n, b, rn, rf] = runs.map(combine) as [CommitRun, CommitRun, CommitRun, CommitRun];
    log(`barrier: ${fmtNum(b.perSecond)}/s (p50 ${fmtMs(b.p50)}), normal: ${fmtNum(n.perSecond)}/s (p50 ${fmtMs(n.p50)})`);
    normal.store.close();
    barrier.store.close();
    rawNormal.db.close();
    rawFull.db.close();
    return { normal: n, barrier: b, rawNormal: rn, rawFull: rf };
  } finally {
    tmp.cleanup();
  }
}

// ---- replay --------------------------------------------------------------------------------------

const REPLAY_SESSION = 'ses_replay';

/** A store file whose session holds `events` events (session.created + deltas + turn markers). */
function buildReplayStore(path: string, events: number, seed: number): Store {
  const store = Store.open(path);
  const { epoch } = createSession(store, REPLAY_SESSION);
  void epoch;
  // Rows are inserted directly (the replay path does not care how they got there): text.delta v2
  // events of 32-256 chars (merged segments), and a turn.started every 50th event.
  const rnd = seededRandom(seed);
  const insert = store.db.prepare(INSERT_SQL);
  const at = new Date().toISOString();
  const fill = store.db.transaction((from: number, to: number) => {
    for (let seq = from; seq < to; seq++) {
      if (seq % 50 === 0) {
        insert.run(REPLAY_SESSION, seq, 'turn.started', 1, at, JSON.stringify({ activityId: 'act_r', turnId: `turn_${seq}`, turn: seq / 50 }));
      } else {
        const delta = randomText(rnd, REPLAY_DELTA_CHARS_MIN, REPLAY_DELTA_CHARS_MAX);
        insert.run(REPLAY_SESSION, seq, 'text.delta', 2, at, JSON.stringify({ activityId: 'act_r', attemptId: 'att_r', partId: `prt_${Math.floor(seq / 50)}`, delta }));
      }
    }
  });
  for (let seq = 2; seq <= events; seq += 10_000) fill.immediate(seq, Math.min(events + 1, seq + 10_000));
  return store;
}

/** The baseline file: the same rows copied into a raw table. */
function buildReplayRaw(path: string, storePath: string): Database.Database {
  const raw = openRaw(path);
  raw.prepare('ATTACH DATABASE ? AS src').run(storePath);
  raw.exec('INSERT INTO events SELECT * FROM src.events ORDER BY gseq');
  raw.exec('DETACH DATABASE src');
  return raw;
}

interface ReplayRun {
  events: number;
  perSecond: number;
  peakHeap: number;
  peakRss: number;
}

type Replayer = (expected: number, sample: () => void) => Promise<number>;

function pagedReplayer(store: Store): Replayer {
  return async (expected, sample) => {
    let n = 0;
    let check = 0;
    for (let after = 0; ; ) {
      const page = store.read(REPLAY_SESSION, { after, limit: REPLAY_PAGE });
      if (page.length === 0) break;
      for (const e of page) {
        check += e.seq;
        if (++n % MEMORY_SAMPLE_EVERY === 0) sample();
      }
      after = page[page.length - 1]!.seq;
    }
    if (n !== expected || check === 0) throw new Error(`bench: paged replay read ${n} of ${expected}`);
    return n;
  };
}

function tailReplayer(store: Store): Replayer {
  return async (expected, sample) => {
    const ac = new AbortController();
    let n = 0;
    for await (const e of store.tail({ sessionId: REPLAY_SESSION, after: 0 }, { signal: ac.signal, limit: REPLAY_PAGE })) {
      if (e.seq !== n + 1) throw new Error(`bench: tail out of order at ${e.seq}`);
      if (++n % MEMORY_SAMPLE_EVERY === 0) sample();
      if (n === expected) {
        ac.abort();
        break;
      }
    }
    if (n !== expected) throw new Error(`bench: tail read ${n} of ${expected}`);
    return n;
  };
}

function rawReplayer(raw: Database.Database, parse: boolean): Replayer {
  const stmt = raw.prepare(`SELECT * FROM events WHERE ifnull(session_id, '') = ? ORDER BY seq`);
  return async (expected, sample) => {
    let n = 0;
    let check = 0;
    for (const row of stmt.iterate(REPLAY_SESSION) as IterableIterator<{ seq: number; data: string }>) {
      check += row.seq;
      if (parse) check += (JSON.parse(row.data) as object) ? 1 : 0;
      if (++n % MEMORY_SAMPLE_EVERY === 0) sample();
    }
    if (n !== expected || check === 0) throw new Error(`bench: raw replay read ${n} of ${expected}`);
    return n;
  };
}

async function timeReplay(replay: Replayer, expected: number): Promise<ReplayRun> {
  const mem = new MemoryPeak();
  const t0 = now();
  const n = await replay(expected, () => mem.sample());
  const elapsed = now() - t0;
  mem.sample();
  return { events: n, perSecond: n / (elapsed / 1000), peakHeap: mem.peakHeap, peakRss: mem.peakRss };
}

/** Retained heap during a replay: GC + heapUsed every LIVE_SAMPLE_EVERY events (untimed). */
async function liveHeap(replay: Replayer, expected: number): Promise<number> {
  const live = new LiveHeap();
  let k = 0;
  await replay(expected, () => {
    if (++k % (LIVE_SAMPLE_EVERY / MEMORY_SAMPLE_EVERY) === 0) live.sample();
  });
  return live.peak;
}

interface ReplayResult {
  methods: { name: string; run: ReplayRun; small: ReplayRun | undefined; liveSmall: number | undefined; liveLarge: number | undefined }[];
}

async function benchReplay(log: (l: string) => void): Promise<ReplayResult> {
  const tmp = tempDir();
  try {
    const t0 = now();
    const large = buildReplayStore(tmp.file('loom-100k.db'), REPLAY_EVENTS, 7);
    const small = buildReplayStore(tmp.file('loom-10k.db'), REPLAY_SMALL_EVENTS, 8);
    large.db.pragma('wal_checkpoint(TRUNCATE)');
    small.db.pragma('wal_checkpoint(TRUNCATE)');
    const raw = buildReplayRaw(tmp.file('raw-100k.db'), large.path);
    raw.pragma('wal_checkpoint(TRUNCATE)');
    log(`replay: built ${fmtNum(REPLAY_EVENTS)} + ${fmtNum(REPLAY_SMALL_EVENTS)} event logs in ${fmtMs(now() - t0)}`);

    const methods: { name: string; large: Replayer; small?: Replayer }[] = [
      { name: `store.read paged (limit ${REPLAY_PAGE})`, large: pagedReplayer(large), small: pagedReplayer(small) },
      { name: `store.tail (limit ${REPLAY_PAGE}, abort at end)`, large: tailReplayer(large), small: tailReplayer(small) },
      { name: 'raw SELECT … ORDER BY seq .iterate()', large: rawReplayer(raw, false) },
      { name: 'raw .iterate() + JSON.parse(data)', large: rawReplayer(raw, true) },
    ];
    for (const m of methods) {
      await timeReplay(m.small ?? m.large, m.small ? REPLAY_SMALL_EVENTS : REPLAY_EVENTS); // warm-up
    }
    const runs = methods.map(() => [] as ReplayRun[]);
    const smallRuns = methods.map(() => [] as ReplayRun[]);
    for (let r = 0; r < REPLAY_RUNS; r++) {
      for (let j = 0; j < methods.length; j++) {
        runs[j]!.push(await timeReplay(methods[j]!.large, REPLAY_EVENTS));
        const s = methods[j]!.small;
        if (s) smallRuns[j]!.push(await timeReplay(s, REPLAY_SMALL_EVENTS));
      }
    }
    const pick = (rs: ReplayRun[]): ReplayRun => ({
      events: rs[0]!.events,
      perSecond: median(rs.map((x) => x.perSecond)),
      peakHeap: Math.max(...rs.map((x) => x.peakHeap)),
      peakRss: Math.max(...rs.map((x) => x.peakRss)),
    });
    const out: ReplayResult = { methods: [] };
    for (let j = 0; j < methods.length; j++) {
      const m = methods[j]!;
      out.methods.push({
        name: m.name,
        run: pick(runs[j]!),
        small: m.small ? pick(smallRuns[j]!) : undefined,
        liveSmall: m.small && gcAvailable() ? await liveHeap(m.small, REPLAY_SMALL_EVENTS) : undefined,
        liveLarge: m.small && gcAvailable() ? await liveHeap(m.large, REPLAY_EVENTS) : undefined,
      });
    }
    for (let j = 0; j < methods.length; j++) {
      const rates = runs[j]!.map((x) => x.perSecond);
      log(`replay ${methods[j]!.name}: median ${fmtNum(median(rates))}/s (runs ${fmtNum(Math.min(...rates))}–${fmtNum(Math.max(...rates))})`);
    }
    large.close();
    small.close();
    raw.close();
    return out;
  } finally {
    tmp.cleanup();
  }
}

// ---- the suite -----------------------------------------------------------------------------------

async function run(log: (line: string) => void): Promise<SuiteReport> {
  const started = now();
  const request = benchSingle('request', log);
  const owner = benchSingle('owner', log);
  const deltas = await benchDeltas(log);
  const flush = benchFlush(log);
  const paced = await benchPaced(log);
  const barrier = await benchBarrier(log);
  const replay = await benchReplay(log);
  log(`store suite measured in ${((now() - started) / 1000).toFixed(1)} s`);

  const tables: Table[] = [];
  const cols = ['measurement', 'Loom', 'raw baseline', 'Loom / raw'];

  tables.push({
    title: 'Appends (one transaction per commit; rates are medians of timed runs)',
    columns: cols,
    rows: [
      ['single request event (`compaction.requested`), commits/s', fmtNum(request.loom.perSecond), fmtNum(request.raw.perSecond), fmtRatio(request.loom.perSecond / request.raw.perSecond)],
      ['  latency p50 / p99', `${fmtMs(request.loom.p50)} / ${fmtMs(request.loom.p99)}`, `${fmtMs(request.raw.p50)} / ${fmtMs(request.raw.p99)}`, fmtRatio(request.loom.p50 / request.raw.p50)],
      ['single owner event (`turn.started`, fenced), commits/s', fmtNum(owner.loom.perSecond), fmtNum(owner.raw.perSecond), fmtRatio(owner.loom.perSecond / owner.raw.perSecond)],
      ['  latency p50 / p99', `${fmtMs(owner.loom.p50)} / ${fmtMs(owner.loom.p99)}`, `${fmtMs(owner.raw.p50)} / ${fmtMs(owner.raw.p99)}`, fmtRatio(owner.loom.p50 / owner.raw.p50)],
      ['batched deltas, delta text bytes/s', fmtBytesRate(deltas.loom.bytesPerSecond), fmtBytesRate(deltas.raw.bytesPerSecond), fmtRatio(deltas.loom.bytesPerSecond / deltas.raw.bytesPerSecond)],
      ['batched deltas, deltas/s (raw: rows/s)', fmtNum(deltas.loom.deltasPerSecond), fmtNum(deltas.raw.deltasPerSecond), fmtRatio(deltas.loom.deltasPerSecond / deltas.raw.deltasPerSecond)],
      [`  slowest ${fmtNum(DELTA_WINDOW)}-delta window, deltas/s`, fmtNum(deltas.slowestLoomWindow), fmtNum(deltas.slowestRawWindow), fmtRatio(deltas.slowestLoomWindow / deltas.slowestRawWindow)],
      ['  vs raw without the (session, seq) index: bytes/s', fmtBytesRate(deltas.loom.bytesPerSecond), fmtBytesRate(deltas.rawNoIndex.bytesPerSecond), fmtRatio(deltas.loom.bytesPerSecond / deltas.rawNoIndex.bytesPerSecond)],
      ['  vs raw without the index: slowest window, deltas/s', fmtNum(deltas.slowestLoomWindow), fmtNum(deltas.slowestRawNoIndexWindow), fmtRatio(deltas.slowestLoomWindow / deltas.slowestRawNoIndexWindow)],
      ['  per run: deltas / text', `${fmtNum(deltas.loom.deltas)} / ${fmtBytes(deltas.loom.bytes)}`, `${fmtNum(deltas.raw.deltas)} / ${fmtBytes(deltas.raw.bytes)}`, ''],
      ['  per run: commits / events (rows) written', `${fmtNum(deltas.loom.commits)} / ${fmtNum(deltas.loom.events)}`, `${fmtNum(deltas.raw.commits)} / ${fmtNum(deltas.raw.events)}`, ''],
      ['  deltas merged per event', fmtNum(deltas.loom.deltas / deltas.loom.events, 1), '1.0', ''],
    ],
  });

  tables.push({
    title: `Cost of one delta flush with ${DELTA_STREAMS} busy sessions (one ${FLUSH_TOKENS_PER_SEGMENT}-token segment each; ${FLUSH_ROUNDS} rounds)`,
    columns: ['measurement', 'flushDeltas()', 'one store.append of the same events', 'flushDeltas / grouped'],
    rows: [
      ['commits per flush', fmtNum(flush.flush.commits), fmtNum(flush.grouped.commits), ''],
      ['latency p50 / p99', `${fmtMs(flush.flush.p50)} / ${fmtMs(flush.flush.p99)}`, `${fmtMs(flush.grouped.p50)} / ${fmtMs(flush.grouped.p99)}`, fmtRatio(flush.flush.p50 / flush.grouped.p50)],
      [`share of one core at one flush per ${DELTA_FLUSH_INTERVAL_MS} ms (p50)`, `${((100 * flush.flush.p50) / DELTA_FLUSH_INTERVAL_MS).toFixed(0)}%`, `${((100 * flush.grouped.p50) / DELTA_FLUSH_INTERVAL_MS).toFixed(0)}%`, ''],
    ],
  });

  tables.push({
    title: `Paced streaming: ${PACED_STREAMS} streams × ${PACED_TOKENS_PER_SECOND} tokens/s for ${PACED_SECONDS} s (store flushes by its own timer)`,
    columns: ['measurement', 'value'],
    rows: [
      ['deltas/s offered', fmtNum(paced.deltasPerSecond)],
      ['events/s written (merged)', fmtNum(paced.eventsPerSecond)],
      ['commits/s', fmtNum(paced.commitsPerSecond)],
      ['CPU (user+sys) / wall, with the store', `${(100 * paced.cpuShare).toFixed(0)}%`],
      ['CPU / wall, same generator without the store', `${(100 * paced.idleCpuShare).toFixed(0)}%`],
    ],
  });

  tables.push({
    title: 'Barrier (`attempt.dispatched`; synchronous=FULL for the barrier commit)',
    columns: ['measurement', 'barrier (FULL)', 'NORMAL', 'barrier / NORMAL'],
    rows: [
      ['Loom commits/s', fmtNum(barrier.barrier.perSecond), fmtNum(barrier.normal.perSecond), fmtRatio(barrier.barrier.perSecond / barrier.normal.perSecond)],
      ['Loom latency p50', fmtMs(barrier.barrier.p50), fmtMs(barrier.normal.p50), fmtRatio(barrier.barrier.p50 / barrier.normal.p50)],
      ['Loom latency p99', fmtMs(barrier.barrier.p99), fmtMs(barrier.normal.p99), fmtRatio(barrier.barrier.p99 / barrier.normal.p99)],
      ['raw commits/s', fmtNum(barrier.rawFull.perSecond), fmtNum(barrier.rawNormal.perSecond), fmtRatio(barrier.rawFull.perSecond / barrier.rawNormal.perSecond)],
      ['raw latency p50 / p99', `${fmtMs(barrier.rawFull.p50)} / ${fmtMs(barrier.rawFull.p99)}`, `${fmtMs(barrier.rawNormal.p50)} / ${fmtMs(barrier.rawNormal.p99)}`, fmtRatio(barrier.rawFull.p50 / barrier.rawNormal.p50)],
      ['Loom / raw commits/s', fmtRatio(barrier.barrier.perSecond / barrier.rawFull.perSecond), fmtRatio(barrier.normal.perSecond / barrier.rawNormal.perSecond), ''],
    ],
  });

  const rawScan = replay.methods[2]!.run;
  const fmtLive = (b: number | undefined) => (b === undefined ? 'n/a' : fmtBytes(b));
  tables.push({
    title: `Replay of ${fmtNum(REPLAY_EVENTS)} events (memory: growth over a GC'd baseline; peak = sampled every ${fmtNum(MEMORY_SAMPLE_EVERY)} events, live = after a full GC every ${fmtNum(LIVE_SAMPLE_EVERY)})`,
    columns: ['method', 'events/s', 'vs raw scan', 'peak heap Δ', 'peak RSS Δ', 'peak heap Δ at 10k', 'live heap Δ 10k → 100k'],
    rows: replay.methods.map((m) => [
      m.name,
      fmtNum(m.run.perSecond),
      fmtRatio(m.run.perSecond / rawScan.perSecond),
      fmtBytes(m.run.peakHeap),
      fmtBytes(m.run.peakRss),
      m.small ? fmtBytes(m.small.peakHeap) : '—',
      m.liveSmall !== undefined || m.liveLarge !== undefined ? `${fmtLive(m.liveSmall)} → ${fmtLive(m.liveLarge)}` : '—',
    ]),
  });

  const paged = replay.methods[0]!;
  const tail = replay.methods[1]!;
  const bounded = (m: typeof paged) => m.liveSmall !== undefined && m.liveLarge !== undefined && m.liveLarge <= m.liveSmall + LIVE_HEAP_GROWTH_SLACK;
  const rawBest = Math.max(deltas.raw.bytesPerSecond, deltas.rawNoIndex.bytesPerSecond);
  const targets: TargetResult[] = [
    {
      name: 'batched delta appends, bytes/s vs raw batched insert (the faster raw variant)',
      measured: fmtRatio(deltas.loom.bytesPerSecond / rawBest),
      target: `≥ ${fmtRatio(TARGET_DELTA_BYTES_RATIO)}`,
      pass: deltas.loom.bytesPerSecond / rawBest >= TARGET_DELTA_BYTES_RATIO,
    },
    {
      name: `batched delta appends, sustained deltas/s (slowest ${fmtNum(DELTA_WINDOW)}-delta window)`,
      measured: fmtNum(deltas.slowestLoomWindow),
      target: `≥ ${fmtNum(TARGET_DELTAS_PER_SECOND)}`,
      pass: deltas.slowestLoomWindow >= TARGET_DELTAS_PER_SECOND,
    },
    {
      name: 'paged replay events/s vs raw scan',
      measured: fmtRatio(paged.run.perSecond / rawScan.perSecond),
      target: `≥ ${fmtRatio(TARGET_REPLAY_RATIO)}`,
      pass: paged.run.perSecond / rawScan.perSecond >= TARGET_REPLAY_RATIO,
    },
    {
      name: 'replay memory does not grow with log length (live heap, 10k → 100k, read and tail)',
      measured: `${fmtLive(paged.liveSmall)} → ${fmtLive(paged.liveLarge)}; ${fmtLive(tail.liveSmall)} → ${fmtLive(tail.liveLarge)}`,
      target: `100k ≤ 10k + ${fmtBytes(LIVE_HEAP_GROWTH_SLACK)}`,
      pass: bounded(paged) && bounded(tail),
    },
  ];

  const notes = [
    `Baseline: a plain better-sqlite3 file with the \`events\` table's columns and unique index, WAL, synchronous=NORMAL; one prepared INSERT in a \`db.transaction(...).immediate()\`. Each measurement opens fresh files in os.tmpdir(); Loom and baseline runs alternate so both see the same machine noise.`,
    `Single appends: ${fmtNum(SINGLE_WARMUP_COMMITS)} warm-up then ${SINGLE_RUNS} × ${fmtNum(SINGLE_COMMITS)} commits. Loom validates with zod, computes seq (max(seq) lookup), fences owner events (lease lookup) and updates projections (sessions row, and the activity for \`turn.started\`) in the same transaction; the raw row carries the same JSON.`,
    `Batched deltas: ${DELTA_STREAMS} streams × ${fmtNum(DELTA_TOKENS)} tokens (raw baseline: × ${fmtNum(RAW_DELTA_TOKENS)}) of ${TOKEN_CHARS_MIN}–${TOKEN_CHARS_MAX} ASCII chars, interleaved round-robin over ${DELTA_STREAMS} sessions (first quarter of each stream a reasoning part, then a text part), ${DELTA_RUNS} timed runs after a ${DELTA_WARMUP_TOKENS}-token warm-up. Loom flushes by its own triggers (${fmtBytes(DELTA_BATCH_BYTES_MAX)} per session, ${DELTA_FLUSH_INTERVAL_MS} ms timer; the loop yields to the event loop every ${DELTA_YIELD_EVERY} deltas so the timer fires) and a final flushDeltas(); the raw baseline inserts one row per delta, ${RAW_ROWS_PER_TXN} rows per transaction, yielding at the same cadence. Bytes are delta text bytes; commits counted through store.changes. The raw table with the \`events\` unique (session, seq) index is the like-for-like baseline; 100 interleaved sessions make every raw transaction touch ~100 index leaf pages, so the index-less variant is shown too and the target is judged against whichever raw variant is faster.`,
    `Flush cost: ${DELTA_STREAMS} sessions each buffer one segment of ${FLUSH_TOKENS_PER_SEGMENT} tokens, then \`flushDeltas()\` (one transaction per session, as the ${DELTA_FLUSH_INTERVAL_MS} ms timer does) is timed against one \`store.append\` of the same ${DELTA_STREAMS} merged events (one transaction), alternating, after ${FLUSH_WARMUP_ROUNDS} warm-up rounds.`,
    `Paced streaming: ${PACED_STREAMS} sessions each receive ${PACED_TOKENS_PER_SECOND} tokens/s from a ${PACED_TICK_MS} ms interval timer for ${PACED_SECONDS} s; the store flushes by its ${DELTA_FLUSH_INTERVAL_MS} ms timer (one transaction per session). CPU is process.cpuUsage() over wall time, so it includes SQLite's WAL writes on this thread.`,
    `Barrier: ${BARRIER_RUNS} × ${fmtNum(BARRIER_COMMITS)} \`attempt.dispatched\` appends each way after ${BARRIER_WARMUP_COMMITS} warm-up; the raw rows use a connection fixed at synchronous=FULL or NORMAL. p50/p99 are over every timed commit. The temp dir is on the machine's disk (fsync is real).`,
    `Replay: a session of ${fmtNum(REPLAY_EVENTS)} (and ${fmtNum(REPLAY_SMALL_EVENTS)}) events, text.delta rows of ${REPLAY_DELTA_CHARS_MIN}–${REPLAY_DELTA_CHARS_MAX} chars plus a turn.started every 50th, inserted directly and checkpointed; the raw file holds a copy of the same rows. ${REPLAY_RUNS} timed runs per method after a warm-up. Store reads parse \`data\` (JSON.parse + upcast); the raw scan does not — the "+ JSON.parse" row shows that share of the cost.`,
    gcAvailable()
      ? 'Peak heap Δ includes young-generation garbage not yet collected (bounded by the semi-space size, not by log length); live heap Δ is measured after forced full GCs and is the retained memory.'
      : 'Run without --expose-gc: live heap figures are not available.',
  ];
  return { tables, targets, notes };
}

export const suite: Suite = { name: 'store', title: 'Store', run };
