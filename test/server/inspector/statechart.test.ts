import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { and, assign, createMachine, fromPromise, not, setup, transition, initialTransition } from 'xstate';
import type { SessionEvent, SessionInput } from '../../../machines/session.machine.js';
import { SESSION_MACHINE_VERSION, sessionMachine } from '../../../machines/session.machine.js';
import { stateName } from '../../../machines/stateName.js';
import { activeStateIds } from '../../../server/inspector/graph.js';
import { extractMachineGraph, isDrawableMachine, machineGraphOf } from '../../../server/inspector/statechart.js';
import type { AnyEnvelope } from '../../../store/index.js';

const HISTORIES = join(import.meta.dirname, '..', '..', 'fixtures', 'histories');

const edge = (graph: ReturnType<typeof machineGraphOf>, source: string, target: string | null, event: string) =>
  graph.transitions.find((t) => t.source === source && t.target === target && t.event === event);

describe('statechart graph - extraction from the real machines', () => {
  it('machineGraphOf - the session graph has every state, nested states under their parent, and initial states', () => {
    const graph = machineGraphOf('session');
    expect(graph).toMatchObject({ name: 'session', version: SESSION_MACHINE_VERSION });
    expect(graph.states.map((s) => s.id)).toEqual([
      '', 'idle', 'opening', 'providerTurn', 'providerTurn.streaming', 'providerTurn.retrying', 'providerTurn.backoff', 'awaitingTools',
      'steerCoalescing', 'continuingOrLimit', 'continuing', 'settling', 'compacting', 'compacting.summarising', 'compacting.restoring', 'cancelling', 'recovering',
    ]);
    const byId = new Map(graph.states.map((s) => [s.id, s]));
    expect(byId.get('')).toMatchObject({ parent: null, initial: 'idle', type: 'compound' });
    expect(byId.get('providerTurn')).toMatchObject({ parent: '', initial: 'providerTurn.streaming', children: ['providerTurn.streaming', 'providerTurn.retrying', 'providerTurn.backoff'] });
    expect(byId.get('providerTurn.streaming')).toMatchObject({ parent: 'providerTurn', type: 'atomic', invokes: ['providerTurn'], key: 'streaming' });
    expect(byId.get('compacting.summarising')).toMatchObject({ parent: 'compacting', type: 'atomic', invokes: ['compaction'] });
  });

  it('machineGraphOf - transitions carry readable event names, guards and named actions', () => {
    const graph = machineGraphOf('session');
    expect(edge(graph, 'opening', 'providerTurn', 'turn.started')).toMatchObject({ kind: 'event', guard: null });
    expect(edge(graph, 'providerTurn', 'settling', 'attempt.failed')).toMatchObject({ guard: 'and(isCurrentAttempt, isContextOverflow)' });
    expect(edge(graph, 'idle', 'opening', 'always')).toMatchObject({ kind: 'always', guard: 'canOpen' });
    expect(edge(graph, 'idle', 'compacting', 'always')).toMatchObject({ kind: 'always', guard: 'shouldCompactIdle' });
    expect(edge(graph, 'compacting.restoring', 'compacting.summarising', 'CHECK')!.actions).toContain('restartCompaction');
    expect(edge(graph, 'providerTurn.backoff', 'providerTurn.streaming', 'after retryBackoff')).toMatchObject({ kind: 'after' });
    expect(edge(graph, 'providerTurn', 'providerTurn.retrying', 'attempt.failed')).toMatchObject({ guard: 'and(isCurrentAttempt, canRetry)' });
    expect(edge(graph, 'providerTurn.retrying', 'providerTurn.backoff', 'attempt.retrying')).toMatchObject({ guard: 'isCurrentRetry' });
    expect(edge(graph, 'providerTurn', 'settling', 'turn.finished')).toMatchObject({ guard: 'overBudget' });
    expect(edge(graph, 'opening', 'settling', 'turn.started')).toMatchObject({ guard: 'sessionBudgetUsedUp' });
    expect(edge(graph, 'steerCoalescing', 'settling', 'always')!.actions).toEqual(['settleActivity(status: completed)']);
    expect(edge(graph, 'recovering', 'continuing', 'recovery.decided')!.actions).toEqual(['interruptCalls', 'retryTurn']);
    // The root's transition with a target, and the events every state handles without one.
    expect(edge(graph, '', 'idle', 'activity.settled')).toBeDefined();
    expect(edge(graph, '', null, 'input.admitted')).toBeDefined();
    expect(graph.transitions.every((t) => !t.event.startsWith('xstate.'))).toBe(true);
  });

  it('machineGraphOf - tool call and job graphs name the invoked actors on done and error', () => {
    const toolCall = machineGraphOf('toolCall');
    expect(toolCall.version).toBe('toolCall@1');
    expect(toolCall.states.map((s) => s.id)).toEqual(['', 'queued', 'awaitingPermission', 'running', 'settled']);
    expect(toolCall.states.find((s) => s.id === 'settled')!.type).toBe('final');
    expect(edge(toolCall, 'awaitingPermission', 'running', 'done: checkPermission')).toMatchObject({ kind: 'done', guard: 'inline' });
    expect(edge(toolCall, 'running', 'settled', 'error: executeTool')).toMatchObject({ kind: 'error' });
    expect(edge(toolCall, 'running', 'settled', 'after toolTimeout')).toMatchObject({ kind: 'after' });
    expect(edge(toolCall, '', 'settled', 'CANCEL')).toBeDefined();
    const job = machineGraphOf('job');
    expect(job.states.map((s) => s.id)).toEqual(expect.arrayContaining(['starting', 'restoring', 'running', 'stopping', 'settled']));
    expect(edge(job, 'starting', 'restoring', 'always')).toMatchObject({ guard: 'resumed' });
  });

  it('machineGraphOf - every source and target is a state of the graph, and the graph survives JSON', () => {
    for (const name of ['session', 'toolCall', 'job'] as const) {
      const graph = machineGraphOf(name);
      const ids = new Set(graph.states.map((s) => s.id));
      for (const t of graph.transitions) {
        expect(ids.has(t.source)).toBe(true);
        if (t.target !== null) expect(ids.has(t.target)).toBe(true);
      }
      expect(JSON.parse(JSON.stringify(graph))).toEqual(graph);
    }
  });

  it.each(readdirSync(HISTORIES).filter((f) => f.endsWith('.jsonl') && !f.includes('.altered.')))(
    'machineGraphOf - every state the machine reaches replaying %s is drawn, with its ancestors',
    (file) => {
      const ids = new Set(machineGraphOf('session').states.map((s) => s.id));
      const events = readFileSync(join(HISTORIES, file), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as AnyEnvelope);
      const expected = JSON.parse(readFileSync(join(HISTORIES, file.replace('.jsonl', '.expected.json')), 'utf8'));
      const input: SessionInput = { idempotentTools: [], ...expected.input, sessionId: events[0]!.sessionId! };
      let [snapshot] = initialTransition(sessionMachine, input);
      const seen = new Set<string>();
      for (const e of events) {
        [snapshot] = transition(sessionMachine, snapshot, e as SessionEvent);
        seen.add(stateName(snapshot.value));
      }
      expect(seen.size).toBeGreaterThan(0);
      for (const state of seen) for (const id of activeStateIds(state)) expect(ids.has(id)).toBe(true);
    },
  );

  it('isDrawableMachine - knows the three machines and nothing else', () => {
    expect(['session', 'toolCall', 'job'].every(isDrawableMachine)).toBe(true);
    expect(isDrawableMachine('constructor')).toBe(false);
    expect(isDrawableMachine('nope')).toBe(false);
  });
});

describe('statechart graph - extraction of any machine', () => {
  it('extractMachineGraph - numeric delays, not() guards, static params, invokes and descriptions', () => {
    const machine = setup({
      actors: { fetcher: fromPromise(async () => 1) },
      guards: { ready: () => true, fresh: () => true },
      actions: { note: (_, _params: { level: string }) => {} },
    }).createMachine({
      id: 'demo',
      initial: 'a',
      states: {
        a: {
          description: 'waits',
          after: { 1500: { target: 'b', actions: { type: 'note', params: { level: 'warn' } } } },
          on: { GO: { target: 'b', guard: not('ready') }, BOTH: { target: 'c', guard: and(['ready', 'fresh']) }, TOUCH: { actions: assign({}) } },
        },
        b: { invoke: { src: 'fetcher', onDone: 'c', onError: 'a' } },
        c: { type: 'final' },
      },
    });
    const graph = extractMachineGraph('demo', 'demo@1', machine);
    expect(graph.states.find((s) => s.id === 'a')!.description).toBe('waits');
    expect(graph.transitions).toEqual(expect.arrayContaining([
      expect.objectContaining({ source: 'a', target: 'b', kind: 'after', event: 'after 1500 ms', actions: ['note(level: warn)'] }),
      expect.objectContaining({ source: 'a', target: 'b', event: 'GO', guard: 'not(ready)' }),
      expect.objectContaining({ source: 'a', target: 'c', event: 'BOTH', guard: 'and(ready, fresh)' }),
      expect.objectContaining({ source: 'a', target: null, event: 'TOUCH', actions: [] }),
      expect.objectContaining({ source: 'b', target: 'c', kind: 'done', event: 'done: fetcher' }),
      expect.objectContaining({ source: 'b', target: 'a', kind: 'error', event: 'error: fetcher' }),
    ]));
  });

  it('extractMachineGraph - a machine with a wildcard transition names it "any event"', () => {
    const machine = createMachine({ id: 'w', initial: 'x', states: { x: { on: { '*': 'y' } }, y: {} } });
    expect(extractMachineGraph('w', 'w@1', machine).transitions).toEqual([expect.objectContaining({ source: 'x', target: 'y', event: 'any event' })]);
  });
});
