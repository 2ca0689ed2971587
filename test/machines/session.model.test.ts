import { getShortestPaths, getSimplePaths, type StatePath } from '@xstate/graph';
import { beforeAll, describe, expect, it } from 'vitest';
import { transition, type ActorLogic, type ExecutableActionObject } from 'xstate';
import { sessionMachine, type SessionEvent, type SessionInput } from '../../machines/session.machine.js';
import {
  SMALL_INPUT,
  actionTypes,
  admitted,
  attemptFailed,
  backoffElapsed,
  cancelRequested,
  deliver,
  dispatched,
  ev,
  initial,
  modeOf,
  nextProviderOpen,
  providerTurnChildren,
  recordedBy,
  textDelta,
  toolCallChildren,
  toolCalled,
  toolSettled,
  turnFinished,
  type SessionSnapshot,
} from './harness.js';

/**
 * Model-based tests of the session machine with @xstate/graph (DESIGN §3, §9).
 *
 * @xstate/graph runs no actors and no action implementations, so the traversed logic is the
 * session machine wrapped in a small "world": the machine snapshot, the events its decision
 * actions recorded and the runtime has not delivered yet (they are delivered first, one by one,
 * and nothing else can interleave: the runtime records them in the same transaction), and whether
 * the provider attempt is open. Everything else the actors would observe (dispatch, chunks, tool
 * calls, tool settlements, failures, the backoff timer, admissions, cancels, wakes) is supplied as
 * events with deterministic ids derived from the context.
 *
 * States are serialised without the growing parts of the context (settledCount, all-turns count,
 * ids, list contents): only the state value, bucketed inbox sizes, the activity's bounded counters, the
 * shape of its calls and the undelivered decision events. Otherwise path generation never ends.
 */

/** An @xstate/graph snapshot: the machine plus what the runtime around it holds. */
type World = {
  status: 'active';
  output: undefined;
  error: undefined;
  machine: SessionSnapshot;
  /** Events recorded by decision actions, not yet delivered to the machine. */
  recorded: SessionEvent[];
  /** The provider attempt was dispatched and has neither finished nor failed. */
  providerOpen: boolean;
  /** Path-local counter for input and run ids (not serialised). */
  minted: number;
  /** The decision and built-in actions of the transition that produced this world. */
  actions: ExecutableActionObject[];
  /** The events delivered since the start, newest first (not serialised): the concrete path here. */
  trail: Trail;
  /** Invariants broken by the transition that produced this world. */
  edgeBroken: string[];
  /** Path invariants, accumulated along `trail` (not serialised). */
  ledger: Ledger;
};

type Trail = { event: SessionEvent; prev: Trail } | null;

interface Ledger {
  opened: ReadonlySet<string>;
  settled: ReadonlyMap<string, number>;
  settledCount: number;
  /** Turns accepted since the activity opened or steers were assigned. */
  turnsSinceIntent: number;
  broken: string[];
}

const REST_VALUES = new Set(['"idle"', '{"providerTurn":"streaming"}', '{"providerTurn":"backoff"}', '"awaitingTools"', '"recovering"']);
const STALE_ACTIVITY = 'act0';

function worldFrom(machine: SessionSnapshot): World {
  const c = machine.context;
  return {
    status: 'active',
    output: undefined,
    error: undefined,
    machine,
    recorded: [],
    providerOpen: false,
    minted: 0,
    actions: [],
    trail: null,
    edgeBroken: [],
    ledger: { opened: new Set(c.activity ? [c.activity.id] : []), settled: new Map(), settledCount: c.settledCount, turnsSinceIntent: c.activity?.turn ?? 0, broken: [] },
  };
}

/**
 * Delivers one event and checks the invariants of the transition and of the path so far. An
 * `attempt.dispatched` carries its `input.consumed` records in the same batch
 * (actors/providerTurn.ts), so they join the undelivered queue.
 */
function step(world: World, event: SessionEvent): World {
  if (world.recorded.length > 0 && event !== world.recorded[0]) throw new Error(`model: ${event.type} offered while recorded events are undelivered`);
  const [machine, actions] = transition(sessionMachine, world.machine, event);
  const batch = event.type === 'attempt.dispatched' ? dispatched(world.machine).slice(1) : [];
  const next: World = {
    ...world,
    machine,
    actions,
    recorded: [...world.recorded.slice(1), ...recordedBy(actions, world.machine, world.providerOpen), ...batch],
    providerOpen: nextProviderOpen(world.providerOpen, world.machine, event, machine),
    minted: world.minted + (event.type === 'input.admitted' || event.type === 'run.requested' ? 1 : 0),
    trail: { event, prev: world.trail },
  };
  next.edgeBroken = checkEdge({ before: world, event, after: next });
  next.ledger = advanceLedger(world.ledger, { before: world, event, after: next });
  return next;
}

/** The traversed logic; `onEdge` sees every transition @xstate/graph computes. */
function modelLogic(from: SessionSnapshot, onEdge?: (edge: Edge) => void): ActorLogic<World, SessionEvent, SessionInput> {
  return {
    transition: (world, event) => {
      const after = step(world, event);
      onEdge?.({ before: world, event, after });
      return after;
    },
    getInitialSnapshot: () => worldFrom(from),
    getPersistedSnapshot: (world) => world,
  };
}

function trailEvents(world: World): SessionEvent[] {
  const out: SessionEvent[] = [];
  for (let t = world.trail; t; t = t.prev) out.push(t.event);
  return out.reverse();
}

const bucket = (n: number, max = 2) => Math.min(n, max);

/** The abstract state (see the file comment). */
function serialize(world: World): string {
  const c = world.machine.context;
  const a = c.activity;
  const children = new Set(toolCallChildren(world.machine));
  return JSON.stringify({
    v: world.machine.value,
    s: bucket(c.steers.length),
    q: bucket(c.queued.length),
    p: c.parked,
    r: c.runRequested,
    a: a && {
      // Bounded by the machine; the buckets keep the space finite (and the failure visible) if it is not.
      turn: bucket(a.turn, c.turnLimit + 1),
      attempt: bucket(a.attempt, c.attemptRetriesMax + 2),
      dispatched: a.attemptId !== null,
      chunks: a.receivedChunks,
      unconsumed: [...new Set(a.unconsumed.map(modeOf))].sort().join('') + bucket(a.unconsumed.length),
      calls: Object.entries(a.calls).map(([id, call]) => `${call.state}${children.has(id) ? '+' : '-'}`),
      waiting: a.waiting.length,
      results: a.toolResultsPending,
    },
    open: world.providerOpen,
    rec: world.recorded.map((e) => {
      const d = (e as { data?: Record<string, unknown> }).data ?? {};
      return [e.type, d.status, d.turn, d.mode];
    }),
  });
}

/** Everything the environment may observe in this world, as log events (or the runtime's nudges). */
function environment(world: World): SessionEvent[] {
  if (world.recorded.length > 0) return [world.recorded[0]!];
  const s = world.machine;
  const c = s.context;
  const a = c.activity;
  const id = world.minted + 1;
  // WAKE only matters to a parked session (elsewhere it is a no-op); CHECK only after a restore.
  const out: SessionEvent[] = c.parked ? [{ type: 'WAKE' }] : [];
  if (c.steers.length < 2) out.push(admitted(`s${id}`));
  if (c.queued.length < 2) out.push(admitted(`q${id}`));
  if (c.steers[0]) out.push(ev('input.cancelled', { inputId: c.steers[0] }));
  if (c.queued[0]) out.push(ev('input.cancelled', { inputId: c.queued[0] }));
  if (!c.runRequested) out.push(ev('run.requested', { runId: `run${id}` }));
  out.push(cancelRequested(STALE_ACTIVITY));
  if (a) out.push(cancelRequested(a.id));
  const inTurn = s.matches('providerTurn') || s.matches('awaitingTools');
  if (a && inTurn) {
    // A second turn must never start while one is in flight.
    out.push(ev('turn.started', { activityId: a.id, turnId: `${a.id}-dup`, turn: 1 }));
    // Tool children settle on their own, during the stream or after it.
    const children = new Set(toolCallChildren(s));
    for (const [callId, call] of Object.entries(a.calls)) {
      if (call.state === 'running' && children.has(callId)) out.push(toolSettled(callId, 'ok'));
    }
  }
  if (s.matches({ providerTurn: 'streaming' })) {
    if (!world.providerOpen) {
      out.push(dispatched(s)[0]!);
    } else {
      out.push(textDelta(s));
      if (Object.keys(a!.calls).length <= c.toolCallsPerTurn) out.push(toolCalled(s)); // one call beyond the limit
      out.push(turnFinished(s));
      out.push(attemptFailed(s, { retryable: true }));
      out.push(attemptFailed(s, { retryable: false }));
    }
  }
  if (s.matches({ providerTurn: 'backoff' })) out.push(backoffElapsed());
  return out;
}

/** Traversal steps before @xstate/graph gives up ("Traversal limit exceeded"): a broken abstraction fails instead of hanging. */
const TRAVERSAL_STEPS_MAX = 500_000;

const options = (from: SessionSnapshot) => ({
  events: environment,
  limit: TRAVERSAL_STEPS_MAX,
  serializeState: (w: World) => serialize(w),
  fromState: worldFrom(from),
});

interface Edge {
  before: World;
  event: SessionEvent;
  after: World;
}

const valueKey = (s: SessionSnapshot) => JSON.stringify(s.value);
const currentCalls = (s: SessionSnapshot) => Object.keys(s.context.activity?.calls ?? {});
const dataOf = (e: SessionEvent) => (e as { data: Record<string, any> }).data;

/** Invariants of one transition. Returns the broken ones (empty when all hold). */
function checkEdge({ before, event, after }: Edge): string[] {
  const broken: string[] = [];
  const b = before.machine;
  const n = after.machine;
  const limits = b.context;
  const check = (ok: boolean, what: string) => ok || broken.push(`${what} [${valueKey(b)} --${event.type}--> ${valueKey(n)}]`);

  // One turn at a time: at most one provider-turn child, and exactly one while streaming.
  const providers = providerTurnChildren(n).length;
  check(providers <= 1, 'two provider turns in flight');
  check((providers === 1) === n.matches({ providerTurn: 'streaming' }), 'a provider-turn child outside streaming (or none while streaming)');

  // Decision states never wait for an event nobody will record.
  if (after.recorded.length === 0) check(REST_VALUES.has(valueKey(n)), `stuck in ${valueKey(n)} with nothing recorded`);

  // A turn starts only by a recorded turn.started, within the limit, from a decision state.
  if (n.matches('providerTurn') && !b.matches('providerTurn')) {
    check(event.type === 'turn.started', 'entered providerTurn without turn.started');
    if (event.type === 'turn.started') {
      check(event.data.turn >= 1 && event.data.turn <= limits.turnLimit, `turn ${event.data.turn} beyond the limit`);
      check(n.context.activity?.turn === event.data.turn, 'turn counter differs from turn.started');
      check(b.matches('opening') || b.matches('continuing'), 'turn.started accepted outside a decision state');
    }
  }
  for (const r of after.recorded) {
    if (r.type === 'turn.started') check(r.data.turn <= limits.turnLimit, `recorded a turn ${r.data.turn} beyond the limit`);
  }

  // Every activity settles exactly once: one decision, one activity.settled naming it.
  const settles = after.actions.filter((x) => x.type === 'settleActivity');
  check(settles.length <= 1, 'two settle decisions in one transition');
  if (settles.length === 1) {
    check(b.context.activity !== null, 'settle decision without an activity');
    check(!before.recorded.some((r) => r.type === 'activity.settled'), 'settle decision while a settlement is pending');
    const recordedSettles = after.recorded.filter((r) => r.type === 'activity.settled');
    check(recordedSettles.length === 1 && dataOf(recordedSettles[0]!).activityId === b.context.activity?.id, 'settle decision did not record one activity.settled');
  }
  if (event.type === 'activity.settled') {
    check(event.data.activityId === b.context.activity?.id, 'activity.settled for an activity that is not current');
    check(n.context.settledCount === b.context.settledCount + 1, 'settledCount did not grow by one');
    check(n.context.activity === null, 'activity still present after activity.settled');
    check(n.context.lastStatus === event.data.status, 'lastStatus differs from the settlement');
  } else {
    check(n.context.settledCount === b.context.settledCount, 'settledCount changed without activity.settled');
  }

  // Tool calls: no more children than toolCallsPerTurn; refused calls get none.
  const calls = currentCalls(n);
  const spawned = toolCallChildren(n).filter((id) => calls.includes(id));
  check(spawned.length <= limits.toolCallsPerTurn, 'more tool children than toolCallsPerTurn');
  if (event.type === 'tool.called' && calls.length > limits.toolCallsPerTurn) {
    check(actionTypes(after.actions).includes('refuseToolCall'), 'a call beyond the limit was not refused');
  }

  // The safe boundary: an activity never settles completed or turn_limit while a steer is pending.
  for (const settle of settles) {
    const { status } = settle.params as { status: string };
    const at = settle.info.context as SessionSnapshot['context'];
    if (status === 'completed' || status === 'turn_limit') check(at.steers.length === 0, `settled ${status} with a steer pending`);
  }
  // Only steers join a running activity; an activity opens with all pending steers or one queued input.
  if (event.type === 'input.assigned') {
    if (b.matches('continuing')) check(modeOf(event.data.inputId) === 'steer', 'a queued input joined a running activity');
    else check(b.matches('opening'), `input assigned in ${valueKey(b)}`);
  }
  if (event.type === 'activity.opened') {
    const ids = event.data.inputIds;
    check(ids.every((x) => modeOf(x) === 'steer') ? ids.length === b.context.steers.length : ids.length === 1 && ids[0] === b.context.queued[0], 'activity opened with the wrong inputs');
  }
  // Idle means quiet: with eligible input and not parked, the next activity opens at once.
  if (after.recorded.length === 0 && n.matches('idle')) {
    check(n.context.parked || (n.context.steers.length === 0 && n.context.queued.length === 0 && !n.context.runRequested), 'idle with eligible input');
  }

  // A cancel naming another activity changes nothing.
  if (event.type === 'cancel.requested' && event.data.activityId === STALE_ACTIVITY) {
    check(valueKey(n) === valueKey(b) && JSON.stringify(n.context) === JSON.stringify(b.context), 'a stale cancel changed the state');
  }
  // A duplicate turn.started in flight changes nothing.
  if (event.type === 'turn.started' && dataOf(event).turnId.endsWith('-dup')) {
    check(valueKey(n) === valueKey(b) && JSON.stringify(n.context) === JSON.stringify(b.context), 'a second turn.started was accepted in flight');
  }
  return broken;
}

/** Concurrency: calls running with a child never exceed toolConcurrency. (Broken today: see the skipped test.) */
function checkConcurrency({ after }: Edge): string[] {
  const a = after.machine.context.activity;
  if (!a) return [];
  const children = new Set(toolCallChildren(after.machine));
  const running = Object.entries(a.calls).filter(([id, c]) => c.state === 'running' && children.has(id)).length;
  const limit = after.machine.context.toolConcurrency;
  return running > limit ? [`${running} calls running with toolConcurrency ${limit} in ${valueKey(after.machine)}`] : [];
}

/**
 * Path invariants, one step further: each activity opens once, settles at most once and only
 * after opening; settledCount equals the settlements so far; no more than turnLimit turns start
 * between two intents (opening, steer assignment); and every transition's invariants held.
 */
function advanceLedger(ledger: Ledger, { before, event, after }: Edge): Ledger {
  const broken = [...ledger.broken, ...after.edgeBroken];
  let { opened, settled, settledCount, turnsSinceIntent } = ledger;
  const limit = before.machine.context.turnLimit;
  if (event.type === 'activity.opened') {
    if (opened.has(event.data.activityId)) broken.push(`activity ${event.data.activityId} opened twice`);
    opened = new Set([...opened, event.data.activityId]);
    turnsSinceIntent = 0;
  }
  if (event.type === 'input.assigned') turnsSinceIntent = 0;
  if (event.type === 'turn.started' && after.machine.matches('providerTurn') && !before.machine.matches('providerTurn')) {
    turnsSinceIntent += 1;
    if (turnsSinceIntent > limit) broken.push(`turn ${turnsSinceIntent} started since the last intent (limit ${limit})`);
  }
  if (event.type === 'activity.settled') {
    const id = event.data.activityId;
    if (!opened.has(id)) broken.push(`activity ${id} settled without opening`);
    if (settled.has(id)) broken.push(`activity ${id} settled twice`);
    settled = new Map([...settled, [id, (settled.get(id) ?? 0) + 1]]);
    settledCount += 1;
  }
  if (after.machine.context.settledCount !== settledCount) broken.push(`settledCount ${after.machine.context.settledCount} but ${settledCount} settlements`);
  return { opened, settled, settledCount, turnsSinceIntent, broken };
}

/**
 * Replays `events` from `from` and returns the concrete worlds. Decision events are taken from
 * the world (they are determined by it); every other event must be one the world offers.
 *
 * Why replay: @xstate/graph keeps one concrete snapshot per abstract state, so the `state` of a
 * path's step may be a representative reached along another concrete path (another settledCount,
 * other ids or failure reasons). Replaying gives the concrete states of this very path.
 */
function replay(from: World, events: SessionEvent[]): Edge[] {
  const out: Edge[] = [];
  let world = from;
  for (const wanted of events) {
    let event: SessionEvent | undefined;
    if (world.recorded.length > 0) {
      event = world.recorded[0]!;
      if (event.type !== wanted.type) throw new Error(`replay: recorded ${event.type}, path has ${wanted.type}`);
    } else {
      const key = JSON.stringify(wanted);
      event = environment(world).find((e) => JSON.stringify(e) === key);
      if (!event) throw new Error(`replay: ${key} is not offered in ${serialize(world)}`);
    }
    const after = step(world, event);
    out.push({ before: world, event, after });
    world = after;
  }
  return out;
}

/** Delivers the head of the recorded queue until none is left. */
function drain(world: World): World {
  for (let i = 0; world.recorded.length > 0; i++) {
    if (i > 50) throw new Error('drain: decision loop');
    world = step(world, world.recorded[0]!);
  }
  return world;
}

/**
 * A completion policy: the model answers, tools succeed, the timer fires. From any state it must
 * settle the current activity exactly once.
 */
function complete(world: World): { world: World; settlements: SessionEvent[] } {
  const target = world.machine.context.activity!.id;
  const settlements: SessionEvent[] = [];
  for (let i = 0; i < 60; i++) {
    const s = world.machine;
    let event: SessionEvent;
    if (world.recorded.length > 0) event = world.recorded[0]!;
    else if (s.context.activity?.id !== target) break;
    else if (s.matches({ providerTurn: 'backoff' })) event = backoffElapsed();
    else if (s.matches({ providerTurn: 'streaming' })) {
      const running = Object.entries(s.context.activity!.calls).find(([id, c]) => c.state === 'running' && s.children[id]);
      event = !world.providerOpen ? dispatched(s)[0]! : running ? toolSettled(running[0]) : turnFinished(s);
    } else if (s.matches('awaitingTools')) {
      const running = Object.entries(s.context.activity!.calls).find(([id, c]) => c.state === 'running' && s.children[id]);
      if (!running) throw new Error('awaitingTools with nothing running');
      event = toolSettled(running[0]);
    } else throw new Error(`complete: no move from ${valueKey(s)}`);
    if (event.type === 'activity.settled') settlements.push(event);
    world = step(world, event);
  }
  return { world, settlements };
}

describe('session machine model', () => {
  const input = SMALL_INPUT;
  const start = worldFrom(initial(input));
  /** Every transition computed by the traversal: from one representative world per abstract state, each offered event. */
  const edges: Edge[] = [];
  const logic = modelLogic(initial(input), (edge) => edges.push(edge));
  let paths: StatePath<World, SessionEvent>[];
  let restWorlds: World[];

  beforeAll(() => {
    paths = getShortestPaths(logic, options(initial(input)));
    restWorlds = [...new Set(edges.map((e) => e.before))].filter((w) => w.recorded.length === 0);
  });

  it('session machine model - the abstract state space is finite and covers every state and decision', () => {
    expect(paths.length).toBeGreaterThan(100);
    const values = new Set(paths.map((p) => valueKey(p.state.machine)));
    for (const v of ['"idle"', '"opening"', '{"providerTurn":"streaming"}', '{"providerTurn":"backoff"}', '"awaitingTools"', '"continuing"', '"settling"', '"cancelling"']) {
      expect(values, v).toContain(v);
    }
    const decisions = new Set(edges.flatMap((e) => actionTypes(e.after.actions)));
    for (const d of ['openActivity', 'assignSteers', 'startTurn', 'settleActivity', 'interruptCalls', 'refuseToolCall', 'xstate.sendTo']) expect(decisions, d).toContain(d);
    const statuses = new Set(edges.filter((e) => e.event.type === 'activity.settled').map((e) => dataOf(e.event).status));
    expect([...statuses].sort()).toEqual(['cancelled', 'completed', 'failed', 'turn_limit']);
  });

  it('session machine model - every transition keeps the invariants (one turn in flight, settle once, turn limit, tool limit)', () => {
    expect(edges.length).toBeGreaterThan(paths.length);
    const broken = edges.flatMap((e) => e.after.edgeBroken);
    expect([...new Set(broken)].slice(0, 20)).toEqual([]);
  });

  it('session machine model - every shortest path opens and settles each activity at most once and never exceeds the turn limit', () => {
    const broken = paths.flatMap((p) => [...p.state.ledger.broken, ...p.steps.flatMap((x) => x.state.ledger.broken)]);
    expect([...new Set(broken)].slice(0, 20)).toEqual([]);
    // A path's own trail replays to the same abstract state with the same verdict.
    for (const p of paths.filter((_, i) => i % 50 === 0)) {
      const concrete = replay(start, trailEvents(p.state));
      expect(serialize(concrete.at(-1)?.after ?? start)).toBe(serialize(p.state));
      expect(concrete.at(-1)?.after.ledger.broken ?? []).toEqual([]);
    }
  });

  it('session machine model - the turn-limit path settles as turn_limit and never accepts a third turn', () => {
    const limits = edges.filter((e) => e.event.type === 'activity.settled' && dataOf(e.event).status === 'turn_limit');
    expect(limits.length).toBeGreaterThan(0);
    for (const limit of limits) {
      const concrete = replay(start, trailEvents(limit.after));
      expect(concrete.at(-1)!.after.ledger.broken).toEqual([]);
      const activityId = dataOf(limit.event).activityId;
      const intent = concrete.map((e) => e.event.type === 'input.assigned' || e.event.type === 'activity.opened').lastIndexOf(true);
      const turns = concrete
        .slice(intent)
        .filter((e) => e.event.type === 'turn.started' && dataOf(e.event).activityId === activityId && e.after.machine.matches('providerTurn') && !e.before.machine.matches('providerTurn'));
      expect(turns.map((e) => dataOf(e.event).turn)).toEqual([1, 2]);
      expect(concrete.at(-1)!.before.machine.context.activity!.turn).toBe(input.turnLimit);
      expect(concrete.at(-1)!.after.machine.context.lastStatus).toBe('turn_limit');
    }
  });

  it('session machine model - CANCEL from every active state settles as cancelled once and parks in idle', () => {
    const active = restWorlds.filter((w) => w.machine.context.activity && (w.machine.matches('providerTurn') || w.machine.matches('awaitingTools')));
    expect(active.length).toBeGreaterThan(20);
    for (const world of active) {
      const before = world.machine;
      const a = before.context.activity!;
      const open = Object.entries(a.calls).filter(([, c]) => c.state !== 'settled').map(([id]) => id);
      const { snapshot, steps } = deliver(before, cancelRequested(a.id), world.providerOpen);
      const label = serialize(world);
      const decisions = steps.flatMap((x) => x.actions.filter((y) => y.type === 'settleActivity').map((y) => y.params));
      expect(decisions, label).toEqual([{ status: 'cancelled', reason: 'cancel requested' }]);
      expect(steps.filter((x) => x.event.type === 'activity.settled').map((x) => dataOf(x.event)), label).toMatchObject([{ activityId: a.id, status: 'cancelled' }]);
      const interrupted = steps.filter((x) => x.event.type === 'tool.settled').map((x) => dataOf(x.event));
      expect(interrupted.map((d) => d.callId).sort(), label).toEqual(open.sort());
      expect(interrupted.every((d) => d.status === 'interrupted'), label).toBe(true);
      expect(snapshot.value, label).toBe('idle');
      expect(snapshot.context, label).toMatchObject({ parked: true, activity: null, lastStatus: 'cancelled', settledCount: before.context.settledCount + 1 });
      expect(providerTurnChildren(snapshot), label).toEqual([]);
      expect(toolCallChildren(snapshot).filter((id) => a.calls[id]), label).toEqual([]);
      // Pending input stays pending, and inputs the activity never dispatched return to it.
      expect([...snapshot.context.steers, ...snapshot.context.queued].sort(), label).toEqual([...before.context.steers, ...before.context.queued, ...a.unconsumed].sort());
    }
  });

  it('session machine model - from every state an activity in progress, left to finish, settles exactly once', () => {
    const busy = restWorlds.filter((w) => w.machine.context.activity && !w.machine.matches('recovering'));
    for (const world of busy) {
      const id = world.machine.context.activity!.id;
      const { world: end, settlements } = complete(world);
      const label = serialize(world);
      expect(settlements.map((e) => dataOf(e).activityId), label).toEqual([id]);
      expect(end.machine.context.settledCount, label).toBe(world.machine.context.settledCount + 1);
    }
  });

  it('session machine model - a restored activity in recovering settles once on abandon, resumes one turn on retry, resumes its calls on continue', () => {
    const busy = restWorlds.filter((w) => w.machine.context.activity);
    for (const world of busy) {
      const context = world.machine.context;
      const a = context.activity!;
      const label = serialize(world);
      const recovering = worldFrom(sessionMachine.resolveState({ value: 'recovering', context }));

      const abandoned = drain(step(recovering, ev('recovery.decided', { activityId: a.id, decision: 'abandon' })));
      expect(abandoned.machine.value, label).toBe('idle');
      expect(abandoned.machine.context, label).toMatchObject({ parked: true, activity: null, lastStatus: 'abandoned', settledCount: context.settledCount + 1 });

      const retried = drain(step(recovering, ev('recovery.decided', { activityId: a.id, decision: 'retry' })));
      expect(retried.machine.value, label).toEqual({ providerTurn: 'streaming' });
      expect(providerTurnChildren(retried.machine), label).toHaveLength(1);
      expect(retried.machine.context.activity, label).toMatchObject({ id: a.id, turn: Math.max(1, a.turn), calls: {} });
      expect(retried.machine.context.activity!.turn, label).toBeLessThanOrEqual(input.turnLimit);

      // continue is what the runtime decides when the stream had finished with calls unsettled.
      if (world.machine.matches('awaitingTools')) {
        const resumed = drain(step(recovering, ev('recovery.decided', { activityId: a.id, decision: 'continue' })));
        const n = resumed.machine;
        const open = Object.entries(a.calls).filter(([, c]) => c.state !== 'settled').map(([id]) => id);
        expect(n.value, label).toBe('awaitingTools');
        expect(toolCallChildren(n).sort(), label).toEqual(open.sort());
        const running = Object.values(n.context.activity!.calls).filter((c) => c.state === 'running').length;
        expect(running, label).toBeLessThanOrEqual(input.toolConcurrency);
        expect(complete(resumed).settlements.map((e) => dataOf(e).activityId), label).toEqual([a.id]);
      }
    }
  });

  it('session machine model - every simple path of one run without interference settles it exactly once', () => {
    // Only the provider and the tools act (no inbox traffic, cancels, wakes or deltas), so the
    // simple paths stay few, and with one activity the ids along every path agree.
    const noise = new Set(['WAKE', 'CHECK', 'input.admitted', 'input.cancelled', 'run.requested', 'cancel.requested', 'text.delta']);
    const quiet = (world: World) => environment(world).filter((e) => !noise.has(e.type) && !(e.type === 'turn.started' && dataOf(e).turnId.endsWith('-dup')));
    const small = { ...input, toolCallsPerTurn: 1 };
    const from = worldFrom(deliver(initial(small), ev('run.requested', { runId: 'run1' })).snapshot);
    const simple = getSimplePaths(modelLogic(from.machine), {
      events: quiet,
      serializeState: (w: World) => serialize(w),
      fromState: from,
      toState: (w: World) => w.machine.context.settledCount === 1 && w.recorded.length === 0,
    });
    expect(simple.length).toBeGreaterThan(10);
    const statuses = new Set<string>();
    for (const p of simple) {
      const concrete = replay(from, p.steps.slice(1).map((x) => x.event));
      const settlements = concrete.filter((e) => e.event.type === 'activity.settled');
      expect(settlements).toHaveLength(1);
      statuses.add(dataOf(settlements[0]!.event).status);
      expect(concrete.at(-1)!.after.ledger.broken).toEqual([]);
      expect(concrete.at(-1)!.after.machine.value).toBe('idle');
    }
    expect([...statuses].sort()).toEqual(['completed', 'failed', 'turn_limit']);
  });

  // BUG 1 (see session.test.ts): a refused call's settlement STARTs a waiting call although the
  // refused call held no slot, so two calls run with toolConcurrency 1. Unskip when fixed.
  it('session machine model - running tool calls never exceed toolConcurrency', () => {
    const broken = edges.flatMap((e) => checkConcurrency(e));
    expect([...new Set(broken)].slice(0, 5)).toEqual([]);
  });
});
