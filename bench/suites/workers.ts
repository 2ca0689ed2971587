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
 * spread over the workers. Each with the embedded transport (workers notice admissions by polling
 * `data_version` every 100 ms) and with NATS (a nats-server started by the suite; skipped, with a
 * note, when the binary is missing).
 */
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { Store } from '../../store/index.js';
import { startNatsServer, type NatsServer } from '../../test/fixtures/nats-server.js';
import { createNatsTransport } from '../../transport/nats/index.js';
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

/** CPU time (user + system) a process has used, from /proc (Linux), in ms. */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  // After the command name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** USER_HZ: the unit of utime/stime in /proc/PID/stat (100 on Linux everywhere in practice). */
const CLOCK_TICKS_PER_S = 100;

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`bench workers: ${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface RunResult {
  transport: string;
  /** CPU time (user + system) of all workers, and of this process (provider server, admissions), during the run. */
  workerCpuMs: number;
  benchCpuMs: number;
  workers: number;
  ms: number;
  perSecond: number;
  latencies: number[];
  spread: number[];
}

async function runOnce(workers: number, serverUrl: string, natsUrl: string | undefined): Promise<RunResult> {
  const home = tempDir('loom-bench-workers-');
  const location = tempDir('loom-bench-workers-dir-');
  try {
    writeHomeConfig(home.dir);
    writeFileSync(join(location.dir, 'notes.md'), 'bench\n');
    // LOOM_NATS_URL is always set: empty selects the embedded transport even if the caller's environment names a server.
    const env = { ...loomEnv(home.dir, serverUrl), LOOM_NATS_URL: natsUrl ?? '' };
    const store = Store.open(join(home.dir, 'loom.db'));
    const procs = Array.from({ length: workers }, () => startWorker(env));
    try {
      await waitFor(() => procs.every((w) => w.lines.some((l) => l.event === 'started')), WORKER_START_TIMEOUT_MS, 'worker start');
      // With NATS, each admission is followed by a wake, as `loom run --detach` sends one.
      const signals = natsUrl ? createNatsTransport({ url: natsUrl, name: 'loom bench admissions' }) : undefined;
      if (signals) await signals.connection();
      const admittedAt = new Map<string, number>();
      const text = directiveText('short', { text: 12 });
      const cpu0 = procs.map((w) => cpuMsOf(w.p.child.pid!));
      const benchCpu0 = process.cpuUsage();
      const t0 = now();
      for (let i = 0; i < SESSIONS; i++) {
        const sessionId = store.ids.next('ses');
        store.append({ sessionId, type: 'session.created', data: { location: location.dir, model: 'openai/test' } });
        store.admitInput(sessionId, { mode: 'queue', text, source: 'bench' });
        admittedAt.set(sessionId, Date.now());
        if (signals) void signals.wake(sessionId).catch(() => undefined);
      }
      const settled = () => procs.reduce((n, w) => n + w.lines.filter((l) => l.event === 'settled').length, 0);
      await waitFor(() => settled() >= SESSIONS, RUN_TIMEOUT_MS, `${SESSIONS} settlements`);
      const ms = now() - t0;
      const workerCpuMs = procs.reduce((sum, w, i) => sum + cpuMsOf(w.p.child.pid!) - cpu0[i]!, 0);
      const benchCpu = process.cpuUsage(benchCpu0);
      const benchCpuMs = (benchCpu.user + benchCpu.system) / 1000;
      const latencies: number[] = [];
      for (const w of procs) for (const l of w.lines) if (l.event === 'settled') latencies.push(Date.parse(l.at) - admittedAt.get(l.sessionId!)!);
      const spread = procs.map((w) => w.lines.filter((l) => l.event === 'taken').length);
      await signals?.close();
      return { transport: natsUrl ? 'NATS' : 'embedded', workerCpuMs, benchCpuMs, workers, ms, perSecond: (SESSIONS * 1000) / ms, latencies, spread };
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
    let nats: NatsServer | undefined;
    const notes: string[] = [];
    try {
      nats = await startNatsServer();
    } catch (error) {
      notes.push(`No NATS runs: ${(error as Error).message}`);
    }
    const configs = [
      { transport: 'embedded', url: undefined as string | undefined },
      ...(nats ? [{ transport: 'NATS', url: nats.url }] : []),
    ];
    const results = new Map<string, RunResult[]>();
    const key = (transport: string, workers: number) => `${transport}/${workers}`;
    try {
      for (let run = 0; run < RUNS; run++) {
        // Alternate the configurations, so a slow moment of the machine hits all of them.
        for (const c of configs) {
          for (const workers of [1, 2]) {
            const r = await runOnce(workers, server.url, c.url);
            log(`${c.transport}, ${workers} worker(s), run ${run + 1}: ${fmtNum(r.perSecond, 1)} sessions/s, spread ${r.spread.join('/')}`);
            results.set(key(c.transport, workers), [...(results.get(key(c.transport, workers)) ?? []), r]);
          }
        }
      }
    } finally {
      await server.close();
      await nats?.cleanup();
    }
    const medianRun = (rs: RunResult[]) => [...rs].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(rs.length / 2)]!;
    const row = (r: RunResult): string[] => [
      r.transport,
      String(r.workers),
      fmtNum(r.perSecond, 1),
      fmtMs(r.ms),
      `${fmtMs(median(r.latencies))} / ${fmtMs(quantile(r.latencies, 0.99))}`,
      r.spread.join(' / '),
      `${fmtNum(r.workerCpuMs / SESSIONS, 1)} ms / ${fmtNum(r.benchCpuMs / SESSIONS, 1)} ms`,
      `${fmtNum((r.workerCpuMs + r.benchCpuMs) / r.ms, 2)}`,
    ];
    const medians = configs.flatMap((c) => [1, 2].map((w) => medianRun(results.get(key(c.transport, w))!)));
    const table: Table = {
      title: `${SESSIONS} short sessions admitted at once, capacity ${CAPACITY} per worker; the median of ${RUNS} runs`,
      columns: [
        'transport',
        'workers',
        'sessions/s',
        'all settled in',
        'latency p50 / p99 (admission → settled)',
        'sessions taken per worker',
        'CPU per session: workers / bench process',
        'cores busy (CPU / wall)',
      ],
      rows: medians.map(row),
    };
    const every: Table = {
      title: 'Every run (sessions/s)',
      columns: ['transport', 'workers', ...Array.from({ length: RUNS }, (_, i) => `run ${i + 1}`)],
      rows: configs.flatMap((c) => [1, 2].map((w) => [c.transport, String(w), ...results.get(key(c.transport, w))!.map((r) => fmtNum(r.perSecond, 1))])),
    };
    for (const c of configs) {
      const one = medianRun(results.get(key(c.transport, 1))!);
      const two = medianRun(results.get(key(c.transport, 2))!);
      const cpu = (r: RunResult) => r.workerCpuMs / SESSIONS;
      notes.push(
        `${c.transport}: two workers against one: ${fmtRatio(two.perSecond / one.perSecond)} the throughput, ${fmtRatio(cpu(two) / cpu(one))} the worker CPU per session, ` +
          `${fmtNum((two.workerCpuMs + two.benchCpuMs) / two.ms, 2)} of 2 cores busy (one worker: ${fmtNum((one.workerCpuMs + one.benchCpuMs) / one.ms, 2)}).`,
      );
    }
    return {
      tables: [table, every],
      targets: [],
      notes: [
        ...notes,
        'Each session is one provider turn: `activity.opened`, `turn.started`, the barrier commit (`attempt.dispatched`, synchronous=FULL), the streamed text, `turn.finished`, `activity.settled`, then the lease is released.',
        'Why a second worker does not add throughput here: every worker writes to one SQLite file, and every commit takes its single write lock (a barrier holds it through an fsync, and commits run synchronously on the worker\'s event loop). With two processes the lock is contended; the likely costs (not measured one by one here) are that a waiting writer sleeps in SQLite\'s busy handler (1, 2, 5, 10… ms steps) and that each connection\'s page cache is invalidated by the other\'s commits, so the CPU per session rises and the second core is far from fully used. Workers buy availability (a killed worker\'s sessions go on elsewhere) and room for slow tools and streams, not store throughput; group-committing barriers across sessions (DESIGN §5, not built yet) is the lever for that.',
        '"cores busy" = CPU time of the workers and of this process (the scripted provider server and the admissions) over the wall time of the run; the machine has 2 cores, shared with whatever else runs (see the load average above): compare the configurations of one run, not rates across runs.',
        'Sessions are admitted from the bench process, one commit each (what separate `loom run --detach` processes would write, without their start-up); the clock starts at the first admission and stops at the last `settled` line. Embedded: workers notice admissions by polling `data_version` every 100 ms. NATS: the bench also sends a wake after each admission (as `run --detach` does), which workers claim at once (the named session first), and the outbox publishes every event to JetStream (one publisher per database).',
      ],
    };
  },
};
