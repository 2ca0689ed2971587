import { describe, expect, it } from 'vitest';
import { LoomApiError } from '../../sdk/index.js';
import { authed, openSse, startTestServer } from './harness.js';

describe('server - /models', () => {
  it('GET /models - the catalog with capabilities, limits, prices and sources, and every provider with its state', async () => {
    const { client } = await startTestServer();
    const view = await client.models();
    expect(view.default).toBe('openai/gpt-4o-mini');
    const gpt4o = view.models.find((m) => m.id === 'openai/gpt-4o')!;
    expect(gpt4o).toMatchObject({
      provider: 'openai',
      capabilities: { toolCalling: true, reasoning: false },
      limits: { context: 128_000, output: 16_384 },
      cost: { input: 2.5, output: 10 },
      source: 'builtin',
      providerState: 'ready',
    });
    expect(view.providers.map((p) => [p.id, p.state, p.configured])).toEqual([
      ['openai', 'ready', true],
      ['openai-responses', 'ready', true],
      ['anthropic', 'unconfigured', false],
    ]);
    expect(view.providers[2]).toMatchObject({ missing: ['ANTHROPIC_API_KEY'], origin: null });
    const only = await client.models({ provider: 'anthropic' });
    expect(only.models).toEqual([]);
    expect(only.providers.map((p) => p.id)).toEqual(['anthropic']);
  });

  it('POST /models and DELETE /models/:id - register for every process, then remove; the ids travel URL-encoded', async () => {
    const { client, rt } = await startTestServer();
    const { model } = await client.registerModel({ id: 'groq/llama-3.3-70b', context: 128_000, cost: { input: 0.59, output: 0.79 } });
    expect(model).toMatchObject({ id: 'groq/llama-3.3-70b', source: 'http', limits: { context: 128_000 }, providerState: 'unknown' });
    expect((await client.models()).models.some((m) => m.id === 'groq/llama-3.3-70b')).toBe(true);
    expect(rt.store.readSystem().at(-1)).toMatchObject({ type: 'model.added', data: { model: 'groq/llama-3.3-70b', source: 'http' } });

    // Over a built-in entry: only the named fields change; removing the registration brings the built-in back.
    const cheaper = await client.registerModel({ id: 'openai/gpt-4o', cost: { input: 1, output: 4 } });
    expect(cheaper.model).toMatchObject({ source: 'http', cost: { input: 1, output: 4 }, limits: { context: 128_000 } });
    const back = await client.removeModel('openai/gpt-4o');
    expect(back.now).toMatchObject({ source: 'builtin', cost: { input: 2.5 } });

    const gone = await client.removeModel('groq/llama-3.3-70b');
    expect(gone).toMatchObject({ removed: { id: 'groq/llama-3.3-70b' }, now: null });
    await expect(client.removeModel('groq/llama-3.3-70b')).rejects.toMatchObject({ status: 404, field: 'path.id' });
    await expect(client.removeModel('openai/gpt-4o')).rejects.toMatchObject({ status: 409, code: 'not_registered', message: expect.stringMatching(/built-in list/) });
  });

  it('POST /models - a bad body is a 400 naming the field, and nothing is stored', async () => {
    const { client, url, rt } = await startTestServer();
    const cases: [unknown, string][] = [
      [{ id: 'groq/x', context: -1 }, 'body.context'],
      [{ id: 'groq/x', cost: { input: 1 } }, 'body.cost.output'],
      [{ id: 'groq/x', window: 3 }, 'body.window'],
      [{ id: 'Not An Id' }, 'body.id'],
      [{ id: 'groq/x', cost: { input: 1e9, output: 1 } }, 'body.cost.input'],
    ];
    for (const [body, field] of cases) {
      const res = await authed(`${url}/models`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await res.json()).error.field, JSON.stringify(body)).toBe(field);
    }
    await expect(client.registerModel({ id: 'groq/x', context: 0 })).rejects.toBeInstanceOf(LoomApiError);
    expect(rt.store.readSystem().filter((e) => e.data && (e.data as { model?: string }).model === 'groq/x')).toEqual([]);
  });

  it('POST /sessions - a model whose provider failed to load is refused with the provider and the problem named', async () => {
    const { client, dir } = await startTestServer();
    await expect(client.createSession({ location: dir, model: 'anthropic/claude-sonnet-4-5' })).rejects.toMatchObject({
      status: 400,
      field: 'body.model',
      message: expect.stringMatching(/provider "anthropic" \(model "anthropic\/claude-sonnet-4-5"\) is not configured: set ANTHROPIC_API_KEY/),
    });
  });
});

describe('server - system events reach subscribers', () => {
  it('global SSE - a model registered over HTTP arrives on /events/stream as a model.added frame (cursor = gseq)', async () => {
    const { client, url } = await startTestServer();
    await client.models(); // providers loaded: their events are history now
    const head = (await (await authed(`${url}/events/info`)).json()) as { gseq: number };
    const sse = await openSse(`${url}/events/stream?after=${head.gseq}`);
    await client.registerModel({ id: 'local/qwen', context: 32_000 });
    await sse.until(() => sse.frames.some((f) => f.event === 'model.added'));
    const frame = sse.frames.find((f) => f.event === 'model.added')!;
    const envelope = JSON.parse(frame.data);
    expect(envelope).toMatchObject({ sessionId: null, type: 'model.added', data: { model: 'local/qwen', source: 'http', limits: { context: 32_000 } } });
    expect(frame.id).toBe(String(envelope.gseq));
  });

  it('GET /events/system - pages of the system log, or the newest N', async () => {
    const { client } = await startTestServer();
    await client.models();
    for (const name of ['a', 'b', 'c']) await client.registerModel({ id: `local/${name}` });
    const last = await client.systemEvents({ last: 2 });
    expect(last.events.map((e) => e.data.model)).toEqual(['local/b', 'local/c']);
    const all = await client.systemEvents({ after: 0, limit: 500 });
    expect(all.events.map((e) => e.type)).toEqual(expect.arrayContaining(['provider.loaded', 'model.added']));
    expect(all.events.every((e) => e.sessionId === null)).toBe(true);
    expect(all.events.map((e) => e.seq)).toEqual(all.events.map((_, i) => i + 1));
  });
});
