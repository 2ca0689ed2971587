import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createHumanRenderer, formatEventLine, formatUsd } from '../../cli/render.js';
import { colorsFor } from '../../cli/style.js';
import { eventDefinitions, type AnyEnvelope, type EventData, type EventType } from '../../store/index.js';

/** How `loom tail` and `loom run` put usage, retries and settlements into words. */

const envelope = <T extends EventType>(type: T, data: EventData<T>, seq = 7): AnyEnvelope =>
  ({ sessionId: 'ses_1', seq, gseq: seq, type, version: eventDefinitions[type].version, at: '2026-01-01T00:00:00.000Z', data }) as AnyEnvelope;

const plain = colorsFor(new PassThrough() as unknown as NodeJS.WritableStream);

describe('cli render - usage, retries and settlements', () => {
  it('formatEventLine - a finished turn shows its tokens, its cost when priced and its tool calls', () => {
    const priced = envelope('turn.finished', { activityId: 'act_1', turnId: 't', attemptId: 'a', finishReason: 'tool_calls', usage: { inputTokens: 1200, outputTokens: 80 }, toolCalls: 2, costUsd: 0.00312 });
    expect(formatEventLine(priced)).toBe('#7 2026-01-01T00:00:00.000Z turn.finished tool_calls · 1200 input / 80 output tokens · $0.0031 · 2 tool calls (act_1)');
    const unpriced = envelope('turn.finished', { activityId: 'act_1', turnId: 't', attemptId: 'a', finishReason: 'stop', usage: { inputTokens: 5, outputTokens: 1 }, toolCalls: 0 });
    expect(formatEventLine(unpriced)).toBe('#7 2026-01-01T00:00:00.000Z turn.finished stop · 5 input / 1 output tokens (act_1)');
  });

  it('formatEventLine - a retry names the next attempt, its delay, the provider\'s wait and the failure', () => {
    const e = envelope('attempt.retrying', { activityId: 'act_1', failedAttemptId: 'att_1', nextAttempt: 2, delayMs: 7_000, retryAfterMs: 7_000, reason: 'rate_limit: slow down' });
    expect(formatEventLine(e)).toBe('#7 2026-01-01T00:00:00.000Z attempt.retrying retrying: attempt 2 in 7.0 s (the provider asked for 7.0 s) after rate_limit: slow down (act_1)');
  });

  it('human renderer - an activity ends with its status, reason, turns and totals', () => {
    const out = new PassThrough();
    const info = new PassThrough();
    const render = createHumanRenderer(out, info, plain);
    render.event(envelope('activity.settled', { activityId: 'act_1', status: 'budget_exceeded', reason: 'activity token budget of 100 used up (120 tokens)', turns: 1, usage: { inputTokens: 100, outputTokens: 20, costUsd: 2.5 } }));
    render.end();
    expect(String(info.read())).toBe('■ activity budget_exceeded: activity token budget of 100 used up (120 tokens) (1 turn · 100 input / 20 output tokens · $2.50)\n');
  });

  it('formatUsd - four decimals below a dollar, two above', () => {
    expect([formatUsd(0.000123), formatUsd(0.5), formatUsd(12.345)]).toEqual(['$0.0001', '$0.5000', '$12.35']);
  });
});
