import { METRICS_LABEL_SETS_MAX, METRICS_OPEN_SPANS_MAX } from '../core/limits.js';
import type { AnyEnvelope, Store } from '../store/index.js';

/**
 * Metrics in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`.
 *
 * Two sources:
 * - the projections (the whole database, whichever process wrote it): sessions by status,
 *   activities by status, turns, attempts by outcome, tool calls by status, jobs by status,
 *   permission asks, tokens, live owners. These are gauges: removing a session lowers them.
 * - this process's recorder (`createMetricsRecorder`), fed by the store's committed events: event
 *   counts by type, attempt failures by kind, and latency histograms (activity duration, provider
 *   time to first committed chunk, attempt duration, tool-call duration), measured on the
 *   monotonic clock when each event commits here. Deltas are committed in batches, so the first
 *   chunk's time is when its batch committed (at most DELTA_FLUSH_INTERVAL_MS late).
 */

type Labels = Record<string, string>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Seconds. Activities and tool calls run from milliseconds to hours; first chunks within a minute. */
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const FIRST_CHUNK_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60];

/** The label set extra sets fold into (every value `other`); it may be the one set over the bound. */
const other = (labels: Labels): Labels => Object.fromEntries(Object.keys(labels).map((k) => [k, 'other']));
const isOther = (labels: Labels) => Object.values(labels).every((v) => v === 'other');

interface HistogramSeries {
  labels: Labels;
  /** Observations at or below each bucket's bound (cumulative). */
  counts: number[];
  sum: number;
  count: number;
}

/** One histogram family: cumulative buckets, sum and count per label set (bounded: extra sets fold into `other`). */
export class Histogram {
  private readonly series = new Map<string, HistogramSeries>();
  constructor(readonly buckets: readonly number[]) {}

  observe(labels: Labels, value: number): void {
    const s = this.seriesFor(labels);
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  entries(): HistogramSeries[] {
    return [...this.series.values()];
  }

  private seriesFor(labels: Labels): HistogramSeries {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (s) return s;
    if (this.series.size >= METRICS_LABEL_SETS_MAX && !isOther(labels)) return this.seriesFor(other(labels));
    this.series.set(key, (s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    return s;
  }
}

/** A counter family (bounded label sets, like Histogram). */
export class Counter {
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  inc(labels: Labels = {}, by = 1): void {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= METRICS_LABEL_SETS_MAX && !isOther(labels)) return this.inc(other(labels), by);
      this.series.set(key, (s = { labels, value: 0 }));
    }
    s.value += by;
  }

  entries(): { labels: Labels; value: number }[] {
    return [...this.series.values()];
  }
}

/** What this process observed since it started, from the events its store committed. */
export interface MetricsRecorder {
  readonly startedAt: number;
  readonly events: Counter;
  readonly attemptFailures: Counter;
  readonly spansDropped: Counter;
  readonly activityDuration: Histogram;
  readonly firstChunk: Histogram;
  readonly attemptDuration: Histogram;
  readonly toolCallDuration: Histogram;
  /** Feeds committed envelopes (the store's `onAppended` does; tests may call it directly). */
  observe(events: readonly AnyEnvelope[], now?: number): void;
  /** Stops listening to the store. */
  stop(): void;
}

/**
 * Starts recording from `store`'s committed events (`store.onAppended`). Open spans (activities,
 * attempts, tool calls that started and have not ended) are bounded by METRICS_OPEN_SPANS_MAX; the
 * oldest is forgotten beyond it and counted in `loom_metrics_spans_dropped_total`.
 * `now` is a monotonic clock in milliseconds (performance.now by default).
 */
export function createMetricsRecorder(store?: Store, options: { now?: () => number } = {}): MetricsRecorder {
  const now = options.now ?? (() => performance.now());
  const activities = new Spans<{ at: number }>();
  const attempts = new Spans<{ at: number; chunk: boolean }>();
  const calls = new Spans<{ at: number; tool: string }>();
  const recorder: MetricsRecorder = {
    startedAt: Date.now(),
    events: new Counter(),
    attemptFailures: new Counter(),
    spansDropped: new Counter(),
    activityDuration: new Histogram(DURATION_BUCKETS),
    firstChunk: new Histogram(FIRST_CHUNK_BUCKETS),
    attemptDuration: new Histogram(DURATION_BUCKETS),
    toolCallDuration: new Histogram(DURATION_BUCKETS),
    observe(events, at = now()) {
      for (const e of events) {
        recorder.events.inc({ type: e.type });
        observeOne(e, at);
      }
    },
    stop: () => unsubscribe(),
  };
  const drop = (kind: string) => () => recorder.spansDropped.inc({ kind });
  const observeOne = (e: AnyEnvelope, at: number) => {
    const seconds = (start: number) => Math.max(0, at - start) / 1000;
    switch (e.type) {
      case 'activity.opened':
        return activities.open(e.data.activityId, { at }, drop('activity'));
      case 'activity.settled': {
        const a = activities.close(e.data.activityId);
        if (a) recorder.activityDuration.observe({ status: e.data.status }, seconds(a.at));
        return;
      }
      case 'attempt.dispatched':
        return attempts.open(e.data.attemptId, { at, chunk: false }, drop('attempt'));
      case 'text.delta':
      case 'reasoning.delta':
      case 'tool.called': {
        const a = attempts.get(e.data.attemptId);
        if (a && !a.chunk) {
          a.chunk = true;
          recorder.firstChunk.observe({}, seconds(a.at));
        }
        if (e.type === 'tool.called') calls.open(e.data.callId, { at, tool: e.data.tool }, drop('toolCall'));
        return;
      }
      case 'turn.finished': {
        const a = attempts.close(e.data.attemptId);
        if (a) recorder.attemptDuration.observe({ outcome: 'finished' }, seconds(a.at));
        return;
      }
      case 'attempt.failed': {
        recorder.attemptFailures.inc({ kind: e.data.error.kind, retryable: String(e.data.retryable) });
        const a = attempts.close(e.data.attemptId);
        if (a) recorder.attemptDuration.observe({ outcome: 'failed' }, seconds(a.at));
        return;
      }
      case 'tool.settled': {
        const c = calls.close(e.data.callId);
        if (c) recorder.toolCallDuration.observe({ tool: c.tool, status: e.data.status }, seconds(c.at));
        return;
      }
      default:
        return;
    }
  };
  const unsubscribe = store ? store.onAppended((events) => recorder.observe(events)) : () => {};
  return recorder;
}

/** Started spans by id, bounded by METRICS_OPEN_SPANS_MAX (insertion order: the oldest goes first). */
class Spans<T> {
  private readonly open_ = new Map<string, T>();
  open(id: string, value: T, onDrop: () => void): void {
    if (!this.open_.has(id) && this.open_.size >= METRICS_OPEN_SPANS_MAX) {
      this.open_.delete(this.open_.keys().next().value as string);
      onDrop();
    }
    this.open_.set(id, value);
  }
  get(id: string): T | undefined {
    return this.open_.get(id);
  }
  close(id: string): T | undefined {
    const v = this.open_.get(id);
    this.open_.delete(id);
    return v;
  }
}

/** Builds a text exposition: one HELP and one TYPE line per family, then its samples. */
export class MetricsText {
  private readonly lines: string[] = [];
  private readonly names = new Set<string>();

  gauge(name: string, help: string, samples: readonly { labels?: Labels; value: number }[]): this {
    return this.family(name, 'gauge', help, samples.map((s) => [name, s.labels ?? {}, s.value]));
  }

  counter(name: string, help: string, samples: readonly { labels?: Labels; value: number }[]): this {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    return this.family(name, 'counter', help, samples.map((s) => [name, s.labels ?? {}, s.value]));
  }

  histogram(name: string, help: string, h: Histogram): this {
    const samples: [string, Labels, number][] = [];
    for (const s of h.entries()) {
      h.buckets.forEach((le, i) => samples.push([`${name}_bucket`, { ...s.labels, le: formatNumber(le) }, s.counts[i]!]));
      samples.push([`${name}_bucket`, { ...s.labels, le: '+Inf' }, s.count]);
      samples.push([`${name}_sum`, s.labels, s.sum]);
      samples.push([`${name}_count`, s.labels, s.count]);
    }
    return this.family(name, 'histogram', help, samples);
  }

  toString(): string {
    return `${this.lines.join('\n')}\n`;
  }

  private family(name: string, type: string, help: string, samples: [string, Labels, number][]): this {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${name}`);
    if (this.names.has(name)) throw new Error(`metric ${name} written twice`);
    this.names.add(name);
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    for (const [sample, labels, value] of samples) this.lines.push(`${sample}${formatLabels(labels)} ${formatNumber(value)}`);
    return this;
  }
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  for (const [k] of entries) if (!LABEL.test(k) || k.startsWith('__')) throw new Error(`invalid label name ${k}`);
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/** Live numbers of the serving process, when there is one. */
export interface ProcessGauges {
  /** Sessions this process owns now. */
  ownedSessions?: number;
  /** Open SSE connections. */
  sseConnections?: number;
  version?: string;
}

/**
 * The whole exposition: database gauges from the projections, then this process's recorder (when
 * given) and live gauges. Reads are plain aggregate queries over the projections (no transaction is
 * held; each family is one statement).
 */
export function renderMetrics(store: Store, recorder?: MetricsRecorder, live: ProcessGauges = {}): string {
  const db = store.db;
  const grouped = (sql: string, label: string) =>
    (db.prepare(sql).all() as { k: string | null; n: number }[]).map((r) => ({ labels: { [label]: r.k ?? 'none' }, value: r.n }));
  const one = (sql: string, ...args: unknown[]) => (db.prepare(sql).get(...args) as { n: number | null }).n ?? 0;
  const text = new MetricsText()
    .gauge('loom_sessions', 'Sessions in the database by status (idle, active: an activity is open, recovering).', withZeroes(grouped('SELECT status AS k, count(*) AS n FROM sessions GROUP BY status', 'status'), 'status', ['idle', 'active', 'recovering']))
    .gauge('loom_session_owners_live', 'Sessions held by a live owner (a process running them now).', [{ value: one('SELECT count(*) AS n FROM session_owner WHERE owner_id IS NOT NULL AND expires_at > ?', store.clock.now()) }])
    .gauge('loom_activities', 'Activities in the database by status (open, recovering, or how they settled).', grouped('SELECT status AS k, count(*) AS n FROM activities GROUP BY status', 'status'))
    .gauge('loom_turns', 'Provider turns recorded, over all sessions in the database.', [{ value: one('SELECT sum(turns) AS n FROM sessions') }])
    .gauge('loom_attempts', 'Provider attempts dispatched, by outcome: finished, discarded (failed or cancelled), open (no outcome yet).', withZeroes(
      grouped(`SELECT CASE WHEN discarded = 1 THEN 'discarded' WHEN finished = 1 THEN 'finished' ELSE 'open' END AS k, count(*) AS n FROM messages WHERE role = 'assistant' GROUP BY k`, 'outcome'),
      'outcome',
      ['finished', 'discarded', 'open'],
    ))
    .gauge('loom_activity_failures', 'Activities that settled failed.', [{ value: one(`SELECT count(*) AS n FROM activities WHERE status = 'failed'`) }])
    .gauge('loom_tool_calls', 'Tool calls by status (ok, error, denied, interrupted; "none" while unsettled).', grouped('SELECT status AS k, count(*) AS n FROM tool_calls GROUP BY status', 'status'))
    .gauge('loom_jobs', 'Background jobs by status.', grouped('SELECT status AS k, count(*) AS n FROM jobs GROUP BY status', 'status'))
    .gauge('loom_permission_requests', 'Permission asks by status (pending, once, always, reject, closed).', grouped('SELECT status AS k, count(*) AS n FROM permission_requests GROUP BY status', 'status'))
    .gauge('loom_inputs', 'Inbox inputs by status.', grouped('SELECT status AS k, count(*) AS n FROM session_input GROUP BY status', 'status'))
    .gauge('loom_tokens', 'Tokens reported by providers, over all sessions.', [
      { labels: { direction: 'input' }, value: one('SELECT sum(input_tokens) AS n FROM sessions') },
      { labels: { direction: 'output' }, value: one('SELECT sum(output_tokens) AS n FROM sessions') },
    ])
    .gauge('loom_cost_usd', 'US dollars of priced provider turns (model catalog prices), over all sessions; turns of unpriced models add nothing.', [
      { value: one('SELECT sum(cost_usd) AS n FROM sessions') },
    ])
    .gauge('loom_events_stored', 'Events in the log (session and system events).', [{ value: one('SELECT count(*) AS n FROM events') }]);
  if (recorder) {
    text
      .counter('loom_process_events_total', 'Events this process committed, by type.', recorder.events.entries())
      .counter('loom_process_attempt_failures_total', 'Provider attempts this process saw fail, by error kind and whether retryable.', recorder.attemptFailures.entries())
      .counter('loom_metrics_spans_dropped_total', 'Started spans forgotten over METRICS_OPEN_SPANS_MAX (their durations were not observed).', recorder.spansDropped.entries())
      .histogram('loom_activity_duration_seconds', 'Time from activity.opened to activity.settled, by how it settled.', recorder.activityDuration)
      .histogram('loom_attempt_first_chunk_seconds', 'Time from attempt.dispatched to its first committed chunk (text, reasoning or tool call).', recorder.firstChunk)
      .histogram('loom_attempt_duration_seconds', 'Time from attempt.dispatched to turn.finished or attempt.failed.', recorder.attemptDuration)
      .histogram('loom_tool_call_duration_seconds', 'Time from tool.called to tool.settled (including waiting for permission), by tool and status.', recorder.toolCallDuration)
      .gauge('loom_process_start_time_seconds', 'Start time of this process since the Unix epoch, in seconds.', [{ value: Math.floor(recorder.startedAt / 1000) }]);
  }
  if (live.ownedSessions !== undefined) text.gauge('loom_process_owned_sessions', 'Sessions this process owns now.', [{ value: live.ownedSessions }]);
  if (live.sseConnections !== undefined) text.gauge('loom_sse_connections', 'Open SSE connections.', [{ value: live.sseConnections }]);
  if (live.version !== undefined) text.gauge('loom_build_info', 'The Loom version serving (always 1).', [{ labels: { version: live.version }, value: 1 }]);
  return text.toString();
}

/** Every expected label value appears, 0 when absent, so dashboards see a series from the start. */
function withZeroes(samples: { labels: Labels; value: number }[], label: string, values: readonly string[]): { labels: Labels; value: number }[] {
  const out = [...samples];
  for (const v of values) if (!out.some((s) => s.labels[label] === v)) out.push({ labels: { [label]: v }, value: 0 });
  return out;
}
