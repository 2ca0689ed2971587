import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMPACTION_RESTARTS_MAX } from '../../core/limits.js';
import { Store, type AnyEnvelope } from '../../store/index.js';
import { replayHistory } from '../../machines/replay.js';
import { forkSession } from '../../store/fork.js';
import { SESSION_MACHINE_VERSION, type SessionContext, type SessionInput } from '../../machines/session.machine.js';
import { isSummaryRequest, respondWithSummaries } from '../fixtures/scripted-routes.js';
import type { RecordedRequest, ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup } from '../helpers.js';
import { createHarness } from './harness.js';

type Message = { role: string; content: string | null; tool_calls?: unknown[] };
const messagesOf = (r: RecordedRequest) => (r.body as { messages: Message[] }).messages;
const textOf = (r: RecordedRequest) => JSON.stringify(messagesOf(r));
const userContents = (r: RecordedRequest) => messagesOf(r).filter((m) => m.role === 'user').map((m) => m.content);
const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];
const mainRequests = (requests: RecordedRequest[]) => requests.filter((r) => !isSummaryRequest(r.body));
const summaryRequests = (requests: RecordedRequest[]) => requests.filter((r) => isSummaryRequest(r.body));

const readNotes = (promptTokens: number): ScriptedTurn => ({
  toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }],
  usage: { prompt_tokens: promptTokens, completion_tokens: 50 },
});
const overflow: ScriptedTurn = {
  status: 400,
  errorBody: JSON.stringify({
    error: { message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' },
  }),
};
/** The machine input the live session ran with (its context holds it), to replay its log through the pure machine. */
function inputOf(c: SessionContext): SessionInput {
  const { sessionId, turnLimit, toolCallsPerTurn, toolConcurrency, attemptRetriesMax, attemptBackoffMs, attemptBackoffMaxMs, attemptRetryAfterMaxMs, toolTimeoutsMs, toolTimeoutDefaultMs, idempotentTools, compactionSettings } = c;
  return { sessionId, turnLimit, toolCallsPerTurn, toolConcurrency, attemptRetriesMax, attemptBackoffMs, attemptBackoffMaxMs, attemptRetryAfterMaxMs, toolTimeoutsMs, toolTimeoutDefaultMs, idempotentTools, compactionSettings };
}

/** Replays the log through the pure machine: every compaction and turn it recorded is one the machine decides there, and it ends in the same state. */
function expectReplays(h: Awaited<ReturnType<typeof createHarness>>): void {
  const live = h.coordinator.get(h.sessionId)!.snapshot();
  const replayed = replayHistory(h.events(), inputOf(live.context));
  expect(replayed.value).toEqual(live.value);
  expect(replayed.context.compaction).toEqual(live.context.compaction);
}

/** A 10 000-token window compacting at half of it, keeping the last turn verbatim. */
const smallWindow = { compaction: { fallbackWindowTokens: 10_000, threshold: 0.5, keepRecentTurns: 1 } };

describe('compaction - automatic, when the next request nears the window', () => {
  it('a long scripted conversation compacts at the safe boundary and continues: later requests carry the summary and the kept turn, not the old messages; a second compaction summarises the first summary too', async () => {
    const h = await createHarness({
      respond: respondWithSummaries(
        [readNotes(1_000), readNotes(2_500), readNotes(5_000), readNotes(3_000), readNotes(5_200), { text: 'all done' }],
        [{ text: 'SUMMARY-1: the notes were read three times' }, { text: 'SUMMARY-2: read five times in all' }],
      ),
      config: smallWindow,
    });
    writeFileSync(join(h.location, 'notes.md'), 'remember the milk\n');
    h.admit('steer', 'go read the notes, repeatedly');
    await h.run();

    const events = h.events();
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    const started = of(events, 'compaction.started');
    const finished = of(events, 'compaction.finished');
    expect(started.map((e) => e.data.reason)).toEqual(['auto', 'auto']);
    expect(started[0]!.data.activityId).toBe(of(events, 'activity.opened')[0]!.data.activityId);
    expect(started[0]!.data.estimatedTokens).toBeGreaterThanOrEqual(5_000);
    expect(started[0]!.data.windowTokens).toBe(10_000);
    expect(finished.map((e) => e.data.keptTurns)).toEqual([1, 1]);
    // Compaction happens between turns: after the third turn's tool result, before the fourth turn starts.
    const seqOf = (e: AnyEnvelope) => e.seq;
    const turns = of(events, 'turn.started').map(seqOf);
    expect(seqOf(started[0]!)).toBeGreaterThan(of(events, 'tool.settled').map(seqOf)[2]!);
    expect(seqOf(finished[0]!)).toBeLessThan(turns[3]!);

    const main = mainRequests(h.server.requests);
    expect(main).toHaveLength(6);
    // Turn 4: the summary stands for the user's prompt and turns 1-2; turn 3 (the kept one) is verbatim.
    const fourth = messagesOf(main[3]!);
    expect(fourth.map((m) => m.role)).toEqual(['user', 'assistant', 'tool']);
    expect(fourth[0]!.content).toContain('SUMMARY-1: the notes were read three times');
    expect(textOf(main[3]!)).not.toContain('go read the notes, repeatedly');
    // Turn 6: only the second summary (which covers the first) and the last turn.
    expect(textOf(main[5]!)).toContain('SUMMARY-2');
    expect(textOf(main[5]!)).not.toContain('SUMMARY-1');

    const [first, second] = summaryRequests(h.server.requests);
    expect((first!.body as { tools?: unknown[] }).tools ?? []).toEqual([]);
    expect(textOf(first!)).toContain('go read the notes, repeatedly');
    expect(textOf(first!)).toContain('remember the milk');
    expect(textOf(second!)).toContain('<previous-summary>\\nSUMMARY-1');
    // The projection still holds every message: compaction changes what is sent, not what is stored.
    expect(h.store.queries.conversation(h.sessionId).filter((m) => m.role === 'assistant')).toHaveLength(6);
    expectReplays(h);
  });

  it('below the threshold nothing is compacted, and `compaction.auto: false` never compacts on its own', async () => {
    const h = await createHarness({
      respond: respondWithSummaries([readNotes(1_000), readNotes(2_000), readNotes(9_000), { text: 'done' }], []),
      config: { compaction: { ...smallWindow.compaction, auto: false } },
    });
    writeFileSync(join(h.location, 'notes.md'), 'x\n');
    h.admit('steer', 'go');
    await h.run();
    expect(of(h.events(), 'compaction.started')).toHaveLength(0);
    expect(summaryRequests(h.server.requests)).toHaveLength(0);
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('the window comes from the model catalog when it knows the model (the fallback only for unknown models)', async () => {
    const h = await createHarness({
      respond: respondWithSummaries([readNotes(1_000), readNotes(2_000), readNotes(3_000), { text: 'done' }], [{ text: 'SUMMARY' }]),
      config: { compaction: { fallbackWindowTokens: 1_000_000, threshold: 0.5, keepRecentTurns: 1 } },
      modelInfo: (ref) =>
        ref === 'openai/test'
          ? { id: ref, provider: 'openai', capabilities: { toolCalling: true, reasoning: false }, limits: { context: 6_000 }, source: 'config' }
          : undefined,
    });
    writeFileSync(join(h.location, 'notes.md'), 'x\n');
    h.admit('steer', 'go');
    await h.run();
    const started = of(h.events(), 'compaction.started');
    expect(started).toHaveLength(1);
    expect(started[0]!.data.windowTokens).toBe(6_000);
    expect(of(h.events(), 'activity.opened')[0]!.data.contextWindow).toBe(6_000);
  });
});

describe('compaction - requested (loom compact)', () => {
  it('a compaction.requested recorded by another process is served by the live owner while idle: later requests send the summary and the recent turns', async () => {
    const h = await createHarness({
      respond: respondWithSummaries([{ text: 'answer one' }, { text: 'answer two' }, { text: 'answer three' }], [{ text: 'SUMMARY: one and two' }]),
      config: { compaction: { keepRecentTurns: 1 } },
    });
    h.admit('queue', 'question one');
    h.admit('queue', 'question two');
    await h.run();
    // Another process: its own connection to the same file.
    const other = Store.open(h.store.db.name);
    onCleanup(() => other.close());
    other.append({ sessionId: h.sessionId, type: 'compaction.requested', data: { reason: 'loom compact' } });
    const done = await h.waitFor((e) => e.type === 'compaction.finished' || e.type === 'compaction.failed');
    expect(done.type).toBe('compaction.finished');
    expect(of(h.events(), 'compaction.started')[0]!.data).toMatchObject({ reason: 'requested' });
    expect(of(h.events(), 'compaction.started')[0]!.data.activityId).toBeUndefined();
    await h.coordinator.runUntilQuiet(h.sessionId);

    h.admit('queue', 'question three');
    await h.coordinator.runUntilQuiet(h.sessionId);
    const last = mainRequests(h.server.requests).at(-1)!;
    expect(userContents(last)).toEqual([expect.stringContaining('SUMMARY: one and two'), 'question two', 'question three']);
    expect(textOf(last)).not.toContain('question one');
    expect(textOf(last)).not.toContain('answer one');
    expectReplays(h);
  });

  it('a request with nothing to compact is recorded failed, naming why, and the session stays usable', async () => {
    const h = await createHarness({ script: [{ text: 'fine' }] });
    h.store.append({ sessionId: h.sessionId, type: 'compaction.requested', data: {} });
    await h.run();
    const failed = of(h.events(), 'compaction.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.data.kind).toBe('nothing_to_compact');
    h.admit('steer', 'hello');
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
  });
});

describe('compaction - steers during a compaction', () => {
  it('a steer admitted while the summary is written waits, and arrives after it, intact, as its own user message (never in the summary)', async () => {
    const slowSummary: ScriptedTurn = { text: `SUMMARY: ${'the notes say milk. '.repeat(20)}`, delayMs: 10, chunkSize: 8 };
    const h = await createHarness({
      respond: respondWithSummaries([readNotes(1_000), readNotes(2_000), readNotes(6_000), { text: 'steer answered' }], [slowSummary]),
      config: smallWindow,
    });
    writeFileSync(join(h.location, 'notes.md'), 'milk\n');
    h.admit('steer', 'read the notes');
    const run = h.run();
    await h.waitFor((e) => e.type === 'compaction.started');
    const steerText = 'STEER: also check the eggs, exactly as written';
    const steerId = h.admit('steer', steerText);
    await run;

    const events = h.events();
    const finished = of(events, 'compaction.finished')[0]!;
    const assigned = of(events, 'input.assigned').find((e) => e.data.inputId === steerId)!;
    expect(assigned.seq).toBeGreaterThan(finished.seq);
    expect(finished.data.summary).not.toContain('STEER');
    const [summaryRequest] = summaryRequests(h.server.requests);
    expect(textOf(summaryRequest!)).not.toContain('STEER');
    const after = mainRequests(h.server.requests)[3]!;
    expect(userContents(after)).toContain(steerText);
    expect(userContents(after)[0]).toContain('SUMMARY: the notes say milk.');
    expect(of(events, 'activity.opened')).toHaveLength(1);
    expect(of(events, 'activity.settled')[0]!.data.status).toBe('completed');
    expectReplays(h);
  });
});

describe('compaction - a context overflow from the provider', () => {
  it('triggers one compaction and one retry of the turn, which then succeeds', async () => {
    const h = await createHarness({
      respond: respondWithSummaries([{ text: 'answer one' }, overflow, { text: 'answer two' }], [{ text: 'SUMMARY: the first question was answered' }]),
    });
    h.admit('queue', 'question one');
    h.admit('queue', 'question two');
    await h.run();
    const events = h.events();
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
    const failed = of(events, 'attempt.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.data.error.kind).toBe('context_overflow');
    expect(of(events, 'compaction.started').map((e) => e.data.reason)).toEqual(['overflow']);
    // The summary request's tokens count in the session's usage.
    const usage = of(events, 'compaction.finished')[0]!.data.usage!;
    const turnsInput = of(events, 'turn.finished').reduce((n, e) => n + e.data.usage.inputTokens, 0);
    expect(h.store.queries.session(h.sessionId)!.inputTokens).toBe(turnsInput + usage.inputTokens);
    const retried = mainRequests(h.server.requests)[2]!;
    expect(userContents(retried)).toEqual([expect.stringContaining('SUMMARY: the first question was answered'), 'question two']);
    expect(textOf(retried)).not.toContain('answer one');
    expectReplays(h);
  });

  it('a second overflow after the compaction fails the activity clearly (one compaction, no loop)', async () => {
    const h = await createHarness({
      respond: respondWithSummaries([{ text: 'answer one' }, overflow, overflow, { text: 'the next activity' }], [{ text: 'SUMMARY' }]),
    });
    h.admit('queue', 'question one');
    h.admit('queue', 'question two');
    await h.run();
    const events = h.events();
    const settled = of(events, 'activity.settled');
    expect(settled.map((e) => e.data.status)).toEqual(['completed', 'failed']);
    expect(settled[1]!.data.reason).toMatch(/^context_overflow: the conversation is still too long for the model's context window after compacting it: /);
    expect(of(events, 'compaction.started')).toHaveLength(1);
    expect(of(events, 'attempt.failed')).toHaveLength(2);
    expectReplays(h);
    // The session is usable: the next input runs (with the summary).
    h.admit('steer', 'question three');
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'failed', 'completed']);
  });
});

describe('compaction - durable', () => {
  it('restored mid-compaction, the next owner runs the summary again and the activity continues (the overflowed turn is retried once)', async () => {
    const h = await createHarness({
      respond: respondWithSummaries([{ text: 'answer one' }, overflow, { text: 'answer two' }], [{ text: 'never sent', hangMs: 30_000 }, { text: 'SUMMARY after restart' }]),
    });
    h.admit('queue', 'question one');
    h.admit('queue', 'question two');
    void h.run().catch(() => {});
    await h.waitFor((e) => e.type === 'compaction.started');
    // Wait until the first summary request reached the server, then the process dies.
    for (let i = 0; i < 200 && summaryRequests(h.server.requests).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    h.crash();
    expect(h.store.getSnapshot(h.sessionId)!.value).toEqual({ compacting: 'summarising' });

    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    const events = h.events();
    const started = of(events, 'compaction.started');
    expect(started.map((e) => e.data.restarts)).toEqual([0, 1]);
    expect(new Set(started.map((e) => e.data.compactionId)).size).toBe(1);
    expect(of(events, 'compaction.finished')).toHaveLength(1);
    expect(of(events, 'recovery.detected')).toHaveLength(0);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
    expect(userContents(mainRequests(h.server.requests).at(-1)!)[0]).toContain('SUMMARY after restart');
  });

  it(`a compaction whose process is lost more than COMPACTION_RESTARTS_MAX (${COMPACTION_RESTARTS_MAX}) times is recorded failed (crash loop), and the session goes on`, async () => {
    const h = await createHarness({ respond: respondWithSummaries([{ text: 'answer one' }, { text: 'answer two' }], [{ text: 'x', hangMs: 30_000 }]) });
    h.admit('steer', 'question one');
    await h.run();
    h.store.append({ sessionId: h.sessionId, type: 'compaction.requested', data: {} });
    let coordinator = h.coordinator;
    coordinator.wake(h.sessionId);
    for (let restart = 0; restart <= COMPACTION_RESTARTS_MAX; restart++) {
      await h.waitFor((e) => e.type === 'compaction.started' && e.data.restarts === restart);
      coordinator.get(h.sessionId)!.stop();
      h.store.db.prepare('UPDATE session_owner SET expires_at = 0 WHERE session_id = ?').run(h.sessionId);
      coordinator = h.restart().coordinator;
    }
    await coordinator.runUntilQuiet(h.sessionId);
    const failed = of(h.events(), 'compaction.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.data.kind).toBe('crash_loop');
    h.admit('steer', 'question two');
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
  });

  it('a snapshot of the previous machine version (session@2, before compaction) is restored as it is, not replayed, and the session goes on', async () => {
    const h = await createHarness({ script: [{ text: 'one' }, { text: 'two' }] });
    h.admit('steer', 'first');
    await h.run();
    h.crash();
    const snap = h.store.getSnapshot(h.sessionId)!;
    const { compaction: _c, runAgent: _r, ...older } = snap.context as Record<string, unknown>;
    h.store.db
      .prepare('UPDATE snapshots SET machine_version = ?, context = ? WHERE session_id = ?')
      .run('session@2', JSON.stringify(older), h.sessionId);
    const { actor, coordinator } = h.restart();
    expect(actor.context().compaction).toMatchObject({ current: null, summarySeq: null, requested: false });
    h.admit('steer', 'second');
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
    expect(h.store.getSnapshot(h.sessionId)!.machineVersion).toBe(SESSION_MACHINE_VERSION);
  });

  it('a fork inside a compaction records it failed (forked); a fork after one keeps its summary (seqs are kept), and the fork runs', async () => {
    const h = await createHarness({
      respond: respondWithSummaries([{ text: 'answer one' }, { text: 'answer two' }, { text: 'fork answer' }], [{ text: 'SUMMARY: one and two', delayMs: 20, chunkSize: 4 }]),
      config: { compaction: { keepRecentTurns: 1 } },
    });
    h.admit('queue', 'question one');
    h.admit('queue', 'question two');
    await h.run();
    h.store.append({ sessionId: h.sessionId, type: 'compaction.requested', data: {} });
    h.coordinator.wake(h.sessionId);
    await h.waitFor((e) => e.type === 'compaction.finished');
    const events = h.events();
    const started = of(events, 'compaction.started')[0]!;
    const finished = of(events, 'compaction.finished')[0]!;

    const inside = forkSession(h.store, h.sessionId, started.seq);
    const insideEvents = h.store.read(inside.sessionId, { after: started.seq });
    expect(insideEvents.map((e) => e.type)).toEqual(['compaction.failed']);
    expect(insideEvents[0]!.data).toMatchObject({ kind: 'forked' });

    const after = forkSession(h.store, h.sessionId, finished.seq);
    h.store.admitInput(after.sessionId, { mode: 'queue', text: 'question three' });
    const fork = h.coordinator.own(after.sessionId)!;
    await h.coordinator.runUntilQuiet(after.sessionId);
    expect(fork.context().compaction.summarySeq).toBe(finished.seq);
    expect(userContents(mainRequests(h.server.requests).at(-1)!)).toEqual([expect.stringContaining('SUMMARY: one and two'), 'question two', 'question three']);
  });
});
