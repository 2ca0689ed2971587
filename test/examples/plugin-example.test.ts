import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIST } from '../helpers.js';
import { memoryCatalog, openTestRuntime } from '../services/plugin-fixtures.js';

/** The example plugin in examples/ works as the README says, compiled to dist/ (by the test setup). */
describe('examples/plugin-example', () => {
  it('plugin-example - registers its tool, model and hooks; the tool runs without an ask; the hooks reach the request', async () => {
    const catalog = memoryCatalog();
    const t = await openTestRuntime({
      catalog,
      plugins: [{ module: join(DIST, 'examples', 'plugin-example.js'), options: { temperature: 0.2 } }],
      script: [{ toolCalls: [{ name: 'word_count', arguments: { text: 'one two\nthree' } }] }, { text: 'counted' }],
    });
    await t.rt.plugins.settled();
    expect(t.system('plugin.loaded').map((e) => e.data)).toEqual([
      expect.objectContaining({ plugin: 'plugin-example', tools: ['word_count'], models: ['openai/example-mini'], hooks: ['chat.params', 'chat.headers', 'permission.ask'] }),
    ]);
    expect(catalog.get('openai/example-mini')).toMatchObject({ provider: 'openai', limits: { context: 128_000, output: 16_384 }, cost: { input: 0.15, output: 0.6 }, source: 'plugin' });

    const sessionId = await t.session('count the words');
    await t.run(sessionId);
    const events = t.events(sessionId);
    expect(events.some((e) => e.type === 'permission.asked')).toBe(false);
    expect(events.find((e) => e.type === 'tool.settled')!.data).toMatchObject({ status: 'ok', output: '2 lines, 3 words, 13 characters' });
    expect(events.find((e) => e.type === 'activity.settled')!.data).toMatchObject({ status: 'completed' });
    const request = t.server.requests[0]!;
    expect((request.body as { temperature: number }).temperature).toBe(0.2);
    expect(request.headers['x-loom-plugin']).toBe('plugin-example');
  });
});
