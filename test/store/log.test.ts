import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../core/clock.js';
import { DELTA_BATCH_BYTES_MAX, DELTA_FLUSH_INTERVAL_MS, READ_PAGE_EVENTS_MAX } from '../../core/limits.js';
import {
  IllegalInboxTransitionError,
  InvalidEventError,
  SessionNotFoundError,
  StaleOwnerError,
  Store,
  UnknownEventTypeError,
  type AppendRequest,
} from '../../store/index.js';
import { tempStore } from '../helpers.js';

function createSession(store: Store, sessionId = 'ses_1') {
  store.append({ sessionId, type: 'session.created', data: { location: '/work/project', model: 'openai/gpt-test' } });
}

function own(store: Store, sessionId = 'ses_1', owner = 'owner-a') {
  const lease = store.owners.acquire(sessionId, owner, 60_000, store.clock.now());
  if (!lease) throw new Error('lease not acquired');
  return lease;
}

const opened = (activityId = 'act_1') => ({ activityId, trigger: 'run' as const, inputIds: [] as string[], turnLimit: 25 });

describe('store/log - envelope and sequencing', () => {
  it('append - returns envelopes with contiguous seq per session and increasing gseq across sessions', () => {
    const store = tempStore();
    createSession(store, 'ses_a');
    createSession(store, 'ses_b');
    const a = store.append([
      { sessionId: 'ses_a', type: 'compaction.requested', data: {} },
      { sessionId: 'ses_a', type: 'compaction.requested', data: {} },
    ]);
    const b = store.append({ sessionId: 'ses_b', type: 'compaction.requested', data: {} });
    expect(a.map((e) => e.seq)).toEqual([2, 3]);
    expect(b[0]!.seq).toBe(2);
    const all = store.readAll();
    expect(all.map((e) => e.gseq)).toEqual([1, 2, 3, 4, 5]);
    const e = all[0]!;
    expect(Object.keys(e).sort()).toEqual(['at', 'data', 'gseq', 'seq', 'sessionId', 'type', 'version']);
    expect(e).toMatchObject({ sessionId: 'ses_a', seq: 1, type: 'session.created', version: 1 });
    expect(() => new Date(e.at).toISOString()).not.toThrow();
  });

  it('append - gseq is never reused, even after the newest row is gone', () => {
    const store = tempStore();
    createSession(store);
    store.append({ sessionId: 'ses_1', type: 'compaction.requested', data: {} });
    store.db.exec('DELETE FROM events WHERE gseq = 2');
    const [e] = store.append({ sessionId: 'ses_1', type: 'compaction.requested', data: {} });
    expect(e!.gseq).toBe(3);
  });

  it('append - a batch is one transaction: one bad event writes nothing', () => {
    const store = tempStore();
    createSession(store);
    expect(() =>
      store.append([
        { sessionId: 'ses_1', type: 'compaction.requested', data: {} },
        { sessionId: 'ses_1', type: 'input.cancelled', data: { inputId: 'in_missing' } },
      ]),
    ).toThrow(IllegalInboxTransitionError);
    expect(store.read('ses_1')).toHaveLength(1);
  });

  it('append - system events go to the system log with their own seq', () => {
    const store = tempStore();
    createSession(store);
    const [e] = store.append({ sessionId: null, type: 'model.added', data: { model: 'openai/gpt-test' } });
    expect(e).toMatchObject({ sessionId: null, seq: 1, type: 'model.added' });
    expect(store.readSystem().map((x) => x.type)).toEqual(['model.added']);
    expect(() => store.append({ sessionId: 'ses_1', type: 'model.added', data: { model: 'x' } } as AppendRequest)).toThrow(/sessionId/);
  });

  it('append - an event for a session that does not exist is refused', () => {
    const store = tempStore();
    expect(() => store.append({ sessionId: 'ses_nope', type: 'compaction.requested', data: {} })).toThrow(SessionNotFoundError);
    expect(store.readAll()).toHaveLength(0);
  });
});

describe('store/log - validation and versions', () => {
  it('append - invalid data is refused with an error naming the field', () => {
    const store = tempStore();
    createSession(store);
    const bad = { sessionId: 'ses_1', type: 'input.admitted', data: { inputId: 'in_1', mode: 'shout', text: 'hi' } } as unknown as AppendRequest;
    expect(() => store.append(bad)).toThrow(InvalidEventError);
    expect(() => store.append(bad)).toThrow(/field "mode"/);
    const nested = { sessionId: 'ses_1', type: 'attempt.failed', data: { activityId: 'a', attemptId: 'b', error: { kind: 'x', message: 5 }, retryable: true, receivedChunks: false, discardedParts: [] } } as unknown as AppendRequest;
    expect(() => store.append(nested)).toThrow(/field "error.message"/);
    expect(store.read('ses_1')).toHaveLength(1);
  });

  it('append - an unknown event type fails loudly, naming it', () => {
    const store = tempStore();
    createSession(store);
    expect(() => store.append({ sessionId: 'ses_1', type: 'session.exploded', data: {} } as unknown as AppendRequest)).toThrow(
      new UnknownEventTypeError('session.exploded'),
    );
  });

  it('read - an older version is upcast to the current shape', () => {
    const store = tempStore();
    createSession(store);
    store.db
      .prepare(`INSERT INTO events (session_id, seq, type, version, at, data) VALUES ('ses_1', 2, 'text.delta', 1, ?, ?)`)
      .run(new Date().toISOString(), JSON.stringify({ partId: 'prt_1', text: 'hello' }));
    const [, e] = store.read('ses_1');
    expect(e).toMatchObject({ type: 'text.delta', version: 1, data: { partId: 'prt_1', delta: 'hello' } });
  });

  it('read - an unknown stored version fails loudly, naming type and version', () => {
    const store = tempStore();
    createSession(store);
    store.db
      .prepare(`INSERT INTO events (session_id, seq, type, version, at, data) VALUES ('ses_1', 2, 'tool.started', 9, ?, '{}')`)
      .run(new Date().toISOString());
    expect(() => store.read('ses_1')).toThrow(/unknown version 9 of event type "tool.started"/);
  });

  it('append - model-output events keep an opaque providerMetadata unchanged', () => {
    const store = tempStore();
    createSession(store);
    const lease = own(store);
    const meta = { anthropic: { signature: 'sig==', nested: [1, { a: null }] } };
    store.append([
      { sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: lease.epoch },
      { sessionId: 'ses_1', type: 'attempt.dispatched', data: { activityId: 'act_1', turnId: 't1', attemptId: 'att_1', attempt: 1, model: 'm', inputIds: [] }, epoch: lease.epoch },
      { sessionId: 'ses_1', type: 'reasoning.done', data: { activityId: 'act_1', attemptId: 'att_1', partId: 'prt_r', text: 'thinking', providerMetadata: meta }, epoch: lease.epoch },
    ]);
    expect(store.read('ses_1').at(-1)!.data).toMatchObject({ providerMetadata: meta });
    expect(store.queries.conversation('ses_1')[0]!.parts[0]!.providerMetadata).toEqual(meta);
  });
});

describe('store/log - fencing', () => {
  it('append - an owner event without a live lease fails as stale and writes nothing', () => {
    const store = tempStore();
    createSession(store);
    expect(() => store.append({ sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: 1 } as AppendRequest)).toThrow(StaleOwnerError);
    expect(store.read('ses_1')).toHaveLength(1);
  });

  it('append - a stale epoch fails after another owner takes over an expired lease', () => {
    const clock = createManualClock();
    const store = tempStore({ clock });
    createSession(store);
    const first = store.owners.acquire('ses_1', 'owner-a', 1_000, clock.now())!;
    clock.advance(2_000);
    const second = store.owners.acquire('ses_1', 'owner-b', 1_000, clock.now())!;
    expect(second.epoch).toBe(first.epoch + 1);
    expect(() => store.append({ sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: first.epoch } as AppendRequest)).toThrow(
      /carried epoch 1, current owner epoch is 2/,
    );
    expect(store.append({ sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: second.epoch } as AppendRequest)).toHaveLength(1);
  });

  it('append - an owner event with no epoch is refused, naming the field', () => {
    const store = tempStore();
    createSession(store);
    own(store);
    expect(() => store.append({ sessionId: 'ses_1', type: 'activity.opened', data: opened() } as AppendRequest)).toThrow(/field "epoch"/);
  });

  it('append - a released lease fences its old epoch', () => {
    const store = tempStore();
    createSession(store);
    const lease = own(store);
    store.owners.release(lease);
    expect(() => store.append({ sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: lease.epoch } as AppendRequest)).toThrow(StaleOwnerError);
  });

  it('append - requests need no epoch while another process owns the session', () => {
    const store = tempStore();
    createSession(store);
    own(store, 'ses_1', 'someone-else');
    expect(store.append({ sessionId: 'ses_1', type: 'cancel.requested', data: { activityId: 'act_9' } })).toHaveLength(1);
  });
});

describe('store/owners - leases', () => {
  it('acquire - a live lease of another owner wins; the same owner keeps its epoch', () => {
    const clock = createManualClock();
    const store = tempStore({ clock });
    const a = store.owners.acquire('ses_1', 'a', 1_000, clock.now())!;
    expect(store.owners.acquire('ses_1', 'b', 1_000, clock.now())).toBeNull();
    expect(store.owners.acquire('ses_1', 'a', 1_000, clock.now())!.epoch).toBe(a.epoch);
  });

  it('acquire - an expired lease is taken over and the epoch bumps', () => {
    const clock = createManualClock();
    const store = tempStore({ clock });
    const a = store.owners.acquire('ses_1', 'a', 1_000, clock.now())!;
    clock.advance(1_001);
    const b = store.owners.acquire('ses_1', 'b', 1_000, clock.now())!;
    expect(b).toMatchObject({ ownerId: 'b', epoch: a.epoch + 1 });
    expect(store.owners.renew(a, 1_000, clock.now())).toBe(false);
    expect(store.owners.release(a)).toBe(false);
  });

  it('renew - extends the lease; release lets the next acquisition bump the epoch', () => {
    const clock = createManualClock();
    const store = tempStore({ clock });
    const a = store.owners.acquire('ses_1', 'a', 1_000, clock.now())!;
    clock.advance(900);
    expect(store.owners.renew(a, 1_000, clock.now())).toBe(true);
    clock.advance(900);
    expect(store.owners.acquire('ses_1', 'b', 1_000, clock.now())).toBeNull();
    expect(store.owners.release(a)).toBe(true);
    expect(store.owners.get('ses_1', clock.now())).toMatchObject({ held: false, live: false });
    expect(store.owners.acquire('ses_1', 'b', 1_000, clock.now())!.epoch).toBe(a.epoch + 1);
  });
});

describe('store/inbox - lifecycle', () => {
  function setup() {
    const store = tempStore();
    createSession(store);
    const lease = own(store);
    const ep = lease.epoch;
    const { input } = store.admitInput('ses_1', { mode: 'steer', text: 'hello' });
    store.append({ sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: ep });
    return { store, ep, inputId: input.inputId };
  }

  it('admit - is idempotent by client id: the first admission wins', () => {
    const store = tempStore();
    createSession(store);
    const a = store.admitInput('ses_1', { mode: 'queue', text: 'first', clientId: 'c-1' });
    const b = store.admitInput('ses_1', { mode: 'steer', text: 'second', clientId: 'c-1' });
    expect(a.admitted).toBe(true);
    expect(b.admitted).toBe(false);
    expect(b.input).toEqual(a.input);
    expect(store.inputs('ses_1')).toHaveLength(1);
    expect(store.read('ses_1').filter((e) => e.type === 'input.admitted')).toHaveLength(1);
  });

  it('admit - refuses a session that does not exist', () => {
    const store = tempStore();
    expect(() => store.admitInput('ses_x', { mode: 'queue', text: 'x' })).toThrow(SessionNotFoundError);
  });

  it('inbox - pending → assigned → consumed, each an event', () => {
    const { store, ep, inputId } = setup();
    store.append({ sessionId: 'ses_1', type: 'input.assigned', data: { inputId, activityId: 'act_1' }, epoch: ep });
    expect(store.input(inputId)).toMatchObject({ status: 'assigned', activityId: 'act_1' });
    store.append({ sessionId: 'ses_1', type: 'input.consumed', data: { inputId, activityId: 'act_1', attemptId: 'att_1' }, epoch: ep });
    expect(store.input(inputId)).toMatchObject({ status: 'consumed', attemptId: 'att_1' });
  });

  it('inbox - assigned → pending when released, and the user message leaves the conversation', () => {
    const { store, ep, inputId } = setup();
    store.append({ sessionId: 'ses_1', type: 'input.assigned', data: { inputId, activityId: 'act_1' }, epoch: ep });
    expect(store.queries.conversation('ses_1')).toHaveLength(1);
    store.append({ sessionId: 'ses_1', type: 'input.released', data: { inputId, activityId: 'act_1', reason: 'cancelled' }, epoch: ep });
    expect(store.input(inputId)!.status).toBe('pending');
    expect(store.queries.conversation('ses_1')).toHaveLength(0);
  });

  it('inbox - pending → cancelled by any process', () => {
    const { store, inputId } = setup();
    store.append({ sessionId: 'ses_1', type: 'input.cancelled', data: { inputId } });
    expect(store.input(inputId)!.status).toBe('cancelled');
  });

  it.each([
    ['pending → consumed', (s: Store, ep: number, id: string) => s.append({ sessionId: 'ses_1', type: 'input.consumed', data: { inputId: id, activityId: 'act_1', attemptId: 'a' }, epoch: ep })],
    ['pending → released', (s: Store, ep: number, id: string) => s.append({ sessionId: 'ses_1', type: 'input.released', data: { inputId: id, activityId: 'act_1', reason: 'x' }, epoch: ep })],
  ])('inbox - refuses the illegal transition %s', (_name, act) => {
    const { store, ep, inputId } = setup();
    expect(() => act(store, ep, inputId)).toThrow(IllegalInboxTransitionError);
    expect(store.input(inputId)!.status).toBe('pending');
  });

  it('inbox - refuses assigned → cancelled and consumed → assigned', () => {
    const { store, ep, inputId } = setup();
    store.append({ sessionId: 'ses_1', type: 'input.assigned', data: { inputId, activityId: 'act_1' }, epoch: ep });
    expect(() => store.append({ sessionId: 'ses_1', type: 'input.cancelled', data: { inputId } })).toThrow(/cannot go from assigned to cancelled/);
    store.append({ sessionId: 'ses_1', type: 'input.consumed', data: { inputId, activityId: 'act_1', attemptId: 'a' }, epoch: ep });
    expect(() => store.append({ sessionId: 'ses_1', type: 'input.assigned', data: { inputId, activityId: 'act_2' }, epoch: ep })).toThrow(
      /cannot go from consumed to assigned/,
    );
  });

  it('inbox - refuses a transition of an unknown input', () => {
    const { store, ep } = setup();
    expect(() => store.append({ sessionId: 'ses_1', type: 'input.assigned', data: { inputId: 'in_ghost', activityId: 'act_1' }, epoch: ep })).toThrow(
      /input in_ghost cannot go from nowhere/,
    );
  });
});

describe('store - snapshots, reads, changes, barrier', () => {
  it('snapshot - written with an append, tagged with the seq it reflects', () => {
    const store = tempStore();
    createSession(store);
    store.append({ sessionId: 'ses_1', type: 'compaction.requested', data: {} }, { snapshot: { sessionId: 'ses_1', machineVersion: 'session@1', value: 'idle', context: { n: 1 } } });
    expect(store.getSnapshot('ses_1')).toEqual({ sessionId: 'ses_1', seq: 2, machineVersion: 'session@1', value: 'idle', context: { n: 1 } });
    store.putSnapshot({ sessionId: 'ses_1', machineVersion: 'session@1', value: { providerTurn: 'streaming' }, context: { n: 2 } });
    expect(store.getSnapshot('ses_1')).toMatchObject({ seq: 2, value: { providerTurn: 'streaming' } });
  });

  it('read - pages are bounded and resume from a cursor', () => {
    const store = tempStore();
    createSession(store);
    store.append(Array.from({ length: 30 }, () => ({ sessionId: 'ses_1', type: 'compaction.requested' as const, data: {} })));
    const first = store.read('ses_1', { limit: 10 });
    const second = store.read('ses_1', { after: first.at(-1)!.seq, limit: 10 });
    expect(first.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(second[0]!.seq).toBe(11);
    expect(store.read('ses_1', { limit: 1e9 }).length).toBeLessThanOrEqual(READ_PAGE_EVENTS_MAX);
    expect(store.readAll({ afterGseq: 25, limit: 100 }).map((e) => e.gseq)).toEqual([26, 27, 28, 29, 30, 31]);
  });

  it('changes - notices another connection\'s commit through data_version', () => {
    const store = tempStore();
    createSession(store);
    store.changes.poll();
    const other = Store.open(store.path);
    other.append({ sessionId: 'ses_1', type: 'compaction.requested', data: {} });
    other.close();
    expect(store.changes.poll()).toBe(true);
    expect(store.changes.poll()).toBe(false);
  });

  it('barrier - commits durably and leaves synchronous at NORMAL afterwards', () => {
    const store = tempStore();
    createSession(store);
    const lease = own(store);
    store.append({ sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: lease.epoch } as AppendRequest, { barrier: true });
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1);
    const raw = new Database(store.path, { readonly: true });
    expect((raw.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n).toBe(2);
    raw.close();
  });

  it('tail - an in-process writer appending while the tail reads: no gap, no duplicate', async () => {
    const store = tempStore();
    createSession(store);
    const ac = new AbortController();
    const seen: number[] = [];
    const reader = (async () => {
      for await (const e of store.tail({ sessionId: 'ses_1' }, { signal: ac.signal, limit: 3 })) {
        seen.push(e.seq);
        if (seen.length === 101) ac.abort();
      }
    })();
    for (let i = 0; i < 100; i++) {
      store.append({ sessionId: 'ses_1', type: 'compaction.requested', data: {} });
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    await reader;
    expect(seen).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
  });
});

describe('store/deltas - batching', () => {
  function streaming() {
    const store = tempStore();
    createSession(store);
    const lease = own(store);
    store.append([
      { sessionId: 'ses_1', type: 'activity.opened', data: opened(), epoch: lease.epoch },
      { sessionId: 'ses_1', type: 'attempt.dispatched', data: { activityId: 'act_1', turnId: 't1', attemptId: 'att_1', attempt: 1, model: 'm', inputIds: [] }, epoch: lease.epoch },
    ] as AppendRequest[]);
    const delta = (partId: string, text: string, type: 'text.delta' | 'reasoning.delta' = 'text.delta') =>
      store.bufferDelta({ sessionId: 'ses_1', epoch: lease.epoch, type, activityId: 'act_1', attemptId: 'att_1', partId, delta: text });
    return { store, lease, delta };
  }

  it('deltas - consecutive deltas to one part become one event, flushed before the next event of the session', () => {
    const { store, lease, delta } = streaming();
    delta('prt_r', 'think');
    delta('prt_r', 'ing');
    delta('prt_t', 'Hel');
    delta('prt_t', 'lo');
    expect(store.read('ses_1')).toHaveLength(3);
    store.append({ sessionId: 'ses_1', type: 'text.done', data: { activityId: 'act_1', attemptId: 'att_1', partId: 'prt_t', text: 'Hello' }, epoch: lease.epoch });
    const types = store.read('ses_1').slice(3).map((e) => [e.type, (e.data as { delta?: string }).delta]);
    expect(types).toEqual([
      ['text.delta', 'thinking'],
      ['text.delta', 'Hello'],
      ['text.done', undefined],
    ]);
  });

  it('deltas - order across parts is kept exactly', () => {
    const { store, delta } = streaming();
    delta('prt_r', 'a', 'reasoning.delta');
    delta('prt_t', 'b');
    delta('prt_r', 'c', 'reasoning.delta');
    store.flushDeltas();
    expect(store.read('ses_1').slice(3).map((e) => (e.data as { delta: string }).delta)).toEqual(['a', 'b', 'c']);
    expect(store.queries.conversation('ses_1')[0]!.parts.map((p) => [p.kind, p.text])).toEqual([
      ['reasoning', 'ac'],
      ['text', 'b'],
    ]);
  });

  it('deltas - a full buffer flushes by size at once', () => {
    const { store, delta } = streaming();
    const chunk = 'x'.repeat(1024);
    for (let i = 0; i < DELTA_BATCH_BYTES_MAX / 1024; i++) delta('prt_t', chunk);
    expect(store.read('ses_1')).toHaveLength(4);
    expect((store.read('ses_1')[3]!.data as { delta: string }).delta.length).toBe(DELTA_BATCH_BYTES_MAX);
  });

  it('deltas - flushed by time when nothing else is written', async () => {
    const { store, delta } = streaming();
    delta('prt_t', 'tick');
    await new Promise((r) => setTimeout(r, DELTA_FLUSH_INTERVAL_MS * 3));
    expect(store.read('ses_1').at(-1)).toMatchObject({ type: 'text.delta', data: { delta: 'tick' } });
  });

  it('deltas - a stale owner\'s timed flush is reported and writes nothing', async () => {
    const errors: unknown[] = [];
    const clock = createManualClock();
    const store = tempStore({ clock, onFlushError: (e) => errors.push(e) });
    createSession(store);
    const lease = store.owners.acquire('ses_1', 'a', 1_000, clock.now())!;
    clock.advance(5_000);
    store.owners.acquire('ses_1', 'b', 1_000, clock.now());
    store.bufferDelta({ sessionId: 'ses_1', epoch: lease.epoch, type: 'text.delta', activityId: 'act', attemptId: 'att', partId: 'p', delta: 'x' });
    await new Promise((r) => setTimeout(r, DELTA_FLUSH_INTERVAL_MS * 3));
    expect(errors[0]).toBeInstanceOf(StaleOwnerError);
    expect(store.read('ses_1')).toHaveLength(1);
  });
});
