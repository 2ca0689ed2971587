import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { forkSession, InvalidForkPointError } from '../../store/fork.js';
import { PROJECTION_TABLES, SessionNotFoundError, type AnyEnvelope, type AppendRequest, type MessageView, type Store } from '../../store/index.js';
import { createHarness, type Harness } from '../actors/harness.js';
import { tempStore } from '../helpers.js';

/** Every event of a session, oldest first. */
function eventsOf(store: Store, sessionId: string): AnyEnvelope[] {
  store.flushDeltas();
  const out: AnyEnvelope[] = [];
  for (let page = store.read(sessionId); page.length > 0; page = store.read(sessionId, { after: page.at(-1)!.seq })) out.push(...page);
  return out;
}

/** The conversation without ids: what a provider would be sent. */
function plain(conversation: MessageView[]) {
  return conversation.map((m) => ({
    role: m.role,
    text: m.text,
    parts: m.parts.map((p) => ({ kind: p.kind, text: p.text, providerMetadata: p.providerMetadata })),
    toolCalls: m.toolCalls.map((c) => ({ tool: c.tool, input: c.input, providerCallId: c.providerCallId, state: c.state, status: c.status, output: c.output })),
  }));
}

/**
 * The source's log as of `atSeq`, with its own ids, in a store of its own: what the source's
 * projections were right after `atSeq` was appended.
 */
function sourceAsOf(events: AnyEnvelope[], atSeq: number): { store: Store; sessionId: string } {
  const store = tempStore();
  const sessionId = events[0]!.sessionId!;
  store.append({ sessionId, type: 'session.created', data: events[0]!.data } as AppendRequest);
  const { epoch } = store.owners.acquire(sessionId, 'reference', 60_000, Date.now())!;
  for (const e of events.slice(1, atSeq)) store.append({ sessionId, type: e.type, data: e.data, epoch } as AppendRequest);
  return { store, sessionId };
}

const ID_KEYS = new Set(['inputId', 'activityId', 'attemptId', 'partId', 'callId', 'turnId', 'requestId', 'runId', 'jobId']);
const ID_ARRAYS = new Set(['inputIds', 'discardedParts']);

/**
 * Asserts that `fork` equals `source` but for ids, and that the ids were rewritten by a bijection
 * (one fresh id per source id, never a source id itself).
 */
function expectEqualModuloIds(source: AnyEnvelope[], fork: AnyEnvelope[]): void {
  const there = new Map<string, string>();
  const back = new Map<string, string>();
  const pair = (a: string, b: string) => {
    expect(b).not.toBe(a);
    expect(there.get(a) ?? b).toBe(b);
    expect(back.get(b) ?? a).toBe(a);
    there.set(a, b);
    back.set(b, a);
  };
  const walk = (a: unknown, b: unknown, key?: string): void => {
    if (key && ID_KEYS.has(key) && typeof a === 'string') return pair(a, b as string);
    if (key && ID_ARRAYS.has(key) && Array.isArray(a)) {
      expect((b as unknown[]).length).toBe(a.length);
      a.forEach((x, i) => pair(x as string, (b as string[])[i]!));
      return;
    }
    if (key === 'providerMetadata' || a === null || typeof a !== 'object') return void expect(b).toEqual(a);
    expect(Object.keys(b as object).sort()).toEqual(Object.keys(a as object).sort());
    for (const k of Object.keys(a as object)) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], Array.isArray(a) ? undefined : k);
  };
  expect(fork.map((e) => e.type)).toEqual(source.map((e) => e.type));
  source.forEach((e, i) => walk(e.data, fork[i]!.data));
}

const READ = { toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] };

/**
 * A real session run by the actor runtime: activity 1 is "first" (a `read`, then an answer),
 * activity 2 is "second" (an answer). Later requests get "forked answer".
 */
async function sourceSession(): Promise<{ h: Harness; events: AnyEnvelope[] }> {
  const h = await createHarness({
    script: [READ, { text: 'You need milk.' }, { text: 'two' }],
    respond: () => ({ text: 'forked answer' }),
  });
  writeFileSync(join(h.location, 'notes.md'), 'remember the milk\n');
  h.admit('steer', 'first');
  await h.run();
  h.admit('queue', 'second');
  await h.run();
  h.coordinator.release(h.sessionId);
  const events = h.events();
  expect(events.filter((e) => e.type === 'activity.settled').map((e) => (e.data as { status: string }).status)).toEqual(['completed', 'completed']);
  return { h, events };
}

const seqOf = (events: AnyEnvelope[], type: string, nth = 0) => events.filter((e) => e.type === type)[nth]!.seq;

describe('store - fork', () => {
  it('fork - at every seq: the copied events equal the source modulo ids, the fork is idle and its projections equal a rebuild', async () => {
    const { h, events } = await sourceSession();
    const store = h.store;
    const settledSeqs = events.filter((e) => e.type === 'activity.settled').map((e) => e.seq);
    const openAt = (seq: number) => {
      const opened = events.filter((e) => e.type === 'activity.opened' && e.seq <= seq).length;
      const settled = events.filter((e) => e.type === 'activity.settled' && e.seq <= seq).length;
      return opened > settled;
    };
    for (let at = 1; at <= events.length; at++) {
      const result = forkSession(store, h.sessionId, at);
      const forked = eventsOf(store, result.sessionId);
      expect(forked[0]).toMatchObject({ seq: 1, type: 'session.created' });
      expect(forked[0]!.data).toEqual({ location: h.location, model: 'openai/test', title: `fork of ${h.sessionId} at ${at}`, parentId: h.sessionId });
      expect(forked.map((e) => e.seq)).toEqual(forked.map((_, i) => i + 1));
      expectEqualModuloIds(events.slice(1, at), forked.slice(1, at));
      expect(result).toMatchObject({ sourceId: h.sessionId, atSeq: at, copied: at - 1, lastSeq: forked.length });
      const row = store.queries.session(result.sessionId)!;
      expect(row).toMatchObject({ status: 'idle', activityId: null, parentId: h.sessionId, lastSeq: forked.length });
      if (openAt(at)) {
        expect(forked.at(-1)).toMatchObject({ type: 'activity.settled', data: { status: 'abandoned', reason: `forked at seq ${at}` } });
        expect(result.abandonedActivityId).toBe((forked.at(-1)!.data as { activityId: string }).activityId);
      } else {
        expect(forked).toHaveLength(at);
        expect(result.abandonedActivityId).toBeNull();
      }
      // The fork's lease was released: a later owner takes it normally.
      expect(store.owners.get(result.sessionId, Date.now())).toMatchObject({ held: false, epoch: 1 });
    }
    // Appending through the projections was exact: a rebuild from the log gives the same rows.
    const live = store.queries.dumpProjections(PROJECTION_TABLES);
    store.rebuildProjections();
    expect(store.queries.dumpProjections(PROJECTION_TABLES)).toEqual(live);

    // Forks at a settled boundary see exactly the conversation the source had then.
    for (const at of [...settledSeqs, events.length]) {
      const { sessionId } = forkSession(store, h.sessionId, at);
      const ref = sourceAsOf(events, at);
      const expected = plain(ref.store.queries.conversation(ref.sessionId));
      expect(plain(store.queries.conversation(sessionId))).toEqual(expected);
      expect(expected.map((m) => m.role)).toEqual(at === settledSeqs[0] ? ['user', 'assistant', 'assistant'] : ['user', 'assistant', 'assistant', 'user', 'assistant']);
    }
  });

  it('fork - inside an activity: unsettled calls interrupted, the in-flight attempt discarded, the activity settled abandoned; the fork runs on from there', async () => {
    const { h, events } = await sourceSession();
    const store = h.store;
    const at = seqOf(events, 'tool.called'); // the stream has produced a call and not finished
    const { sessionId, abandonedActivityId } = forkSession(store, h.sessionId, at);
    const forked = eventsOf(store, sessionId);
    const tail = forked.slice(at).map((e) => ({ type: e.type, data: e.data }));
    const callId = (forked[at - 1]!.data as { callId: string }).callId;
    const attemptId = (forked.find((e) => e.type === 'attempt.dispatched')!.data as { attemptId: string }).attemptId;
    expect(tail).toEqual([
      { type: 'tool.settled', data: expect.objectContaining({ callId, status: 'interrupted' }) },
      {
        type: 'attempt.failed',
        data: expect.objectContaining({ activityId: abandonedActivityId, attemptId, retryable: false, error: expect.objectContaining({ kind: 'forked' }) }),
      },
      { type: 'activity.settled', data: { activityId: abandonedActivityId, status: 'abandoned', reason: `forked at seq ${at}`, turns: 1 } },
    ]);
    expect(store.queries.activity(abandonedActivityId!)).toMatchObject({ status: 'abandoned', reason: `forked at seq ${at}` });
    // The discarded attempt (and its call) never reaches the model: only the user's input remains.
    expect(plain(store.queries.conversation(sessionId)).map((m) => m.role)).toEqual(['user']);

    // The fork restores idle (no snapshot: replayed from its log) and runs a new input on top of that history.
    const before = h.server.requests.length;
    store.admitInput(sessionId, { mode: 'queue', text: 'more' });
    const actor = h.coordinator.own(sessionId)!;
    await h.coordinator.runUntilQuiet(sessionId);
    expect(actor.failure).toBeUndefined();
    expect(h.server.requests).toHaveLength(before + 1);
    const messages = (h.server.requests.at(-1)!.body as { messages: { role: string; content: string }[] }).messages;
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'first'],
      ['user', 'more'],
    ]);
    expect(store.queries.session(sessionId)).toMatchObject({ status: 'idle', lastActivityStatus: 'completed' });
  });

  it('fork - an input assigned and not yet sent is released to pending in the fork, and runs first', async () => {
    const { h, events } = await sourceSession();
    const store = h.store;
    const at = seqOf(events, 'input.assigned', 1); // "second" taken by activity 2, not dispatched yet
    const { sessionId } = forkSession(store, h.sessionId, at);
    const forked = eventsOf(store, sessionId);
    expect(forked.slice(at).map((e) => e.type)).toEqual(['input.released', 'activity.settled']);
    expect(forked.at(-1)!.data).toMatchObject({ status: 'abandoned', turns: 0 });
    const inputs = store.inputs(sessionId);
    expect(inputs.map((i) => [i.text, i.status])).toEqual([
      ['first', 'consumed'],
      ['second', 'pending'],
    ]);
    // The source's inbox is untouched.
    expect(store.inputs(h.sessionId).map((i) => i.status)).toEqual(['consumed', 'consumed']);

    store.admitInput(sessionId, { mode: 'queue', text: 'more' });
    h.coordinator.own(sessionId);
    await h.coordinator.runUntilQuiet(sessionId);
    const bodies = h.server.requests.slice(-2).map((r) => (r.body as { messages: { role: string; content: string }[] }).messages);
    expect(bodies[0]!.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['first', 'second']);
    expect(bodies[1]!.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['first', 'second', 'more']);
    expect(store.queries.activities(sessionId).map((a) => a.status)).toEqual(['completed', 'abandoned', 'completed', 'completed']);
  });

  it('fork - of a session waiting for a recovery decision: the ambiguous attempt is discarded and the activity abandoned', () => {
    const store = tempStore();
    const sid = store.ids.next('ses');
    store.append({ sessionId: sid, type: 'session.created', data: { location: '/p', model: 'openai/m', doubleTexting: 'queue' } });
    const inputId = store.admitInput(sid, { mode: 'steer', text: 'go' }).input.inputId;
    const { epoch } = store.owners.acquire(sid, 'lost-owner', 60_000, Date.now())!;
    const o = (type: string, data: object) => ({ sessionId: sid, type, data, epoch }) as AppendRequest;
    const [act, turn, att, prt] = ['act_a', 'turn_a', 'att_a', 'prt_a'];
    store.append([
      o('activity.opened', { activityId: act, trigger: 'input', inputIds: [inputId], turnLimit: 10 }),
      o('input.assigned', { inputId, activityId: act }),
      o('turn.started', { activityId: act, turnId: turn, turn: 1 }),
      o('attempt.dispatched', { activityId: act, turnId: turn, attemptId: att, attempt: 1, model: 'openai/m', inputIds: [inputId] }),
      o('input.consumed', { inputId, activityId: act, attemptId: att }),
      o('reasoning.delta', { activityId: act, attemptId: att, partId: prt, delta: 'thinking' }),
      o('recovery.detected', { activityId: act, reason: 'ambiguous', attemptId: att, restarts: 1, classification: 'ambiguous' }),
    ]);
    expect(store.queries.session(sid)!.status).toBe('recovering');
    const last = store.queries.session(sid)!.lastSeq;
    const { sessionId, abandonedActivityId } = forkSession(store, sid, last);
    const forked = eventsOf(store, sessionId);
    expect(forked[0]!.data).toMatchObject({ doubleTexting: 'queue', parentId: sid });
    expect(forked.slice(last).map((e) => [e.type, e.data])).toEqual([
      ['attempt.failed', expect.objectContaining({ receivedChunks: true, discardedParts: [(forked.find((e) => e.type === 'reasoning.delta')!.data as { partId: string }).partId] })],
      ['activity.settled', { activityId: abandonedActivityId, status: 'abandoned', reason: `forked at seq ${last}`, turns: 1 }],
    ]);
    expect(store.queries.session(sessionId)).toMatchObject({ status: 'idle', lastActivityStatus: 'abandoned', doubleTexting: 'queue' });
    expect(plain(store.queries.conversation(sessionId))).toEqual([{ role: 'user', text: 'go', parts: [], toolCalls: [] }]);
    // The source still waits for its decision.
    expect(store.queries.session(sid)!.status).toBe('recovering');
  });

  it('fork - a background job running at the fork point stays with the source: the fork records it lost', () => {
    const store = tempStore();
    const sid = store.ids.next('ses');
    store.append({ sessionId: sid, type: 'session.created', data: { location: '/p', model: 'openai/m' } });
    const { epoch } = store.owners.acquire(sid, 'owner', 60_000, Date.now())!;
    const started = (jobId: string) => ({
      sessionId: sid,
      epoch,
      type: 'job.started',
      data: { jobId, kind: 'bash', summary: 'sleep 100', pid: 4242, pgid: 4242, processStartTime: 7, outputPath: `/h/jobs/${jobId}.out`, timeoutMs: 60_000, startedAt: '2025-01-01T00:00:00.000Z' },
    }) as AppendRequest;
    store.append([
      started('job_running'),
      started('job_done'),
      { sessionId: sid, epoch, type: 'job.settled', data: { jobId: 'job_done', status: 'ok', exitCode: 0, outputTail: '', outputBytes: 0 } },
    ]);
    const last = store.queries.session(sid)!.lastSeq;
    const { sessionId } = forkSession(store, sid, last);
    const forked = eventsOf(store, sessionId);
    expect(forked.slice(last).map((e) => [e.type, (e.data as { status: string }).status])).toEqual([['job.settled', 'lost']]);
    expect(store.queries.jobs(sessionId, { limit: 10 }).map((j) => j.status).sort()).toEqual(['lost', 'ok']);
    expect(store.queries.job('job_running')!.status).toBe('running'); // the source keeps it
  });

  it('fork - refuses a seq outside 1..last, naming it, and an unknown session; nothing is written', async () => {
    const store = tempStore();
    const sessionId = store.ids.next('ses');
    store.append({ sessionId, type: 'session.created', data: { location: '/p', model: 'openai/m' } });
    store.admitInput(sessionId, { mode: 'steer', text: 'hi' });
    const count = () => store.queries.sessions().length;
    for (const bad of [0, -1, 3, 1.5, Number.NaN]) {
      let error: unknown;
      try {
        forkSession(store, sessionId, bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidForkPointError);
      expect((error as Error).message).toBe(`cannot fork session ${sessionId} at seq ${bad}: its log has seq 1..2`);
    }
    expect(() => forkSession(store, 'ses_nope', 1)).toThrow(SessionNotFoundError);
    expect(count()).toBe(1);
    // The bounds themselves are fine: seq 1 is a fresh session with the same settings.
    const one = forkSession(store, sessionId, 1);
    expect(eventsOf(store, one.sessionId).map((e) => e.type)).toEqual(['session.created']);
    const two = forkSession(store, sessionId, 2);
    expect(store.inputs(two.sessionId).map((i) => [i.text, i.status])).toEqual([['hi', 'pending']]);
    expect(store.inputs(two.sessionId)[0]!.inputId).not.toBe(store.inputs(sessionId)[0]!.inputId);
  });
});
