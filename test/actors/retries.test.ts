import { SimulatedClock } from 'xstate';
import { describe, expect, it } from 'vitest';
import { replayLog } from '../../actors/session.js';
import { retryDelayBounds, retryDelayMs } from '../../actors/retry.js';
import { ATTEMPT_RETRIES_MAX, ATTEMPT_RETRY_AFTER_MAX_MS, ATTEMPT_RETRY_BACKOFF_MAX_MS, ATTEMPT_RETRY_BACKOFF_MS, ATTEMPT_RETRY_JITTER_RATIO } from '../../core/limits.js';
import { stateName } from '../../machines/stateName.js';
import type { AnyEnvelope } from '../../store/index.js';
import { createHarness, type Harness } from './harness.js';

/**
 * Retries of a provider attempt within a live process (DESIGN §5, README "Retries"): each retry is
 * an `attempt.retrying` event carrying the jittered delay the owner drew, and the session's XState
 * timers run on a SimulatedClock that the test moves, so no test waits for real time.
 */

const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];

/** A jitter source that returns `draws` in turn (then the last one). */
const draws = (...values: number[]) => {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
};

const bounds = (retry: number) => retryDelayBounds({ retry, baseMs: ATTEMPT_RETRY_BACKOFF_MS, maxMs: ATTEMPT_RETRY_BACKOFF_MAX_MS, jitterRatio: ATTEMPT_RETRY_JITTER_RATIO });

/** Waits for retry `nextAttempt` to be recorded, then moves the clock past its delay. */
async function elapseRetry(h: Harness, clock: SimulatedClock, nextAttempt: number): Promise<number> {
  const e = (await h.waitFor((x) => x.type === 'attempt.retrying' && x.data.nextAttempt === nextAttempt)) as Extract<AnyEnvelope, { type: 'attempt.retrying' }>;
  clock.increment(e.data.delayMs);
  return e.data.delayMs;
}

const state = (h: Harness) => stateName(h.coordinator.get(h.sessionId)!.snapshot().value);

describe('retry delay', () => {
  it('retryDelayMs - exponential with equal jitter: uniform in [base/2, base] for each retry, base doubling and capped', () => {
    expect([1, 2, 3, 4].map(bounds)).toEqual([
      { min: 125, max: 250 },
      { min: 250, max: 500 },
      { min: 500, max: 1_000 },
      { min: 1_000, max: 2_000 },
    ]);
    expect(bounds(30)).toEqual({ min: ATTEMPT_RETRY_BACKOFF_MAX_MS / 2, max: ATTEMPT_RETRY_BACKOFF_MAX_MS });
    const input = { retry: 2, baseMs: 250, maxMs: 30_000, jitterRatio: 0.5 };
    expect(retryDelayMs({ ...input, random: () => 0 })).toBe(500);
    expect(retryDelayMs({ ...input, random: () => 0.999999 })).toBe(250);
    expect(retryDelayMs({ ...input, random: () => 0.5 })).toBe(375);
  });

  it('retryDelayMs - never shorter than the retry-after the provider asked for', () => {
    expect(retryDelayMs({ retry: 1, baseMs: 250, maxMs: 30_000, jitterRatio: 0.5, retryAfterMs: 7_000, random: () => 0.3 })).toBe(7_000);
    expect(retryDelayMs({ retry: 4, baseMs: 250, maxMs: 30_000, jitterRatio: 0.5, retryAfterMs: 10, random: () => 0 })).toBe(2_000);
  });
});

describe('session actor - retries', () => {
  it('a 429 with retry-after is retried after exactly the delay asked for, recorded as attempt.retrying', async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({ script: [{ status: 429, retryAfter: '7' }, { text: 'after the wait' }], timers: clock, random: () => 0.5 });
    h.admit('steer', 'x');
    const run = h.run();
    const retrying = (await h.waitFor((e) => e.type === 'attempt.retrying')) as Extract<AnyEnvelope, { type: 'attempt.retrying' }>;
    const failed = of(h.events(), 'attempt.failed')[0]!;
    expect(failed.data).toMatchObject({ retryable: true, receivedChunks: false, error: { kind: 'rate_limit', status: 429, retryAfterMs: 7_000 } });
    expect(retrying.data).toMatchObject({ failedAttemptId: failed.data.attemptId, nextAttempt: 2, delayMs: 7_000, retryAfterMs: 7_000 });
    expect(retrying.data.reason).toMatch(/^rate_limit: The provider is rate limiting requests \(HTTP 429\)/);
    expect(state(h)).toBe('providerTurn.backoff');
    clock.increment(6_999);
    expect(state(h)).toBe('providerTurn.backoff');
    expect(h.server.requests).toHaveLength(1);
    clock.increment(1);
    expect(state(h)).toBe('providerTurn.streaming');
    await run;
    expect(of(h.events(), 'attempt.dispatched').map((e) => e.data.attempt)).toEqual([1, 2]);
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('503s then success: each retry is an event whose delay lies in its jitter bounds and grows', async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({
      script: [{ status: 503 }, { status: 503 }, { status: 503 }, { text: 'finally' }],
      timers: clock,
      random: draws(0, 0.999, 0.5),
    });
    h.admit('steer', 'x');
    const run = h.run();
    const delays = [await elapseRetry(h, clock, 2), await elapseRetry(h, clock, 3), await elapseRetry(h, clock, 4)];
    await run;
    expect(delays).toEqual([250, 250, 750]);
    delays.forEach((d, i) => {
      const { min, max } = bounds(i + 1);
      expect(d).toBeGreaterThanOrEqual(min);
      expect(d).toBeLessThanOrEqual(max);
    });
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
    const retries = of(h.events(), 'attempt.retrying');
    expect(retries.map((e) => e.data.nextAttempt)).toEqual([2, 3, 4]);
    expect(retries.every((e) => e.data.reason.startsWith('server: The provider failed (HTTP 503)'))).toBe(true);
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
    expect(h.server.requests).toHaveLength(4);
  });

  it(`exhausting ${ATTEMPT_RETRIES_MAX} retries settles the activity failed with a reason naming the attempts`, async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({ respond: () => ({ status: 503, errorBody: '{"error":{"message":"upstream down"}}' }), timers: clock, random: () => 0.5 });
    h.admit('steer', 'x');
    const run = h.run();
    for (let next = 2; next <= ATTEMPT_RETRIES_MAX + 1; next++) await elapseRetry(h, clock, next);
    await run;
    expect(h.server.requests).toHaveLength(ATTEMPT_RETRIES_MAX + 1);
    expect(of(h.events(), 'attempt.retrying')).toHaveLength(ATTEMPT_RETRIES_MAX);
    const settled = of(h.events(), 'activity.settled')[0]!;
    expect(settled.data.status).toBe('failed');
    expect(settled.data.reason).toBe(
      `server: The provider failed (HTTP 503) for POST ${h.server.url}/chat/completions: upstream down (gave up after ${ATTEMPT_RETRIES_MAX + 1} attempts: the initial one and ${ATTEMPT_RETRIES_MAX} retries)`,
    );
  });

  it('a retry-after beyond the cap fails the activity at once, naming the wait, instead of sleeping', async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({ script: [{ status: 429, headers: { 'retry-after-ms': String(ATTEMPT_RETRY_AFTER_MAX_MS + 1_000) } }], timers: clock });
    h.admit('steer', 'x');
    await h.run();
    expect(of(h.events(), 'attempt.retrying')).toEqual([]);
    const settled = of(h.events(), 'activity.settled')[0]!;
    expect(settled.data.status).toBe('failed');
    expect(settled.data.reason).toContain(`(not retried: the provider asked to wait ${ATTEMPT_RETRY_AFTER_MAX_MS / 1000 + 1} s, longer than the ${ATTEMPT_RETRY_AFTER_MAX_MS / 1000} s a run waits)`);
    expect(h.server.requests).toHaveLength(1);
  });

  it('a failure after a chunk arrived is not retried, even when retryable', async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({ script: [{ text: 'partial answer', truncate: 'socket' }, { text: 'never' }], timers: clock });
    h.admit('steer', 'x');
    await h.run();
    const failed = of(h.events(), 'attempt.failed')[0]!;
    expect(failed.data).toMatchObject({ retryable: true, receivedChunks: true });
    expect(of(h.events(), 'attempt.retrying')).toEqual([]);
    expect(of(h.events(), 'activity.settled')[0]!.data.reason).toMatch(/\(not retried: the attempt had already streamed output\)$/);
    expect(h.server.requests).toHaveLength(1);
  });

  it('a cancel during the backoff settles the activity cancelled and the timer never dispatches again', async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({ script: [{ status: 503 }, { text: 'never sent' }], timers: clock, random: () => 0 });
    h.admit('steer', 'x');
    const run = h.run();
    const retrying = (await h.waitFor((e) => e.type === 'attempt.retrying')) as Extract<AnyEnvelope, { type: 'attempt.retrying' }>;
    expect(state(h)).toBe('providerTurn.backoff');
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId: retrying.data.activityId, reason: 'changed my mind' } });
    h.coordinator.get(h.sessionId)!.catchUp();
    await run;
    clock.increment(retrying.data.delayMs * 10);
    expect(state(h)).toBe('idle');
    expect(h.server.requests).toHaveLength(1);
    expect(of(h.events(), 'attempt.dispatched')).toHaveLength(1);
    expect(of(h.events(), 'activity.settled')[0]!.data).toMatchObject({ status: 'cancelled', reason: 'cancel requested' });
  });

  it('a drain during the backoff resolves at once: nothing is in flight, and the next owner retries', async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({ script: [{ status: 429, retryAfter: '90' }, { text: 'resumed elsewhere' }], timers: clock });
    h.admit('steer', 'x');
    const actor = h.coordinator.own(h.sessionId)!;
    void h.coordinator.runUntilQuiet(h.sessionId);
    await h.waitFor((e) => e.type === 'attempt.retrying');
    await actor.drain(); // the clock never moved: a drain does not wait out a 90 s retry-after
    expect(state(h)).toBe('providerTurn.backoff');
    h.crash();
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
    expect(h.server.requests).toHaveLength(2);
  });

  it('replaying the log reproduces the state of a session that retried; a process lost in the backoff retries safely on restore', async () => {
    const clock = new SimulatedClock();
    const h = await createHarness({ script: [{ status: 503 }, { text: 'after restart' }], timers: clock, random: () => 0.25 });
    h.admit('steer', 'x');
    const actor = h.coordinator.own(h.sessionId)!;
    void h.coordinator.runUntilQuiet(h.sessionId);
    const retrying = (await h.waitFor((e) => e.type === 'attempt.retrying')) as Extract<AnyEnvelope, { type: 'attempt.retrying' }>;
    // The log alone rebuilds the backoff, with the recorded delay.
    const replayed = replayLog(h.store, h.sessionId, actor.context());
    expect(stateName(replayed.snapshot.value)).toBe('providerTurn.backoff');
    expect(replayed.snapshot.context.activity!.retryDelayMs).toBe(retrying.data.delayMs);
    expect(replayed.snapshot.context.activity).toEqual(actor.context().activity);
    // Lost in the backoff: nothing was in flight, so the new owner retries without asking.
    h.crash();
    const { coordinator } = h.restart();
    await coordinator.runUntilQuiet(h.sessionId);
    const detected = of(h.events(), 'recovery.detected')[0]!;
    expect(detected.data.classification).toBe('safe');
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
    expect(h.server.requests).toHaveLength(2);
  });
});
