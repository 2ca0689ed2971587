import { activeStateIds, type MachineGraph } from './graph.js';
import { compoundHeader, FONT_PX, INVOKE_LINE_PX, LABEL_LINE_HEIGHT_PX, layoutStatechart, MARGIN_PX, PAD_PX, round, unique, type StatechartLayout } from './layout.js';

/**
 * Draws a statechart graph (server/inspector/graph.ts) as SVG with the current state highlighted.
 * Pure and deterministic (same graph and state → same string) and DOM-free: the server renders it
 * for `GET /machines/:name/svg` and tests, the inspector page's bundle renders it in the browser.
 * The layout is server/inspector/layout.ts.
 */

export interface RenderOptions {
  /** The current state as a dotted name ('providerTurn.streaming'); its leaf and ancestors are highlighted. */
  state?: string | null;
  /** Accessible title of the drawing (defaults to the machine's name, version and current state). */
  title?: string;
  /** A layout computed before (layouts do not depend on the state: the page computes one per machine). */
  layout?: StatechartLayout;
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * SVG path data through the points: a Catmull-Rom spline (as cubic Béziers), leaving the first
 * point and entering the last one vertically, as arrows between stacked boxes should.
 */
export function smoothPath(points: [number, number][]): string {
  const [first] = points;
  if (!first) return '';
  const at = (i: number): [number, number] => {
    if (i < 0) return [first[0], first[1] - (points[1]![1] - first[1])];
    if (i >= points.length) {
      const last = points[points.length - 1]!;
      const before = points[points.length - 2]!;
      return [last[0], last[1] + (last[1] - before[1])];
    }
    return points[i]!;
  };
  let d = `M ${first[0]} ${first[1]}`;
  for (let i = 0; i + 1 < points.length; i++) {
    const [p0, p1, p2, p3] = [at(i - 1), at(i), at(i + 1), at(i + 2)];
    const c1 = [round(p1[0] + (p2[0] - p0[0]) / 6), round(p1[1] + (p2[1] - p0[1]) / 6)];
    const c2 = [round(p2[0] - (p3[0] - p1[0]) / 6), round(p2[1] - (p3[1] - p1[1]) / 6)];
    d += ` C ${c1[0]} ${c1[1]}, ${c2[0]} ${c2[1]}, ${p2[0]} ${p2[1]}`;
  }
  return d;
}

/**
 * The statechart as an SVG document string. Every state is a `<g class="state" data-state="ID">`;
 * the current leaf also has the class `active` (and `aria-current="true"`), its ancestors
 * `active-ancestor`. Arrows are `<g class="transition" data-from data-to data-events>`; those that
 * leave an active state also have `from-active`. Styles are inline so the SVG looks the same
 * standalone and inside the page.
 */
export function renderStatechartSvg(graph: MachineGraph, options: RenderOptions = {}): string {
  const layout = options.layout ?? layoutStatechart(graph);
  const active = activeStateIds(options.state);
  const leaf = active.length > 0 ? active[active.length - 1]! : null;
  const internal = new Map<string, string[]>();
  for (const t of graph.transitions) if (t.target === null) (internal.get(t.source) ?? internal.set(t.source, []).get(t.source)!).push(t.event);
  const title = options.title ?? `${graph.name} statechart (${graph.version})${options.state ? `, current state ${options.state}` : ''}`;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" class="statechart" data-machine="${escapeXml(graph.name)}" data-state="${escapeXml(options.state ?? '')}" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}" role="img" aria-label="${escapeXml(title)}" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="${FONT_PX}">`);
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push(`<style>${SVG_STYLE}</style>`);
  const arrow = `arrow-${escapeXml(graph.name)}`;
  out.push(`<defs><marker id="${arrow}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>`);
  // States, parents first so children paint over them.
  for (const state of graph.states) {
    const box = layout.boxes.get(state.id)!;
    const compound = state.children.length > 0;
    const classes = ['state', compound ? 'compound' : 'atomic'];
    if (state.type === 'final') classes.push('final');
    if (state.id === leaf) classes.push('active');
    else if (active.includes(state.id)) classes.push('active-ancestor');
    const handles = internal.get(state.id);
    const tip = [state.id || graph.name, state.description, handles && state.id !== '' ? `handles: ${unique(handles).join(', ')}` : '', state.invokes.length > 0 ? `invokes: ${state.invokes.join(', ')}` : '']
      .filter(Boolean)
      .join('\n');
    out.push(`<g class="${classes.join(' ')}" data-state="${escapeXml(state.id)}"${state.id === leaf ? ' aria-current="true"' : ''}><title>${escapeXml(tip)}</title>`);
    out.push(`<rect x="${round(box.x)}" y="${round(box.y)}" width="${round(box.w)}" height="${round(box.h)}" rx="${compound ? 10 : 8}"/>`);
    if (state.type === 'final') out.push(`<rect class="final-ring" x="${round(box.x + 3)}" y="${round(box.y + 3)}" width="${round(box.w - 6)}" height="${round(box.h - 6)}" rx="6"/>`);
    if (compound) {
      const header = compoundHeader(state, graph.name);
      const invokes = header.invokes ? `<tspan class="invokes">${escapeXml(header.invokes)}</tspan>` : '';
      out.push(`<text class="label" x="${round(box.x + PAD_PX)}" y="${round(box.y + 17)}">${escapeXml(header.title)}${invokes}</text>`);
    } else {
      out.push(`<text class="label" x="${round(box.x + box.w / 2)}" y="${round(box.y + 19)}" text-anchor="middle">${escapeXml(state.key)}</text>`);
      if (state.invokes.length > 0) out.push(`<text class="invokes" x="${round(box.x + box.w / 2)}" y="${round(box.y + 19 + INVOKE_LINE_PX)}" text-anchor="middle">invokes ${escapeXml(state.invokes.join(', '))}</text>`);
    }
    out.push('</g>');
    // The "any state" marker of a compound state whose own transitions enter its children.
    const marker = layout.boxes.get(`*${state.id}`);
    if (marker) {
      out.push(`<g class="any" data-state="*${escapeXml(state.id)}"><title>${escapeXml(`any state of ${state.id || graph.name}`)}</title><circle cx="${round(marker.x + marker.w / 2)}" cy="${round(marker.y + marker.h / 2)}" r="${round(marker.w / 2)}"/><text x="${round(marker.x + marker.w / 2)}" y="${round(marker.y + marker.h / 2 + 4)}" text-anchor="middle">*</text></g>`);
    }
  }
  // Initial-state markers: a dot with a short arrow into each compound state's initial child.
  for (const state of graph.states) {
    if (!state.initial) continue;
    const box = layout.boxes.get(state.initial)!;
    const y = box.y + box.h / 2;
    out.push(`<g class="initial" data-state="${escapeXml(state.initial)}"><circle cx="${round(box.x - 13)}" cy="${round(y)}" r="3.5"/><path d="M ${round(box.x - 10)} ${round(y)} L ${round(box.x)} ${round(y)}" marker-end="url(#${arrow})"/></g>`);
  }
  for (const edge of layout.edges) {
    const events = unique(edge.transitions.map((t) => t.event));
    const tip = edge.transitions
      .map((t) => `${t.source || graph.name} → ${t.target} on ${t.event}${t.guard ? ` if ${t.guard}` : ''}${t.actions.length ? ` do ${t.actions.join(', ')}` : ''}`)
      .join('\n');
    const fromActive = edge.transitions.some((t) => active.includes(t.source)) ? ' from-active' : '';
    out.push(`<g class="transition${fromActive}" data-from="${escapeXml(edge.from)}" data-to="${escapeXml(edge.to)}" data-events="${escapeXml(events.join(' '))}"><title>${escapeXml(tip)}</title>`);
    out.push(`<path d="${smoothPath(edge.points)}" marker-end="url(#${arrow})"/>`);
    const lines = edge.label.lines.map((line, i) => `<tspan x="${edge.label.x}" dy="${i === 0 ? 0 : LABEL_LINE_HEIGHT_PX}">${escapeXml(line)}</tspan>`).join('');
    out.push(`<text class="event" x="${edge.label.x}" y="${edge.label.y}">${lines}</text>`);
    out.push('</g>');
  }
  for (const loop of layout.loops) {
    const box = layout.boxes.get(loop.state)!;
    const x = box.x + box.w;
    const text = unique(loop.transitions.map((t) => t.event)).join(' | ');
    out.push(`<g class="transition loop" data-from="${escapeXml(loop.state)}" data-to="${escapeXml(loop.state)}" data-events="${escapeXml(unique(loop.transitions.map((t) => t.event)).join(' '))}">`);
    out.push(`<path d="M ${round(x)} ${round(box.y + 8)} C ${round(x + 26)} ${round(box.y - 4)}, ${round(x + 26)} ${round(box.y + box.h + 4)}, ${round(x)} ${round(box.y + box.h - 8)}" marker-end="url(#${arrow})"/>`);
    out.push(`<text class="event" x="${round(x + 24)}" y="${round(box.y + box.h / 2 + 4)}">${escapeXml(text)}</text></g>`);
  }
  const rootBox = layout.boxes.get('')!;
  layout.legend.forEach((line, i) => {
    out.push(`<text class="legend" x="${MARGIN_PX}" y="${round(rootBox.y + rootBox.h + (i + 1) * 16 - 2)}">${escapeXml(line)}</text>`);
  });
  out.push('</svg>');
  return out.join('');
}

const SVG_STYLE = [
  '.state rect{fill:#f8fafc;stroke:#94a3b8;stroke-width:1.2}',
  '.state.compound>rect{fill:#eef2f7;fill-opacity:.6}',
  '.state[data-state=""]>rect{fill:#fff;stroke:#cbd5e1}',
  '.state .label{fill:#0f172a}',
  '.state .invokes,.legend{fill:#64748b;font-size:10px}',
  '.state .final-ring{fill:none}',
  '.state.active>rect{fill:#fde68a;stroke:#b45309;stroke-width:2.5}',
  '.state.active .label{font-weight:700}',
  '.state.active-ancestor>rect{stroke:#b45309;stroke-width:2}',
  '.any circle{fill:#fff;stroke:#64748b}',
  '.any text{fill:#334155;font-size:11px}',
  '.transition path{fill:none;stroke:#64748b;stroke-width:1.1}',
  '.transition.from-active path{stroke:#b45309;stroke-width:1.6}',
  '.transition .event{fill:#334155;font-size:10px}',
  '.transition.from-active .event{fill:#92400e}',
  '.arrowhead{fill:#64748b}',
  '.initial circle{fill:#334155}',
  '.initial path{stroke:#334155;stroke-width:1.2}',
]
  // Scoped: inside an HTML page an SVG's <style> applies to the whole document.
  .map((rule) => rule.split('{')[0]!.split(',').map((sel) => `svg.statechart ${sel}`).join(',') + rule.slice(rule.indexOf('{')))
  .join('');
