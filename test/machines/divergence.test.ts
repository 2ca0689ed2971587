import { readdirSync, readFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HistoryDivergenceError, replayHistory } from '../../machines/replay.js';
import type { SessionInput } from '../../machines/session.machine.js';
import { PROJECTION_TABLES, type AnyEnvelope } from '../../store/index.js';
import { tempStore } from '../helpers.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'histories');
const read = (file: string) =>
  readFileSync(join(DIR, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AnyEnvelope);
const inputFor = (name: string): SessionInput => {
  const expected = JSON.parse(readFileSync(join(DIR, `${name}.expected.json`), 'utf8'));
  return { idempotentTools: ['read'], ...expected.input, sessionId: read(`${name}.jsonl`)[0]!.sessionId! };
};
const goldens = readdirSync(DIR).filter((f) => f.endsWith('.jsonl') && !f.includes('.altered.')).map((f) => f.replace('.jsonl', ''));

/** Loads a recorded log into a fresh store as-is and builds its projections from it. */
function project(events: AnyEnvelope[]) {
  const store = tempStore();
  const insert = store.db.prepare('INSERT INTO events (gseq, session_id, seq, type, version, at, data) VALUES (?, ?, ?, ?, ?, ?, ?)');
  store.db.transaction(() => {
    for (const e of events) insert.run(e.gseq, e.sessionId, e.seq, e.type, e.version, e.at, JSON.stringify(e.data));
  })();
  store.rebuildProjections();
  return store;
}

describe('golden histories - decisions and projections', () => {
  it.each(goldens)('replay - %s: every decided event in the log is the decision the machine makes', (name) => {
    expect(() => replayHistory(read(`${name}.jsonl`), inputFor(name))).not.toThrow();
  });

  it.each(goldens)('projections - %s: rebuilt from the log, they reproduce the recorded settlements and turns', (name) => {
    const events = read(`${name}.jsonl`);
    const expected = JSON.parse(readFileSync(join(DIR, `${name}.expected.json`), 'utf8'));
    const store = project(events);
    const sid = events[0]!.sessionId!;
    const activities = store.queries.activities(sid);
    expect(activities.map((a) => a.status)).toEqual(expected.settlements);
    expect(store.queries.session(sid)!.turns).toBe(events.filter((e) => e.type === 'turn.finished').length);
    // the projections are a pure function of the log: rebuilding again changes nothing
    const first = store.queries.dumpProjections(PROJECTION_TABLES);
    store.rebuildProjections();
    expect(store.queries.dumpProjections(PROJECTION_TABLES)).toEqual(first);
  });

  it('replay - an altered history (a turn.finished removed) fails with a divergence naming the seq', () => {
    const altered = read('tool-turn.altered.jsonl');
    let error: unknown;
    try {
      replayHistory(altered, inputFor('tool-turn'));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HistoryDivergenceError);
    expect((error as HistoryDivergenceError).message).toMatch(/^history diverged at seq \d+: /);
    expect((error as HistoryDivergenceError).seq).toBeGreaterThan(1);
  });

  it('replay - an altered history (a duplicated settlement) fails naming the duplicate\'s seq', () => {
    const altered = read('simple-text.altered.jsonl');
    const dup = altered.filter((e) => e.type === 'activity.settled').at(-1)!;
    expect(() => replayHistory(altered, inputFor('simple-text'))).toThrow(new RegExp(`^history diverged at seq ${dup.seq}: the log has activity.settled`));
  });

  it('replay - a log that ends before a decision is recorded is accepted only as incomplete', () => {
    const events = read('simple-text.jsonl');
    const cut = events.slice(0, events.findIndex((e) => e.type === 'activity.settled'));
    expect(() => replayHistory(cut, inputFor('simple-text'))).toThrow(/never records activity.settled/);
    expect(() => replayHistory(cut, inputFor('simple-text'), { complete: false })).not.toThrow();
  });
});
void copyFileSync;
