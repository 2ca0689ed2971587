/**
 * One test per named failpoint at the persistence boundaries (DESIGN §5, issue 4): a real `loom`
 * child process (LOOM_TEST_TOOLS=1, the scripted server answering from test/fixtures/torture.ts)
 * runs with LOOM_FAILPOINT set and dies by SIGKILL right there; then the tests restart it
 * (`loom recover --scan`, `loom recover ID --retry|--abandon`, `loom prompt`) and check the restored
 * state (`loom inspect ID --json`, `loom tail ID --json`, the store) and the decision it leads to.
 * `probe_append` is the non-idempotent tool: it appends its call id to .loom-probe.log, so counting
 * lines shows whether a call ran twice.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkInvariants,
  directiveText,
  killAllLoomChildren,
  loom,
  loomEnv,
  probeLines,
  sessionIn,
  startAgentServer,
  writeHomeConfig,
  type Directive,
  type HomeOptions,
  type LoomResult,
} from '../fixtures/torture.js';
import type { RecordedRequest } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';

afterEach(() => killAllLoomChildren());

interface Ev {
  seq: number;
  type: string;
  data: any;
}

async function setup(options: HomeOptions = {}) {
  const server = await startAgentServer();
  onCleanup(() => void server.close());
  const home = tempDir('loom-fp-home-');
  const dir = tempDir('loom-fp-dir-');
  writeFileSync(join(dir, 'notes.md'), 'remember the milk\n');
  writeHomeConfig(home, options);
  const env = loomEnv(home, server.url);
  const cmd = (args: string[], failpoint = '') => loom(args, { ...env, LOOM_FAILPOINT: failpoint });
  return {
    server,
    home,
    dir,
    /** `loom run` in the test directory with the failpoint armed; the session id even when it died before printing it. */
    async run(text: string, failpoint = ''): Promise<LoomResult & { id: string }> {
      const r = await cmd(['run', '--dir', dir, text], failpoint);
      const id = r.stderr.match(/session (ses_\S+)/)?.[1] ?? sessionIn(home, dir);
      if (!id) throw new Error(`no session was created: ${r.stderr}`);
      return { ...r, id };
    },
    loom: cmd,
    scan: (failpoint = '') => cmd(['recover', '--scan'], failpoint),
    async events(id: string): Promise<Ev[]> {
      const r = await cmd(['tail', id, '--json']);
      expect(r.code, `loom tail failed: ${r.stderr}`).toBe(0);
      return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Ev).filter((e) => e.type !== 'text.delta');
    },
    async inspect(id: string): Promise<any> {
      const r = await cmd(['inspect', id, '--json']);
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout);
    },
    probe: () => probeLines(dir),
    /** Every invariant of the torture harness, once nothing runs. */
    invariants: (drained: string[] = []) => checkInvariants(home, { quiet: true, allSettled: true, drained }),
  };
}

const text = (label: string, d: Partial<Directive> = {}) => directiveText(label, { text: 24, ...d });
const of = (events: Ev[], type: string) => events.filter((e) => e.type === type);
const userContents = (r: RecordedRequest) =>
  ((r.body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'user').map((m) => m.content);
const toolMessages = (r: RecordedRequest) =>
  ((r.body as { messages: { role: string; content: string; tool_call_id?: string }[] }).messages ?? []).filter((m) => m.role === 'tool');

function killedAt(r: LoomResult, failpoint: string): void {
  expect(r.signal, `expected SIGKILL at ${failpoint}; stderr: ${r.stderr}`).toBe('SIGKILL');
  expect(r.stderr).toContain(`failpoint ${failpoint.split('@')[0]} hit`);
}

describe('failpoints: input admission and activity opening', () => {
  it('before:session.created - nothing is created and nothing was acknowledged', async () => {
    const h = await setup();
    const r = await h.loom(['run', '--dir', h.dir, text('first')], 'before:session.created');
    killedAt(r, 'before:session.created');
    expect(r.stderr).not.toMatch(/session ses_/);
    const ls = await h.loom(['session', 'ls', '--json']);
    expect(ls.stdout.trim()).toBe('');
    expect((await h.scan()).code).toBe(0);
  });

  it('before:input.admitted - nothing is stored: the session and its first input commit together; the client never saw an acknowledgement', async () => {
    const h = await setup();
    const r = await h.loom(['run', '--dir', h.dir, text('first')], 'before:input.admitted');
    killedAt(r, 'before:input.admitted');
    expect(r.stderr).not.toMatch(/session ses_/);
    expect(sessionIn(h.home, h.dir)).toBeUndefined();
    const scan = await h.scan();
    expect(scan.code).toBe(0);
    expect(scan.stderr).toContain('0 unsettled');
    expect(h.invariants()).toEqual([]);
  });

  it.each(['after:input.admitted', 'before:activity.opened', 'before:input.assigned', 'before:turn.started'])(
    '%s - the admitted input is not lost: pending in an idle session (not unsettled); the next prompt runs it, then the new one',
    async (failpoint) => {
      const h = await setup();
      const first = text('first');
      const r = await h.run(first, failpoint);
      killedAt(r, failpoint);
      expect(h.server.requests).toHaveLength(0);
      expect(await h.inspect(r.id)).toMatchObject({ state: 'idle', status: 'idle', inbox: [{ mode: 'steer', status: 'pending', text: first }] });
      const scan = await h.scan();
      expect(scan.code).toBe(0);
      expect(scan.stderr).toContain('0 unsettled'); // an idle session with pending input has nothing to recover
      const second = text('second');
      const p = await h.loom(['prompt', r.id, '--queue', second]);
      expect(p.code).toBe(0);
      expect(h.server.requests.map(userContents)).toEqual([[first], [first, second]]);
      const events = await h.events(r.id);
      expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
      expect(of(events, 'recovery.detected')).toHaveLength(0);
      expect(h.invariants([r.id])).toEqual([]);
    },
  );

  // Regression test for a bug the harness found, now fixed (a catch-up drops the rest of its page once an action records events): SessionActor
  // catchUpInTransaction reads a page of events other processes appended and delivers them one by
  // one; when one of them makes the machine run an action that records events (openActivity here;
  // also the cancel's settleActivity, retryTurn, ...), the nested append delivers the new events at
  // once and moves lastSeq past them, so `deliver` skips the rest of the page (e.seq <= lastSeq).
  // An input admitted in that page never reaches the machine: it stays pending in the inbox, the
  // snapshot's steers/queued lack it, and it never runs. Here: a steer admitted by a prompt killed
  // before it owned the session, then a queued input; the next owner catches up both in one page.
  // (The same happens to an input admitted right after a cancel, before the owner's next poll.)
  it('after:input.admitted in loom prompt - a queued input caught up in one page with an earlier steer runs too', async () => {
    const h = await setup();
    const first = text('first');
    const r = await h.run(first);
    expect(r.code).toBe(0);
    const steer = text('steer');
    killedAt(await h.loom(['prompt', r.id, '--steer', steer], 'after:input.admitted'), 'after:input.admitted');
    const queued = text('queued');
    expect((await h.loom(['prompt', r.id, '--queue', queued])).code).toBe(0);
    expect(h.server.requests.map(userContents)).toEqual([[first], [first, steer], [first, steer, queued]]);
    expect(await h.inspect(r.id)).toMatchObject({ inbox: [] });
    expect(h.invariants([r.id])).toEqual([]);
  });
});

describe('failpoints: the provider request', () => {
  it.each(['after:activity.opened', 'after:input.assigned', 'after:turn.started', 'before:attempt.dispatched', 'before:input.consumed'])(
    '%s - safe (nothing was in flight): the restart retries automatically and completes',
    async (failpoint) => {
      const h = await setup();
      const first = text('first');
      const r = await h.run(first, failpoint);
      killedAt(r, failpoint);
      expect(h.server.requests).toHaveLength(0);
      // The dead process still holds a lease that looks live; its pid is gone, so the scan takes over at once.
      expect((await h.inspect(r.id)).owner.live).toBe(true);
      const scan = await h.scan();
      expect(scan.code).toBe(0);
      expect(scan.stdout).toMatch(new RegExp(`${r.id}\\s+idle\\s+last: completed`));
      expect(scan.stdout).not.toContain('held by a live owner');
      const events = await h.events(r.id);
      const [detected] = of(events, 'recovery.detected');
      expect(detected!.data).toMatchObject({ classification: 'safe', restarts: 1, reason: 'no provider request was in flight' });
      const [decided] = of(events, 'recovery.decided');
      expect(decided!.data).toMatchObject({ decision: 'retry', automatic: true });
      expect(decided!.seq).toBe(detected!.seq + 1);
      expect(of(events, 'attempt.dispatched')).toHaveLength(1);
      expect(of(events, 'input.consumed')).toHaveLength(1);
      expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
      expect(h.server.requests.map(userContents)).toEqual([[first]]);
      expect(h.invariants()).toEqual([]);
    },
  );

  it.each(['after:attempt.dispatched', 'after:input.consumed'])(
    '%s - ambiguous: recovering with recovery.detected naming the attempt, scan exits 5; --retry marks it lost and re-sends',
    async (failpoint) => {
      const h = await setup();
      const first = text('first');
      const r = await h.run(first, failpoint);
      killedAt(r, failpoint);
      const scan = await h.scan();
      expect(scan.code).toBe(5);
      expect(scan.stdout).toContain(`${r.id}  recovering  (waiting: loom recover ${r.id} --retry|--abandon)`);
      const dispatched = of(await h.events(r.id), 'attempt.dispatched')[0]!;
      const inspect = await h.inspect(r.id);
      expect(inspect).toMatchObject({ state: 'recovering', status: 'recovering', activity: { status: 'recovering', restarts: 1, attemptId: dispatched.data.attemptId } });
      let events = await h.events(r.id);
      expect(of(events, 'recovery.detected').map((e) => e.data)).toEqual([
        expect.objectContaining({ classification: 'ambiguous', attemptId: dispatched.data.attemptId, reason: expect.stringContaining('may or may not') }),
      ]);
      expect(of(events, 'recovery.decided')).toHaveLength(0);
      // Waiting: a new prompt is admitted but nothing runs (exit 5); a second scan decides nothing either.
      const later = text('later');
      expect((await h.loom(['prompt', r.id, '--queue', later])).code).toBe(5);
      expect((await h.scan()).code).toBe(5);
      expect(h.server.requests).toHaveLength(0); // killed right after the barrier: the request never left
      const retry = await h.loom(['recover', r.id, '--retry', '--reason', 'test']);
      expect(retry.code).toBe(0);
      events = await h.events(r.id);
      expect(of(events, 'recovery.detected')).toHaveLength(1);
      expect(of(events, 'recovery.decided').map((e) => e.data)).toEqual([{ activityId: inspect.activity.activityId, decision: 'retry', reason: 'test' }]);
      const failed = of(events, 'attempt.failed');
      expect(failed.map((e) => e.data)).toEqual([expect.objectContaining({ attemptId: dispatched.data.attemptId, error: expect.objectContaining({ kind: 'lost' }), receivedChunks: false })]);
      const attempts = of(events, 'attempt.dispatched').map((e) => e.data.attemptId);
      expect(attempts).toHaveLength(3); // the lost one, its retry, the queued input's
      expect(new Set(attempts).size).toBe(3);
      expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
      expect(h.server.requests.map(userContents)).toEqual([[first], [first, later]]);
      expect(h.invariants([r.id])).toEqual([]);
    },
  );

  it('after:attempt.dispatched - --abandon settles it abandoned and parks; an input admitted meanwhile stays pending until the next prompt', async () => {
    const h = await setup();
    const first = text('first');
    const r = await h.run(first, 'after:attempt.dispatched');
    killedAt(r, 'after:attempt.dispatched');
    const steer = text('steer');
    expect((await h.loom(['prompt', r.id, '--steer', steer])).code).toBe(5); // one-shot commands recover the session they work on
    const abandon = await h.loom(['recover', r.id, '--abandon', '--reason', 'not worth it']);
    expect(abandon.code).toBe(1);
    expect(abandon.stderr).toContain('abandoned');
    const events = await h.events(r.id);
    expect(of(events, 'recovery.decided').map((e) => e.data.decision)).toEqual(['abandon']);
    expect(of(events, 'activity.settled').map((e) => [e.data.status, e.data.reason])).toEqual([['abandoned', 'not worth it']]);
    expect(await h.inspect(r.id)).toMatchObject({ state: 'idle', status: 'idle', parked: true, lastActivityStatus: 'abandoned', inbox: [{ status: 'pending', text: steer }] });
    expect((await h.scan()).code).toBe(0);
    expect(h.server.requests).toHaveLength(0); // parked: nothing ran on its own
    const last = text('last');
    expect((await h.loom(['prompt', r.id, '--queue', last])).code).toBe(0);
    expect(h.server.requests.map(userContents).map((u) => u.slice(1))).toEqual([[steer], [steer, last]]);
  });

  it('autoResume off: a safe continuation waits in recovering; --abandon releases its unconsumed input to pending exactly once', async () => {
    const h = await setup({ recovery: { autoResume: false } });
    const first = text('first');
    const r = await h.run(first, 'after:activity.opened');
    killedAt(r, 'after:activity.opened');
    const scan = await h.scan();
    expect(scan.code).toBe(5);
    let events = await h.events(r.id);
    expect(of(events, 'recovery.detected').map((e) => e.data.classification)).toEqual(['safe']);
    expect(of(events, 'recovery.decided')).toHaveLength(0);
    expect(await h.inspect(r.id)).toMatchObject({ state: 'recovering', inbox: [{ status: 'assigned', text: first }] });
    expect((await h.loom(['recover', r.id, '--abandon'])).code).toBe(1);
    events = await h.events(r.id);
    const inputId = of(events, 'input.admitted')[0]!.data.inputId;
    expect(of(events, 'input.released').map((e) => e.data)).toEqual([expect.objectContaining({ inputId, reason: 'activity abandoned', mode: 'steer' })]);
    expect(await h.inspect(r.id)).toMatchObject({ state: 'idle', parked: true, inbox: [{ inputId, status: 'pending' }] });
    const second = text('second');
    expect((await h.loom(['prompt', r.id, '--queue', second])).code).toBe(0);
    expect(h.server.requests.map(userContents)).toEqual([[first], [first, second]]);
    expect(of(await h.events(r.id), 'input.released')).toHaveLength(1);
    expect(h.invariants([r.id])).toEqual([]);
  });

  it.each(['before:input.released', 'after:input.released'])(
    '%s in loom recover --abandon - the decision is durable; the input is released exactly once',
    async (failpoint) => {
      const h = await setup({ recovery: { autoResume: false } });
      const r = await h.run(text('first'), 'after:activity.opened');
      killedAt(r, 'after:activity.opened');
      expect((await h.scan()).code).toBe(5);
      killedAt(await h.loom(['recover', r.id, '--abandon'], failpoint), failpoint);
      const scan = await h.scan();
      expect(scan.code).toBe(0);
      const events = await h.events(r.id);
      expect(of(events, 'recovery.decided').map((e) => e.data.decision)).toEqual(['abandon']);
      expect(of(events, 'input.released')).toHaveLength(1);
      expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['abandoned']);
      expect(await h.inspect(r.id)).toMatchObject({ state: 'idle', parked: true, inbox: [{ status: 'pending' }] });
      expect(h.invariants()).toEqual([]);
    },
  );

  it('after:text.delta - killed mid-stream: ambiguous; --retry marks the lost attempt failed, discards its partial text and re-sends without it', async () => {
    const h = await setup();
    const first = text('first', { text: 400, pace: 5 });
    const r = await h.run(first, 'after:text.delta');
    killedAt(r, 'after:text.delta');
    expect(h.server.requests).toHaveLength(1);
    expect((await h.scan()).code).toBe(5);
    expect((await h.loom(['recover', r.id, '--retry'])).code).toBe(0);
    const events = await h.events(r.id);
    const [lost] = of(events, 'attempt.failed');
    expect(lost!.data).toMatchObject({ error: { kind: 'lost' }, receivedChunks: true, discardedParts: [expect.stringMatching(/^prt_/)] });
    expect(h.server.requests).toHaveLength(2);
    // The retry is the first request again: no partial assistant text from the lost attempt.
    expect((h.server.requests[1]!.body as { messages: { role: string }[] }).messages.filter((m) => m.role !== 'system').map((m) => m.role)).toEqual(['user']);
    const done = of(events, 'text.done');
    expect(done).toHaveLength(1);
    expect(done[0]!.data.text).toMatch(/^answer to first: /);
    expect(h.invariants()).toEqual([]);
  });

  // Regression test for a bug the harness found, now fixed (abandon leaves a lost attempt without an outcome): after a process loss, `recover
  // --abandon` (and the crash-loop stop) settle the activity without recording `attempt.failed`
  // for the attempt that was in flight, so its message and partial parts are never marked
  // discarded and the partial answer is sent back to the model in the next request (DESIGN §5:
  // "a failed attempt's partial parts are marked discarded and never sent back to the model";
  // cancel does discard them). SessionActor.settleActivity/settleRecords only fail the live
  // process's `openAttempt`, which is null after a restore; `lostAttempt` is used by retry only.
  it('after:text.delta then --abandon - the lost attempt is marked failed and its partial text is never sent back', async () => {
    const h = await setup();
    const first = text('first', { text: 400, pace: 5 });
    const r = await h.run(first, 'after:text.delta');
    killedAt(r, 'after:text.delta');
    expect((await h.scan()).code).toBe(5);
    expect((await h.loom(['recover', r.id, '--abandon'])).code).toBe(1);
    const events = await h.events(r.id);
    const dispatched = of(events, 'attempt.dispatched')[0]!.data.attemptId;
    expect(of(events, 'attempt.failed').map((e) => e.data)).toEqual([expect.objectContaining({ attemptId: dispatched, receivedChunks: true })]);
    const second = text('second');
    expect((await h.loom(['prompt', r.id, '--queue', second])).code).toBe(0);
    const roles = (h.server.requests[1]!.body as { messages: { role: string }[] }).messages.filter((m) => m.role !== 'system').map((m) => m.role);
    expect(roles).toEqual(['user', 'user']); // no partial assistant answer from the lost attempt
    expect(h.invariants([r.id])).toEqual([]);
  });

  it.each(['before:attempt.failed', 'after:attempt.failed'])(
    '%s in loom recover --retry - the lost attempt is marked failed exactly once and the turn is sent once more',
    async (failpoint) => {
      const h = await setup();
      const first = text('first');
      const r = await h.run(first, 'after:attempt.dispatched');
      killedAt(r, 'after:attempt.dispatched');
      expect((await h.scan()).code).toBe(5);
      killedAt(await h.loom(['recover', r.id, '--retry'], failpoint), failpoint);
      const scan = await h.scan();
      expect(scan.code).toBe(0);
      const events = await h.events(r.id);
      expect(of(events, 'recovery.decided').filter((e) => !e.data.automatic).map((e) => e.data.decision)).toEqual(['retry']);
      expect(of(events, 'attempt.failed')).toHaveLength(1);
      expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
      expect(h.server.requests.map(userContents)).toEqual([[first]]);
      expect(h.invariants()).toEqual([]);
    },
  );

  it('before:activity.settled - the final step is rolled back with the finish, so the attempt has no outcome: ambiguous; --retry settles once', async () => {
    const h = await setup();
    const first = text('first');
    const r = await h.run(first, 'before:activity.settled');
    killedAt(r, 'before:activity.settled');
    let events = await h.events(r.id);
    expect(of(events, 'turn.finished')).toHaveLength(0);
    expect(of(events, 'activity.settled')).toHaveLength(0);
    expect((await h.scan()).code).toBe(5);
    expect(of(await h.events(r.id), 'recovery.detected').map((e) => e.data.classification)).toEqual(['ambiguous']);
    expect((await h.loom(['recover', r.id, '--retry'])).code).toBe(0);
    events = await h.events(r.id);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(of(events, 'turn.finished')).toHaveLength(1);
    expect(h.server.requests).toHaveLength(2);
    expect(h.invariants()).toEqual([]);
  });

  it('after:activity.settled - everything is durable: nothing to recover, the answer is in the log', async () => {
    const h = await setup();
    const r = await h.run(text('first'), 'after:activity.settled');
    killedAt(r, 'after:activity.settled');
    const scan = await h.scan();
    expect(scan.code).toBe(0);
    expect(scan.stderr).toContain('0 unsettled');
    expect(await h.inspect(r.id)).toMatchObject({ state: 'idle', lastActivityStatus: 'completed', inbox: [] });
    const events = await h.events(r.id);
    expect(of(events, 'text.done')[0]!.data.text).toMatch(/^answer to first: /);
    expect(h.server.requests).toHaveLength(1);
    expect(h.invariants()).toEqual([]);
  });

  it('before:activity.settled in loom recover --abandon - the decision is durable; the next scan settles the activity once', async () => {
    const h = await setup();
    const r = await h.run(text('first'), 'after:attempt.dispatched');
    killedAt(r, 'after:attempt.dispatched');
    expect((await h.scan()).code).toBe(5);
    killedAt(await h.loom(['recover', r.id, '--abandon'], 'before:activity.settled'), 'before:activity.settled');
    let events = await h.events(r.id);
    expect(of(events, 'recovery.decided').map((e) => e.data.decision)).toEqual(['abandon']);
    expect(of(events, 'activity.settled')).toHaveLength(0);
    const scan = await h.scan();
    expect(scan.code).toBe(0);
    expect(scan.stdout).toMatch(/idle\s+last: abandoned/);
    events = await h.events(r.id);
    expect(of(events, 'recovery.decided')).toHaveLength(1);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['abandoned']);
  });
});

describe('failpoints: tool calls (probe_append is not idempotent: it never runs twice without a recorded decision)', () => {
  it('after:tool.called - ambiguous before the tool started; --retry settles the unstarted call interrupted and the model calls again: one line per call', async () => {
    const h = await setup();
    const r = await h.run(text('first', { rounds: 1, probes: 1 }), 'after:tool.called');
    killedAt(r, 'after:tool.called');
    expect(h.probe().size).toBe(0);
    expect((await h.scan()).code).toBe(5);
    expect((await h.loom(['recover', r.id, '--retry'])).code).toBe(0);
    const events = await h.events(r.id);
    const calls = of(events, 'tool.called').map((e) => e.data.callId);
    expect(calls).toHaveLength(2);
    expect(of(events, 'tool.settled').map((e) => [e.data.callId, e.data.status])).toEqual([
      [calls[0], 'interrupted'],
      [calls[1], 'ok'],
    ]);
    expect([...h.probe()]).toEqual([[calls[1], 1]]);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(h.invariants()).toEqual([]);
  });

  it('after:tool.started mid-stream - ambiguous; --retry never runs the started call again (the retried turn makes a new call)', async () => {
    const h = await setup();
    // pace: the stream's end is still 2 × 150 ms away when the call starts
    const r = await h.run(text('first', { rounds: 1, probes: 1, pace: 150 }), 'after:tool.started');
    killedAt(r, 'after:tool.started');
    expect(h.probe().size).toBe(0); // killed right after the barrier, before the tool ran
    expect((await h.scan()).code).toBe(5);
    expect((await h.loom(['recover', r.id, '--retry'])).code).toBe(0);
    const events = await h.events(r.id);
    const calls = of(events, 'tool.called').map((e) => e.data.callId);
    expect(of(events, 'tool.settled').map((e) => [e.data.callId, e.data.status])).toEqual([
      [calls[0], 'interrupted'],
      [calls[1], 'ok'],
    ]);
    expect([...h.probe()]).toEqual([[calls[1], 1]]);
    expect(h.invariants()).toEqual([]);
  });

  it('before:tool.started (2nd probe) - tools: the call that never started runs once when the turn continues', async () => {
    const h = await setup({ limits: { toolConcurrency: 1 } });
    // One call at a time: the stream has finished while the first probe sleeps.
    const r = await h.run(text('first', { rounds: 1, probes: 2, probe: 500 }), 'before:tool.started@2');
    killedAt(r, 'before:tool.started@2');
    let events = await h.events(r.id);
    const calls = of(events, 'tool.called').map((e) => e.data.callId);
    expect(of(events, 'turn.finished')).toHaveLength(1);
    expect([...h.probe()]).toEqual([[calls[0], 1]]);
    expect((await h.scan()).code).toBe(0);
    events = await h.events(r.id);
    expect(of(events, 'recovery.detected').map((e) => e.data)).toEqual([expect.objectContaining({ classification: 'tools', reason: expect.stringContaining('1 tool call(s) were unsettled') })]);
    expect(of(events, 'recovery.decided').map((e) => [e.data.decision, e.data.automatic])).toEqual([['continue', true]]);
    expect(of(events, 'tool.settled').map((e) => [e.data.callId, e.data.status])).toEqual([
      [calls[0], 'ok'],
      [calls[1], 'ok'],
    ]);
    expect([...h.probe()].sort()).toEqual([[calls[0], 1], [calls[1], 1]].sort());
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(h.invariants()).toEqual([]);
  });

  it('after:tool.started (2nd probe) - tools: started, never settled: it settles interrupted without running again, and the model is told', async () => {
    const h = await setup({ limits: { toolConcurrency: 1 } });
    const r = await h.run(text('first', { rounds: 1, probes: 2, probe: 500 }), 'after:tool.started@2');
    killedAt(r, 'after:tool.started@2');
    expect((await h.scan()).code).toBe(0);
    const events = await h.events(r.id);
    const called = of(events, 'tool.called');
    const calls = called.map((e) => e.data.callId);
    expect(of(events, 'recovery.detected').map((e) => e.data.classification)).toEqual(['tools']);
    const settled = of(events, 'tool.settled');
    expect(settled.map((e) => [e.data.callId, e.data.status])).toEqual([
      [calls[0], 'ok'],
      [calls[1], 'interrupted'],
    ]);
    expect(settled[1]!.data.output).toMatch(/not run again because it is not idempotent/);
    expect([...h.probe()]).toEqual([[calls[0], 1]]);
    const told = toolMessages(h.server.requests[1]!).find((m) => m.tool_call_id === called[1]!.data.providerCallId);
    expect(told?.content).toMatch(/interrupted by a process loss/);
    expect(h.invariants()).toEqual([]);
  });

  it('after:turn.finished with a slow probe in flight - tools: continue settles the started probe interrupted (the model is told) and runs the queued read', async () => {
    const h = await setup({ limits: { toolConcurrency: 1 } });
    const r = await h.run(text('first', { rounds: 1, probes: 1, probe: 3000, read: true }), 'after:turn.finished');
    killedAt(r, 'after:turn.finished');
    expect((await h.scan()).code).toBe(0);
    const events = await h.events(r.id);
    const [probe, read] = of(events, 'tool.called');
    expect(of(events, 'recovery.detected').map((e) => e.data)).toEqual([expect.objectContaining({ classification: 'tools', reason: expect.stringContaining('2 tool call(s) were unsettled') })]);
    expect(of(events, 'recovery.decided').map((e) => [e.data.decision, e.data.automatic])).toEqual([['continue', true]]);
    expect(of(events, 'tool.settled').map((e) => [e.data.callId, e.data.status])).toEqual([
      [probe!.data.callId, 'interrupted'],
      [read!.data.callId, 'ok'],
    ]);
    expect(h.probe().size).toBe(0);
    const told = toolMessages(h.server.requests[1]!);
    expect(told.find((m) => m.tool_call_id === probe!.data.providerCallId)?.content).toMatch(/not run again because it is not idempotent/);
    expect(told.find((m) => m.tool_call_id === read!.data.providerCallId)?.content).toContain('remember the milk');
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(h.invariants()).toEqual([]);
  });

  it('after:tool.started (read, after a probe) - tools: the started idempotent read runs again', async () => {
    const h = await setup({ limits: { toolConcurrency: 1 } });
    const r = await h.run(text('first', { rounds: 1, probes: 1, probe: 500, read: true }), 'after:tool.started@2');
    killedAt(r, 'after:tool.started@2');
    expect((await h.scan()).code).toBe(0);
    const events = await h.events(r.id);
    const [probe, read] = of(events, 'tool.called').map((e) => e.data.callId);
    expect(of(events, 'recovery.detected').map((e) => e.data.classification)).toEqual(['tools']);
    expect(of(events, 'tool.started').map((e) => e.data.callId)).toEqual([probe, read, read]);
    expect(of(events, 'tool.settled').map((e) => [e.data.callId, e.data.status])).toEqual([
      [probe, 'ok'],
      [read, 'ok'],
    ]);
    expect([...h.probe()]).toEqual([[probe, 1]]);
    expect(h.invariants()).toEqual([]);
  });

  it('before:tool.settled - the probe ran but its result was lost: it settles interrupted, not run again (one line)', async () => {
    const h = await setup();
    const r = await h.run(text('first', { rounds: 1, probes: 1, probe: 300 }), 'before:tool.settled');
    killedAt(r, 'before:tool.settled');
    const [callId] = [...h.probe().keys()];
    expect([...h.probe()]).toEqual([[callId, 1]]);
    expect((await h.scan()).code).toBe(0);
    const events = await h.events(r.id);
    expect(of(events, 'recovery.detected').map((e) => e.data.classification)).toEqual(['tools']);
    expect(of(events, 'tool.settled').map((e) => [e.data.callId, e.data.status])).toEqual([[callId, 'interrupted']]);
    expect([...h.probe()]).toEqual([[callId, 1]]);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(h.invariants()).toEqual([]);
  });

  it('after:tool.settled - the result is durable with the next turn: safe, the next turn is retried automatically; one line', async () => {
    const h = await setup();
    const r = await h.run(text('first', { rounds: 1, probes: 1, probe: 300 }), 'after:tool.settled');
    killedAt(r, 'after:tool.settled');
    expect(h.server.requests).toHaveLength(1);
    expect((await h.scan()).code).toBe(0);
    const events = await h.events(r.id);
    const [callId] = of(events, 'tool.called').map((e) => e.data.callId);
    expect(of(events, 'recovery.detected').map((e) => e.data.classification)).toEqual(['safe']);
    expect(of(events, 'tool.settled').map((e) => [e.data.callId, e.data.status])).toEqual([[callId, 'ok']]);
    expect([...h.probe()]).toEqual([[callId, 1]]);
    expect(toolMessages(h.server.requests[1]!)[0]!.content).toBe(`appended ${callId}`);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(h.invariants()).toEqual([]);
  });
});

describe('failpoints: recovery itself', () => {
  it('after:recovery.decided in loom recover --retry - the decision is durable; the next scan carries it out', async () => {
    const h = await setup();
    const first = text('first');
    const r = await h.run(first, 'after:attempt.dispatched');
    killedAt(r, 'after:attempt.dispatched');
    expect((await h.scan()).code).toBe(5);
    killedAt(await h.loom(['recover', r.id, '--retry'], 'after:recovery.decided'), 'after:recovery.decided');
    expect(h.server.requests).toHaveLength(0);
    expect((await h.scan()).code).toBe(0);
    const events = await h.events(r.id);
    expect(of(events, 'recovery.detected')).toHaveLength(1); // the waiting session is not classified again
    expect(of(events, 'recovery.decided').map((e) => e.data.decision)).toEqual(['retry']);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(h.server.requests.map(userContents)).toEqual([[first]]);
    expect(h.invariants()).toEqual([]);
  });

  it('after:recovery.detected - the classification and its automatic decision commit together; the next restart classifies again with restarts + 1', async () => {
    const h = await setup();
    const r = await h.run(text('first'), 'after:activity.opened');
    killedAt(r, 'after:activity.opened');
    killedAt(await h.scan('after:recovery.detected'), 'after:recovery.detected');
    let events = await h.events(r.id);
    expect(of(events, 'recovery.detected').map((e) => e.data.restarts)).toEqual([1]);
    expect(of(events, 'recovery.decided').map((e) => e.data.decision)).toEqual(['retry']);
    expect((await h.scan()).code).toBe(0);
    events = await h.events(r.id);
    expect(of(events, 'recovery.detected').map((e) => [e.data.classification, e.data.restarts])).toEqual([
      ['safe', 1],
      ['safe', 2],
    ]);
    expect((await h.inspect(r.id)).lastActivityStatus).toBe('completed');
    expect(h.invariants()).toEqual([]);
  });

  it('before:recovery.detected - a restart killed while classifying records nothing; the next one classifies', async () => {
    const h = await setup();
    const r = await h.run(text('first'), 'after:activity.opened');
    killedAt(r, 'after:activity.opened');
    killedAt(await h.scan('before:recovery.detected'), 'before:recovery.detected');
    expect(of(await h.events(r.id), 'recovery.detected')).toHaveLength(0);
    expect((await h.scan()).code).toBe(0);
    const events = await h.events(r.id);
    expect(of(events, 'recovery.detected').map((e) => [e.data.classification, e.data.restarts])).toEqual([['safe', 1]]);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(h.invariants()).toEqual([]);
  });

  it('crash loop: with recovery.restartsMax 2 and the failpoint hit on every restart, the third restart settles the activity failed', async () => {
    const h = await setup({ recovery: { restartsMax: 2 } });
    const fp = 'before:attempt.dispatched';
    const r = await h.run(text('first'), fp);
    killedAt(r, fp);
    killedAt(await h.scan(fp), fp);
    killedAt(await h.scan(fp), fp);
    await h.scan(fp); // stops the loop (see the next test for what follows it)
    const events = await h.events(r.id);
    const act = of(events, 'activity.opened')[0]!.data.activityId;
    const detected = of(events, 'recovery.detected').filter((e) => e.data.activityId === act);
    expect(detected.map((e) => [e.data.classification, e.data.restarts])).toEqual([
      ['safe', 1],
      ['safe', 2],
      ['crash_loop', 3],
    ]);
    expect(detected[2]!.data.reason).toContain('limit 2');
    const settled = of(events, 'activity.settled').filter((e) => e.data.activityId === act);
    expect(settled.map((e) => [e.data.status, e.data.reason])).toEqual([['failed', 'crash loop: too many restarts']]);
    const inputId = of(events, 'input.admitted')[0]!.data.inputId;
    expect(of(events, 'input.released').map((e) => [e.data.inputId, e.data.activityId])).toEqual([[inputId, act]]);
    expect(h.server.requests).toHaveLength(0);
  });

  // Regression test for a bug the harness found, now fixed (the crash-loop stop does not stop the loop): when a crash loop settles an activity
  // `failed`, its input is released to pending and the session is not parked, so the same step
  // opens a new activity with the same input (activity.opened right after activity.settled), whose
  // restart counter starts again at 0; a crash that the input causes goes on forever, restartsMax
  // restarts per activity. Expected: like cancel and abandon, the stop parks the session, so the
  // released input waits for a new input, run or wake.
  it('crash loop: after the stop the session is parked and the released input waits', async () => {
    const h = await setup({ recovery: { restartsMax: 2 } });
    const fp = 'before:attempt.dispatched';
    const r = await h.run(text('first'), fp);
    killedAt(r, fp);
    killedAt(await h.scan(fp), fp);
    killedAt(await h.scan(fp), fp);
    const stop = await h.scan(fp);
    expect(stop.signal).toBeNull();
    expect(stop.code).toBe(0);
    const events = await h.events(r.id);
    expect(of(events, 'activity.opened')).toHaveLength(1);
    expect(await h.inspect(r.id)).toMatchObject({ state: 'idle', parked: true, lastActivityStatus: 'failed', inbox: [{ status: 'pending' }] });
    expect(h.invariants()).toEqual([]);
  });

  it('an idempotent provider: an ambiguous attempt is retried automatically within recovery.retryBudget, then waits for a decision', async () => {
    const h = await setup({ idempotentProvider: true, recovery: { retryBudget: 1 } });
    const fp = 'after:attempt.dispatched';
    const r = await h.run(text('first'), fp);
    killedAt(r, fp);
    killedAt(await h.scan(fp), fp); // restart 1: within the budget, retried automatically, killed again
    let events = await h.events(r.id);
    expect(of(events, 'recovery.decided').map((e) => e.data)).toEqual([
      expect.objectContaining({ decision: 'retry', automatic: true, reason: expect.stringContaining('configured idempotent') }),
    ]);
    const scan = await h.scan(); // restart 2: over the budget
    expect(scan.code).toBe(5);
    events = await h.events(r.id);
    expect(of(events, 'recovery.detected').map((e) => [e.data.classification, e.data.restarts])).toEqual([
      ['ambiguous', 1],
      ['ambiguous', 2],
    ]);
    expect(of(events, 'recovery.decided')).toHaveLength(1);
    expect((await h.loom(['recover', r.id, '--retry'])).code).toBe(0);
    expect(of(await h.events(r.id), 'attempt.failed')).toHaveLength(2);
    expect(h.invariants()).toEqual([]);
  });
});
