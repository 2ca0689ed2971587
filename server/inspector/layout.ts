import type { GraphState, GraphTransition, MachineGraph } from './graph.js';

/**
 * A deterministic layered layout for statecharts (Sugiyama style, top to bottom), small enough to
 * read in one sitting and to run in the browser. Pure: same graph → same coordinates.
 *
 * Each compound state lays out its children on its own, bottom-up; a laid-out child is then one box
 * in its parent's layout. Inside one compound state:
 * 1. Arrows: a transition between two of its children's subtrees becomes an arrow between those two
 *    children (several transitions between the same pair share one arrow and one label). A
 *    transition of the compound state itself into one of its children starts at a small "any
 *    state" marker at the top (the state handles the event whatever child is active).
 * 2. Ranks: a depth-first walk from the marker, then the initial child, then the other children in
 *    document order; arrows back to a state on the walk's stack are reversed for ranking (drawn
 *    pointing up). Rank = longest path; a child nothing leads to moves down next to its first
 *    successor instead of sitting at the top.
 * 3. Layers: states sit on even layers (2 × rank); every arrow gets a label slot on the odd layer
 *    just below its upper end and a bend point on each further layer it crosses, so labels never
 *    cover a state and long arrows go around states instead of through them.
 * 4. Order within layers: barycenter sweeps down and up; the order with the fewest crossings wins.
 * 5. x: each node is pulled toward the mean x of its neighbours in the layer just swept, then
 *    squeezed to keep the minimum gaps (average of a left-to-right and a right-to-left packing,
 *    which both keep the gaps, so their mean does too).
 */

// Geometry, in SVG user units (px at 100%). Text width is estimated (monospace, deterministic).
export const FONT_PX = 12;
export const CHAR_PX = 7.3;
export const SMALL_CHAR_PX = 6.1;
const ATOMIC_HEIGHT_PX = 30;
export const INVOKE_LINE_PX = 13;
const ATOMIC_WIDTH_MIN_PX = 84;
export const PAD_PX = 22;
export const HEADER_PX = 26;
const GAP_X_PX = 28;
const GAP_DUMMY_PX = 10;
const LAYER_GAP_PX = 12;
/** One line of an arrow's label (one line per distinct event). */
export const LABEL_LINE_HEIGHT_PX = 12;
/** The "any state" marker's diameter. */
export const ANY_SIZE_PX = 14;
/** Where a label's arrow passes, from the label slot's left edge; the text starts after it. */
const LABEL_LINE_INSET_PX = 3;
export const LABEL_TEXT_INSET_PX = 8;
const PORT_SPREAD_PX = 12;
const ORDER_SWEEPS = 8;
const X_SWEEPS = 12;
export const MARGIN_PX = 12;
const LEGEND_LINE_PX = 16;

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface EdgeLayout {
  /** The two boxes the arrow joins (a child's subtree counts as the child; `*ID` is ID's "any state" marker). */
  from: string;
  to: string;
  /** The transitions the arrow stands for. */
  transitions: GraphTransition[];
  /** Points from start to end (the arrowhead is at the last). */
  points: [number, number][];
  /** Where the label's first line starts (left-aligned); one line per distinct event. */
  label: { x: number; y: number; lines: string[] };
}

export interface StatechartLayout {
  width: number;
  height: number;
  /** Every state's box by id, plus each "any state" marker's box by `*` + the state's id. */
  boxes: Map<string, Box>;
  edges: EdgeLayout[];
  /** Self-transitions (a state re-entering itself), drawn as loops. */
  loops: { state: string; transitions: GraphTransition[] }[];
  /** Lines under the chart: the root's transitions without a target ("in every state: …"). */
  legend: string[];
}

export const textWidth = (text: string, charPx = CHAR_PX) => text.length * charPx;
export const anyMarkerId = (stateId: string) => `*${stateId}`;

type Targeted = GraphTransition & { target: string };

interface LNode {
  id: string;
  w: number;
  h: number;
  kind: 'state' | 'any' | 'label' | 'bend';
  layer: number;
  x: number;
}

interface LEdge {
  from: string;
  to: string;
  transitions: Targeted[];
  reversed: boolean;
  /** Node ids from the upper end to the lower end, label slot and bends included. */
  chain: string[];
  lines: string[];
}

interface CompoundLayout {
  w: number;
  h: number;
  /** Top-left of each child (and marker) relative to the compound's top-left. */
  place: Map<string, { x: number; y: number; w: number; h: number }>;
  edges: { from: string; to: string; transitions: Targeted[]; points: [number, number][]; label: { x: number; y: number; lines: string[] } }[];
}

/** Lays out a whole machine; see the module comment. */
export function layoutStatechart(graph: MachineGraph): StatechartLayout {
  const byId = new Map(graph.states.map((s) => [s.id, s]));
  const root = byId.get('');
  if (!root) throw new Error(`statechart ${graph.name} has no root state`);
  const targeted = graph.transitions.filter((t): t is Targeted => t.target !== null);
  const sizes = new Map<string, { w: number; h: number }>();
  const inner = new Map<string, CompoundLayout>();

  const measure = (state: GraphState) => {
    if (state.children.length === 0) {
      const invokeLine = state.invokes.length > 0 ? `invokes ${state.invokes.join(', ')}` : '';
      sizes.set(state.id, {
        w: Math.max(ATOMIC_WIDTH_MIN_PX, textWidth(state.key) + 2 * PAD_PX, textWidth(invokeLine, SMALL_CHAR_PX) + 2 * PAD_PX),
        h: ATOMIC_HEIGHT_PX + (invokeLine ? INVOKE_LINE_PX : 0),
      });
      return;
    }
    for (const child of state.children) measure(byId.get(child)!);
    const layout = layoutCompound(state, targeted, sizes, compoundHeader(state, graph.name));
    inner.set(state.id, layout);
    sizes.set(state.id, { w: layout.w, h: layout.h });
  };
  measure(root);

  const boxes = new Map<string, Box>();
  const edges: EdgeLayout[] = [];
  const position = (id: string, x: number, y: number) => {
    boxes.set(id, { x, y, ...sizes.get(id)! });
    const layout = inner.get(id);
    if (!layout) return;
    for (const [child, at] of layout.place) {
      if (child.startsWith('*')) boxes.set(child, { x: x + at.x, y: y + at.y, w: at.w, h: at.h });
      else position(child, x + at.x, y + at.y);
    }
    for (const e of layout.edges) {
      edges.push({
        from: e.from,
        to: e.to,
        transitions: e.transitions,
        points: e.points.map(([px, py]) => [round(x + px), round(y + py)]),
        label: { x: round(x + e.label.x), y: round(y + e.label.y), lines: e.label.lines },
      });
    }
  };
  position('', MARGIN_PX, MARGIN_PX);

  const loopsBy = new Map<string, GraphTransition[]>();
  for (const t of targeted) if (t.source === t.target) (loopsBy.get(t.source) ?? loopsBy.set(t.source, []).get(t.source)!).push(t);
  const internalAtRoot = graph.transitions.filter((t) => t.source === '' && t.target === null);
  const legend = internalAtRoot.length > 0 ? [`in every state: ${unique(internalAtRoot.map((t) => t.event)).join(', ')}`] : [];
  const rootBox = boxes.get('')!;
  const right = Math.max(rootBox.x + rootBox.w, ...legend.map((l) => MARGIN_PX + textWidth(l, SMALL_CHAR_PX)), ...[...loopsBy.keys()].map((id) => boxes.get(id)!.x + boxes.get(id)!.w + 40));
  return {
    width: Math.ceil(right + MARGIN_PX),
    height: Math.ceil(rootBox.y + rootBox.h + MARGIN_PX + legend.length * LEGEND_LINE_PX),
    boxes,
    edges,
    loops: [...loopsBy].map(([state, transitions]) => ({ state, transitions })),
    legend,
  };
}

/** The text in a compound state's header (its key, or the machine's name for the root). */
export function compoundHeader(state: GraphState, machineName: string): { title: string; invokes: string } {
  return { title: state.key || machineName, invokes: state.invokes.length > 0 ? ` (invokes ${state.invokes.join(', ')})` : '' };
}

/** What a person reads on an arrow for one transition. */
export function labelOf(t: GraphTransition): string {
  return t.kind === 'always' ? (t.guard ? `[${t.guard}]` : 'always') : t.event;
}

/** The child of `ancestor` that is `id` or contains it; undefined when `id` is not strictly inside `ancestor`. */
export function childOn(ancestor: string, id: string): string | undefined {
  if (ancestor === id) return undefined;
  if (ancestor === '') return id.split('.')[0];
  if (!id.startsWith(`${ancestor}.`)) return undefined;
  return `${ancestor}.${id.slice(ancestor.length + 1).split('.')[0]}`;
}

function layoutCompound(state: GraphState, transitions: Targeted[], sizes: Map<string, { w: number; h: number }>, header: { title: string; invokes: string }): CompoundLayout {
  const any = anyMarkerId(state.id);
  // 1. Arrows between children (merged per pair).
  const pairs = new Map<string, { from: string; to: string; transitions: Targeted[] }>();
  for (const t of transitions) {
    const from = t.source === state.id ? any : childOn(state.id, t.source);
    const to = childOn(state.id, t.target);
    if (!from || !to || from === to) continue;
    const key = `${from}\u0000${to}`;
    (pairs.get(key) ?? pairs.set(key, { from, to, transitions: [] }).get(key)!).transitions.push(t);
  }
  const hasAny = [...pairs.values()].some((p) => p.from === any);
  const stateIds = [...(hasAny ? [any] : []), ...state.children];
  const succ = new Map<string, string[]>(stateIds.map((id) => [id, []]));
  for (const p of pairs.values()) succ.get(p.from)!.push(p.to);

  // 2. Ranks.
  const walkOrder: string[] = [];
  const reversedPairs = new Set<string>();
  const seen = new Set<string>();
  const onStack = new Set<string>();
  const walk = (id: string) => {
    seen.add(id);
    onStack.add(id);
    walkOrder.push(id);
    for (const next of succ.get(id)!) {
      // Arrows back into the initial child point up: it stays on top, where a reader starts.
      if (onStack.has(next) || (next === state.initial && id !== any)) reversedPairs.add(`${id}\u0000${next}`);
      else if (!seen.has(next)) walk(next);
    }
    onStack.delete(id);
  };
  const starts = [...(state.initial ? [state.initial] : []), ...(hasAny ? [any] : []), ...state.children];
  for (const id of starts) if (!seen.has(id)) walk(id);
  const up = new Map<string, string[]>(stateIds.map((id) => [id, []]));
  const down = new Map<string, string[]>(stateIds.map((id) => [id, []]));
  for (const p of pairs.values()) {
    const reversed = reversedPairs.has(`${p.from}\u0000${p.to}`);
    const [a, b] = reversed ? [p.to, p.from] : [p.from, p.to];
    if (!down.get(a)!.includes(b)) down.get(a)!.push(b);
    if (!up.get(b)!.includes(a)) up.get(b)!.push(a);
  }
  const rank = new Map<string, number>(stateIds.map((id) => [id, 0]));
  for (const id of topological(walkOrder, down)) for (const next of down.get(id)!) rank.set(next, Math.max(rank.get(next)!, rank.get(id)! + 1));
  const pinned = new Set([any, state.initial]);
  for (const id of walkOrder) {
    if (pinned.has(id) || up.get(id)!.length > 0 || down.get(id)!.length === 0) continue;
    rank.set(id, Math.max(0, Math.min(...down.get(id)!.map((n) => rank.get(n)!)) - 1));
  }

  // 3. Layers with label slots and bends.
  const nodes = new Map<string, LNode>();
  for (const id of stateIds) {
    const size = id === any ? { w: ANY_SIZE_PX, h: ANY_SIZE_PX } : sizes.get(id)!;
    nodes.set(id, { id, ...size, kind: id === any ? 'any' : 'state', layer: 2 * rank.get(id)!, x: 0 });
  }
  const edges: LEdge[] = [];
  const sortedPairs = [...pairs.values()].sort((p, q) => walkOrder.indexOf(p.from) - walkOrder.indexOf(q.from));
  for (const p of sortedPairs) {
    const reversed = reversedPairs.has(`${p.from}\u0000${p.to}`);
    const [a, b] = reversed ? [p.to, p.from] : [p.from, p.to];
    const lines = unique(p.transitions.map(labelOf));
    const chain = [a];
    // The label sits next to where the arrow starts: below its source, or above it when the arrow points up.
    const labelLayer = reversed ? nodes.get(b)!.layer - 1 : nodes.get(a)!.layer + 1;
    for (let layer = nodes.get(a)!.layer + 1; layer < nodes.get(b)!.layer; layer++) {
      const id = `~${edges.length}.${layer}`;
      const isLabel = layer === labelLayer;
      nodes.set(id, {
        id,
        w: isLabel ? LABEL_TEXT_INSET_PX + Math.max(...lines.map((l) => textWidth(l, SMALL_CHAR_PX))) + 4 : 0,
        h: isLabel ? LABEL_LINE_HEIGHT_PX * lines.length + 2 : 0,
        kind: isLabel ? 'label' : 'bend',
        layer,
        x: 0,
      });
      chain.push(id);
    }
    chain.push(b);
    edges.push({ from: p.from, to: p.to, transitions: p.transitions, reversed, chain, lines });
  }
  const layerCount = Math.max(...[...nodes.values()].map((n) => n.layer)) + 1;
  const layers: string[][] = Array.from({ length: layerCount }, () => []);
  for (const id of walkOrder) layers[nodes.get(id)!.layer]!.push(id);
  for (const e of edges) for (const id of e.chain.slice(1, -1)) layers[nodes.get(id)!.layer]!.push(id);
  const above = new Map<string, string[]>([...nodes.keys()].map((id) => [id, []]));
  const below = new Map<string, string[]>([...nodes.keys()].map((id) => [id, []]));
  for (const e of edges) {
    for (let i = 0; i + 1 < e.chain.length; i++) {
      below.get(e.chain[i]!)!.push(e.chain[i + 1]!);
      above.get(e.chain[i + 1]!)!.push(e.chain[i]!);
    }
  }

  // 4. Order within layers.
  orderLayers(layers, above, below);

  // 5. x, then y.
  assignX(layers, nodes, above, below);
  const minX = Math.min(...[...nodes.values()].map((n) => n.x - n.w / 2));
  const headerW = textWidth(header.title) + textWidth(header.invokes, SMALL_CHAR_PX);
  const contentW = Math.max(...[...nodes.values()].map((n) => n.x + n.w / 2)) - minX;
  const offsetX = PAD_PX - minX + Math.max(0, (headerW - contentW) / 2);
  const layerTop: number[] = [];
  let y = HEADER_PX;
  for (const layer of layers) {
    layerTop.push(y);
    const h = Math.max(0, ...layer.map((id) => nodes.get(id)!.h));
    y += h + LAYER_GAP_PX;
  }
  const layerH = layers.map((layer) => Math.max(0, ...layer.map((id) => nodes.get(id)!.h)));
  const center = (n: LNode) => ({ x: n.x + offsetX, y: layerTop[n.layer]! + layerH[n.layer]! / 2 });

  const place = new Map<string, { x: number; y: number; w: number; h: number }>();
  for (const id of stateIds) {
    const n = nodes.get(id)!;
    const c = center(n);
    place.set(id, { x: c.x - n.w / 2, y: c.y - n.h / 2, w: n.w, h: n.h });
  }

  // Ports: the arrows leaving a box's bottom (entering its top) are spread in the order of where they go.
  const ports = new Map<string, number>();
  const assignPorts = (boxId: string, side: 'top' | 'bottom') => {
    const ends = edges
      .map((e, i) => ({ e, i }))
      .filter(({ e }) => (side === 'bottom' ? e.chain[0] : e.chain[e.chain.length - 1]) === boxId)
      .map(({ e, i }) => ({ i, toward: center(nodes.get(side === 'bottom' ? e.chain[1]! : e.chain[e.chain.length - 2]!)!).x }))
      .sort((a, b) => a.toward - b.toward || a.i - b.i);
    const n = nodes.get(boxId)!;
    const spread = Math.min(PORT_SPREAD_PX, (n.w - 12) / Math.max(1, ends.length));
    ends.forEach((end, k) => ports.set(`${end.i}:${side}`, center(n).x + (k - (ends.length - 1) / 2) * spread));
  };
  for (const id of stateIds) {
    assignPorts(id, 'top');
    assignPorts(id, 'bottom');
  }

  const laidEdges = edges.map((e, i) => {
    const points: [number, number][] = e.chain.map((id, k) => {
      const n = nodes.get(id)!;
      const c = center(n);
      if (k === 0) return [ports.get(`${i}:bottom`)!, c.y + n.h / 2];
      if (k === e.chain.length - 1) return [ports.get(`${i}:top`)!, c.y - n.h / 2];
      return n.kind === 'label' ? [c.x - n.w / 2 + LABEL_LINE_INSET_PX, c.y] : [c.x, c.y];
    });
    const labelNode = nodes.get(e.chain.find((id) => nodes.get(id)!.kind === 'label') ?? e.chain[1]!)!;
    const lc = center(labelNode);
    const label = labelNode.kind === 'label'
      ? { x: lc.x - labelNode.w / 2 + LABEL_TEXT_INSET_PX, y: lc.y - labelNode.h / 2 + LABEL_LINE_HEIGHT_PX - 2, lines: e.lines }
      : { x: (points[0]![0] + points[1]![0]) / 2 + 4, y: (points[0]![1] + points[1]![1]) / 2 + 4, lines: e.lines };
    return { from: e.from, to: e.to, transitions: e.transitions, points: e.reversed ? points.reverse() : points, label };
  });

  const contentRight = Math.max(...[...nodes.values()].map((n) => center(n).x + n.w / 2));
  return {
    w: Math.max(contentRight + PAD_PX, headerW + 2 * PAD_PX),
    h: y - LAYER_GAP_PX + PAD_PX,
    place,
    edges: laidEdges,
  };
}

/** Kahn's order of `ids` over acyclic `edges`, ties broken by the given order (deterministic). */
function topological(ids: string[], edges: Map<string, string[]>): string[] {
  const indegree = new Map(ids.map((id) => [id, 0]));
  for (const to of edges.values()) for (const id of to) indegree.set(id, indegree.get(id)! + 1);
  const out: string[] = [];
  const ready = ids.filter((id) => indegree.get(id) === 0);
  while (ready.length > 0) {
    const id = ready.shift()!;
    out.push(id);
    for (const next of edges.get(id)!) {
      indegree.set(next, indegree.get(next)! - 1);
      if (indegree.get(next) === 0) ready.push(next);
    }
  }
  return out;
}

function orderLayers(layers: string[][], above: Map<string, string[]>, below: Map<string, string[]>): void {
  const positions = () => new Map(layers.flatMap((layer) => layer.map((id, i) => [id, i] as const)));
  let best = layers.map((l) => [...l]);
  let bestCrossings = crossings(layers, below);
  for (let sweep = 0; sweep < ORDER_SWEEPS && bestCrossings > 0; sweep++) {
    const downward = sweep % 2 === 0;
    const range = downward ? layers.map((_, i) => i).slice(1) : layers.map((_, i) => i).reverse().slice(1);
    for (const l of range) {
      const pos = positions();
      const neighbours = downward ? above : below;
      const score = (id: string, i: number) => {
        const ps = neighbours.get(id)!.map((n) => pos.get(n)!);
        return ps.length > 0 ? ps.reduce((a, b) => a + b, 0) / ps.length : i;
      };
      const keyed = layers[l]!.map((id, i) => ({ id, i, s: score(id, i) }));
      keyed.sort((a, b) => a.s - b.s || a.i - b.i);
      layers[l] = keyed.map((k) => k.id);
    }
    const c = crossings(layers, below);
    if (c < bestCrossings) {
      bestCrossings = c;
      best = layers.map((l) => [...l]);
    }
  }
  layers.splice(0, layers.length, ...best);
}

/** Arrow crossings between consecutive layers. */
function crossings(layers: string[][], below: Map<string, string[]>): number {
  let count = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const next = new Map(layers[l + 1]!.map((id, i) => [id, i]));
    const segments: [number, number][] = [];
    layers[l]!.forEach((id, i) => {
      for (const n of below.get(id)!) if (next.has(n)) segments.push([i, next.get(n)!]);
    });
    for (let a = 0; a < segments.length; a++) {
      for (let b = a + 1; b < segments.length; b++) {
        if ((segments[a]![0] - segments[b]![0]) * (segments[a]![1] - segments[b]![1]) < 0) count++;
      }
    }
  }
  return count;
}

function assignX(layers: string[][], nodes: Map<string, LNode>, above: Map<string, string[]>, below: Map<string, string[]>): void {
  const gap = (a: LNode, b: LNode) => a.w / 2 + b.w / 2 + (a.kind === 'state' || b.kind === 'state' || a.kind === 'any' || b.kind === 'any' ? GAP_X_PX : GAP_DUMMY_PX);
  // Start packed, each layer centred on 0.
  for (const layer of layers) {
    let x = 0;
    layer.forEach((id, i) => {
      const n = nodes.get(id)!;
      x = i === 0 ? 0 : x + gap(nodes.get(layer[i - 1]!)!, n);
      n.x = x;
    });
    const mid = layer.length > 0 ? x / 2 : 0;
    for (const id of layer) nodes.get(id)!.x -= mid;
  }
  for (let sweep = 0; sweep < X_SWEEPS; sweep++) {
    const downward = sweep % 2 === 0;
    const range = downward ? layers.map((_, i) => i) : layers.map((_, i) => i).reverse();
    for (const l of range) {
      const layer = layers[l]!;
      if (layer.length === 0) continue;
      // Arrows attach at a node's anchor: the centre, or a label slot's left side where its arrow passes.
      const anchor = (n: LNode) => (n.kind === 'label' ? -n.w / 2 + LABEL_LINE_INSET_PX : 0);
      const desired = layer.map((id) => {
        const n = nodes.get(id)!;
        const ns = [...(downward ? above : below).get(id)!, ...(sweep >= X_SWEEPS - 2 ? (downward ? below : above).get(id)! : [])].map((m) => nodes.get(m)!.x + anchor(nodes.get(m)!));
        return ns.length > 0 ? ns.reduce((a, b) => a + b, 0) / ns.length - anchor(n) : n.x;
      });
      const left: number[] = [];
      const right: number[] = [];
      layer.forEach((id, i) => {
        left[i] = i === 0 ? desired[i]! : Math.max(desired[i]!, left[i - 1]! + gap(nodes.get(layer[i - 1]!)!, nodes.get(id)!));
      });
      for (let i = layer.length - 1; i >= 0; i--) {
        right[i] = i === layer.length - 1 ? desired[i]! : Math.min(desired[i]!, right[i + 1]! - gap(nodes.get(layer[i]!)!, nodes.get(layer[i + 1]!)!));
      }
      layer.forEach((id, i) => (nodes.get(id)!.x = (left[i]! + right[i]!) / 2));
    }
  }
}

export function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

export const round = (n: number) => Math.round(n * 10) / 10;
