import { describe, expect, it } from 'vitest';
import { createLoomClient } from '../../sdk/index.js';
import { openServerRuntime } from '../../server/runtime.js';
import { listen } from '../../server/server.js';
import type { AnyEnvelope } from '../../store/index.js';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { until, writeFiles, writeGlobalConfig } from '../services/plugin-fixtures.js';

const TOKEN = 'plugins-test-token-0123456789';

/** `loom serve` admissions run the plugins' input.admitted hooks like every other surface. */
async function serveWithPlugins(plugins: string[], files: Record<string, string>) {
  const provider = await startScriptedOpenAIServer({ respond: () => ({ text: 'ok' }) });
  onCleanup(() => void provider.close());
  const home = tempDir('loom-serve-plugins-');
  const dir = tempDir('loom-serve-plugins-dir-');
  writeFiles(home, files);
  writeGlobalConfig(home, { plugins });
  const rt = openServerRuntime({ home, token: TOKEN, env: { ...process.env, OPENAI_BASE_URL: provider.url, OPENAI_API_KEY: '' } });
  const running = await listen(rt, { host: '127.0.0.1', port: 0, explicitToken: true });
  onCleanup(() => {
    void running.close();
    rt.runner.drain(0).finally(() => rt.close()).catch(() => {});
  });
  await rt.plugins.settled();
  const events = (id: string) => {
    const out: AnyEnvelope[] = [];
    for (let page = rt.store.read(id); page.length > 0; page = rt.store.read(id, { after: page.at(-1)!.seq })) out.push(...page);
    return out;
  };
  return { rt, dir, provider, client: createLoomClient({ baseUrl: running.url, token: TOKEN }), events };
}

describe('loom serve with plugins', () => {
  it('serve - POST /sessions and POST /sessions/:id/inputs store what the input.admitted hooks leave; a failing hook is recorded with the new session', async () => {
    const s = await serveWithPlugins(['./tag.mjs', './broken.mjs'], {
      'tag.mjs': 'export default (loom) => loom.hook("input.admitted", (draft, ctx) => { draft.text = "[" + ctx.source + "] " + draft.text; });',
      'broken.mjs': 'export default (loom) => loom.hook("input.admitted", () => { throw new Error("broken hook"); });',
    });
    const { session, input } = await s.client.createSession({ location: s.dir, text: 'first' });
    expect(input!.text).toBe('[http] first');
    await until(() => s.events(session.sessionId).some((e) => e.type === 'activity.settled'), 'the first activity');
    const result = await s.client.prompt(session.sessionId, { text: 'second', mode: 'queue' });
    expect(result.input.text).toBe('[http] second');
    await until(() => s.events(session.sessionId).filter((e) => e.type === 'activity.settled').length === 2, 'the second activity');
    const types = s.events(session.sessionId).map((e) => e.type);
    expect(types.slice(0, 3)).toEqual(['session.created', 'plugin.hook.failed', 'input.admitted']);
    expect(types.filter((t) => t === 'plugin.hook.failed')).toHaveLength(2);
    const users = s.provider.requests.map((r) => (r.body as { messages: { role: string; content: string }[] }).messages.filter((m) => m.role === 'user').map((m) => m.content));
    expect(users.at(-1)).toEqual(['[http] first', '[http] second']);
  });

  it('serve - a plugin\'s loom.session.prompt into a session no one runs is run by the server', async () => {
    const s = await serveWithPlugins(['./driver.mjs'], {
      'driver.mjs': 'export default (loom) => { globalThis.__loomServeDriver = loom; };',
    });
    onCleanup(() => delete (globalThis as { __loomServeDriver?: unknown }).__loomServeDriver);
    const loom = (globalThis as { __loomServeDriver?: any }).__loomServeDriver;
    const { sessionId } = await loom.session.create({ location: s.dir, model: 'openai/test' });
    await loom.session.prompt(sessionId, 'hello from a plugin');
    await until(() => s.events(sessionId).some((e) => e.type === 'activity.settled'), 'the plugin session to settle');
    expect(s.events(sessionId).find((e) => e.type === 'activity.settled')!.data).toMatchObject({ status: 'completed' });
  });
});
