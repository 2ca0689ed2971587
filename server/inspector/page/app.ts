/**
 * The inspector page (browser code, bundled by scripts/build.mjs into dist/inspector-assets/app.js).
 * It trades the `#token=…` fragment for the HttpOnly cookie once (`POST /auth/cookie`; the fragment
 * never reaches the server in a request line or a Referer), then follows everything over SSE with
 * EventSource, which sends the cookie: the global stream (`/events/stream`) keeps the session list
 * live, the selected session's stream (`/sessions/:id/events/stream`) feeds its timeline and
 * triggers refreshes of its state (`/sessions/:id/state`), coalesced to one per
 * INSPECTOR_REFRESH_INTERVAL_MS. Every value from the server reaches the DOM as text; the only
 * markup inserted is the statechart SVG, which escapes every name it draws.
 */
import {
  INSPECTOR_EVENT_PREVIEW_CHARS_MAX,
  INSPECTOR_HISTORY_EVENTS_MAX,
  INSPECTOR_REFRESH_INTERVAL_MS,
  INSPECTOR_SYSTEM_ROWS_MAX,
  INSPECTOR_TIMELINE_ROWS_MAX,
} from '../../../core/limits.js';
import type { MachineGraph } from '../graph.js';
import { layoutStatechart, type StatechartLayout } from '../layout.js';
import { renderStatechartSvg } from '../svg.js';

// ---- types of the API's answers (the fields the page reads) ---------------------------------------

interface Envelope {
  sessionId: string | null;
  seq: number;
  gseq: number;
  type: string;
  at: string;
  data: Record<string, unknown>;
}
interface SessionSummary {
  sessionId: string;
  location: string;
  model: string;
  title: string | null;
  status: string;
  lastSeq: number;
  lastActivityStatus: string | null;
  updatedAt: string;
}
interface Ask {
  requestId: string;
  callId: string;
  tool: string;
  pattern: string | null;
  summary: string | null;
}
interface SessionStateView {
  sessionId: string;
  model: string;
  location: string;
  state: string;
  status: string;
  lastSeq: number;
  owner: { ownerId: string | null; epoch: number; live: boolean } | null;
  activity: {
    activityId: string;
    status: string;
    turn: number;
    turnLimit: number;
    turns: number;
    restarts: number;
    usage?: UsageView;
    budget?: BudgetView | null;
  } | null;
  children: { id: string; kind: string; tool: string; state: string }[];
  inbox: { inputId: string; mode: string; status: string; text: string }[];
  permissions: { pending: Ask[]; grants: { tool: string; pattern: string | null }[] };
  jobs: { jobId: string; kind: string; status: string; summary: string; cancelRequested: boolean }[];
  parked: boolean;
  lastActivityStatus: string | null;
  usage: UsageView & { activities: number; turns: number; budget?: BudgetView | null };
}
interface UsageView {
  inputTokens: number;
  outputTokens: number;
  /** null: no turn was priced (the model catalog has no price for the model). */
  costUsd?: number | null;
}
interface BudgetView {
  tokens?: number;
  costUsd?: number;
}

class ApiCallError extends Error {
  override name = 'ApiCallError';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

// ---- small helpers --------------------------------------------------------------------------------

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

type Child = Node | string | number | null | undefined | false;
/** Creates an element; attributes are set as attributes (`on*` functions as listeners), children as text or nodes. */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | number | boolean | undefined | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    const err = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new ApiCallError(res.status, err?.error?.message ?? `${res.status} ${res.statusText}`);
  }
  return (res.status === 204 ? undefined : await res.json()) as T;
}

function notify(message: string, kind: 'info' | 'error' = 'info'): void {
  const el = $('notice');
  el.textContent = message;
  el.dataset.kind = kind;
}

/** Runs `fn` at most once per interval however often it is asked for; a call asked for while one runs runs after it. */
function coalesce(fn: () => Promise<void>, intervalMs: number): () => void {
  let scheduled = false;
  let running: Promise<void> = Promise.resolve();
  return () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      running = running.then(async () => {
        scheduled = false;
        try {
          await fn();
        } catch (error) {
          notify((error as Error).message, 'error');
        }
      });
    }, intervalMs);
  };
}

const shortId = (id: string) => (id.length > 16 ? `${id.slice(0, 12)}…` : id);
const timeOf = (at: string) => {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? at : d.toLocaleTimeString(undefined, { hour12: false }) + `.${String(d.getMilliseconds()).padStart(3, '0')}`;
};
const preview = (data: unknown) => {
  const text = JSON.stringify(data) ?? '';
  return text.length > INSPECTOR_EVENT_PREVIEW_CHARS_MAX ? `${text.slice(0, INSPECTOR_EVENT_PREVIEW_CHARS_MAX)}…` : text;
};

// ---- page state -----------------------------------------------------------------------------------

interface Chart {
  graph: MachineGraph;
  layout: StatechartLayout;
}

const page = {
  charts: {} as Record<'session' | 'toolCall' | 'job', Chart>,
  eventTypes: [] as string[],
  sessions: [] as SessionSummary[],
  /** The newest event type seen per session on the global stream (shown in the list). */
  lastEvent: new Map<string, string>(),
  selected: null as string | null,
  state: null as SessionStateView | null,
  /** The selected session's newest seq in the timeline (the SSE stream resumes after it). */
  seq: 0,
  stream: null as EventSource | null,
  recovery: [] as Envelope[],
  filter: [] as string[],
  /** gseqs of the rows in the System panel (history and live stream overlap; each shows once). */
  system: new Set<number>(),
};

// ---- boot -----------------------------------------------------------------------------------------

async function boot(): Promise<void> {
  const token = /(?:^#|&)token=([^&]+)/.exec(location.hash)?.[1];
  if (token !== undefined) {
    history.replaceState(null, '', location.pathname + location.search); // the token leaves the address bar
    try {
      await api('POST', '/auth/cookie', { token: decodeURIComponent(token) });
    } catch (error) {
      notify(`the token in the URL was refused: ${(error as Error).message}`, 'error');
    }
  }
  try {
    await start();
  } catch (error) {
    if (error instanceof ApiCallError && error.status === 401) return showSignin();
    notify((error as Error).message, 'error');
  }
}

function showSignin(): void {
  $('signin').hidden = false;
  $('main').hidden = true;
  setConnection('signed-out', 'not signed in');
  $('signin-form').onsubmit = async (e) => {
    e.preventDefault();
    const input = $<HTMLInputElement>('signin-token');
    try {
      await api('POST', '/auth/cookie', { token: input.value.trim() });
      input.value = '';
      $('signin').hidden = true;
      await start();
    } catch (error) {
      notify((error as Error).message, 'error');
    }
  };
}

async function start(): Promise<void> {
  // The cursor first: an event committed while the list loads is then on the stream, never missed.
  const info = await api<{ gseq: number; types: string[] }>('GET', '/events/info');
  const [list, session, toolCall, job, system] = await Promise.all([
    api<{ sessions: SessionSummary[] }>('GET', '/sessions'),
    api<MachineGraph>('GET', '/machines/session'),
    api<MachineGraph>('GET', '/machines/toolCall'),
    api<MachineGraph>('GET', '/machines/job'),
    api<{ events: Envelope[] }>('GET', `/events/system?last=${INSPECTOR_SYSTEM_ROWS_MAX}`),
  ]);
  page.charts = {
    session: { graph: session, layout: layoutStatechart(session) },
    toolCall: { graph: toolCall, layout: layoutStatechart(toolCall) },
    job: { graph: job, layout: layoutStatechart(job) },
  };
  page.eventTypes = info.types;
  page.sessions = list.sessions;
  $('main').hidden = false;
  renderSessions();
  for (const e of system.events) addSystemEvent(e);
  renderSystemCount();
  followAll(info.gseq);
  wireControls();
  const wanted = new URLSearchParams(location.search).get('session');
  if (wanted) await select(wanted).catch((error: Error) => notify(`session ${wanted}: ${error.message}`, 'error'));
}

/** Listens to every event type on an EventSource (SSE frames are named by their type). */
function onEvents(source: EventSource, handle: (e: Envelope) => void): void {
  const listener = (m: MessageEvent<string>) => {
    try {
      handle(JSON.parse(m.data) as Envelope);
    } catch (error) {
      notify(`bad event: ${(error as Error).message}`, 'error');
    }
  };
  for (const type of page.eventTypes) source.addEventListener(type, listener as EventListener);
  source.addEventListener('message', listener as EventListener);
}

function setConnection(status: string, text: string): void {
  const el = $('connection');
  el.dataset.status = status;
  el.textContent = text;
}

const refreshSessions = coalesce(async () => {
  page.sessions = (await api<{ sessions: SessionSummary[] }>('GET', '/sessions')).sessions;
  renderSessions();
}, INSPECTOR_REFRESH_INTERVAL_MS);

/** The global stream: which sessions changed (their list entries refresh), from now on. */
function followAll(after: number): void {
  const source = new EventSource(`/events/stream?after=${after}`);
  source.onopen = () => setConnection('live', 'live');
  source.onerror = () => setConnection('reconnecting', 'reconnecting…');
  onEvents(source, (e) => {
    if (e.sessionId === null) {
      addSystemEvent(e);
      renderSystemCount();
      return;
    }
    page.lastEvent.set(e.sessionId, e.type);
    refreshSessions();
  });
}

// ---- session list ---------------------------------------------------------------------------------

function renderSessions(): void {
  const list = $('sessions');
  list.replaceChildren(
    ...page.sessions.map((s) => {
      const name = s.title ?? s.location.split('/').filter(Boolean).pop() ?? s.location;
      const last = page.lastEvent.get(s.sessionId);
      return h(
        'li',
        { 'data-session': s.sessionId, 'data-status': s.status, class: s.sessionId === page.selected ? 'selected' : undefined },
        h(
          'button',
          { type: 'button', onclick: () => void select(s.sessionId).catch((error: Error) => notify(error.message, 'error')) },
          h('span', { class: 'name' }, name),
          h('span', { class: `chip status-${s.status}` }, s.status),
          h('span', { class: 'sub' }, shortId(s.sessionId), ' · ', s.model, s.lastActivityStatus ? ` · last ${s.lastActivityStatus}` : '', last ? ` · ${last}` : ''),
        ),
      );
    }),
  );
  if (page.sessions.length === 0) list.append(h('li', { class: 'empty' }, 'No sessions yet.'));
}

// ---- system events --------------------------------------------------------------------------------

/** One line saying what a system event is about. */
function systemSummary(e: Envelope): string {
  const d = e.data;
  const str = (v: unknown) => (typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v));
  switch (e.type) {
    case 'model.added':
    case 'model.updated':
    case 'model.removed':
      return `${str(d.model)}${d.source ? ` (${str(d.source)})` : ''}`;
    case 'provider.loaded':
      return `${str(d.provider)}${d.kind ? ` [${str(d.kind)}]` : ''} ${d.ok === false ? `failed: ${str(d.error)}` : `ready, ${str(d.models ?? 0)} models`}`;
    case 'config.updated':
      return `${str(d.source)}: ${Array.isArray(d.keys) ? d.keys.join(', ') : ''}`;
    case 'registry.tool.added':
    case 'registry.tool.removed':
      return str(d.tool);
    case 'session.removed':
      return `${str(d.sessionId)} (${str(d.reason)})`;
    default:
      return preview(d);
  }
}

/** Adds a system event to the System panel (newest first, bounded), once per gseq. */
function addSystemEvent(e: Envelope): void {
  if (page.system.has(e.gseq)) return;
  page.system.add(e.gseq);
  const list = $('system');
  list.querySelector('li.empty')?.remove();
  const row = h(
    'li',
    { 'data-type': e.type, 'data-gseq': e.gseq, 'data-ok': e.type === 'provider.loaded' ? String(e.data.ok !== false) : undefined, title: JSON.stringify(e.data, null, 2) },
    h('span', { class: 'type' }, e.type),
    h('time', {}, timeOf(e.at)),
    h('span', { class: 'what' }, systemSummary(e)),
  );
  // Newest first: a row goes before the first row with a smaller gseq.
  const after = (Array.from(list.children) as HTMLElement[]).find((li) => Number(li.dataset.gseq) < e.gseq);
  list.insertBefore(row, after ?? null);
  while (list.childElementCount > INSPECTOR_SYSTEM_ROWS_MAX) {
    const last = list.lastElementChild as HTMLElement;
    page.system.delete(Number(last.dataset.gseq));
    last.remove();
  }
}

function renderSystemCount(): void {
  const list = $('system');
  if (list.childElementCount === 0) list.append(h('li', { class: 'empty' }, 'No system events yet.'));
  $('system-count').textContent = page.system.size > 0 ? `${page.system.size} recent` : '';
}

// ---- one session ----------------------------------------------------------------------------------

async function select(sessionId: string): Promise<void> {
  page.stream?.close();
  page.stream = null;
  page.selected = sessionId;
  page.state = null;
  page.recovery = [];
  const url = new URL(location.href);
  url.searchParams.set('session', sessionId);
  history.replaceState(null, '', url.pathname + url.search);
  renderSessions();
  $('timeline').replaceChildren();
  $('empty').hidden = true;
  $('detail').hidden = false;

  const state = await api<SessionStateView>('GET', `/sessions/${encodeURIComponent(sessionId)}/state`);
  if (page.selected !== sessionId) return;
  page.state = state;
  const after = Math.max(0, state.lastSeq - INSPECTOR_HISTORY_EVENTS_MAX);
  const loaded = await api<{ events: Envelope[] }>('GET', `/sessions/${encodeURIComponent(sessionId)}/events?after=${after}&limit=${INSPECTOR_HISTORY_EVENTS_MAX}`);
  if (page.selected !== sessionId) return;
  page.seq = after;
  for (const e of loaded.events) addEvent(e);
  renderState();

  const source = new EventSource(`/sessions/${encodeURIComponent(sessionId)}/events/stream?after=${page.seq}`);
  page.stream = source;
  onEvents(source, (e) => {
    if (page.selected !== sessionId || e.seq <= page.seq) return; // a resumed stream may repeat nothing, but be sure
    addEvent(e);
    refreshState();
  });
  // The state above was read before the history page: an event committed in between (a permission
  // ask, say) is in the timeline but not in that state, and a session then waiting sends nothing
  // more. Read the state once more now that the stream is subscribed.
  refreshState();
}

const refreshState = coalesce(async () => {
  const id = page.selected;
  if (id === null) return;
  const state = await api<SessionStateView>('GET', `/sessions/${encodeURIComponent(id)}/state`);
  if (page.selected !== id) return;
  page.state = state;
  renderState();
}, INSPECTOR_REFRESH_INTERVAL_MS);

function renderState(): void {
  const s = page.state;
  if (!s) return;
  $('session-title').textContent = s.sessionId;
  $('session-meta').replaceChildren(
    `${s.model} · ${s.location} · ${s.status}`,
    s.parked ? ' · parked (waits for an input, run or wake)' : '',
    s.owner?.live ? ` · owner ${s.owner.ownerId ?? '?'} (epoch ${s.owner.epoch})` : ' · no live owner',
  );
  $('state-name').textContent = s.state;
  $('chart').innerHTML = renderStatechartSvg(page.charts.session.graph, { state: s.state, layout: page.charts.session.layout });
  renderAsks(s);
  renderChildren(s);
  renderInbox(s);
  renderUsage(s);
  renderRecovery(s);
}

function renderAsks(s: SessionStateView): void {
  const list = $('asks');
  $('grants').textContent = s.permissions.grants.length > 0 ? `Always granted: ${s.permissions.grants.map((g) => `${g.tool} ${g.pattern ?? '(any)'}`).join(', ')}` : '';
  // Re-render only when the pending asks change: a refresh while someone types a message (or is
  // about to click) must not replace the input under them; a typed message survives a re-render.
  const key = `${s.sessionId}:${s.permissions.pending.map((a) => a.requestId).join(',')}`;
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  const typed = new Map<string, string>();
  list.querySelectorAll<HTMLElement>('li[data-ask]').forEach((li) => typed.set(li.dataset.ask ?? '', li.querySelector('input')?.value ?? ''));
  list.replaceChildren(
    ...s.permissions.pending.map((ask) => {
      const message = h('input', { type: 'text', placeholder: 'message (optional, sent with reject)', 'aria-label': 'message' });
      message.value = typed.get(ask.requestId) ?? '';
      const reply = (answer: 'once' | 'always' | 'reject') => async (e: Event) => {
        const buttons = (e.currentTarget as HTMLElement).parentElement!.querySelectorAll('button');
        buttons.forEach((b) => (b.disabled = true));
        try {
          const body: { reply: string; message?: string } = { reply: answer };
          if (message.value.trim()) body.message = message.value.trim();
          await api('POST', `/sessions/${encodeURIComponent(s.sessionId)}/permissions/${encodeURIComponent(ask.requestId)}`, body);
          notify(`answered ${ask.tool} ${ask.requestId}: ${answer}`);
        } catch (error) {
          notify((error as Error).message, 'error');
          buttons.forEach((b) => (b.disabled = false));
        }
        refreshState();
      };
      return h(
        'li',
        { 'data-ask': ask.requestId, 'data-tool': ask.tool },
        h('div', { class: 'ask-what' }, h('strong', {}, ask.tool), ' ', h('code', {}, ask.summary ?? '')),
        h('div', { class: 'meta' }, `call ${shortId(ask.callId)}`, ask.pattern ? ` · always would allow ${ask.tool} ${ask.pattern}` : ''),
        h(
          'div',
          { class: 'ask-buttons' },
          h('button', { type: 'button', 'data-reply': 'once', onclick: reply('once') }, 'Allow once'),
          h('button', { type: 'button', 'data-reply': 'always', onclick: reply('always') }, 'Always'),
          h('button', { type: 'button', 'data-reply': 'reject', class: 'danger', onclick: reply('reject') }, 'Reject'),
        ),
        message,
      );
    }),
  );
  if (s.permissions.pending.length === 0) list.append(h('li', { class: 'empty' }, 'None pending.'));
}

/** A child's state as a state of its machine ('cancelling' jobs are stopping). */
const childMachineState = (kind: string, state: string) => (kind === 'job' && state === 'cancelling' ? 'stopping' : state);

function renderChildren(s: SessionStateView): void {
  $('children').replaceChildren(
    ...s.children.map((c) => {
      const chart = c.kind === 'job' ? page.charts.job : page.charts.toolCall;
      const svg = h('div', { class: 'mini-chart' });
      svg.innerHTML = renderStatechartSvg(chart.graph, { state: childMachineState(c.kind, c.state), layout: chart.layout });
      return h(
        'li',
        { 'data-child': c.id, 'data-kind': c.kind, 'data-state': c.state },
        h('div', {}, h('strong', {}, c.kind === 'job' ? `job ${c.tool}` : c.tool), ' ', h('span', { class: 'chip' }, c.state), ' ', h('code', { class: 'meta' }, shortId(c.id))),
        svg,
      );
    }),
  );
  if (s.children.length === 0) $('children').append(h('li', { class: 'empty' }, 'None.'));
  $('jobs').replaceChildren(
    ...s.jobs.map((j) =>
      h(
        'li',
        { 'data-job': j.jobId, 'data-status': j.status },
        h('span', { class: 'chip' }, j.status),
        ' ',
        h('strong', {}, j.kind),
        ' ',
        h('code', {}, j.summary),
        j.status === 'running' && !j.cancelRequested
          ? h('button', {
              type: 'button',
              class: 'danger small',
              onclick: () => void act(`/jobs/${encodeURIComponent(j.jobId)}/cancel`, `cancel requested for ${j.jobId}`),
            }, 'Cancel')
          : null,
      ),
    ),
  );
  if (s.jobs.length === 0) $('jobs').append(h('li', { class: 'empty' }, 'None.'));
}

function renderInbox(s: SessionStateView): void {
  $('inbox').replaceChildren(
    ...s.inbox.map((i) => h('li', { 'data-input': i.inputId }, h('span', { class: 'chip' }, `${i.mode} · ${i.status}`), ' ', i.text.length > 200 ? `${i.text.slice(0, 200)}…` : i.text)),
  );
  if (s.inbox.length === 0) $('inbox').append(h('li', { class: 'empty' }, 'Empty.'));
}

const usd = (dollars: number) => `$${dollars.toFixed(dollars < 1 ? 4 : 2)}`;
const budgetText = (b: BudgetView) => [b.tokens === undefined ? '' : `${b.tokens} tokens`, b.costUsd === undefined ? '' : usd(b.costUsd)].filter(Boolean).join(', ');
/** `used / budget` for the budget's dimensions (tokens are input + output). */
const againstBudget = (u: UsageView, b: BudgetView) =>
  [b.tokens === undefined ? '' : `${u.inputTokens + u.outputTokens} / ${b.tokens} tokens`, b.costUsd === undefined ? '' : `${usd(u.costUsd ?? 0)} / ${usd(b.costUsd)}`].filter(Boolean).join(', ');

function renderUsage(s: SessionStateView): void {
  const rows: [string, string | number][] = [
    ['input tokens', s.usage.inputTokens],
    ['output tokens', s.usage.outputTokens],
    ['cost', s.usage.costUsd === null || s.usage.costUsd === undefined ? 'unknown (no price)' : usd(s.usage.costUsd)],
    ['turns', s.usage.turns],
    ['activities', s.usage.activities],
  ];
  if (s.usage.budget) rows.push(['session budget', `${againstBudget(s.usage, s.usage.budget)} (${budgetText(s.usage.budget)})`]);
  if (s.activity) {
    rows.push(['activity', `${s.activity.status}, turn ${s.activity.turn}/${s.activity.turnLimit}${s.activity.restarts ? `, ${s.activity.restarts} restarts` : ''}`]);
    const u = s.activity.usage;
    if (u) rows.push(['activity usage', `${u.inputTokens} in / ${u.outputTokens} out${u.costUsd === null || u.costUsd === undefined ? '' : ` · ${usd(u.costUsd)}`}`]);
    if (u && s.activity.budget) rows.push(['activity budget', againstBudget(u, s.activity.budget)]);
  } else if (s.lastActivityStatus) rows.push(['last activity', s.lastActivityStatus]);
  $('usage').replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-usage': k }, v)]));
}

function renderRecovery(s: SessionStateView): void {
  $('recovery-controls').hidden = s.state !== 'recovering' && s.status !== 'recovering';
  $('recovery').replaceChildren(
    ...page.recovery.map((e) =>
      h('li', { 'data-type': e.type }, h('span', { class: 'meta' }, `#${e.seq} ${timeOf(e.at)}`), ' ', h('strong', {}, e.type), ' ', preview(e.data)),
    ),
  );
  if (page.recovery.length === 0) $('recovery').append(h('li', { class: 'empty' }, 'No recovery so far.'));
}

// ---- timeline -------------------------------------------------------------------------------------

function addEvent(e: Envelope): void {
  page.seq = Math.max(page.seq, e.seq);
  if (e.type.startsWith('recovery.')) page.recovery.push(e);
  const detail = h('pre', { class: 'event-json', hidden: true }, JSON.stringify(e, null, 2));
  const row = h(
    'li',
    { 'data-type': e.type, 'data-seq': e.seq, class: `kind-${e.type.split('.')[0]}` },
    h(
      'button',
      { type: 'button', class: 'event-line', onclick: () => (detail.hidden = !detail.hidden) },
      h('span', { class: 'seq' }, `#${e.seq}`),
      h('time', {}, timeOf(e.at)),
      h('span', { class: 'type' }, e.type),
      h('span', { class: 'preview' }, preview(e.data)),
    ),
    detail,
  );
  row.hidden = !matchesFilter(e.type);
  const list = $('timeline');
  list.append(row);
  while (list.childElementCount > INSPECTOR_TIMELINE_ROWS_MAX) list.firstElementChild!.remove();
  updateCount();
}

function matchesFilter(type: string): boolean {
  return page.filter.length === 0 || page.filter.some((p) => type.startsWith(p));
}

function applyFilter(text: string): void {
  page.filter = text.split(/[\s,]+/).map((p) => p.trim()).filter(Boolean);
  for (const row of Array.from($('timeline').children) as HTMLElement[]) row.hidden = !matchesFilter(row.dataset.type ?? '');
  updateCount();
}

function updateCount(): void {
  const rows = Array.from($('timeline').children) as HTMLElement[];
  const shown = rows.filter((r) => !r.hidden).length;
  $('timeline-count').textContent = page.filter.length > 0 ? `${shown} of ${rows.length} events` : `${rows.length} events`;
}

// ---- controls -------------------------------------------------------------------------------------

async function act(path: string, done: string, body?: unknown): Promise<void> {
  try {
    await api('POST', path, body ?? {});
    notify(done);
  } catch (error) {
    notify((error as Error).message, 'error');
  }
  refreshState();
}

function wireControls(): void {
  const sid = () => encodeURIComponent(page.selected ?? '');
  $('btn-run').onclick = () => void act(`/sessions/${sid()}/run`, 'run requested');
  $('btn-wake').onclick = () => void act(`/sessions/${sid()}/wake`, 'woken');
  $('btn-cancel').onclick = () => void act(`/sessions/${sid()}/cancel`, 'cancel requested');
  $('btn-retry').onclick = () => void act(`/sessions/${sid()}/recovery`, 'retry decided', { decision: 'retry' });
  $('btn-abandon').onclick = () => void act(`/sessions/${sid()}/recovery`, 'abandon decided', { decision: 'abandon' });

  const filter = $<HTMLInputElement>('filter');
  filter.oninput = () => applyFilter(filter.value);
  $('filter-chips').replaceChildren(
    ...['activity.', 'turn.', 'attempt.', 'tool.', 'permission.', 'input.', 'job.', 'recovery.'].map((prefix) =>
      h('button', {
        type: 'button',
        class: 'chip-button',
        'data-prefix': prefix,
        onclick: () => {
          const parts = new Set(page.filter);
          if (parts.has(prefix)) parts.delete(prefix);
          else parts.add(prefix);
          filter.value = [...parts].join(' ');
          applyFilter(filter.value);
        },
      }, prefix),
    ),
  );

  $<HTMLFormElement>('input-form').onsubmit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const text = (form.elements.namedItem('text') as HTMLTextAreaElement).value.trim();
    const mode = (form.elements.namedItem('mode') as HTMLSelectElement).value;
    if (!text || page.selected === null) return;
    await act(`/sessions/${sid()}/inputs`, 'input admitted', mode ? { text, mode } : { text });
    form.reset();
  };

  $<HTMLFormElement>('new-session').onsubmit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const field = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value.trim();
    const body: Record<string, string> = { location: field('location') };
    if (field('model')) body.model = field('model');
    if (field('text')) body.text = field('text');
    try {
      const created = await api<{ session: SessionSummary }>('POST', '/sessions', body);
      form.reset();
      refreshSessions();
      await select(created.session.sessionId).catch((error: Error) => notify(error.message, 'error'));
    } catch (error) {
      notify((error as Error).message, 'error');
    }
  };
}

void boot();
