import { describe, expect, it } from 'vitest';
import { admitWithPolicy, SessionBusyError, type AnyEnvelope } from '../../store/index.js';
import { createHarness, type Harness } from './harness.js';

const slowText = (text: string) => ({ text, delayMs: 40, chunkSize: 2 });
const userContents = (body: unknown) =>
  ((body as { messages: { role: string; content: string }[] }).messages ?? []).filter((m) => m.role === 'user').map((m) => m.content);
const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];

/** Starts the session on a first input and resolves once its first attempt is streaming: the session is busy. */
async function busy(h: Harness): Promise<{ run: Promise<void> }> {
  h.admit('steer', 'first');
  const run = h.run();
  await h.waitFor((e) => e.type === 'text.delta');
  expect(h.store.queries.session(h.sessionId)!.status).toBe('active');
  return { run }; // wrapped: an async function would flatten the promise and wait for the run
}

describe('double-texting - a prompt with no mode while the session is busy', () => {
  it('steer (the default): the input joins the running activity at its next safe boundary', async () => {
    const h = await createHarness({ script: [slowText('a long first answer'), { text: 'steered' }] });
    const { run } = await busy(h);
    const a = admitWithPolicy(h.store, h.sessionId, { text: 'also this' });
    expect(a).toMatchObject({ admitted: true, mode: 'steer', busy: true, policy: 'steer', interrupted: null });
    await run;
    const events = h.events();
    expect(of(events, 'activity.opened')).toHaveLength(1);
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
    expect(userContents(h.server.requests[1]!.body)).toEqual(['first', 'also this']);
  });

  it('queue: the input waits for the running activity to settle, then opens the next one', async () => {
    const h = await createHarness({ doubleTexting: 'queue', script: [slowText('a long first answer'), { text: 'second' }] });
    const { run } = await busy(h);
    const a = admitWithPolicy(h.store, h.sessionId, { text: 'later' });
    expect(a).toMatchObject({ mode: 'queue', policy: 'queue', interrupted: null });
    await run;
    const opened = of(h.events(), 'activity.opened');
    expect(opened).toHaveLength(2);
    expect(opened[1]!.data.inputIds).toEqual([a.input.inputId]);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed', 'completed']);
    expect(userContents(h.server.requests[0]!.body)).toEqual(['first']);
  });

  it('interrupt: the running activity is cancelled, then the new input runs at once in a new activity', async () => {
    const h = await createHarness({ doubleTexting: 'interrupt', script: [slowText('x'.repeat(400)), { text: 'on it' }] });
    const { run } = await busy(h);
    const first = h.store.queries.session(h.sessionId)!.activityId!;
    const a = admitWithPolicy(h.store, h.sessionId, { text: 'stop, do this instead' });
    expect(a).toMatchObject({ mode: 'steer', policy: 'interrupt', interrupted: first });
    h.coordinator.get(h.sessionId)!.catchUp();
    await run;
    const events = h.events();
    // The cancel is recorded right before the input, in one transaction.
    const cancel = of(events, 'cancel.requested')[0]!;
    expect(cancel.data.activityId).toBe(first);
    expect(events.find((e) => e.seq === cancel.seq + 1)).toMatchObject({ type: 'input.admitted', data: { inputId: a.input.inputId } });
    expect(of(events, 'activity.settled').map((e) => e.data.status)).toEqual(['cancelled', 'completed']);
    expect(of(events, 'activity.opened')[1]!.data.inputIds).toEqual([a.input.inputId]);
    expect(h.server.requests).toHaveLength(2);
    expect(userContents(h.server.requests[1]!.body).at(-1)).toBe('stop, do this instead');
    expect(h.coordinator.get(h.sessionId)!.context().parked).toBe(false);
  });

  it('reject: the input is refused with a clear error and nothing is stored; the activity runs on', async () => {
    const h = await createHarness({ doubleTexting: 'reject', script: [slowText('a long first answer')] });
    const { run } = await busy(h);
    const before = h.store.queries.session(h.sessionId)!.lastSeq;
    let error: unknown;
    try {
      admitWithPolicy(h.store, h.sessionId, { text: 'me too' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SessionBusyError);
    expect((error as Error).message).toMatch(/is busy .*double-texting policy is reject.*not admitted/);
    expect(of(h.events(), 'input.admitted').filter((e) => e.seq > before)).toEqual([]);
    await run;
    expect(h.store.inputs(h.sessionId).map((i) => i.text)).toEqual(['first']);
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
  });

  it('an explicit mode bypasses the policy, and an idle session takes the input as queued without a policy', async () => {
    const h = await createHarness({ doubleTexting: 'reject', script: [slowText('a long first answer'), { text: 'b' }, { text: 'c' }] });
    const idle = admitWithPolicy(h.store, h.sessionId, { text: 'first' });
    expect(idle).toMatchObject({ mode: 'queue', busy: false, policy: null });
    const run = h.run();
    await h.waitFor((e) => e.type === 'text.delta');
    expect(admitWithPolicy(h.store, h.sessionId, { text: 'steered', mode: 'steer' })).toMatchObject({ mode: 'steer', busy: true, policy: null });
    await run;
    expect(of(h.events(), 'activity.settled').map((e) => e.data.status)).toEqual(['completed']);
  });

  it('a repeated client id returns the first admission and applies no policy again (no second cancel)', async () => {
    const h = await createHarness({ doubleTexting: 'interrupt', script: [slowText('x'.repeat(400)), { text: 'on it' }] });
    const { run } = await busy(h);
    const a = admitWithPolicy(h.store, h.sessionId, { text: 'instead', clientId: 'c1' });
    const again = admitWithPolicy(h.store, h.sessionId, { text: 'instead', clientId: 'c1' });
    expect(again).toMatchObject({ admitted: false, interrupted: null, policy: null });
    expect(again.input.inputId).toBe(a.input.inputId);
    h.coordinator.get(h.sessionId)!.catchUp();
    await run;
    expect(of(h.events(), 'cancel.requested')).toHaveLength(1);
    expect(of(h.events(), 'input.admitted')).toHaveLength(2);
  });
});
