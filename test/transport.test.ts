import { describe, expect, it } from 'vitest';
import { createInProcessTransport } from '../transport/inprocess/index.js';
import { createHarness } from './actors/harness.js';

describe('transport/inprocess', () => {
  it('transport - delivers committed events matching a filter, with dotted-prefix type selection', async () => {
    const h = await createHarness({ script: [{ toolCalls: [{ name: 'read', arguments: { path: 'x' } }] }, { text: 'ok' }] });
    const seen: string[] = [];
    h.coordinator.transport.subscribe({ sessionId: h.sessionId, types: ['tool.'] }, (e) => seen.push(e.type));
    const all: number[] = [];
    h.coordinator.transport.subscribe({}, (e) => all.push(e.gseq));
    h.admit('steer', 'go');
    await h.run();
    expect(seen).toEqual(['tool.called', 'tool.started', 'tool.settled']);
    expect(all).toEqual([...all].sort((a, b) => a - b));
    expect(all.length).toBeGreaterThan(5);
  });

  it('transport - a wake signal makes the owner look at its inbox now', async () => {
    const h = await createHarness({ script: [{ text: 'woken' }] });
    await h.run();
    const { Store } = await import('../store/index.js');
    const other = Store.open(h.store.path);
    other.admitInput(h.sessionId, { mode: 'queue', text: 'from elsewhere' });
    other.close();
    await h.coordinator.transport.wake(h.sessionId);
    await h.coordinator.runUntilQuiet(h.sessionId);
    expect(h.server.requests).toHaveLength(1);
  });

  it('transport - a throwing subscriber does not stop the others', async () => {
    const t = createInProcessTransport();
    const got: string[] = [];
    t.onSignal(() => {
      throw new Error('bad subscriber');
    });
    t.onSignal((s) => got.push(`${s.kind}:${s.sessionId}`));
    await t.cancel('ses_1');
    expect(got).toEqual(['cancel:ses_1']);
  });
});
