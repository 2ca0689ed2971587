/**
 * `loom worker` with real processes (DESIGN §6, issue 6): several workers and one database, the
 * scripted model of test/fixtures/torture.ts (directives make turns slow enough to catch a worker
 * mid-run), sessions admitted with `loom run --detach` from other processes. Each worker prints
 * NDJSON lines (--json): taken (with the lease epoch), settled, holding, released, lost.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store, type AnyEnvelope } from '../../store/index.js';
import {
  checkInvariants,
  directiveText,
  killAllLoomChildren,
  loom,
  loomEnv,
  readAll,
  spawnLoom,
  startAgentServer,
  writeHomeConfig,
  type Directive,
  type HomeOptions,
  type LoomProcess,
} from '../fixtures/torture.js';
import { startNatsServer } from '../fixtures/nats-server.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { DIST, onCleanup, tempDir } from '../helpers.js';
import { eventually, natsClient, readStream } from '../transport/nats/helpers.js';
import { createOwnerMirror } from '../../transport/nats/owners.js';

afterEach(() => killAllLoomChildren());

interface WorkerLine {
  event: string;
  sessionId?: string;
  epoch?: number;
  how?: string;
  from?: string;
  status?: string;
  error?: string;
  workerId?: string;
  for?: string;
}

interface WorkerProcess extends LoomProcess {
  lines: WorkerLine[];
  exited(): boolean;
  /** Resolves with the first line (already printed or to come) that matches. */
  until(predicate: (line: WorkerLine) => boolean, timeoutMs?: number): Promise<WorkerLine>;
  id: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The first line of any of the workers matching `predicate` (printed already or within the timeout). */
async function lineOf(workers: { lines: WorkerLine[]; exited(): boolean }[], predicate: (l: WorkerLine) => boolean, timeoutMs = 20_000): Promise<WorkerLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const w of workers) {
      const line = w.lines.find(predicate);
      if (line) return line;
    }
    if (workers.every((w) => w.exited())) throw new Error(`the worker(s) exited before a matching line: ${JSON.stringify(workers.map((w) => w.lines))}`);
    if (Date.now() > deadline) throw new Error(`no matching worker line within ${timeoutMs} ms: ${JSON.stringify(workers.map((w) => w.lines))}`);
    await sleep(20);
  }
}

async function setup(options: HomeOptions & { config?: Record<string, unknown>; script?: ScriptedTurn[]; nats?: boolean } = {}) {
  const nats = options.nats ? await startNatsServer({ onCleanup }) : undefined;
  const server = options.script ? await startScriptedOpenAIServer({ script: options.script, respond: () => ({ text: 'nothing more' }) }) : await startAgentServer();
  onCleanup(() => void server.close());
  const home = tempDir('loom-wk-home-');
  writeHomeConfig(home, options);
  if (options.config) writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 2, ...options.config }));
  const env = { ...loomEnv(home, server.url), ...(nats ? { LOOM_NATS_URL: nats.url } : {}) };
  let store: Store | undefined;
  const db = () => (store ??= Store.open(join(home, 'loom.db')));
  onCleanup(() => store?.close());

  async function worker(args: string[] = []): Promise<WorkerProcess> {
    const p = spawnLoom(['worker', '--json', ...args], env);
    const lines: WorkerLine[] = [];
    let buffer = '';
    p.child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        lines.push(JSON.parse(buffer.slice(0, nl)) as WorkerLine);
        buffer = buffer.slice(nl + 1);
      }
    });
    let exited = false;
    void p.done.then(() => (exited = true));
    const self = { lines, exited: () => exited };
    const until = (predicate: (l: WorkerLine) => boolean, timeoutMs?: number) => lineOf([self], predicate, timeoutMs);
    const started = await until((l) => l.event === 'started');
    return Object.assign(p, { lines, until, exited: self.exited, id: started.workerId! });
  }

  return {
    server,
    nats,
    home,
    env,
    worker,
    loom: (args: string[]) => loom(args, env),
    /** Creates a session with `loom run --detach`; returns its id. */
    async detach(label: string, d: Partial<Directive>): Promise<string> {
      // A directory per session: the invariants count probe lines per session directory.
      const own = tempDir('loom-wk-dir-');
      writeFileSync(join(own, 'notes.md'), 'remember the milk\n');
      const r = await loom(['run', '--detach', '--dir', own, directiveText(label, d)], env);
      expect(r.code, r.stderr).toBe(0);
      return r.stderr.match(/session (ses_\S+)/)![1]!;
    },
    events: (id: string): AnyEnvelope[] => readAll(db(), id),
    /** Every session event in the database, in gseq order. */
    allEvents: (): AnyEnvelope[] => {
      const out: AnyEnvelope[] = [];
      for (let page = db().readAll({ afterGseq: 0 }); page.length > 0; page = db().readAll({ afterGseq: page.at(-1)!.gseq })) out.push(...page);
      return out.filter((e) => e.sessionId !== null);
    },
    /** Waits until the session's log holds an event matching `predicate`. */
    async waitForEvent(id: string, predicate: (e: AnyEnvelope) => boolean, timeoutMs = 20_000): Promise<AnyEnvelope> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = readAll(db(), id).find(predicate);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching event in ${id} within ${timeoutMs} ms`);
        await sleep(25);
      }
    },
    invariants: () => checkInvariants(home, { quiet: true, allSettled: true }),
  };
}

/** examples/nats-subscriber.js (compiled) from the start of the stream, printing every session event as NDJSON. */
function subscriber(url: string) {
  const child = spawn(process.execPath, [join(DIST, 'examples', 'nats-subscriber.js'), '--nats', url, '--json', '--from-start'], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return {
    events: () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AnyEnvelope),
    stderr: () => stderr,
  };
}

const settledOf = (events: AnyEnvelope[]) => events.filter((e) => e.type === 'activity.settled') as Extract<AnyEnvelope, { type: 'activity.settled' }>[];
const taken = (w: WorkerProcess, id?: string) => w.lines.filter((l) => l.event === 'taken' && (id === undefined || l.sessionId === id));

/** Stops with SIGTERM and expects a clean drain (exit 0, `stopped`). */
async function stop(w: WorkerProcess): Promise<void> {
  w.child.kill('SIGTERM');
  const r = await w.done;
  expect(r.code, r.stderr).toBe(0);
  expect(w.lines.at(-1)?.event).toBe('stopped');
}

/**
 * Pauses a process with SIGSTOP, at a moment it does not hold SQLite's write lock (a process
 * paused inside a write transaction stalls every writer until it resumes: the lease cannot help).
 */
async function pauseOutsideTransaction(pid: number, dbPath: string): Promise<void> {
  const probe = new Database(dbPath, { timeout: 0 });
  try {
    for (let i = 0; i < 200; i++) {
      process.kill(pid, 'SIGSTOP');
      try {
        probe.exec('BEGIN IMMEDIATE');
        probe.exec('ROLLBACK');
        return;
      } catch {
        process.kill(pid, 'SIGCONT');
        await sleep(5);
      }
    }
    throw new Error('could not pause the worker outside a write transaction');
  } finally {
    probe.close();
  }
}

/** Two workers of capacity 2 and six sessions of about a second each: the workers must share them. */
async function spreadOverTwoWorkers(t: Awaited<ReturnType<typeof setup>>): Promise<{ a: WorkerProcess; b: WorkerProcess; ids: string[] }> {
  const [a, b] = await Promise.all([t.worker(['--capacity', '2']), t.worker(['--capacity', '2'])]);
  const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => t.detach(`s${i}`, { rounds: 1, probes: 1, probe: 200, text: 120, pace: 15 })));
  for (const id of ids) await lineOf([a, b], (l) => l.event === 'released' && l.sessionId === id, 30_000);
  expect(taken(a).length).toBeGreaterThanOrEqual(1);
  expect(taken(b).length).toBeGreaterThanOrEqual(1);
  for (const id of ids) {
    // Exactly one owner: one worker took it, once, and the other never did.
    const owners = [...taken(a, id), ...taken(b, id)];
    expect(owners, id).toHaveLength(1);
    expect(owners[0]).toMatchObject({ how: 'free' });
    expect(settledOf(t.events(id)).map((e) => e.data.status), id).toEqual(['completed']);
  }
  // Never more than `capacity` sessions at once on one worker.
  for (const w of [a, b]) {
    let running = 0;
    for (const l of w.lines) {
      if (l.event === 'taken') running++;
      if (l.event === 'released') running--;
      expect(running).toBeLessThanOrEqual(2);
    }
  }
  return { a, b, ids };
}

describe('loom worker - sessions spread over several workers', () => {
  it('two workers and one database: each takes some sessions, every session completes under one owner, SIGTERM drains', async () => {
    const t = await setup();
    const { a, b } = await spreadOverTwoWorkers(t);
    await Promise.all([stop(a), stop(b)]);
    expect(t.invariants()).toEqual([]);
  });

  it('kill -9 one worker mid-run: the other takes its sessions over at once and finishes them through recovery', async () => {
    const t = await setup({ idempotentProvider: true, recovery: { retryBudget: 2 } });
    const a = await t.worker();
    const ids = await Promise.all([0, 1, 2].map((i) => t.detach(`k${i}`, { text: 600, pace: 15 })));
    for (const id of ids) {
      await a.until((l) => l.event === 'taken' && l.sessionId === id);
      await t.waitForEvent(id, (e) => e.type === 'text.delta');
    }
    const b = await t.worker();
    a.kill();
    expect((await a.done).signal).toBe('SIGKILL');
    for (const id of ids) {
      const took = await b.until((l) => l.event === 'taken' && l.sessionId === id);
      // Taken before the lease expired (its holder's pid is gone), by discovery or a claim pass.
      expect(took).toMatchObject({ how: 'dead-owner', from: a.id, epoch: taken(a, id)[0]!.epoch! + 1 });
    }
    for (const id of ids) await b.until((l) => l.event === 'released' && l.sessionId === id, 30_000);
    for (const id of ids) {
      const events = t.events(id);
      expect(settledOf(events).map((e) => e.data.status), id).toEqual(['completed']);
      const detected = events.find((e) => e.type === 'recovery.detected');
      expect(detected?.data).toMatchObject({ classification: 'ambiguous' });
      expect(events.find((e) => e.type === 'recovery.decided')?.data).toMatchObject({ decision: 'retry', automatic: true });
    }
    await stop(b);
    expect(t.invariants()).toEqual([]);
  });

  it('SIGSTOP an owner past its lease, SIGCONT it: none of its appends is accepted, and the other worker completes the session', async () => {
    const t = await setup({ idempotentProvider: true, recovery: { retryBudget: 2 } });
    const a = await t.worker(['--lease-ttl', '2000']);
    const id = await t.detach('paused', { text: 900, pace: 20 });
    await a.until((l) => l.event === 'taken' && l.sessionId === id);
    const dispatched = (await t.waitForEvent(id, (e) => e.type === 'attempt.dispatched')) as Extract<AnyEnvelope, { type: 'attempt.dispatched' }>;
    await t.waitForEvent(id, (e) => e.type === 'text.delta');
    const b = await t.worker();
    await pauseOutsideTransaction(a.child.pid!, join(t.home, 'loom.db'));
    try {
      const took = await b.until((l) => l.event === 'taken' && l.sessionId === id, 15_000);
      expect(took).toMatchObject({ how: 'expired', from: a.id, epoch: taken(a, id)[0]!.epoch! + 1 });
      await sleep(300);
    } finally {
      process.kill(a.child.pid!, 'SIGCONT');
    }
    // The paused worker finds out: its lease renewal or its next append fails.
    const lost = await a.until((l) => l.event === 'lost' && l.sessionId === id);
    expect(lost.error).toMatch(/LeaseLostError|StaleOwnerError/);
    expect(a.lines.filter((l) => l.event === 'lost')).toHaveLength(1);
    await b.until((l) => l.event === 'released' && l.sessionId === id, 30_000);
    const events = t.events(id);
    const detected = events.find((e) => e.type === 'recovery.detected')!;
    // Everything after the takeover is the new owner's: nothing of the paused owner's attempt.
    const stale = events.filter(
      (e) => e.seq > detected.seq && (e.data as { attemptId?: string }).attemptId === dispatched.data.attemptId && e.type !== 'attempt.failed',
    );
    expect(stale).toEqual([]);
    const failed = events.filter((e) => e.type === 'attempt.failed');
    expect(failed.map((e) => [e.data.attemptId, (e.data as { error: { kind: string } }).error.kind])).toEqual([[dispatched.data.attemptId, 'lost']]);
    expect(settledOf(events).map((e) => e.data.status)).toEqual(['completed']);
    expect(taken(a, id)).toHaveLength(1);
    await Promise.all([stop(a), stop(b)]);
    expect(t.invariants()).toEqual([]);
  });

  it('loom cancel from a third process aborts the run on the worker', async () => {
    const t = await setup();
    const a = await t.worker();
    const id = await t.detach('long', { text: 3000, pace: 20 });
    await a.until((l) => l.event === 'taken' && l.sessionId === id);
    await t.waitForEvent(id, (e) => e.type === 'text.delta');
    const cancel = await t.loom(['cancel', id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stderr).toContain(`recorded; the live owner of ${id} will act on it`);
    const settled = await a.until((l) => l.event === 'settled' && l.sessionId === id, 5_000);
    expect(settled.status).toBe('cancelled');
    await a.until((l) => l.event === 'released' && l.sessionId === id);
    const events = t.events(id);
    expect(events.some((e) => e.type === 'text.done')).toBe(false); // the stream was cut, not finished
    expect(events.find((e) => e.type === 'cancel.requested')?.data).toMatchObject({ reason: 'loom cancel' });
    // prompt --detach admits and returns without running anything; the worker takes the session again.
    const again = await t.loom(['prompt', '--detach', id, directiveText('again', { text: 10 })]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/^admitted queue in_\S+ into ses_/);
    expect(again.stdout).toBe('');
    await a.until((l) => l.event === 'settled' && l.sessionId === id && l.status === 'completed');
    expect(taken(a, id).map((l) => l.epoch)).toEqual([1, 2]);
    await stop(a);
    expect(t.invariants()).toEqual([]);
  });

  it('a permission ask waits durably on the worker; loom permit from another process lets it go on', async () => {
    const t = await setup({ config: { permission: { default: 'ask' } } });
    const a = await t.worker();
    const id = await t.detach('ask', { rounds: 1, probes: 1, text: 20 });
    await a.until((l) => l.event === 'holding' && l.sessionId === id && l.for === 'permission');
    const listed = JSON.parse((await t.loom(['permit', id, '--json'])).stdout) as { pending: { requestId: string; tool: string }[] };
    expect(listed.pending).toMatchObject([{ tool: 'probe_append' }]);
    const permit = await t.loom(['permit', id, listed.pending[0]!.requestId, 'once']);
    expect(permit.code, permit.stderr).toBe(0);
    expect(permit.stderr).toContain(`the live owner of ${id} will act on it`);
    await a.until((l) => l.event === 'released' && l.sessionId === id);
    const events = t.events(id);
    expect(events.find((e) => e.type === 'tool.settled')?.data).toMatchObject({ status: 'ok' });
    expect(settledOf(events).map((e) => e.data.status)).toEqual(['completed']);
    expect(taken(a, id)).toHaveLength(1); // held the whole time: never released and taken again
    await stop(a);
  });

  it('a background job keeps its session on the worker until the job result is answered', async () => {
    const background: ScriptedTurn = { toolCalls: [{ name: 'bash', arguments: { command: 'sleep 0.5; echo from-the-job', background: true, description: 'a test job' } }] };
    const t = await setup({ script: [background, { text: 'Started it.' }, { text: 'The job is done.' }], config: { permission: { rules: [{ tool: 'bash', action: 'allow' }] } } });
    const a = await t.worker();
    const id = await t.detach('start a job', {});
    await a.until((l) => l.event === 'holding' && l.sessionId === id && l.for === 'jobs');
    await a.until((l) => l.event === 'released' && l.sessionId === id);
    expect(a.lines.filter((l) => l.sessionId === id).map((l) => l.event)).toEqual(['taken', 'settled', 'holding', 'settled', 'released']);
    expect(settledOf(t.events(id)).map((e) => e.data.status)).toEqual(['completed', 'completed']);
    const lastRequest = JSON.stringify(t.server.requests.at(-1)!.body);
    expect(lastRequest).toContain('from-the-job');
    await stop(a);
  });

  it('SIGTERM drains a worker mid-run: it stops before the next dispatch, releases, and another worker finishes the session', async () => {
    const t = await setup();
    const a = await t.worker();
    const id = await t.detach('drain', { rounds: 1, probes: 1, probe: 600, text: 30, pace: 5 });
    await a.until((l) => l.event === 'taken' && l.sessionId === id);
    await t.waitForEvent(id, (e) => e.type === 'tool.started');
    const b = await t.worker();
    a.child.kill('SIGTERM');
    const res = await a.done;
    expect(res.code, res.stderr).toBe(0);
    expect(a.lines.filter((l) => l.event === 'released').map((l) => l.sessionId)).toEqual([id]);
    const took = await b.until((l) => l.event === 'taken' && l.sessionId === id);
    expect(took.how).toBe('free');
    await b.until((l) => l.event === 'released' && l.sessionId === id, 30_000);
    const events = t.events(id);
    // The tool in flight finished on the draining worker; the next turn was left to the other one.
    const takeover = events.findIndex((e) => e.type === 'recovery.detected');
    const before = events.slice(0, takeover);
    expect(before.find((e) => e.type === 'tool.settled')?.data).toMatchObject({ status: 'ok' });
    expect(before.filter((e) => e.type === 'attempt.dispatched')).toHaveLength(1);
    expect(before.at(-1)?.type).toBe('turn.started'); // started, never dispatched
    expect(events.find((e) => e.type === 'recovery.detected')?.data).toMatchObject({ classification: 'safe' });
    expect(settledOf(events).map((e) => e.data.status)).toEqual(['completed']);
    await stop(b);
    expect(t.invariants()).toEqual([]);
  });
});

describe('loom worker - with NATS (a real nats-server)', () => {
  it('two workers sharing one NATS server and one database: sessions spread, each under one owner; the KV mirror shows the owner while it runs', async () => {
    const t = await setup({ nats: true });
    const { a, b, ids } = await spreadOverTwoWorkers(t);
    // Every event reached the stream, once and in order (the outbox publishes from SQLite).
    // (The stream carries the system log too: providers loaded, their models.)
    const sessionEvents = async () => (await readStream(t.nats!.url)).map((m) => m.event).filter((e) => e.sessionId !== null);
    await eventually(async () => (await sessionEvents()).length === t.allEvents().length, 15_000, 'every event in LOOM_EVENTS');
    expect(await sessionEvents()).toEqual(t.allEvents());
    // Released sessions are no longer mirrored as owned.
    const mirror = createOwnerMirror({ connection: await natsClient(t.nats!.url) });
    for (const id of ids) expect(await mirror.get(id)).toBeNull();
    await Promise.all([stop(a), stop(b)]);
    expect(t.invariants()).toEqual([]);
  });

  it('a worker owns a detached session while it runs, mirrored in the KV bucket, and removes the entry on release', async () => {
    const t = await setup({ nats: true });
    const a = await t.worker();
    const id = await t.detach('mirrored', { text: 300, pace: 15 });
    const took = await a.until((l) => l.event === 'taken' && l.sessionId === id);
    const mirror = createOwnerMirror({ connection: await natsClient(t.nats!.url) });
    await eventually(async () => (await mirror.get(id))?.epoch === took.epoch, 5_000, 'the owner in the KV mirror');
    expect(await mirror.get(id)).toMatchObject({ ownerId: a.id, epoch: took.epoch });
    await a.until((l) => l.event === 'released' && l.sessionId === id);
    await eventually(async () => (await mirror.get(id)) === null, 5_000, 'the mirror entry removed on release');
    await stop(a);
  });

  it('nats-server killed and restarted mid-run under two workers: 0 events lost, every session completes, the example subscriber receives every event once and in order', async () => {
    const t = await setup({ nats: true });
    const sub = subscriber(t.nats!.url);
    const [a, b] = await Promise.all([t.worker(), t.worker()]);
    const ids = await Promise.all(Array.from({ length: 4 }, (_, i) => t.detach(`n${i}`, { rounds: 1, probes: 1, probe: 100, text: 400, pace: 15 })));
    await eventually(() => sub.events().length >= 10, 15_000, `the first events at the subscriber (${sub.stderr()})`);
    await t.nats!.kill();
    expect(ids.filter((id) => settledOf(t.events(id)).length === 0).length, 'sessions still running when NATS went down').toBeGreaterThan(0);
    await sleep(500);
    await t.nats!.restart();
    for (const id of ids) await lineOf([a, b], (l) => l.event === 'released' && l.sessionId === id, 30_000);
    for (const id of ids) expect(settledOf(t.events(id)).map((e) => e.data.status), id).toEqual(['completed']);
    const log = t.allEvents();
    await eventually(() => sub.events().length >= log.length, 20_000, `every event at the subscriber (${sub.stderr()})`);
    // Once each and in commit order: exactly the log, in gseq order.
    expect(sub.events()).toEqual(log);
    await Promise.all([stop(a), stop(b)]);
    expect(t.invariants()).toEqual([]);
  });

  it('loom cancel from a third process reaches the worker over NATS and aborts its run', async () => {
    const t = await setup({ nats: true });
    const a = await t.worker();
    const id = await t.detach('long', { text: 3000, pace: 20 });
    await a.until((l) => l.event === 'taken' && l.sessionId === id);
    await t.waitForEvent(id, (e) => e.type === 'text.delta');
    const cancel = await t.loom(['cancel', id]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(await a.until((l) => l.event === 'settled' && l.sessionId === id, 5_000)).toMatchObject({ status: 'cancelled' });
    expect(t.events(id).some((e) => e.type === 'text.done')).toBe(false);
    await stop(a);
  });
});
