import { describe, expect, it } from 'vitest';
import { Counter, createMetricsRecorder, Histogram, MetricsText, renderMetrics } from '../../server/metrics.js';
import { createHarness } from '../actors/harness.js';
import { tempDir } from '../helpers.js';
import { authed, startTestServer } from './harness.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every sample belongs to a family declared
 * before it with one HELP and one TYPE line; names and label names are valid; label values are
 * quoted with \\, \" and \n escapes; values are numbers (or +Inf/-Inf/NaN).
 */
function parseExposition(text: string): Map<string, Family> {
  expect(text.endsWith('\n')).toBe(true);
  const families = new Map<string, Family>();
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      expect(name, line).toMatch(NAME);
      const f = families.get(name) ?? { type: '', help: '', samples: [] };
      if (kind === 'HELP') {
        expect(f.help, `second HELP for ${name}`).toBe('');
        expect(rest.length).toBeGreaterThan(0);
        f.help = rest;
      } else {
        expect(f.type, `second TYPE for ${name}`).toBe('');
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(rest);
        f.type = rest;
      }
      families.set(name, f);
      continue;
    }
    expect(line.startsWith('#'), `unexpected comment: ${line}`).toBe(false);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `not a sample line: ${line}`).not.toBeNull();
    const [, name, labelText, valueText] = m!;
    const labels: Record<string, string> = {};
    if (labelText) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/gy;
      let consumed = 0;
      for (let l = re.exec(labelText); l; l = re.exec(labelText)) {
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        consumed = re.lastIndex;
        if (l[3] === '') break;
      }
      expect(consumed, `bad labels: ${line}`).toBe(labelText.length);
    }
    expect(valueText, line).toMatch(/^(-?\d+(\.\d+)?(e[+-]?\d+)?|\+Inf|-Inf|NaN)$/);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    const family = families.get(name!) ?? families.get(name!.replace(/_(bucket|sum|count)$/, ''));
    expect(family, `sample ${name} before its HELP/TYPE`).toBeDefined();
    expect(family!.help && family!.type, `sample ${name} without HELP and TYPE`).toBeTruthy();
    family!.samples.push({ name: name!, labels, value });
  }
  for (const [name, f] of families) {
    expect(f.help && f.type, `${name} lacks HELP or TYPE`).toBeTruthy();
    if (f.type === 'counter') expect(name).toMatch(/_total$/);
    if (f.type === 'histogram') checkHistogram(name, f);
  }
  return families;
}

/** Buckets are cumulative, end with +Inf equal to _count, per label set. */
function checkHistogram(name: string, f: Family): void {
  const sets = new Map<string, Sample[]>();
  for (const s of f.samples.filter((x) => x.name === `${name}_bucket`)) {
    const { le, ...rest } = s.labels;
    expect(le, `${name} bucket without le`).toBeDefined();
    const key = JSON.stringify(rest);
    sets.set(key, [...(sets.get(key) ?? []), s]);
  }
  for (const [key, buckets] of sets) {
    const values = buckets.map((b) => b.value);
    expect([...values].sort((a, b) => a - b), `${name}${key} buckets not cumulative`).toEqual(values);
    expect(buckets.at(-1)!.labels.le).toBe('+Inf');
    const count = f.samples.find((x) => x.name === `${name}_count` && JSON.stringify(x.labels) === key)!;
    expect(count.value).toBe(values.at(-1));
    expect(f.samples.some((x) => x.name === `${name}_sum` && JSON.stringify(x.labels) === key)).toBe(true);
  }
}

const value = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
  (families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, '')))?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe('metrics - Prometheus text format', () => {
  it('renderMetrics - a session with a tool turn: every family has HELP and TYPE, valid names and labels, and the numbers of the projections and the recorder', async () => {
    const h = await createHarness({ script: [{ toolCalls: [{ name: 'read', arguments: { path: 'missing.txt' } }] }, { text: 'no such file' }] });
    const recorder = createMetricsRecorder(h.store);
    h.admit('steer', 'read it');
    await h.run();
    const families = parseExposition(renderMetrics(h.store, recorder, { ownedSessions: 1, sseConnections: 0, version: '0.1.0' }));
    expect(value(families, 'loom_sessions', { status: 'idle' })).toBe(1);
    expect(value(families, 'loom_sessions', { status: 'active' })).toBe(0);
    expect(value(families, 'loom_turns')).toBe(2);
    expect(value(families, 'loom_cost_usd')).toBe(0); // no price known for the scripted model
    expect(value(families, 'loom_attempts', { outcome: 'finished' })).toBe(2);
    expect(families.get('loom_tool_calls')!.samples.reduce((n, s) => n + s.value, 0)).toBe(1);
    expect(value(families, 'loom_activities', { status: 'completed' })).toBe(1);
    expect(value(families, 'loom_process_events_total', { type: 'tool.called' })).toBe(1);
    expect(value(families, 'loom_activity_duration_seconds_count', { status: 'completed' })).toBe(1);
    expect(value(families, 'loom_attempt_duration_seconds_count', { outcome: 'finished' })).toBe(2);
    expect(value(families, 'loom_attempt_first_chunk_seconds_count')).toBe(2);
    expect(families.get('loom_tool_call_duration_seconds')!.samples.find((s) => s.name.endsWith('_count'))!.labels.tool).toBe('read');
    expect(value(families, 'loom_build_info', { version: '0.1.0' })).toBe(1);
    expect(families.get('loom_process_events_total')!.type).toBe('counter');
    expect(families.get('loom_activity_duration_seconds')!.type).toBe('histogram');
    recorder.stop();
  });

  it('MetricsText - escapes label values and help text so they parse back; refuses invalid names', () => {
    const c = new Counter();
    c.inc({ kind: 'a "quoted" \\ back\nslash' }, 3);
    const h = new Histogram([1, 5]);
    h.observe({ tool: 'x' }, 0.5);
    h.observe({ tool: 'x' }, 7);
    const text = new MetricsText().counter('odd_total', 'help with \\ and\nnewline', c.entries()).histogram('lat_seconds', 'latency', h).toString();
    const families = parseExposition(text);
    expect(families.get('odd_total')!.samples[0]).toEqual({ name: 'odd_total', labels: { kind: 'a "quoted" \\ back\nslash' }, value: 3 });
    expect(families.get('lat_seconds')!.samples.filter((s) => s.name === 'lat_seconds_bucket').map((s) => [s.labels.le, s.value])).toEqual([['1', 1], ['5', 1], ['+Inf', 2]]);
    expect(() => new MetricsText().gauge('bad-name', 'x', [])).toThrow(/invalid metric name/);
    expect(() => new MetricsText().gauge('ok', 'x', [{ labels: { 'bad-label': 'v' }, value: 1 }])).toThrow(/invalid label name/);
    expect(() => new MetricsText().counter('no_suffix', 'x', [])).toThrow(/_total/);
  });

  it('Counter and Histogram - label sets beyond METRICS_LABEL_SETS_MAX fold into "other" instead of growing', () => {
    const c = new Counter();
    for (let i = 0; i < 1_000; i++) c.inc({ tool: `t${i}` });
    expect(c.entries().length).toBeLessThanOrEqual(201);
    expect(c.entries().find((e) => e.labels.tool === 'other')!.value).toBe(800);
  });

  it('GET /metrics - serves the exposition with the Prometheus content type, under the token', async () => {
    const { url, client } = await startTestServer({ script: [{ text: 'hi' }] });
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const { session } = await client.createSession({ location: tempDir(), text: 'hello' });
    for (let i = 0; i < 200 && (await client.getSession(session.sessionId)).lastActivityStatus !== 'completed'; i++) await new Promise((r) => setTimeout(r, 30));
    const res = await authed(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parseExposition(await res.text());
    expect(value(families, 'loom_sessions', { status: 'idle' })).toBe(1);
    expect(value(families, 'loom_process_events_total', { type: 'activity.settled' })).toBe(1);
    expect(value(families, 'loom_activity_duration_seconds_count', { status: 'completed' })).toBe(1);
    expect(families.has('loom_sse_connections')).toBe(true);
  });
});
