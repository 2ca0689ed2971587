import type { SessionState } from '../../server/contract.js';
import { sessionState } from '../../server/state.js';
import { openStore } from '../runtime.js';
import { formatBudget, formatUsage } from '../render.js';
import { colorsFor, type Colors } from '../style.js';
import { requireSession } from './session.js';

/** `loom inspect`: the session as a tree (renderTree), or the same report as one JSON object. */
export async function inspectCommand(idArg: string, opts: { json?: boolean }): Promise<number> {
  const { store } = openStore();
  try {
    const s = requireSession(store, idArg);
    // The same view GET /sessions/:id/state serves, without its machine value and job list (the tree shows children instead).
    const { stateValue: _value, jobs: _jobs, ...report } = sessionState(store, s.sessionId);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    process.stdout.write(renderTree(report, colorsFor(process.stdout)));
    return 0;
  } finally {
    store.close();
  }
}

/** The `loom inspect` report (also its `--json` object): the HTTP session state without its machine value and job list. */
type InspectReport = Omit<SessionState, 'stateValue' | 'jobs'>;

/**
 * The session as a tree: its machine state, the activity, the child actors (tool calls with their
 * pending asks under them, jobs) with their states, the inbox, then owner, grants, usage and log.
 */
export function renderTree(r: InspectReport, c: Colors): string {
  const lines: string[] = [];
  const node = (prefix: string, last: boolean, text: string) => lines.push(`${prefix}${last ? '└─ ' : '├─ '}${text}`);
  const under = (prefix: string, last: boolean) => `${prefix}${last ? '   ' : '│  '}`;
  const stateColor = r.state === 'idle' ? c.green : r.state === 'recovering' ? c.red : c.yellow;
  const asking = r.permissions.pending.length > 0 && r.state === 'awaitingTools';
  lines.push(`${c.bold(`session ${r.sessionId}`)}  ${r.model}  ${r.location}`);
  const notes = [r.parked ? 'parked after a stop: waits for new input, run or wake' : '', asking ? 'waiting for a permission decision' : '', r.state === 'recovering' ? `decide: loom recover ${r.sessionId} --retry|--abandon` : '']
    .filter(Boolean)
    .map((n) => ` · ${n}`)
    .join('');
  node('', false, `state ${stateColor(r.state)}${notes}`);
  const a = r.activity;
  node('', false, a
    ? `activity ${a.activityId} ${a.status} · turn ${a.turn}/${a.turnLimit} · ${a.turns} turn${a.turns === 1 ? '' : 's'} in all${a.attemptId ? ` · attempt ${a.attemptId}` : ''}`
    : `activity none${r.lastActivityStatus ? ` (last settled: ${r.lastActivityStatus})` : ''}`);
  if (a) node(under('', false), true, `usage ${formatUsage(a.usage)}${a.budget ? ` · budget ${formatBudget(a.budget)}` : ''}`);
  // Child actors, each ask under the call that waits for it.
  node('', false, `children ${r.children.length === 0 ? c.dim('none') : `(${r.children.length})`}`);
  const childPrefix = under('', false);
  const shownAsks = new Set<string>();
  r.children.forEach((child, i) => {
    const last = i === r.children.length - 1;
    const waiting = child.state === 'awaitingPermission' || child.state === 'cancelling';
    node(childPrefix, last, `${child.kind} ${child.id} ${child.tool} · ${waiting ? c.yellow(child.state) : c.cyan(child.state)}`);
    const asks = r.permissions.pending.filter((p) => p.callId === child.id);
    asks.forEach((p, j) => {
      shownAsks.add(p.requestId);
      node(under(childPrefix, last), j === asks.length - 1, `ask ${p.requestId} ${p.tool} ${p.summary ?? ''}${p.pattern ? ` · always would allow ${p.tool} ${p.pattern}` : ''}`);
    });
  });
  const orphanAsks = r.permissions.pending.filter((p) => !shownAsks.has(p.requestId));
  if (orphanAsks.length > 0) {
    node('', false, `asks (${orphanAsks.length} pending)`);
    orphanAsks.forEach((p, j) => node(under('', false), j === orphanAsks.length - 1, `ask ${p.requestId} ${p.tool} ${p.summary ?? ''}`));
  }
  node('', false, `inbox ${r.inbox.length === 0 ? c.dim('empty') : `(${r.inbox.length})`}`);
  r.inbox.forEach((i, j) => node(under('', false), j === r.inbox.length - 1, `${i.inputId} ${i.mode} ${i.status} ${JSON.stringify(i.text.length > 60 ? `${i.text.slice(0, 59)}…` : i.text)}`));
  const o = r.owner;
  node('', false, `owner ${o?.live ? `${o.ownerId} · epoch ${o.epoch} · until ${o.expiresAt}` : c.dim(`none live${o ? ` (last epoch ${o.epoch})` : ''}`)}`);
  node('', false, `grants ${r.permissions.grants.length === 0 ? c.dim('none') : r.permissions.grants.map((g) => `${g.tool} ${g.pattern ?? '(any call)'}`).join(', ')}`);
  node('', false, `usage ${r.usage.activities} activities, ${r.usage.turns} turns, ${formatUsage(r.usage)}${r.usage.budget ? ` · session budget ${formatBudget(r.usage.budget)}` : ''}`);
  const k = r.compaction;
  if (k) {
    const parts = [`agent ${r.agent ?? 'build'}`, `about ${k.estimatedTokens}${k.windowTokens ? ` of ${k.windowTokens}` : ''} tokens in context`];
    if (k.running) parts.push(c.yellow(`compacting (${k.running})`));
    else if (k.requested) parts.push('compaction requested');
    parts.push(k.summarySeq === null ? 'never compacted' : `summary at seq ${k.summarySeq}`);
    node('', false, `context ${parts.join(' · ')}`);
  }
  node('', true, `log seq ${r.lastSeq}, snapshot at ${r.snapshotSeq} (${r.machineVersion ?? 'none'})`);
  if (r.permissions.pending.length > 0) lines.push(c.dim(`answer: loom permit ${r.sessionId} REQUEST once|always|reject`));
  return `${lines.join('\n')}\n`;
}
