/**
 * Workers suite (issue 6 item 9, second half): throughput of many short sessions run by `loom
 * worker` processes sharing one database, two workers against one.
 *
 * Each run: a fresh $LOOM_HOME, K real `loom worker --json` processes (started, and waited for,
 * before the clock starts), then N sessions admitted from this process as fast as it can, one
 * commit per session (`session.created`, then `input.admitted`: what N separate `loom run --detach`
 * would write, without their process start-up). Each session is one short turn of the scripted
 * model (text only, streamed at once) from the scripted OpenAI-compatible server in this process.
 * The run ends when the workers have printed N `settled` lines.
 *
 * Measured: sessions/s (N / time from the first admission to the last settlement), the latency of
 * one session (its admission → its `settled` line, wall clocks of this machine), how the sessions
 * spread over the workers. The transport is the embedded default (workers notice admissions by
 * polling `data_version` every 100 ms), or NATS when LOOM_NATS_URL is set.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Store } from '../../store/index.js';
import { directiveText, loomEnv, spawnLoom, startAgentServer, writeHomeConfig, type LoomProcess } from '../../test/fixtures/torture.js';
import { fmtMs, fmtNum, fmtRatio, median, now, quantile, tempDir, type Suite, type SuiteReport, type Table } from '../lib.js';

// ---- bounds --------------------------------------------------------------------------------------

/** Sessions per run. */
const SESSIONS = 300;
/** Runs per configuration; the table shows the median run. */
const RUNS = 3;
/** `--capacity` of each worker. */
const CAPACITY = 32;
/** A run that has not settled every session by then is reported as failed. */
const RUN_TIMEOUT_MS = 120_000;
/** How long a worker may take to start and to drain. */
const WORKER_START_TIMEOUT_MS = 20_000;

interface Line {
  event: string;
  sessionId?: string;
  at: string;
}

interface WorkerProc {
  p: LoomProcess;
  lines: Line[];
}

function startWorker(env: NodeJS.ProcessEnv): WorkerProc {
  const p = spawnLoom(['worker', '--json', '--capacity', String(CAPACITY)], env);
  const lines: Line[] = [];
  let buffer = '';
  p.child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      lines.push(JSON.parse(buffer.slice(0, nl)) as Line);
      buffer = buffer.slice(nl + 1);
    }
  });
  return { p, lines };
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`bench workers: ${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface RunResult {
  workers: number;
  ms: number;
  perSecond: number;
  latencies: number[];
  spread: number[];
}

async function runOnce(workers: number, serverUrl: string): Promise<RunResult> {
  const home = tempDir('loom-bench-workers-');
  const location = tempDir('loom-bench-workers-dir-');
  try {
    writeHomeConfig(home.dir);
    writeFileSync(join(location.dir, 'notes.md'), 'bench\n');
    const env = loomEnv(home.dir, serverUrl);
    const store = Store.open(join(home.dir, 'loom.db'));
    const procs = Array.from({ length: workers }, () => startWorker(env));
    try {
      await waitFor(() => procs.every((w) => w.lines.some((l) => l.event === 'started')), WORKER_START_TIMEOUT_MS, 'worker start');
      const admittedAt = new Map<string, number>();
      const text = directiveText('short', { text: 12 });
      const t0 = now();
      for (let i = 0; i < SESSIONS; i++) {
        const sessionId = store.ids.next('ses');
        store.append({ sessionId, type: 'session.created', data: { location: location.dir, model: 'openai/test' } });
        store.admitInput(sessionId, { mode: 'queue', text, source: 'bench' });
        admittedAt.set(sessionId, Date.now());
      }
      const settled = () => procs.reduce((n, w) => n + w.lines.filter((l) => l.event === 'settled').length, 0);
      await waitFor(() => settled() >= SESSIONS, RUN_TIMEOUT_MS, `${SESSIONS} settlements`);
      const ms = now() - t0;
      const latencies: number[] = [];
      for (const w of procs) for (const l of w.lines) if (l.event === 'settled') latencies.push(Date.parse(l.at) - admittedAt.get(l.sessionId!)!);
      const spread = procs.map((w) => w.lines.filter((l) => l.event === 'taken').length);
      return { workers, ms, perSecond: (SESSIONS * 1000) / ms, latencies, spread };
    } finally {
      for (const w of procs) w.p.child.kill('SIGTERM');
      await Promise.all(procs.map((w) => w.p.done));
      store.close();
    }
  } finally {
    home.cleanup();
    location.cleanup();
  }
}

export const suite: Suite = {
  name: 'workers',
  title: 'Workers (throughput of short sessions, one vs two workers)',
  async run(log): Promise<SuiteReport> {
    const server = await startAgentServer();
    const transport = process.env.LOOM_NATS_URL ? `NATS (${process.env.LOOM_NATS_URL})` : 'embedded (data_version polling)';
    const results = new Map<number, RunResult[]>();
    try {
      for (let run = 0; run < RUNS; run++) {
        // Alternate the configurations, so a slow moment of the machine hits both.
        for (const workers of [1, 2]) {
          const r = await runOnce(workers, server.url);
          log(`${workers} worker(s), run ${run + 1}: ${fmtNum(r.perSecond, 1)} sessions/s, spread ${r.spread.join('/')}`);
          results.set(workers, [...(results.get(workers) ?? []), r]);
        }
      }
    } finally {
      await server.close();
    }
    const medianRun = (rs: RunResult[]) => [...rs].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(rs.length / 2)]!;
    const one = medianRun(results.get(1)!);
    const two = medianRun(results.get(2)!);
    const row = (r: RunResult): string[] => [
      String(r.workers),
      fmtNum(r.perSecond, 1),
      fmtMs(r.ms),
      `${fmtMs(median(r.latencies))} / ${fmtMs(quantile(r.latencies, 0.99))}`,
      r.spread.join(' / '),
    ];
    const table: Table = {
      title: `${SESSIONS} short sessions admitted at once, capacity ${CAPACITY} per worker, ${transport}; median of ${RUNS} runs`,
      columns: ['workers', 'sessions/s', 'all settled in', 'latency p50 / p99 (admission → settled)', 'sessions taken per worker'],
      rows: [row(one), row(two)],
    };
    const every: Table = {
      title: 'Every run (sessions/s)',
      columns: ['workers', ...Array.from({ length: RUNS }, (_, i) => `run ${i + 1}`)],
      rows: [1, 2].map((w) => [String(w), ...results.get(w)!.map((r) => fmtNum(r.perSecond, 1))]),
    };
    return {
      tables: [table, every],
      targets: [],
      notes: [
        `Two workers against one: ${fmtRatio(two.perSecond / one.perSecond)} the throughput.`,
        'Each session is one provider turn: `activity.opened`, `turn.started`, the barrier commit (`attempt.dispatched`, synchronous=FULL), the streamed text, `turn.finished`, `activity.settled`, then the lease is released. All workers write to one SQLite file: every commit takes its one write lock, so a second worker adds CPU for the actors and streams, not write bandwidth.',
        'Sessions are admitted from the bench process, one commit each, before the workers have finished the first ones; the clock starts at the first admission and stops at the last `settled` line.',
      ],
    };
  },
};
