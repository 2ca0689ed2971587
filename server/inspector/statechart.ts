import { and, not, or, type AnyStateMachine, type AnyStateNode } from 'xstate';
import { JOB_MACHINE_VERSION, jobMachine } from '../../machines/job.machine.js';
import { SESSION_MACHINE_VERSION, sessionMachine } from '../../machines/session.machine.js';
import { TOOL_CALL_MACHINE_VERSION, toolCallMachine } from '../../machines/toolCall.machine.js';
import type { GraphState, GraphTransition, MachineGraph, TransitionKind } from './graph.js';

/** The machines the inspector can draw, by the name used in `GET /machines/:name`. */
export const DRAWABLE_MACHINES = {
  session: { machine: sessionMachine, version: SESSION_MACHINE_VERSION },
  toolCall: { machine: toolCallMachine, version: TOOL_CALL_MACHINE_VERSION },
  job: { machine: jobMachine, version: JOB_MACHINE_VERSION },
} as const;

export type DrawableMachineName = keyof typeof DRAWABLE_MACHINES;

export function isDrawableMachine(name: string): name is DrawableMachineName {
  return Object.hasOwn(DRAWABLE_MACHINES, name);
}

const cache = new Map<DrawableMachineName, MachineGraph>();

/** The graph of one of Loom's machines (computed once: definitions do not change while running). */
export function machineGraphOf(name: DrawableMachineName): MachineGraph {
  let graph = cache.get(name);
  if (!graph) {
    const { machine, version } = DRAWABLE_MACHINES[name];
    graph = extractMachineGraph(name, version, machine);
    cache.set(name, graph);
  }
  return graph;
}

/**
 * Reduces an XState v5 machine to the inspector's JSON graph by walking its state nodes: every
 * state (document order, parents before children) and every transition, including eventless
 * (`always`), delayed (`after`) and invoke done/error transitions, with the event names a person
 * reads (`after retryBackoff`, `done: executeTool`) instead of XState's internal event types.
 * Nothing here runs the machine; guards and actions are only named.
 */
export function extractMachineGraph(name: string, version: string, machine: AnyStateMachine): MachineGraph {
  const rootPath = machine.root.path.length;
  const idOf = (node: AnyStateNode) => node.path.slice(rootPath).join('.');
  const states: GraphState[] = [];
  const transitions: GraphTransition[] = [];

  const visit = (node: AnyStateNode) => {
    const children = Object.values(node.states) as AnyStateNode[];
    const initialTarget = node.type === 'compound' ? node.initial.target[0] : undefined;
    states.push({
      id: idOf(node),
      key: node.key,
      type: node.type,
      parent: node.parent ? idOf(node.parent) : null,
      initial: initialTarget ? idOf(initialTarget) : null,
      children: children.map(idOf),
      invokes: node.invoke.map((inv) => (typeof inv.src === 'string' ? inv.src : (inv.src as { id?: string }).id ?? 'inline')),
      ...(node.description ? { description: node.description } : {}),
    });
    const invokeSrc = new Map(node.invoke.map((inv) => [inv.id, typeof inv.src === 'string' ? inv.src : 'inline']));
    const add = (t: TransitionLike, kind: TransitionKind, event: string) => {
      const target = t.target?.[0];
      transitions.push({
        id: `t${transitions.length}`,
        source: idOf(node),
        target: target ? idOf(target) : null,
        kind,
        event,
        guard: guardName(t.guard),
        actions: actionNames(t.actions),
      });
    };
    for (const [eventType, list] of node.transitions) {
      const { kind, event } = describeEvent(eventType, invokeSrc, (list[0] as TransitionLike | undefined)?.delay);
      for (const t of list) add(t, kind, event);
    }
    for (const t of node.always ?? []) add(t, 'always', 'always');
    for (const child of children) visit(child);
  };
  visit(machine.root);
  return { name, version, states, transitions };
}

interface TransitionLike {
  target?: readonly AnyStateNode[] | undefined;
  guard?: unknown;
  actions: readonly unknown[];
  delay?: unknown;
}

/** XState's internal event types → what a person reads on the arrow. */
function describeEvent(eventType: string, invokeSrc: Map<string, string>, delay: unknown): { kind: TransitionKind; event: string } {
  if (eventType.startsWith('xstate.after.')) {
    const name = typeof delay === 'string' ? delay : typeof delay === 'number' ? `${delay} ms` : eventType.split('.')[2] ?? 'delay';
    return { kind: 'after', event: `after ${name}` };
  }
  for (const [prefix, kind] of [['xstate.done.actor.', 'done'], ['xstate.error.actor.', 'error']] as const) {
    if (eventType.startsWith(prefix)) {
      const src = invokeSrc.get(eventType.slice(prefix.length)) ?? 'actor';
      return { kind, event: `${kind}: ${src}` };
    }
  }
  if (eventType.startsWith('xstate.done.state.')) return { kind: 'done', event: 'done' };
  return { kind: 'event', event: eventType === '*' ? 'any event' : eventType };
}

/** XState's guard combinators, known by their check functions (function names do not survive bundling). */
const COMBINATORS = new Map<unknown, string>([
  [(and([]) as unknown as { check: unknown }).check, 'and'],
  [(or([]) as unknown as { check: unknown }).check, 'or'],
  [(not('x') as unknown as { check: unknown }).check, 'not'],
]);

/** A guard as written: `canOpen`, `and(isCurrentAttempt, canRetry)`, `inline` for an anonymous check. */
export function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const combinator = guard as { guards?: unknown[]; check?: unknown };
    const name = COMBINATORS.get(combinator.check);
    if (name && Array.isArray(combinator.guards)) return `${name}(${combinator.guards.map((g) => guardName(g) ?? 'inline').join(', ')})`;
    return 'inline';
  }
  if (typeof guard === 'object' && typeof (guard as { type?: unknown }).type === 'string') return (guard as { type: string }).type;
  return 'inline';
}

/** Named actions with their static params; XState's built-ins (assign, raise, spawn…) and inline functions are left out. */
export function actionNames(actions: readonly unknown[]): string[] {
  const names: string[] = [];
  for (const action of actions) {
    if (typeof action === 'string') names.push(action);
    else if (action && typeof action === 'object' && typeof (action as { type?: unknown }).type === 'string') {
      const { type, params } = action as { type: string; params?: unknown };
      if (type.startsWith('xstate.')) continue;
      names.push(params && typeof params === 'object' ? `${type}(${formatParams(params as Record<string, unknown>)})` : type);
    }
  }
  return names;
}

function formatParams(params: Record<string, unknown>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}
