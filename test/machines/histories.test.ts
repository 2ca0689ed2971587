import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { sessionMachine, type SessionEvent, type SessionInput } from '../../machines/session.machine.js';
import { definitionOf, validateForWrite, type AnyEnvelope } from '../../store/schemas.js';

/**
 * Golden histories (STYLE.md, from Temporal): logs recorded from real runs
 * (test/fixtures/histories/record.ts) are replayed through the pure session machine with
 * `transition`, as actors/session.ts `replayLog` does, and must reproduce what the live owner
 * ended with: its final snapshot (value and control context), the statuses its activities
 * settled with, and the turns it accepted. A deliberately altered history must fail the same check.
 */

const DIR = join(import.meta.dirname, '..', 'fixtures', 'histories');

interface Expected {
  scenario: string;
  /** The recorded run's limits (recordings made before an input existed lack it). */
  input: Omit<SessionInput, 'sessionId' | 'idempotentTools'> & Partial<Pick<SessionInput, 'idempotentTools'>>;
  final: { value: unknown; context: Record<string, unknown> };
  settlements: string[];
  turnsStarted: number;
}

function readHistory(file: string): AnyEnvelope[] {
  return readFileSync(join(DIR, file), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as AnyEnvelope);
}

const expectedFor = (name: string): Expected => JSON.parse(readFileSync(join(DIR, `${name}.expected.json`), 'utf8')) as Expected;

/** The envelope contract (DESIGN §4): one session, seq contiguous from 1, gseq increasing, known types, valid data. */
function wellFormed(events: AnyEnvelope[]): string[] {
  const problems: string[] = [];
  events.forEach((e, i) => {
    if (e.sessionId !== events[0]!.sessionId) problems.push(`seq ${e.seq}: another session`);
    if (e.seq !== i + 1) problems.push(`line ${i + 1}: seq ${e.seq}`);
    if (i > 0 && e.gseq <= events[i - 1]!.gseq) problems.push(`seq ${e.seq}: gseq does not increase`);
    if (Number.isNaN(Date.parse(e.at))) problems.push(`seq ${e.seq}: at is not a time`);
    try {
      if (e.version !== definitionOf(e.type).version) problems.push(`seq ${e.seq}: ${e.type} version ${e.version}`);
      validateForWrite(e.type, e.data);
    } catch (error) {
      problems.push(`seq ${e.seq}: ${(error as Error).message}`);
    }
  });
  return problems;
}

interface Replayed {
  value: unknown;
  context: Record<string, unknown>;
  /** lastStatus each time settledCount grew: what the machine made of the settlements. */
  settlements: string[];
  /** Transitions into providerTurn: turns the machine accepted. */
  turnsStarted: number;
}

/** The machine input of a recording (inputs added to the machine later get their neutral value). */
const machineInput = (input: Expected['input'], events: AnyEnvelope[]): SessionInput => ({ idempotentTools: [], ...input, sessionId: events[0]!.sessionId! });

/** Replays a log through the pure machine (no action runs, no child starts). */
function replay(events: AnyEnvelope[], input: Expected['input']): Replayed {
  let [snapshot] = initialTransition(sessionMachine, machineInput(input, events));
  const settlements: string[] = [];
  let turnsStarted = 0;
  for (const e of events) {
    const before = snapshot;
    [snapshot] = transition(sessionMachine, snapshot, e as SessionEvent);
    if (snapshot.status !== 'active') throw new Error(`seq ${e.seq}: the machine is ${snapshot.status}`);
    if (snapshot.context.settledCount > before.context.settledCount) settlements.push(String(snapshot.context.lastStatus));
    if (snapshot.matches('providerTurn') && !before.matches('providerTurn')) turnsStarted += 1;
  }
  return { value: snapshot.value, context: snapshot.context as unknown as Record<string, unknown>, settlements, turnsStarted };
}

/** The differences between a replay and the recorded expectation (empty when it matches). */
function differences(events: AnyEnvelope[], expected: Expected): string[] {
  const got = replay(events, expected.input);
  const diffs: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(got.value, expected.final.value)) diffs.push(`value ${JSON.stringify(got.value)}, expected ${JSON.stringify(expected.final.value)}`);
  for (const [key, want] of Object.entries(expected.final.context)) {
    if (!same(got.context[key], want)) diffs.push(`context.${key} ${JSON.stringify(got.context[key])}, expected ${JSON.stringify(want)}`);
  }
  if (!same(got.settlements, expected.settlements)) diffs.push(`settlements ${got.settlements.join(',')}, expected ${expected.settlements.join(',')}`);
  if (got.turnsStarted !== expected.turnsStarted) diffs.push(`turns started ${got.turnsStarted}, expected ${expected.turnsStarted}`);
  return diffs;
}

const files = readdirSync(DIR);
const golden = files.filter((f) => f.endsWith('.jsonl') && !f.endsWith('.altered.jsonl')).map((f) => f.replace(/\.jsonl$/, ''));
const altered = files.filter((f) => f.endsWith('.altered.jsonl')).map((f) => f.replace(/\.altered\.jsonl$/, ''));

describe('session histories', () => {
  it('session histories - the recorded set covers the scenarios, each with its expectation', () => {
    expect(golden.sort()).toEqual(expect.arrayContaining(['budget-exceeded', 'cancel', 'retry', 'retry-jitter', 'simple-text', 'steer-at-boundary', 'tool-turn', 'turn-limit']));
    for (const name of [...golden, ...altered]) expect(files, name).toContain(`${name}.expected.json`);
    expect(altered.length).toBeGreaterThanOrEqual(1);
  });

  for (const name of golden) {
    it(`session histories - ${name} replays to the live owner's final state`, () => {
      const events = readHistory(`${name}.jsonl`);
      expect(wellFormed(events)).toEqual([]);
      expect(differences(events, expectedFor(name))).toEqual([]);
    });
  }

  for (const name of altered) {
    it(`session histories - ${name}.altered is well formed but does not replay to the recorded state`, () => {
      const events = readHistory(`${name}.altered.jsonl`);
      expect(wellFormed(events)).toEqual([]); // the alteration is in the behaviour, not the envelope
      expect(differences(events, expectedFor(name))).not.toEqual([]);
    });
  }

  it('session histories - a turn.finished removed is caught by the turns the machine accepted', () => {
    const diffs = differences(readHistory('tool-turn.altered.jsonl'), expectedFor('tool-turn'));
    // Without the first turn.finished the machine never leaves turn 1: the recorded turn 2 is refused.
    expect(diffs).toEqual(['turns started 1, expected 2']);
  });

  it('session histories - usage the owner did not record is caught: the budget check and the totals replay from the log alone', () => {
    const diffs = differences(readHistory('budget-exceeded.altered.jsonl'), expectedFor('budget-exceeded'));
    // 100 + 20 tokens are under the 300-token budget: the machine awaits the tool instead of settling.
    expect(diffs).toEqual(expect.arrayContaining(['context.usage {"inputTokens":100,"outputTokens":20}, expected {"inputTokens":400,"outputTokens":20}']));
  });

  it('session histories - each retry is replayed from its recorded attempt.retrying, and an older log without one still replays', () => {
    const events = readHistory('retry-jitter.jsonl');
    const retries = events.filter((e): e is Extract<AnyEnvelope, { type: 'attempt.retrying' }> => e.type === 'attempt.retrying');
    expect(retries.map((e) => e.data.nextAttempt)).toEqual([2, 3]);
    let [snapshot] = initialTransition(sessionMachine, machineInput(expectedFor('retry-jitter').input, events));
    for (const e of events.slice(0, events.indexOf(retries[1]!) + 1)) [snapshot] = transition(sessionMachine, snapshot, e as SessionEvent);
    expect(snapshot.value).toEqual({ providerTurn: 'backoff' });
    expect(snapshot.context.activity!.retryDelayMs).toBe(retries[1]!.data.delayMs);
    expect(readHistory('retry.jsonl').some((e) => e.type === 'attempt.retrying')).toBe(false); // recorded before retries were events
  });

  it('session histories - a settlement recorded twice is caught by the settled count', () => {
    const diffs = differences(readHistory('simple-text.altered.jsonl'), expectedFor('simple-text'));
    expect(diffs).toEqual(expect.arrayContaining(['context.settledCount 2, expected 1', 'settlements completed,completed, expected completed']));
  });

  it('session histories - the steer joins the running activity at the boundary and the queued input waits for the next', () => {
    const events = readHistory('steer-at-boundary.jsonl');
    const [steer, queued] = events.filter((e) => e.type === 'input.admitted').slice(1);
    const assigned = events.filter((e): e is Extract<AnyEnvelope, { type: 'input.assigned' }> => e.type === 'input.assigned');
    const opened = events.filter((e): e is Extract<AnyEnvelope, { type: 'activity.opened' }> => e.type === 'activity.opened');
    const byInput = (id: string) => assigned.find((e) => e.data.inputId === id)!;
    expect(byInput((steer as Extract<AnyEnvelope, { type: 'input.admitted' }>).data.inputId).data.activityId).toBe(opened[0]!.data.activityId);
    expect(byInput((queued as Extract<AnyEnvelope, { type: 'input.admitted' }>).data.inputId).data.activityId).toBe(opened[1]!.data.activityId);
    // Replaying up to the steer's assignment: the machine is at the boundary after the tool turn, not mid-stream.
    const upTo = events.slice(0, events.indexOf(byInput((steer as Extract<AnyEnvelope, { type: 'input.admitted' }>).data.inputId)));
    let [s] = initialTransition(sessionMachine, machineInput(expectedFor('steer-at-boundary').input, events));
    for (const e of upTo) [s] = transition(sessionMachine, s, e as SessionEvent);
    expect(s.value).toBe('continuing');
  });
});
