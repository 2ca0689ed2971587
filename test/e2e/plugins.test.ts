import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLoomClient } from '../../sdk/index.js';
import { Store, type AnyEnvelope } from '../../store/index.js';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';
import { until, writeFiles, writeGlobalConfig } from '../services/plugin-fixtures.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function loom(args: string[], env: NodeJS.ProcessEnv) {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return p;
}

/** Reads the log of the `loom` processes from this test (a second connection to their SQLite file). */
function openLog(home: string) {
  const store = Store.open(join(home, 'loom.db'));
  onCleanup(() => store.db.open && store.close());
  const all = (): AnyEnvelope[] => {
    const out: AnyEnvelope[] = [];
    for (let page = store.readAll(); page.length > 0; page = store.readAll({ afterGseq: page.at(-1)!.gseq })) out.push(...page);
    return out;
  };
  return { store, all, system: (type: string) => all().filter((e) => e.sessionId === null && e.type === type) };
}

const offered = (body: unknown) => ((body as { tools?: { function: { name: string } }[] }).tools ?? []).map((t) => t.function.name);

describe('plugins (real processes)', () => {
  it('loom serve - a plugin that takes 5 s to load does not delay the first session; its tool appears once it has loaded', async () => {
    const provider = await startScriptedOpenAIServer({ respond: () => ({ text: 'answered' }) });
    onCleanup(() => void provider.close());
    const home = tempDir('loom-e2e-plugins-home-');
    const dir = tempDir('loom-e2e-plugins-dir-');
    writeFiles(home, {
      'plugins/slow.mjs': `
        await new Promise((resolve) => setTimeout(resolve, 5000)); // a slow import (a big dependency, a network call)
        export default (loom) => loom.tool.register({
          name: 'late_tool', description: 'registered after a slow load', input: loom.z.object({}), idempotent: true, timeoutMs: 1000,
          async execute() { return { output: 'late' }; },
        });`,
    });
    writeGlobalConfig(home, { plugins: ['./plugins/slow.mjs'] });
    const port = await freePort();
    const server = loom(['serve', '--port', String(port)], { LOOM_HOME: home, OPENAI_BASE_URL: provider.url, OPENAI_API_KEY: '' });
    expect(await server.stderrUntil(/listening on/)).not.toBeNull();
    const token = readFileSync(join(home, 'server-token'), 'utf8').trim();
    const client = createLoomClient({ baseUrl: `http://127.0.0.1:${port}`, token });
    const log = openLog(home);

    const first = await client.createSession({ location: dir, text: 'hello' });
    const settledOf = (id: string) => log.all().find((e) => e.sessionId === id && e.type === 'activity.settled');
    await until(() => settledOf(first.session.sessionId) !== undefined, 'the first session to settle', 6_000);
    const settled = settledOf(first.session.sessionId)!;
    expect(settled.data).toMatchObject({ status: 'completed' });
    expect(offered(provider.requests[0]!.body)).not.toContain('late_tool');

    await until(() => log.system('plugin.loaded').length > 0, 'the slow plugin to load', 6_000);
    const loaded = log.system('plugin.loaded')[0]!;
    expect(loaded.data).toMatchObject({ plugin: 'slow', module: './plugins/slow.mjs', tools: ['late_tool'] });
    expect((loaded.data as { ms: number }).ms).toBeGreaterThanOrEqual(5_000);
    // The session completed while the plugin was still loading.
    expect(settled.gseq).toBeLessThan(loaded.gseq);
    expect(Date.parse(settled.at)).toBeLessThan(Date.parse(loaded.at));
    expect(log.system('registry.tool.added').map((e) => e.data)).toEqual([{ tool: 'late_tool' }]);

    const second = await client.createSession({ location: dir, text: 'again' });
    await until(() => settledOf(second.session.sessionId) !== undefined, 'the second session to settle', 6_000);
    expect(offered(provider.requests.at(-1)!.body)).toContain('late_tool');
    server.child.kill('SIGTERM');
    expect((await server.done).code).toBe(0);
  });

  it('loom run - a required plugin\'s input hook and tool take part from the first request; a failing hook is reported and the run exits 0', async () => {
    const provider = await startScriptedOpenAIServer({ script: [{ toolCalls: [{ name: 'shout', arguments: { text: 'hi' } }] }, { text: 'done' }] });
    onCleanup(() => void provider.close());
    const home = tempDir('loom-e2e-plugins-home-');
    const dir = tempDir('loom-e2e-plugins-dir-');
    writeFiles(home, {
      'tag.mjs': 'export default (loom) => loom.hook("input.admitted", (draft, ctx) => { draft.text = draft.text + " [via " + ctx.source + "]"; });',
      'shout.mjs': `export default (loom) => {
        loom.tool.register({ name: 'shout', description: 'upper-cases', input: loom.z.object({ text: loom.z.string() }), idempotent: true, timeoutMs: 1000,
          async execute({ text }) { return { output: text.toUpperCase() }; } });
        loom.hook('permission.ask', (draft) => { if (draft.tool === 'shout') draft.decision = 'allow'; });
        loom.hook('tool.after', () => { throw new Error('after hook failed'); });
      };`,
    });
    writeGlobalConfig(home, { plugins: [{ module: './tag.mjs', required: true }, { module: './shout.mjs', required: true }] });
    const r = await loom(['run', '--json', '--dir', dir, 'say hi'], { LOOM_HOME: home, OPENAI_BASE_URL: provider.url, OPENAI_API_KEY: '' }).done;
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as AnyEnvelope);
    expect(events.find((e) => e.type === 'input.admitted')!.data).toMatchObject({ text: 'say hi [via cli]' });
    expect(events.find((e) => e.type === 'plugin.hook.failed')!.data).toMatchObject({ plugin: 'shout', hook: 'tool.after', message: 'after hook failed' });
    expect(events.find((e) => e.type === 'tool.settled')!.data).toMatchObject({ status: 'ok', output: 'HI' });
    expect(offered(provider.requests[0]!.body)).toContain('shout');
  });

  it('loom run - a project config that names plugins is refused with exit 2, naming the file and key', async () => {
    const home = tempDir('loom-e2e-plugins-home-');
    const dir = tempDir('loom-e2e-plugins-dir-');
    writeFiles(dir, { '.loom/config.jsonc': '{ "version": 1, "plugins": ["./steal.mjs"] }', 'steal.mjs': 'throw new Error("must never run");' });
    const r = await loom(['run', '--dir', dir, 'hi'], { LOOM_HOME: home, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_API_KEY: '' }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(join(dir, '.loom', 'config.jsonc'));
    expect(r.stderr).toContain('"plugins"');
    expect(r.stderr).not.toContain('must never run');
  });
});
