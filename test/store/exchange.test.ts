import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportSession, importSession, InvalidImportError, type AnyEnvelope, type MessageView, type Store } from '../../store/index.js';
import { createHarness } from '../actors/harness.js';
import { tempDir, tempStore } from '../helpers.js';

function eventsOf(store: Store, sessionId: string): AnyEnvelope[] {
  store.flushDeltas();
  const out: AnyEnvelope[] = [];
  for (let page = store.read(sessionId); page.length > 0; page = store.read(sessionId, { after: page.at(-1)!.seq })) out.push(...page);
  return out;
}

/** The conversation without ids. */
function plain(conversation: MessageView[]) {
  return conversation.map((m) => ({
    role: m.role,
    text: m.text,
    parts: m.parts.map((p) => ({ kind: p.kind, text: p.text })),
    toolCalls: m.toolCalls.map((c) => ({ tool: c.tool, input: c.input, status: c.status, output: c.output })),
  }));
}

async function exportToFile(store: Store, sessionId: string): Promise<string> {
  const file = join(tempDir(), 'export.ndjson');
  const out = createWriteStream(file);
  await exportSession(store, sessionId, out);
  out.end();
  await once(out, 'close');
  return file;
}

/** A finished session with a tool turn: read a file, then answer. */
async function finishedSession() {
  const h = await createHarness({ script: [{ toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, { text: 'You need milk.' }] });
  writeFileSync(join(h.location, 'notes.md'), 'milk\n');
  h.admit('steer', 'what do my notes say?');
  await h.run();
  return h;
}

const counts = (store: Store) => ({
  events: (store.db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n,
  sessions: (store.db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n,
  owners: (store.db.prepare('SELECT count(*) AS n FROM session_owner').get() as { n: number }).n,
});

describe('session export and import', () => {
  it('export - writes every event of the session as one JSON envelope per line, in seq order', async () => {
    const h = await finishedSession();
    const file = await exportToFile(h.store, h.sessionId);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as AnyEnvelope);
    expect(lines).toEqual(eventsOf(h.store, h.sessionId));
    expect(lines.map((e) => e.seq)).toEqual(lines.map((_, i) => i + 1));
    expect(Object.keys(lines[0]!).sort()).toEqual(['at', 'data', 'gseq', 'seq', 'sessionId', 'type', 'version']);
  });

  it('import - replays the export into a new session of another database with the same conversation and fresh ids', async () => {
    const h = await finishedSession();
    const file = await exportToFile(h.store, h.sessionId);
    const other = tempStore();
    const result = importSession(other, file);
    expect(result).toMatchObject({ sourceId: h.sessionId, abandonedActivityId: null, location: h.location });
    expect(result.sessionId).not.toBe(h.sessionId);
    const source = eventsOf(h.store, h.sessionId);
    const copy = eventsOf(other, result.sessionId);
    expect(result.imported).toBe(source.length);
    expect(copy.map((e) => e.type)).toEqual(source.map((e) => e.type));
    expect(plain(other.queries.conversation(result.sessionId))).toEqual(plain(h.store.queries.conversation(h.sessionId)));
    const row = other.queries.session(result.sessionId)!;
    expect(row).toMatchObject({ status: 'idle', lastActivityStatus: 'completed', title: `import of ${h.sessionId}`, turns: 2 });
    // Ids the projections key globally are fresh, so importing into the source's own database works too (twice).
    const activityIds = new Set(source.filter((e) => e.type === 'activity.opened').map((e) => (e.data as { activityId: string }).activityId));
    expect(copy.filter((e) => e.type === 'activity.opened').some((e) => activityIds.has((e.data as { activityId: string }).activityId))).toBe(false);
    const again = importSession(h.store, file);
    const twice = importSession(h.store, file);
    expect(plain(h.store.queries.conversation(twice.sessionId))).toEqual(plain(h.store.queries.conversation(again.sessionId)));
    // The import's lease was released: nobody owns the new session.
    expect(other.owners.get(result.sessionId, Date.now())!.live).toBe(false);
  });

  it('import - an export that ends inside an activity is closed like a fork: calls interrupted, inputs released, activity abandoned', async () => {
    const h = await finishedSession();
    const file = await exportToFile(h.store, h.sessionId);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    // Cut right after the first tool.called: the call is unsettled and the activity open.
    const cut = lines.findIndex((l) => JSON.parse(l).type === 'tool.called') + 1;
    const partial = join(tempDir(), 'partial.ndjson');
    writeFileSync(partial, `${lines.slice(0, cut).join('\n')}\n`);
    const other = tempStore();
    const result = importSession(other, partial, { location: tempDir() });
    expect(result.abandonedActivityId).not.toBeNull();
    const copy = eventsOf(other, result.sessionId);
    // The stream had not finished: the attempt in flight fails too (its parts are never sent back).
    expect(copy.slice(cut).map((e) => e.type)).toEqual(['tool.settled', 'attempt.failed', 'activity.settled']);
    expect(copy.at(-1)!.data).toMatchObject({ status: 'abandoned', reason: `imported from ${h.sessionId}: the export ended inside this activity` });
    expect(copy.at(-2)!.data).toMatchObject({ error: { kind: 'imported' }, retryable: false });
    expect(copy.at(-3)!.data).toMatchObject({ status: 'interrupted' });
    expect(other.queries.session(result.sessionId)).toMatchObject({ status: 'idle', lastActivityStatus: 'abandoned' });
  });

  const badCases: { name: string; edit: (lines: string[]) => string[]; line: number; message: RegExp }[] = [
    { name: 'a line that is not JSON', edit: (l) => [l[0]!, l[1]!, '{not json', ...l.slice(2)], line: 3, message: /:3: not JSON/ },
    { name: 'a missing event (seq gap)', edit: (l) => [l[0]!, l[1]!, ...l.slice(3)], line: 3, message: /:3: seq 4 follows seq 2: events are missing/ },
    {
      name: 'data its schema refuses',
      edit: (l) => l.map((x, i) => (i === 3 ? JSON.stringify({ ...JSON.parse(x), data: { ...JSON.parse(x).data, activityId: 42 } }) : x)),
      line: 4,
      message: /:4: \S+: invalid \S+ event: field "activityId"/,
    },
    { name: 'an unknown event type', edit: (l) => l.map((x, i) => (i === 2 ? JSON.stringify({ ...JSON.parse(x), type: 'made.up' }) : x)), line: 3, message: /:3: unknown event type "made.up"/ },
    { name: 'an unknown version', edit: (l) => l.map((x, i) => (i === 2 ? JSON.stringify({ ...JSON.parse(x), version: 99 }) : x)), line: 3, message: /:3: unknown version 99/ },
    { name: 'a system event', edit: (l) => l.map((x, i) => (i === 1 ? JSON.stringify({ ...JSON.parse(x), sessionId: null }) : x)), line: 2, message: /:2: .* is a system event/ },
    { name: "another session's event", edit: (l) => l.map((x, i) => (i === 4 ? JSON.stringify({ ...JSON.parse(x), sessionId: 'ses_other' }) : x)), line: 5, message: /:5: sessionId ses_other differs/ },
    { name: 'a first line that is not session.created', edit: (l) => l.slice(1), line: 1, message: /:1: the first event must be session.created/ },
    {
      name: 'a transition the projections refuse (an input consumed twice)',
      edit: (l) => {
        const i = l.findIndex((x) => JSON.parse(x).type === 'input.consumed');
        const dup = l.slice(0, i + 1);
        return [...dup, JSON.stringify({ ...JSON.parse(l[i]!), seq: i + 2 }), ...l.slice(i + 1).map((x) => JSON.stringify({ ...JSON.parse(x), seq: JSON.parse(x).seq + 1 }))];
      },
      line: -1,
      message: /input\.consumed: .*input/,
    },
    { name: 'a line that is not an envelope', edit: (l) => [l[0]!, '[1,2,3]', ...l.slice(1)], line: 2, message: /:2: not an event envelope/ },
  ];

  for (const c of badCases) {
    it(`import - refuses ${c.name}, naming the line, and stores nothing`, async () => {
      const h = await finishedSession();
      const file = await exportToFile(h.store, h.sessionId);
      const bad = join(tempDir(), 'bad.ndjson');
      writeFileSync(bad, `${c.edit(readFileSync(file, 'utf8').trimEnd().split('\n')).join('\n')}\n`);
      const other = tempStore();
      const before = counts(other);
      let error: unknown;
      try {
        importSession(other, bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidImportError);
      expect((error as Error).message).toMatch(c.message);
      expect((error as Error).message).toMatch(/nothing was imported$/);
      if (c.line > 0) expect((error as InvalidImportError).line).toBe(c.line);
      expect(counts(other)).toEqual(before);
    });
  }

  it('import - refuses an empty file and a missing file with a clear error', () => {
    const store = tempStore();
    const empty = join(tempDir(), 'empty.ndjson');
    writeFileSync(empty, '\n\n');
    expect(() => importSession(store, empty)).toThrow(/holds no events; nothing was imported/);
    expect(() => importSession(store, join(tempDir(), 'missing.ndjson'))).toThrow(/cannot be opened \(ENOENT\)/);
    expect(counts(store)).toMatchObject({ events: 0, sessions: 0 });
  });
});
