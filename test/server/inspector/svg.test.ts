import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import type { MachineGraph } from '../../../server/inspector/graph.js';
import { layoutStatechart, type Box } from '../../../server/inspector/layout.js';
import { extractMachineGraph, machineGraphOf } from '../../../server/inspector/statechart.js';
import { renderStatechartSvg, smoothPath } from '../../../server/inspector/svg.js';

/** The `<g class="...">` of each state in the SVG, by data-state. */
function stateGroups(svg: string): Map<string, string> {
  const groups = new Map<string, string>();
  for (const m of svg.matchAll(/<g class="(state[^"]*)" data-state="([^"]*)"/g)) groups.set(m[2]!, m[1]!);
  return groups;
}

const overlaps = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
const inside = (a: Box, b: Box) => a.x >= b.x && a.y >= b.y && a.x + a.w <= b.x + b.w && a.y + a.h <= b.y + b.h;

describe('statechart SVG - rendering', () => {
  it('renderStatechartSvg - draws every state and highlights the current leaf and its ancestors', () => {
    const graph = machineGraphOf('session');
    const svg = renderStatechartSvg(graph, { state: 'providerTurn.streaming' });
    const groups = stateGroups(svg);
    expect([...groups.keys()].sort()).toEqual(graph.states.map((s) => s.id).sort());
    expect(groups.get('providerTurn.streaming')).toContain('active');
    expect(groups.get('providerTurn')).toContain('active-ancestor');
    expect([...groups.values()].filter((c) => c.split(' ').includes('active'))).toHaveLength(1);
    expect(svg).toMatch(/data-state="providerTurn.streaming" aria-current="true"/);
    expect(svg).toContain('<svg xmlns="http://www.w3.org/2000/svg" class="statechart" data-machine="session" data-state="providerTurn.streaming"');
    // Every state's name is written, and every arrow's event.
    for (const s of graph.states.filter((x) => x.id !== '')) expect(svg).toContain(`>${s.key}<`);
    for (const t of graph.transitions.filter((x) => x.target !== null && x.kind === 'event')) expect(svg).toContain(t.event);
  });

  it('renderStatechartSvg - the highlight moves with the state; no state is highlighted without one', () => {
    const graph = machineGraphOf('session');
    const awaiting = stateGroups(renderStatechartSvg(graph, { state: 'awaitingTools' }));
    expect(awaiting.get('awaitingTools')).toContain('active');
    expect(awaiting.get('providerTurn.streaming')).not.toContain('active');
    const none = renderStatechartSvg(graph, { state: null });
    expect([...stateGroups(none).values()].some((c) => c.includes('active'))).toBe(false);
    expect(none).not.toContain('aria-current');
  });

  it('renderStatechartSvg - arrows leaving the active state are marked, and the drawing is deterministic', () => {
    const graph = machineGraphOf('toolCall');
    const svg = renderStatechartSvg(graph, { state: 'awaitingPermission' });
    expect(svg).toMatch(/<g class="transition from-active" data-from="awaitingPermission" data-to="running" data-events="done: checkPermission"/);
    expect(svg).toMatch(/<g class="transition" data-from="running" data-to="settled"/);
    expect(renderStatechartSvg(graph, { state: 'awaitingPermission' })).toBe(svg);
  });

  it('renderStatechartSvg - names with markup characters are escaped', () => {
    const machine = createMachine({ id: 'm', initial: 'a<b', states: { 'a<b': { on: { 'x&"y': 'c' } }, c: {} } });
    const svg = renderStatechartSvg(extractMachineGraph('m&m', 'v"1', machine), { state: 'a<b' });
    expect(svg).toContain('data-state="a&lt;b"');
    expect(svg).toContain('x&amp;&quot;y');
    expect(svg).not.toMatch(/<b|x&"y/);
  });
});

describe('statechart SVG - layout', () => {
  it.each(['session', 'toolCall', 'job'] as const)('layoutStatechart - %s: children sit inside their parent and siblings never overlap', (name) => {
    const graph = machineGraphOf(name);
    const layout = layoutStatechart(graph);
    for (const state of graph.states) {
      const box = layout.boxes.get(state.id)!;
      expect(box.w).toBeGreaterThan(0);
      if (state.parent !== null) expect(inside(box, layout.boxes.get(state.parent)!)).toBe(true);
      const siblings = graph.states.filter((s) => s.parent === state.parent && s.id !== state.id);
      for (const s of siblings) expect(overlaps(box, layout.boxes.get(s.id)!)).toBe(false);
    }
    expect(inside(layout.boxes.get('')!, { x: 0, y: 0, w: layout.width, h: layout.height })).toBe(true);
  });

  it.each(['session', 'toolCall', 'job'] as const)('layoutStatechart - %s: no label covers a state box, and arrows end on their target', (name) => {
    const graph = machineGraphOf(name);
    const layout = layoutStatechart(graph);
    const atomic = graph.states.filter((s) => s.children.length === 0).map((s) => layout.boxes.get(s.id)!);
    for (const edge of layout.edges) {
      const label: Box = { x: edge.label.x, y: edge.label.y - 10, w: Math.max(...edge.label.lines.map((l) => l.length * 6.1)), h: 12 * edge.label.lines.length };
      for (const box of atomic) expect(overlaps(label, box)).toBe(false);
      const [x, y] = edge.points[edge.points.length - 1]!;
      const target = layout.boxes.get(edge.to)!;
      expect(x).toBeGreaterThanOrEqual(target.x);
      expect(x).toBeLessThanOrEqual(target.x + target.w);
      expect([Math.round(target.y), Math.round(target.y + target.h)]).toContain(Math.round(y));
    }
    // Each transition with a target (other than self-loops) is drawn by exactly one arrow.
    const drawn = layout.edges.flatMap((e) => e.transitions.map((t) => t.id)).sort();
    expect(drawn).toEqual(graph.transitions.filter((t) => t.target !== null && t.target !== t.source).map((t) => t.id).sort());
  });

  it('layoutStatechart - a graph without a root is refused', () => {
    const broken: MachineGraph = { name: 'x', version: 'x@1', states: [], transitions: [] };
    expect(() => layoutStatechart(broken)).toThrow('statechart x has no root state');
  });

  it('smoothPath - starts at the first point and ends at the last', () => {
    expect(smoothPath([[0, 0], [10, 20], [0, 40]])).toMatch(/^M 0 0 C .* 0 40$/);
    expect(smoothPath([])).toBe('');
  });
});
