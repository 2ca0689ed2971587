import { describe, expect, it } from 'vitest';
import { openLoomRuntime } from '../../services/runtime.js';
import type { AnyEnvelope } from '../../store/index.js';
import { decodeEnvelope } from '../../transport/nats/index.js';
import { onCleanup, tempDir } from '../helpers.js';
import { eventually, natsClient, natsServer, natsTransport } from '../transport/nats/helpers.js';

describe('system events over NATS', () => {
  it('system events - a model registered in one process reaches NATS subscribers on loom.system.event.model.added', async () => {
    const server = await natsServer();
    const raw: { subject: string; event: AnyEnvelope }[] = [];
    const nc = await natsClient(server.url);
    nc.subscribe('loom.system.event.>', { callback: (_e, m) => void raw.push({ subject: m.subject, event: decodeEnvelope(m.data)! }) });
    await nc.flush();
    const typed: AnyEnvelope[] = [];
    await natsTransport(server.url).subscribeReady({ types: ['model.'] }, (e) => typed.push(e));

    const home = tempDir('loom-nats-home-');
    const rt = openLoomRuntime({ home, env: {}, natsUrl: server.url, processName: 'test' });
    onCleanup(() => rt.close());
    await rt.models.settled();
    rt.models.register('local/qwen', { context: 32_000 }, 'cli');
    rt.models.unregister('local/qwen');

    await eventually(() => raw.length >= 2 && typed.length >= 2, 10_000, 'system events over NATS');
    expect(raw.map((m) => m.subject)).toEqual(['loom.system.event.model.added', 'loom.system.event.model.removed']);
    expect(raw[0]!.event).toMatchObject({ sessionId: null, type: 'model.added', data: { model: 'local/qwen', source: 'cli', limits: { context: 32_000 } } });
    expect(typed.map((e) => e.type)).toEqual(['model.added', 'model.removed']);
    expect(typed.map((e) => e.gseq)).toEqual(rt.store.readSystem().map((e) => e.gseq));
  });
});
