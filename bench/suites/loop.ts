/**
 * Session-loop suite: the runtime around provider turns, measured in one run beside baselines
 * taken in the same run against the same scripted OpenAI-compatible server.
 *
 * The scripted server runs in a CHILD process (this file started with `--loop-scripted-server`),
 * so the model's side of the conversation does not share an event loop with Loom or with the
 * baseline client. It answers by the request: the last user message says `tools=N`; until N tool
 * results follow that message it streams one `read` call of `notes.txt`, then a ~100-character text.
 *
 * 1. Per-turn overhead: a real temp SQLite Store, Coordinator, the real openai provider and the
 *    `read` tool. Each activity is one input that makes two provider turns (a `read` call, then the
 *    answer). A turn's time is measured on the wall clock in this process: turn 1 from just before
 *    `admitInput` to the moment turn 2's `turn.started` is appended; turn 2 from there to the
 *    resolution of `coordinator.runUntilQuiet` (the activity settled and the session idle). Each
 *    turn is paired with a raw `undici.request` posting the very body Loom sent for that turn
 *    (captured from the provider call and serialised outside the timing) and reading the stream to
 *    its end. Overhead = Loom turn − its raw request.
 * 2. Many sessions: 1,000 sessions owned by one Coordinator; one-turn text inputs arrive open-loop at
 *    a fixed rate (latency counted from the scheduled arrival, so a stalled loop is not hidden);
 *    the raw baseline is the same schedule of raw requests. The rate steps up until it is not
 *    sustained.
 * 3. One-shot `loom run`: the real CLI as a child process (fresh LOOM_HOME), 10 `read` turns and
 *    an answer; wall time and peak RSS (GNU time's %M) vs `node -e ""`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { request as undiciRequest } from 'undici';
import { Coordinator } from '../../actors/coordinator.js';
import { defaultSystemPrompt } from '../../cli/runtime.js';
import { buildChatCompletionsBody } from '../../llm/openai.js';
import { createProviderResolver } from '../../llm/resolve.js';
import type { Provider, ProviderRequest } from '../../llm/types.js';
import { resolveConfig } from '../../services/config.js';
import { Store, type AnyEnvelope } from '../../store/index.js';
import { startScriptedOpenAIServer, type RecordedRequest, type ScriptedTurn } from '../../test/fixtures/scripted-openai-server.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import { fmtBytes, fmtMs, fmtNum, fmtRatio, median, now, quantile, tempDir, type Suite, type SuiteReport, type Table, type TargetResult } from '../lib.js';

// ---- bounds --------------------------------------------------------------------------------------

/** Part 1: activities (two provider turns each) per session, sessions warmed up and timed. */
const TURN_ACTIVITIES_PER_SESSION = 10;
const TURN_WARMUP_SESSIONS = 2;
const TURN_SESSIONS = 10; // 10 sessions x 10 activities x 2 turns = 200 timed turns
const TURN_TARGET_P50_MS = 2;

/** Part 2: open sessions, offered rates (turns/s), seconds per step. */
const MANY_SESSIONS = 1_000;
const MANY_RATES = [50, 100, 200, 400, 800];
/** Tried (downwards) only when the first rate is not sustained, so a sustained rate is found. */
const MANY_FALLBACK_RATES = [25, 10, 5];
const MANY_STEP_SECONDS = 3;
const MANY_RAW_STEP_SECONDS = 2;
/** A step that has not finished this long after its last arrival is cut off (and not sustained). */
const MANY_DRAIN_TIMEOUT_MS = 5_000;
const MANY_WARMUP_INPUTS = 10;
/** Diagnostic ladder with only this many sessions live (the rest released), same rates. */
const FEW_SESSIONS = 20;
/** Sustained: achieved ≥ this share of offered … */
const MANY_SUSTAINED_SHARE = 0.95;
/** … and p99 bounded: at most this, and the last third's p99 ≤ 2 × the first third's + 50 ms. */
const MANY_P99_BOUND_MS = 500;
const MANY_TARGET_P99_OVERHEAD_MS = 20;
/** Part 2 gives up stepping up once this much time has gone (the brief: under ~90 s). */
const MANY_BUDGET_MS = 75_000;

/** Part 3: timed runs (after one warm-up run each), tool turns. */
const ONESHOT_RUNS = 5;
const ONESHOT_TOOL_TURNS = 10;
const ONESHOT_TARGET_WALL_MS = 600;
const ONESHOT_TARGET_RSS_BYTES = 120 * 1024 * 1024;

/** The scripted answer text (streamed 4 characters per chunk, as the server does by default). */
const ANSWER = 'Done: the notes list three releases; the latest, v0.3, adds steering and a durable event log.';
const NOTES = Array.from({ length: 20 }, (_, i) => `- note ${i + 1}: release ${Math.floor(i / 5)}.${i % 5} shipped a small fix`).join('\n') + '\n';
const SERVER_FLAG = '--loop-scripted-server';

// ---- the scripted server (child process) ----------------------------------------------------------

/** What the scripted model does with a request: `tools=N` in the last user message asks for N reads. */
export function respond(request: RecordedRequest): ScriptedTurn {
  const messages = (request.body as { messages?: { role?: string; content?: unknown }[] } | null)?.messages ?? [];
  let lastUser = -1;
  for (let i = 0; i < messages.length; i++) if (messages[i]!.role === 'user') lastUser = i;
  const text = lastUser >= 0 && typeof messages[lastUser]!.content === 'string' ? (messages[lastUser]!.content as string) : '';
  const wanted = Number(/\btools=(\d+)/.exec(text)?.[1] ?? 0);
  let results = 0;
  for (let i = lastUser + 1; i < messages.length; i++) if (messages[i]!.role === 'tool') results++;
  if (results < wanted) return { toolCalls: [{ name: 'read', arguments: { path: 'notes.txt' } }] };
  return { text: ANSWER };
}

async function serveForever(): Promise<void> {
  const server = await startScriptedOpenAIServer({ respond });
  process.stdout.write(`${server.url}\n`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.once('disconnect', stop);
}

interface ServerChild {
  url: string;
  close(): Promise<void>;
}

async function startServerChild(): Promise<ServerChild> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url), SERVER_FLAG], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl).trim());
    });
    child.once('exit', (code) => reject(new Error(`bench: the scripted server exited (${code}) before listening`)));
    child.once('error', reject);
  });
  return {
    url,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

// ---- a raw request (the baseline) ----------------------------------------------------------------

/** One raw POST with undici's global dispatcher (the one Loom's provider uses), body read to the end. */
async function rawRequest(url: string, body: string): Promise<number> {
  const t0 = now();
  const res = await undiciRequest(`${url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  let bytes = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) bytes += chunk.length;
  const elapsed = now() - t0;
  if (res.statusCode !== 200 || bytes === 0) throw new Error(`bench: raw request got ${res.statusCode} with ${bytes} bytes`);
  return elapsed;
}

/** fmtMs that keeps the sign of a difference. */
const fmtDiff = (ms: number): string => (ms < 0 ? `−${fmtMs(-ms)}` : fmtMs(ms));

const wireBody = (r: ProviderRequest): string => JSON.stringify(buildChatCompletionsBody(r, 'max_tokens'));

// ---- a Loom runtime wired like the CLI's ---------------------------------------------------------

interface Loom {
  store: Store;
  coordinator: Coordinator;
  location: string;
  /** Provider requests made since the last reset (captured by reference, serialised later). */
  captured: ProviderRequest[];
  /** Timings of store.transaction calls (the session steps), while `stats` is set. */
  stats: StepStats | null;
  /** Wall times at which `turn.started` events were appended, while set. */
  turnMarks: number[] | null;
  /** Change notifications (= commits through this store), since open. */
  notifications: number;
  /** (label, wall time) of every appended non-delta event and every barrier commit, while set. */
  timeline: [string, number][] | null;
  newSession(): string;
  /** `coordinator.own`, failing loudly when the session cannot be owned. */
  own(sessionId: string): void;
  close(): void;
}

interface StepStats {
  barrierSteps: number;
  barrierMs: number;
  steps: number;
  stepMs: number;
  barrierTimes: number[];
}

function openLoom(dir: string, url: string): Loom {
  const store = Store.open(join(dir, 'loom.db'));
  const location = join(dir, 'project');
  mkdirSync(location, { recursive: true });
  writeFileSync(join(location, 'notes.txt'), NOTES);
  const config = resolveConfig({ version: 2 });
  const tools = createDefaultRegistry();
  const resolve = createProviderResolver(config, { OPENAI_BASE_URL: url });
  const systemPrompt = defaultSystemPrompt(location, new Date());
  const loom: Loom = {
    store,
    coordinator: undefined as unknown as Coordinator,
    location,
    captured: [],
    stats: null,
    turnMarks: null,
    notifications: 0,
    timeline: null,
    newSession() {
      const sessionId = store.ids.next('ses');
      store.append({ sessionId, type: 'session.created', data: { location, model: 'openai/test' } });
      return sessionId;
    },
    own(sessionId) {
      if (!loom.coordinator.own(sessionId)) throw new Error(`bench: could not own ${sessionId}`);
    },
    close() {
      loom.coordinator.shutdown();
      store.close();
    },
  };
  // The real provider, with its requests captured by reference (one array push per request).
  const wrapped = new Map<Provider, Provider>();
  const resolveProvider = (ref: string) => {
    const r = resolve(ref);
    let p = wrapped.get(r.provider);
    if (!p) {
      const inner = r.provider;
      p = { id: inner.id, idempotent: inner.idempotent, stream: (req) => (loom.captured.push(req), inner.stream(req)) };
      wrapped.set(inner, p);
    }
    return { provider: p, model: r.model };
  };
  const notify = store.changes.notify.bind(store.changes);
  store.changes.notify = () => {
    loom.notifications++;
    notify();
  };
  // Bench-only instrumentation on this instance: when each turn starts, and the cost of the steps.
  const append = store.append.bind(store);
  store.append = ((requests, options) => {
    const out = append(requests, options);
    const marks = loom.turnMarks;
    if (marks) for (const e of out) if (e.type === 'turn.started') marks.push(now());
    const timeline = loom.timeline;
    if (timeline) {
      const t = now();
      for (const e of out) if (e.type !== 'text.delta' && e.type !== 'reasoning.delta') timeline.push([e.type, t]);
    }
    return out;
  }) as Store['append'];
  const transaction = store.transaction.bind(store);
  store.transaction = <T>(fn: () => T, options: { barrier?: boolean } = {}): T => {
    const stats = loom.stats;
    if (!stats) return transaction(fn, options);
    const t0 = now();
    try {
      return transaction(fn, options);
    } finally {
      const d = now() - t0;
      if (options.barrier) loom.timeline?.push(['(barrier commit done)', now()]);
      if (options.barrier) {
        stats.barrierSteps++;
        stats.barrierMs += d;
        stats.barrierTimes.push(d);
      } else {
        stats.steps++;
        stats.stepMs += d;
      }
    }
  };
  loom.coordinator = new Coordinator({
    store,
    deps: () => ({ config, home: tmpdir(), tools, resolveProvider, systemPrompt }),
    onSessionFailure: (sessionId, error) => {
      throw new Error(`bench: session ${sessionId} failed: ${String(error)}`);
    },
  });
  return loom;
}

function allEvents(store: Store, sessionId: string): AnyEnvelope[] {
  store.flushSession(sessionId);
  const out: AnyEnvelope[] = [];
  for (let page = store.read(sessionId); page.length > 0; page = store.read(sessionId, { after: page.at(-1)!.seq })) out.push(...page);
  return out;
}

/** Every activity of the session settled `completed` and every tool call settled `ok`. */
function checkSession(store: Store, sessionId: string, activities: number, toolCalls: number): void {
  const events = allEvents(store, sessionId);
  const settled = events.filter((e) => e.type === 'activity.settled');
  const bad = settled.filter((e) => (e.data as { status: string }).status !== 'completed');
  const tools = events.filter((e) => e.type === 'tool.settled');
  const badTools = tools.filter((e) => (e.data as { status: string }).status !== 'ok');
  if (settled.length !== activities || bad.length > 0 || tools.length !== toolCalls || badTools.length > 0) {
    throw new Error(
      `bench: session ${sessionId}: ${settled.length}/${activities} activities settled (${bad.map((e) => JSON.stringify(e.data)).join('; ')}), ` +
        `${tools.length}/${toolCalls} tool calls (${badTools.map((e) => JSON.stringify(e.data)).join('; ')})`,
    );
  }
}

// ---- part 1: per-turn overhead --------------------------------------------------------------------

interface TurnResult {
  loom: number[];
  raw: number[];
  over: number[];
  /** Per kind: 0 = the tool turn (incl. the `read`), 1 = the answer turn. */
  byKind: { loom: number[]; raw: number[]; over: number[] }[];
  stats: StepStats;
  turns: number;
  requestBytes: { first: number; last: number };
  /** Per milestone (event type and its occurrence in the activity): times since the admission. */
  timeline: Map<string, number[]>;
  /** The `read` tool alone through the registry (same file), per call. */
  readTool: number[];
}

async function benchTurns(url: string, log: (l: string) => void): Promise<TurnResult> {
  const tmp = tempDir('loom-bench-loop-');
  const loom = openLoom(tmp.dir, url);
  const { store, coordinator } = loom;
  const out: TurnResult = {
    loom: [],
    raw: [],
    over: [],
    byKind: [0, 1].map(() => ({ loom: [], raw: [], over: [] })),
    stats: { barrierSteps: 0, barrierMs: 0, steps: 0, stepMs: 0, barrierTimes: [] },
    turns: 0,
    requestBytes: { first: 0, last: 0 },
    timeline: new Map(),
    readTool: [],
  };
  try {
    for (let s = 0; s < TURN_WARMUP_SESSIONS + TURN_SESSIONS; s++) {
      const timed = s >= TURN_WARMUP_SESSIONS;
      const sessionId = loom.newSession();
      loom.own(sessionId);
      for (let a = 0; a < TURN_ACTIVITIES_PER_SESSION; a++) {
        loom.captured.length = 0;
        const marks: number[] = [];
        loom.turnMarks = marks;
        loom.stats = timed ? out.stats : null;
        const timeline: [string, number][] = [];
        loom.timeline = timeline;
        const t0 = now();
        store.admitInput(sessionId, { mode: 'steer', text: `tools=1 What do the notes say? (#${a})` });
        await coordinator.runUntilQuiet(sessionId);
        const t1 = now();
        loom.turnMarks = null;
        loom.stats = null;
        loom.timeline = null;
        const failure = coordinator.get(sessionId)?.failure;
        if (failure !== undefined) throw failure;
        if (marks.length !== 2 || loom.captured.length !== 2) {
          throw new Error(`bench: expected 2 turns and 2 requests per activity, saw ${marks.length} and ${loom.captured.length}`);
        }
        const turns = [marks[1]! - t0, t1 - marks[1]!];
        const bodies = loom.captured.map(wireBody);
        const raws: number[] = [];
        for (const body of bodies) raws.push(await rawRequest(url, body));
        if (!timed) continue;
        if (out.requestBytes.first === 0) out.requestBytes.first = Buffer.byteLength(bodies[0]!);
        out.requestBytes.last = Buffer.byteLength(bodies[1]!);
        for (let k = 0; k < 2; k++) {
          const d = turns[k]! - raws[k]!;
          out.loom.push(turns[k]!);
          out.raw.push(raws[k]!);
          out.over.push(d);
          out.byKind[k]!.loom.push(turns[k]!);
          out.byKind[k]!.raw.push(raws[k]!);
          out.byKind[k]!.over.push(d);
        }
        out.turns += 2;
        const seen = new Map<string, number>();
        for (const [type, t] of [...timeline, ['runUntilQuiet resolved', t1] as [string, number]]) {
          const k = (seen.get(type) ?? 0) + 1;
          seen.set(type, k);
          const label = `${type} (${k})`;
          const list = out.timeline.get(label) ?? [];
          list.push(t - t0);
          out.timeline.set(label, list);
        }
      }
      coordinator.release(sessionId);
      checkSession(store, sessionId, TURN_ACTIVITIES_PER_SESSION, TURN_ACTIVITIES_PER_SESSION);
    }
    // The `read` tool by itself, through a registry like the session's (same file, same location).
    const registry = createDefaultRegistry();
    const ac = new AbortController();
    for (let i = 0; i < 20 + out.turns / 2; i++) {
      const t0 = now();
      await registry.execute('read', { path: 'notes.txt' }, { sessionId: 'ses_bench', activityId: '', callId: `call_${i}`, location: loom.location, home: loom.location, signal: ac.signal, services: {} });
      if (i >= 20) out.readTool.push(now() - t0);
    }
    log(
      `turns: ${out.turns} timed; Loom p50 ${fmtMs(median(out.loom))}, raw p50 ${fmtMs(median(out.raw))}, ` +
        `overhead p50 ${fmtMs(median(out.over))} / p99 ${fmtMs(quantile(out.over, 0.99))}`,
    );
    return out;
  } finally {
    loom.close();
    tmp.cleanup();
  }
}

// ---- part 2: many sessions at a fixed arrival rate ------------------------------------------------

interface OpenLoopResult {
  rate: number;
  offered: number;
  completed: number;
  /** Arrival span / completion span × rate (≈ rate when it keeps up). */
  achieved: number;
  latencies: number[];
  p50: number;
  p99: number;
  p99FirstThird: number;
  p99LastThird: number;
  /** CPU time of this process per turn (user + system). */
  cpuPerTurnMs: number;
  /** Event-loop utilisation of this process over the step. */
  elu: number;
  errors: number;
  firstError: string | undefined;
  timedOut: boolean;
  /** Arrivals stopped early because too many were in flight (the step was clearly overloaded). */
  overloaded: boolean;
}

/**
 * Fires `fire` at `rate` per second for `seconds` (open loop, no coordinated omission: latency is
 * counted from each arrival's scheduled time), then waits for the completions.
 */
function openLoop(rate: number, seconds: number, fire: (index: number) => Promise<void>, maxInFlight = Infinity): Promise<OpenLoopResult> {
  let n = Math.max(2, Math.round(rate * seconds));
  let overloaded = false;
  const interval = 1000 / rate;
  const latencies = new Array<number>(n).fill(NaN);
  const done = new Array<number>(n).fill(NaN);
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const start = now() + 5;
  let issued = 0;
  let completed = 0;
  let errors = 0;
  let firstError: unknown;
  return new Promise((resolve, reject) => {
    let drainTimer: NodeJS.Timeout | undefined;
    const finish = (timedOut: boolean) => {
      if (drainTimer) clearTimeout(drainTimer);
      drainTimer = undefined;
      if (errors > 0 && !timedOut && completed + errors === n && completed === 0) return reject(firstError);
      const cpu = process.cpuUsage(cpu0);
      const elu = performance.eventLoopUtilization(elu0);
      const ok = latencies.filter((x) => Number.isFinite(x));
      const doneOk = done.filter((x) => Number.isFinite(x));
      const arrivalSpan = (n - 1) * interval;
      const completionSpan = doneOk.length > 1 ? Math.max(...doneOk) - Math.min(...doneOk) : Infinity;
      // Unfinished arrivals count as infinitely late.
      const withMissing = latencies.map((x) => (Number.isFinite(x) ? x : Infinity));
      const third = Math.floor(n / 3);
      resolve({
        rate,
        offered: n,
        completed: ok.length,
        achieved: timedOut || ok.length < n ? (ok.length / n) * rate * Math.min(1, arrivalSpan / completionSpan) : rate * Math.min(1, arrivalSpan / completionSpan),
        latencies: ok,
        p50: quantile(withMissing, 0.5),
        p99: quantile(withMissing, 0.99),
        p99FirstThird: quantile(withMissing.slice(0, third), 0.99),
        p99LastThird: quantile(withMissing.slice(n - third), 0.99),
        cpuPerTurnMs: (cpu.user + cpu.system) / 1000 / Math.max(1, ok.length),
        elu: elu.utilization,
        errors,
        firstError: firstError === undefined ? undefined : String(firstError),
        timedOut,
        overloaded,
      });
    };
    const tick = () => {
      const t = now();
      if (issued - completed - errors > maxInFlight) {
        // Little's law: this many in flight means the mean latency is past the bound already.
        overloaded = true;
        n = issued;
        latencies.length = n;
        done.length = n;
        if (completed + errors === n) return finish(false);
      }
      while (issued < n && start + issued * interval <= t) {
        const i = issued++;
        const scheduled = start + i * interval;
        fire(i).then(
          () => {
            const at = now();
            done[i] = at;
            latencies[i] = at - scheduled;
            if (++completed + errors === n) finish(false);
          },
          (error: unknown) => {
            errors++;
            firstError ??= error;
            if (completed + errors === n) finish(false);
          },
        );
      }
      if (issued < n) setTimeout(tick, Math.max(0, start + issued * interval - now()));
      else drainTimer = setTimeout(() => finish(true), MANY_DRAIN_TIMEOUT_MS);
    };
    setTimeout(tick, Math.max(0, start - now()));
  });
}

interface ManyStep {
  rate: number;
  live: number;
  loom: OpenLoopResult;
  raw: OpenLoopResult;
  /** Commits (change notifications) per completed turn. */
  commitsPerTurn: number;
  sustained: boolean;
  why: string;
}

interface ManyResult {
  setupMs: number;
  ownMs: number;
  steps: ManyStep[];
  best: ManyStep | undefined;
  fewSteps: ManyStep[];
  fewBest: ManyStep | undefined;
  requestBytes: number;
  /** One `catchUp()` of every live actor (what each commit triggers through the coordinator). */
  fanOutMs: number;
  /** The coordinator's lease-renewal sweep over every live session. */
  renewMs: number;
}

function judge(r: OpenLoopResult): { sustained: boolean; why: string } {
  if (r.overloaded) return { sustained: false, why: `overloaded: arrivals stopped after ${r.offered} (too many in flight)` };
  if (r.timedOut || r.errors > 0) return { sustained: false, why: r.timedOut ? `${r.offered - r.completed} unfinished ${MANY_DRAIN_TIMEOUT_MS / 1000} s after the last arrival` : `${r.errors} errors (${r.firstError})` };
  if (r.achieved < MANY_SUSTAINED_SHARE * r.rate) return { sustained: false, why: `achieved ${fmtNum(r.achieved)}/s < ${MANY_SUSTAINED_SHARE * 100}% of offered` };
  if (r.p99 > MANY_P99_BOUND_MS) return { sustained: false, why: `p99 ${fmtMs(r.p99)} > ${fmtMs(MANY_P99_BOUND_MS)}` };
  if (r.p99LastThird > 2 * r.p99FirstThird + 50) return { sustained: false, why: `p99 grows over the step (${fmtMs(r.p99FirstThird)} → ${fmtMs(r.p99LastThird)})` };
  return { sustained: true, why: 'sustained' };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function benchMany(url: string, log: (l: string) => void, options: { rates?: number[]; seconds?: number; few?: boolean } = {}): Promise<ManyResult> {
  const started = now();
  const tmp = tempDir('loom-bench-loop-many-');
  const loom = openLoom(tmp.dir, url);
  const { store, coordinator } = loom;
  try {
    const t0 = now();
    const ids: string[] = [];
    const created = [];
    for (let i = 0; i < MANY_SESSIONS; i++) {
      const sessionId = store.ids.next('ses');
      ids.push(sessionId);
      created.push({ sessionId, type: 'session.created' as const, data: { location: loom.location, model: 'openai/test' } });
    }
    store.append(created);
    const t1 = now();

    let live = ids.slice(0, 1);
    const busy = new Set<string>();
    let cursor = 0;
    const loomArrival = async (): Promise<void> => {
      let sessionId: string | undefined;
      for (let k = 0; k < live.length; k++) {
        const id = live[(cursor + k) % live.length]!;
        if (!busy.has(id)) {
          sessionId = id;
          cursor = (cursor + k + 1) % live.length;
          break;
        }
      }
      if (!sessionId) throw new Error('bench: every session is busy');
      busy.add(sessionId);
      try {
        store.admitInput(sessionId, { mode: 'steer', text: 'Say something short.' });
        await coordinator.runUntilQuiet(sessionId);
        const failure = coordinator.get(sessionId)?.failure;
        if (failure !== undefined) throw failure;
      } finally {
        busy.delete(sessionId);
      }
    };

    // Warm-up on one live session (sequential), which also yields the one-turn request body the
    // raw baseline posts.
    loom.own(ids[0]!);
    for (let i = 0; i < MANY_WARMUP_INPUTS; i++) {
      loom.captured.length = 0;
      await loomArrival();
    }
    const body = wireBody(loom.captured.at(-1)!);
    for (let i = 0; i < MANY_WARMUP_INPUTS; i++) await rawRequest(url, body);
    const rawArrival = async (): Promise<void> => {
      await rawRequest(url, body);
    };
    const seconds = options.seconds ?? MANY_STEP_SECONDS;
    // The raw baseline at every rate the ladders may use, measured now, while no other session is
    // live: the coordinator's per-session background work (the lease-renewal sweep) must not land
    // in the baseline's tail.
    const rawByRate = new Map<number, OpenLoopResult>();
    const candidateRates = [...new Set([...(options.rates ?? MANY_RATES), ...(options.rates ? [] : MANY_FALLBACK_RATES)])];
    for (const rate of candidateRates) rawByRate.set(rate, await openLoop(rate, Math.min(seconds, MANY_RAW_STEP_SECONDS), rawArrival));
    log(`many: raw baseline at ${candidateRates.map((r) => `${r}/s p99 ${fmtMs(rawByRate.get(r)!.p99)}`).join(', ')}`);

    const t2 = now();
    for (const id of ids.slice(1)) loom.own(id);
    const t3 = now();
    live = ids;
    log(`many: created ${MANY_SESSIONS} sessions in ${fmtMs(t1 - t0)}, owned ${MANY_SESSIONS - 1} more in ${fmtMs(t3 - t2)}`);

    // What one commit costs through the coordinator's change listener, and the renewal sweep.
    const fanOuts: number[] = [];
    for (let r = 0; r < 5; r++) {
      const f0 = now();
      for (const id of ids) coordinator.get(id)!.catchUp();
      fanOuts.push(now() - f0);
    }
    const renew0 = now();
    (coordinator as unknown as { renewAll(): void }).renewAll();
    const renewMs = now() - renew0;
    log(`many: one catchUp() of every live actor ${fmtMs(median(fanOuts))}; lease renewal sweep ${fmtMs(renewMs)}`);
    for (let i = 0; i < 3; i++) await loomArrival();

    const runStep = async (rate: number, into: ManyStep[]): Promise<ManyStep> => {
      const raw = rawByRate.get(rate) ?? (await openLoop(rate, Math.min(seconds, MANY_RAW_STEP_SECONDS), rawArrival));
      loom.captured.length = 0;
      const n0 = loom.notifications;
      // Stop arriving once more are in flight than the latency bound allows (Little's law), or
      // than there are idle sessions.
      const maxInFlight = Math.max(1, Math.min(Math.ceil(rate * (MANY_P99_BOUND_MS / 1000)), live.length - 1));
      const l = await openLoop(rate, seconds, loomArrival, maxInFlight);
      const commits = loom.notifications - n0;
      loom.captured.length = 0;
      // Let stragglers of a cut-off step finish before the next one.
      for (const t = now(); busy.size > 0; await sleep(20)) {
        if (now() - t > 60_000) throw new Error(`bench: ${busy.size} sessions still busy a minute after a step`);
      }
      const j = judge(l);
      const step: ManyStep = { rate, live: live.length, loom: l, raw, commitsPerTurn: commits / Math.max(1, l.completed), ...j };
      into.push(step);
      log(
        `many (${live.length} live): ${rate}/s offered → ${fmtNum(l.achieved)}/s; Loom p50 ${fmtMs(l.p50)} p99 ${fmtMs(l.p99)}, raw p50 ${fmtMs(raw.p50)} p99 ${fmtMs(raw.p99)}; ` +
          `CPU ${fmtMs(l.cpuPerTurnMs)}/turn (raw ${fmtMs(raw.cpuPerTurnMs)}), ${fmtNum(step.commitsPerTurn, 1)} commits/turn, ELU ${(100 * l.elu).toFixed(0)}% — ${j.why}`,
      );
      return step;
    };
    const ladder = async (rates: number[], fallback: number[], budgetMs: number): Promise<ManyStep[]> => {
      const steps: ManyStep[] = [];
      for (const rate of rates) {
        const step = await runStep(rate, steps);
        if (!step.sustained) break;
        if (now() - started > budgetMs) {
          log('many: time budget reached, not stepping further');
          break;
        }
      }
      if (!steps.some((s) => s.sustained)) {
        for (const rate of fallback) if ((await runStep(rate, steps)).sustained) break;
      }
      return steps;
    };
    const bestOf = (steps: ManyStep[]) => steps.filter((s) => s.sustained).sort((a, b) => b.rate - a.rate)[0];

    const steps = await ladder(options.rates ?? MANY_RATES, options.rates ? [] : MANY_FALLBACK_RATES, MANY_BUDGET_MS * 0.6);
    // Diagnostic: the same ladder with only FEW_SESSIONS live (isolates the cost that grows with live sessions).
    let fewSteps: ManyStep[] = [];
    if (options.few !== false && now() - started < MANY_BUDGET_MS * 0.75) {
      for (const id of ids.slice(FEW_SESSIONS)) coordinator.release(id);
      live = ids.slice(0, FEW_SESSIONS);
      cursor = 0;
      fewSteps = await ladder(options.rates ?? MANY_RATES, [], MANY_BUDGET_MS);
    }
    return {
      setupMs: t1 - t0,
      ownMs: t3 - t2,
      steps,
      best: bestOf(steps),
      fewSteps,
      fewBest: bestOf(fewSteps),
      requestBytes: Buffer.byteLength(body),
      fanOutMs: median(fanOuts),
      renewMs,
    };
  } finally {
    loom.close();
    tmp.cleanup();
  }
}

// ---- part 3: one-shot `loom run` -----------------------------------------------------------------

interface ProcessRun {
  wallMs: number;
  peakRss: number;
}

function projectRoot(): string {
  let dir = import.meta.dirname;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: package.json not found');
    dir = up;
  }
}

const GNU_TIME = '/usr/bin/time';

/** Runs a command to its exit: wall time from spawn to exit, peak RSS from GNU time (or VmHWM polling). */
async function measureProcess(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<ProcessRun & { code: number | null; stdout: string; stderr: string }> {
  const useTime = existsSync(GNU_TIME);
  const timeFile = join(cwd, `.time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const [cmd, ...args] = useTime ? [GNU_TIME, '-o', timeFile, '-f', '%M', ...argv] : argv;
  let hwm = 0;
  const t0 = now();
  const child = spawn(cmd!, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  let poll: NodeJS.Timeout | undefined;
  if (!useTime) {
    poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
      } catch {
        // exited
      }
    }, 2);
  }
  const [code] = (await once(child, 'exit')) as [number | null];
  const wallMs = now() - t0;
  if (poll) clearInterval(poll);
  let peakRss = hwm;
  if (useTime) {
    const text = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1) ?? '';
    rmSync(timeFile, { force: true });
    peakRss = Number(text) * 1024;
    if (!Number.isFinite(peakRss) || peakRss <= 0) throw new Error(`bench: could not read the peak RSS from GNU time: ${text}`);
  }
  return { wallMs, peakRss, code, stdout, stderr };
}

interface OneShotResult {
  loom: ProcessRun;
  node: ProcessRun;
  loomRuns: ProcessRun[];
  nodeRuns: ProcessRun[];
  /** Decomposition rows (startup, imports, database), medians. */
  steps: { name: string; run: ProcessRun }[];
  peakMethod: string;
}

async function benchOneShot(url: string, log: (l: string) => void): Promise<OneShotResult> {
  const root = projectRoot();
  const loomJs = join(root, 'bin', 'loom.js');
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('bench: dist/cli/main.js is missing; run `npm run build` first');
  const importRun = `await import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'cli', 'commands', 'run.js')).href)})`;
  const commands: { name: string; argv: (dir: string) => string[] }[] = [
    { name: 'node -e ""', argv: () => [process.execPath, '-e', ''] },
    { name: '`loom --version` (bin only, no dist)', argv: () => [process.execPath, loomJs, '--version'] },
    { name: 'import the `run` command\'s modules only', argv: () => [process.execPath, '--input-type=module', '-e', importRun] },
    { name: '`loom session ls` (fresh LOOM_HOME: create + migrate)', argv: () => [process.execPath, loomJs, 'session', 'ls'] },
  ];
  const loomRuns: ProcessRun[] = [];
  const stepRuns = commands.map(() => [] as ProcessRun[]);
  const base = { ...process.env };
  delete base.OPENAI_API_KEY;
  delete base.LOOM_MODEL;
  delete base.NODE_OPTIONS;
  for (let r = 0; r <= ONESHOT_RUNS; r++) {
    const timed = r > 0; // the first run of each warms the disk cache
    const home = mkdtempSync(join(tmpdir(), 'loom-bench-home-'));
    const dir = mkdtempSync(join(tmpdir(), 'loom-bench-proj-'));
    try {
      writeFileSync(join(dir, 'notes.txt'), NOTES);
      const env = { ...base, LOOM_HOME: home, OPENAI_BASE_URL: url };
      const prompt = `tools=${ONESHOT_TOOL_TURNS} Read notes.txt and summarise it.`;
      const run = await measureProcess([process.execPath, loomJs, 'run', '--model', 'openai/test', '--dir', dir, prompt], env, dir);
      if (run.code !== 0 || !run.stdout.includes(ANSWER.slice(0, 20))) {
        throw new Error(`bench: loom run exited ${run.code}\nstdout: ${run.stdout.slice(-2000)}\nstderr: ${run.stderr.slice(-2000)}`);
      }
      const db = new Database(join(home, 'loom.db'), { readonly: true });
      try {
        const count = (type: string) => (db.prepare('SELECT count(*) AS n FROM events WHERE type = ?').get(type) as { n: number }).n;
        const turns = count('turn.started');
        const reads = count('tool.settled');
        if (turns !== ONESHOT_TOOL_TURNS + 1 || reads !== ONESHOT_TOOL_TURNS) throw new Error(`bench: loom run made ${turns} turns and ${reads} tool calls`);
      } finally {
        db.close();
      }
      if (timed) loomRuns.push({ wallMs: run.wallMs, peakRss: run.peakRss });
      for (const [i, c] of commands.entries()) {
        const stepHome = mkdtempSync(join(tmpdir(), 'loom-bench-home-'));
        try {
          const m = await measureProcess(c.argv(dir), { ...env, LOOM_HOME: stepHome }, dir);
          if (m.code !== 0) throw new Error(`bench: ${c.name} exited ${m.code}: ${m.stderr.slice(-1000)}`);
          if (timed) stepRuns[i]!.push({ wallMs: m.wallMs, peakRss: m.peakRss });
        } finally {
          rmSync(stepHome, { recursive: true, force: true });
        }
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const pick = (rs: ProcessRun[]): ProcessRun => ({ wallMs: median(rs.map((x) => x.wallMs)), peakRss: median(rs.map((x) => x.peakRss)) });
  const out: OneShotResult = {
    loom: pick(loomRuns),
    node: pick(stepRuns[0]!),
    loomRuns,
    nodeRuns: stepRuns[0]!,
    steps: commands.map((c, i) => ({ name: c.name, run: pick(stepRuns[i]!) })),
    peakMethod: existsSync(GNU_TIME) ? 'GNU time %M' : '/proc/<pid>/status VmHWM polled every 2 ms',
  };
  log(`one-shot: loom run ${fmtMs(out.loom.wallMs)} / ${fmtBytes(out.loom.peakRss)}; ${out.steps.map((x) => `${x.name} ${fmtMs(x.run.wallMs)} / ${fmtBytes(x.run.peakRss)}`).join('; ')}`);
  return out;
}

// ---- the suite -----------------------------------------------------------------------------------

async function run(log: (line: string) => void): Promise<SuiteReport> {
  const load0 = loadavg();
  const server = await startServerChild();
  log(`scripted server (child process) at ${server.url}; load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
  let turns: TurnResult;
  let many: ManyResult;
  let oneShot: OneShotResult;
  try {
    turns = await benchTurns(server.url, log);
    many = await benchMany(server.url, log);
    oneShot = await benchOneShot(server.url, log);
  } finally {
    await server.close();
  }
  const load1 = loadavg();

  const tables: Table[] = [];
  const q = (xs: number[]) => `${fmtMs(quantile(xs, 0.5))} / ${fmtMs(quantile(xs, 0.99))}`;
  const st = turns.stats;
  tables.push({
    title: `Per-turn overhead: ${turns.turns} provider turns (${turns.turns / 2} activities of a \`read\` call + an answer), p50 / p99`,
    columns: ['turn', 'Loom turn', 'raw undici request', 'Loom − raw (paired)', 'Loom / raw (p50)'],
    rows: [
      ['all turns', q(turns.loom), q(turns.raw), q(turns.over), fmtRatio(quantile(turns.loom, 0.5) / quantile(turns.raw, 0.5))],
      ['  tool turn (incl. the `read` tool)', q(turns.byKind[0]!.loom), q(turns.byKind[0]!.raw), q(turns.byKind[0]!.over), fmtRatio(median(turns.byKind[0]!.loom) / median(turns.byKind[0]!.raw))],
      ['  answer turn (incl. settling)', q(turns.byKind[1]!.loom), q(turns.byKind[1]!.raw), q(turns.byKind[1]!.over), fmtRatio(median(turns.byKind[1]!.loom) / median(turns.byKind[1]!.raw))],
      [
        'session steps per turn (mean): barrier / other',
        `${fmtNum(st.barrierSteps / turns.turns, 1)} × ${fmtMs(st.barrierMs / Math.max(1, st.barrierSteps))} / ${fmtNum(st.steps / turns.turns, 1)} × ${fmtMs(st.stepMs / Math.max(1, st.steps))}`,
        '',
        `${fmtMs((st.barrierMs + st.stepMs) / turns.turns)} per turn in steps`,
        '',
      ],
      ['  barrier step (`attempt.dispatched`, synchronous=FULL) p50 / p99', q(st.barrierTimes), '', '', ''],
    ],
  });

  const milestones = [...turns.timeline]
    .filter(([, xs]) => xs.length >= turns.turns / 4) // milestones seen in (nearly) every activity
    .map(([label, xs]) => ({ label, at: median(xs), n: xs.length }))
    .sort((a, b) => a.at - b.at);
  tables.push({
    title: 'Where an activity\'s time goes (median time since the admission at which each event is appended; one activity = tool turn + answer turn)',
    columns: ['milestone (occurrence in the activity)', 'median since admission', 'gap from the previous row'],
    rows: [
      ['`admitInput` called', fmtMs(0), ''],
      ...milestones.map((m, i) => [m.label, fmtMs(m.at), fmtMs(m.at - (i === 0 ? 0 : milestones[i - 1]!.at))]),
      ['(for comparison) raw request p50: tool turn / answer turn', `${fmtMs(median(turns.byKind[0]!.raw))} / ${fmtMs(median(turns.byKind[1]!.raw))}`, ''],
      ['(for comparison) the `read` tool alone through the registry, p50', fmtMs(median(turns.readTool)), ''],
    ],
  });

  const stepRow = (s: ManyStep) => [
    `${fmtNum(s.rate)}/s`,
    `${fmtNum(s.loom.achieved)}/s`,
    `${fmtMs(s.loom.p50)} / ${fmtMs(s.loom.p99)}`,
    `${fmtMs(s.raw.p50)} / ${fmtMs(s.raw.p99)}`,
    `${fmtDiff(s.loom.p50 - s.raw.p50)} / ${fmtDiff(s.loom.p99 - s.raw.p99)}`,
    fmtRatio(s.loom.p99 / s.raw.p99),
    `${fmtMs(s.loom.cpuPerTurnMs)} / ${fmtMs(s.raw.cpuPerTurnMs)}`,
    fmtNum(s.commitsPerTurn, 1),
    `${(100 * s.loom.elu).toFixed(0)}%`,
    s.sustained ? 'yes' : `no: ${s.why}`,
  ];
  const stepColumns = ['offered', 'achieved', 'Loom latency p50 / p99', 'raw latency p50 / p99', 'overhead p50 / p99', 'Loom / raw p99', 'CPU per turn Loom / raw', 'commits per turn', 'Loom ELU', 'sustained'];
  tables.push({
    title: `Many sessions: ${fmtNum(MANY_SESSIONS)} owned by one Coordinator, one-turn text inputs at a fixed rate (${MANY_STEP_SECONDS} s per Loom step, ${MANY_RAW_STEP_SECONDS} s raw)`,
    columns: stepColumns,
    rows: many.steps.map(stepRow),
  });
  if (many.fewSteps.length > 0) {
    tables.push({
      title: `Diagnostic (not a target): the same ladder with only ${FEW_SESSIONS} sessions live (the other ${fmtNum(MANY_SESSIONS - FEW_SESSIONS)} released)`,
      columns: stepColumns,
      rows: many.fewSteps.map(stepRow),
    });
  }
  tables.push({
    title: 'Many sessions: setup and per-commit costs',
    columns: ['measurement', 'value'],
    rows: [
      [`create ${fmtNum(MANY_SESSIONS)} sessions (one append)`, fmtMs(many.setupMs)],
      [`own ${fmtNum(MANY_SESSIONS - 1)} sessions (lease + actor each)`, `${fmtMs(many.ownMs)} (${fmtMs(many.ownMs / (MANY_SESSIONS - 1))} each)`],
      [`coordinator fan-out per commit: \`catchUp()\` of all ${fmtNum(MANY_SESSIONS)} live actors (median of 5)`, `${fmtMs(many.fanOutMs)} (${fmtMs(many.fanOutMs / MANY_SESSIONS)} per actor)`],
      [`lease renewal sweep over ${fmtNum(MANY_SESSIONS)} sessions (one transaction each, every ~5 s)`, fmtMs(many.renewMs)],
      [`highest sustained rate, ${fmtNum(MANY_SESSIONS)} live`, many.best ? `${fmtNum(many.best.rate)} turns/s` : 'none'],
      [`highest sustained rate, ${FEW_SESSIONS} live (diagnostic)`, many.fewSteps.length === 0 ? 'not run' : many.fewBest ? `${fmtNum(many.fewBest.rate)} turns/s` : 'none'],
    ],
  });

  const ratio = (a: number, b: number) => fmtRatio(a / b);
  tables.push({
    title: `One-shot \`loom run\`: ${ONESHOT_TOOL_TURNS} \`read\` turns + an answer, fresh LOOM_HOME (median of ${ONESHOT_RUNS})`,
    columns: ['measurement', 'loom run', 'node -e ""', 'loom / node', 'loom − node'],
    rows: [
      ['wall time (spawn → exit)', fmtMs(oneShot.loom.wallMs), fmtMs(oneShot.node.wallMs), ratio(oneShot.loom.wallMs, oneShot.node.wallMs), fmtDiff(oneShot.loom.wallMs - oneShot.node.wallMs)],
      ['peak RSS', fmtBytes(oneShot.loom.peakRss), fmtBytes(oneShot.node.peakRss), ratio(oneShot.loom.peakRss, oneShot.node.peakRss), fmtBytes(oneShot.loom.peakRss - oneShot.node.peakRss)],
      ['  wall, every run', oneShot.loomRuns.map((r) => fmtMs(r.wallMs)).join(', '), oneShot.nodeRuns.map((r) => fmtMs(r.wallMs)).join(', '), '', ''],
    ],
  });
  tables.push({
    title: 'One-shot decomposition (same runs, each with its own fresh LOOM_HOME; medians)',
    columns: ['command', 'wall', 'peak RSS', 'wall − node -e ""'],
    rows: [
      ...oneShot.steps.map((x) => [x.name, fmtMs(x.run.wallMs), fmtBytes(x.run.peakRss), fmtDiff(x.run.wallMs - oneShot.node.wallMs)]),
      [`\`loom run\` (${ONESHOT_TOOL_TURNS} tool turns + answer)`, fmtMs(oneShot.loom.wallMs), fmtBytes(oneShot.loom.peakRss), fmtDiff(oneShot.loom.wallMs - oneShot.node.wallMs)],
    ],
  });

  const p50 = quantile(turns.over, 0.5);
  const best = many.best;
  const bestOver = best ? best.loom.p99 - best.raw.p99 : NaN;
  const targets: TargetResult[] = [
    { name: 'per-turn overhead p50 (Loom turn − raw request)', measured: fmtMs(p50), target: `≤ ${fmtMs(TURN_TARGET_P50_MS)}`, pass: p50 <= TURN_TARGET_P50_MS },
    {
      name: `p99 per-turn overhead at the highest sustained rate (${best ? `${fmtNum(best.rate)}/s` : 'none'}), ${fmtNum(MANY_SESSIONS)} sessions`,
      measured: best ? fmtMs(bestOver) : 'no rate sustained',
      target: `≤ ${fmtMs(MANY_TARGET_P99_OVERHEAD_MS)}`,
      pass: best !== undefined && bestOver <= MANY_TARGET_P99_OVERHEAD_MS,
    },
    { name: 'one-shot `loom run` (10 tool turns) wall time', measured: fmtMs(oneShot.loom.wallMs), target: `≤ ${fmtMs(ONESHOT_TARGET_WALL_MS)}`, pass: oneShot.loom.wallMs <= ONESHOT_TARGET_WALL_MS },
    { name: 'one-shot `loom run` peak RSS', measured: fmtBytes(oneShot.loom.peakRss), target: `≤ ${fmtBytes(ONESHOT_TARGET_RSS_BYTES)}`, pass: oneShot.loom.peakRss <= ONESHOT_TARGET_RSS_BYTES },
  ];

  const notes = [
    `Scripted OpenAI-compatible server: a child node process on loopback (this suite's file run with ${SERVER_FLAG}), shared by Loom and the baselines. A tool turn streams one \`read\` call of a 20-line \`notes.txt\`; an answer turn streams ${ANSWER.length} characters in 4-character chunks plus finish, usage and [DONE].`,
    `Loom side: a temp SQLite Store (WAL; barrier commits with synchronous=FULL on the machine's disk), one Coordinator, the real openai provider (undici's global dispatcher), the default tool registry, the CLI's system prompt. Bench-only instrumentation wraps this Store instance's \`append\` (to note when events are appended), \`transaction\` (to time session steps) and \`changes.notify\` (to count commits; see the workaround below), and the provider (to keep a reference to each request); each costs a call, a clock read and an array push.`,
    `Per-turn overhead: ${TURN_WARMUP_SESSIONS} warm-up sessions then ${TURN_SESSIONS} timed sessions of ${TURN_ACTIVITIES_PER_SESSION} activities (histories stay short and realistic: at most ${TURN_ACTIVITIES_PER_SESSION * 2} turns; request bodies ${fmtBytes(turns.requestBytes.first)} → ${fmtBytes(turns.requestBytes.last)}). Turn 1 runs from just before \`admitInput\` to the append of turn 2's \`turn.started\` (admission, activity opening, the barrier \`attempt.dispatched\`, the request and stream, \`tool.called\`, permission, \`tool.started\`, the \`read\` itself, \`tool.settled\`, \`turn.finished\`, the history reload); turn 2 from there to \`runUntilQuiet\` resolving (request, stream, \`text.done\` + \`turn.finished\` + \`activity.settled\`, idle). Each turn is paired with a raw \`undici.request\` that POSTs the same JSON body Loom sent for it (serialised outside the timing) and reads the response to its end, right after the activity; the overhead quantiles are over the paired differences. The milestone table takes the median over activities of the time at which each event is appended (inside its step's transaction, before that commit) and when each barrier commit returns; gaps between medians are approximate.`,
    `Many sessions: ${fmtNum(MANY_SESSIONS)} sessions created and owned up front; each arrival admits a steer into the next idle session (round robin) and waits for \`runUntilQuiet\`; latency runs from the arrival's scheduled time (open loop). The raw baseline fires the same schedule of raw requests (the body of a one-turn Loom request, ${fmtBytes(many.requestBytes)}) for ${MANY_RAW_STEP_SECONDS} s per rate, measured after a warm-up on one live session and before the other ${fmtNum(MANY_SESSIONS - 1)} are owned, so the coordinator's background work (the lease-renewal sweep) stays out of the baseline's tail. A Loom step stops arriving early (and counts as not sustained) once more inputs are in flight than rate × ${fmtMs(MANY_P99_BOUND_MS)} (Little's law: the mean latency is past the bound) or than there are idle sessions. Overhead = Loom quantile − raw quantile at the same rate (not paired). Achieved rate = offered × arrival span / completion span. Sustained = every input done within ${MANY_DRAIN_TIMEOUT_MS / 1000} s of the last arrival, achieved ≥ ${MANY_SUSTAINED_SHARE * 100}% of offered, p99 ≤ ${fmtMs(MANY_P99_BOUND_MS)}, and the p99 of the last third of arrivals ≤ 2 × that of the first third + 50 ms (no growing queue). Rates step up through ${MANY_RATES.join(', ')}/s until one is not sustained; when even ${MANY_RATES[0]}/s is not, ${MANY_FALLBACK_RATES.join(', ')}/s are tried downwards until one is. The diagnostic ladder then releases all but ${FEW_SESSIONS} sessions and steps up again, to separate what grows with the number of live sessions from the per-turn work. CPU per turn is this process's user+system time over the step divided by turns (the server's CPU is in its own process).`,
    `Workaround: \`Coordinator.own\` cannot own a second session while another is live (the new entry is in the live map before its actor exists; the actor's first commit notifies the coordinator, whose listener calls \`catchUp()\` on the half-built entry, gets a TypeError and drops the new session as failed). The bench mutes this store's change notifications while it calls \`own\` (nothing else runs meanwhile, and other actors have nothing to catch up on from a new session's commits).`,
    `One-shot: \`node bin/loom.js run --model openai/test --dir <tmp> "tools=${ONESHOT_TOOL_TURNS} …"\` as a child process with a fresh LOOM_HOME (so the database is created and migrated) and OPENAI_BASE_URL at the scripted server; the run's log is checked (${ONESHOT_TOOL_TURNS + 1} turns, ${ONESHOT_TOOL_TURNS} tool calls, exit 0). Wall time is spawn to exit in the parent; peak RSS by ${oneShot.peakMethod}. One warm-up run of each, then ${ONESHOT_RUNS} alternating runs; medians. The decomposition rows run in the same rounds: bare node, the bin's \`--version\` path, a process that only imports the \`run\` command's module graph, and \`loom session ls\` on a fresh LOOM_HOME (database created and migrated).`,
  ];
  notes.push(
    `Machine load (1-minute load average, ${cpus().length} cores) at the start / end of the suite: ${load0[0]!.toFixed(2)} / ${load1[0]!.toFixed(2)}. Other work on the machine shows up in every tail here, the baselines' included.`,
  );
  return { tables, targets, notes };
}

export const suite: Suite = { name: 'loop', title: 'Session loop', run };

/** For profiling from a script: the parts by themselves. */
export const parts = { startServerChild, benchTurns, benchMany, benchOneShot };

if (process.argv.includes(SERVER_FLAG) && process.argv[1] === fileURLToPath(import.meta.url)) void serveForever();
