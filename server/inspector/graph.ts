/**
 * The statechart graph the inspector draws: a machine definition reduced to plain JSON (states,
 * nesting, transitions with their event names and guards). Produced on the server from the real
 * machines (server/inspector/statechart.ts), served at `GET /machines/:name`, and drawn in the
 * browser and in tests by server/inspector/svg.ts. Types only: this file is imported by the
 * browser bundle too, so it must never import runtime code.
 */

export type StateNodeType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

/** What made a transition: a named event, an eventless `always`, a delay, or an invoked actor's end. */
export type TransitionKind = 'event' | 'always' | 'after' | 'done' | 'error';

export interface GraphState {
  /** Dotted path from the root, as `stateName()` prints a state value ('providerTurn.streaming'); '' is the root. */
  id: string;
  key: string;
  type: StateNodeType;
  /** The parent's id; null for the root. */
  parent: string | null;
  /** The initial child's id (compound states). */
  initial: string | null;
  /** Child ids in document order. */
  children: string[];
  /** Actors this state invokes (their `src` names). */
  invokes: string[];
  description?: string;
}

export interface GraphTransition {
  id: string;
  source: string;
  /** Null when the transition has no target: it runs actions and stays (e.g. `tool.settled` in providerTurn). */
  target: string | null;
  kind: TransitionKind;
  /** What to print on the arrow: the event type, `always`, `after retryBackoff`, `done: executeTool`. */
  event: string;
  /** The guard as written: a name, or `and(a, b)`; `inline` for an anonymous function; null when unguarded. */
  guard: string | null;
  /** Named actions with their static params (`settleActivity(status: completed)`); inline assigns are left out. */
  actions: string[];
}

export interface MachineGraph {
  /** The machine's name in `GET /machines/:name` (session, toolCall, job). */
  name: string;
  /** The machine's version constant (e.g. session@2): a drawing matches the snapshots of that version. */
  version: string;
  states: GraphState[];
  transitions: GraphTransition[];
}

/** The ids of a state value's active states: 'providerTurn.streaming' → ['', 'providerTurn', 'providerTurn.streaming']. */
export function activeStateIds(state: string | null | undefined): string[] {
  if (!state) return [];
  const parts = state.split('.');
  return ['', ...parts.map((_, i) => parts.slice(0, i + 1).join('.'))];
}
