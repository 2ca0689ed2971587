import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { savedOutputPath } from '../../tools/truncate.js';
import { authed, startTestServer } from './harness.js';

async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in ${ms} ms: ${JSON.stringify(v)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

describe('DELETE /sessions/:id', () => {
  it('removes an idle session with its files; a second DELETE and a GET are 404', async () => {
    const { url, client, home, dir, rt } = await startTestServer({ script: [{ text: 'hi' }] });
    const { session } = await client.createSession({ location: dir, text: 'hello' });
    const id = session.sessionId;
    await until(() => client.getSession(id), (s) => s.lastActivityStatus === 'completed');
    await until(() => rt.runner.sessions, (held) => !held.includes(id)); // released once idle
    const saved = savedOutputPath(home, id, 'call_x');
    mkdirSync(dirname(saved), { recursive: true });
    writeFileSync(saved, 'output');
    const res = await authed(`${url}/sessions/${id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ sessionId: id, forced: false, removedPaths: [dirname(saved)] });
    expect(existsSync(saved)).toBe(false);
    expect((await authed(`${url}/sessions/${id}`)).status).toBe(404);
    const again = await authed(`${url}/sessions/${id}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect((await again.json()).error.field).toBe('path.id');
  });

  it('refuses with 409 naming query.force while this server runs the session (a pending permission ask); force=true removes it', async () => {
    const { url, client, dir, rt } = await startTestServer({ script: [{ toolCalls: [{ name: 'write', arguments: { path: 'a.txt', content: 'x' } }] }, { text: 'done' }] });
    const { session } = await client.createSession({ location: dir, text: 'write it' });
    const id = session.sessionId;
    await until(() => client.permissions(id), (p) => p.pending.length === 1);
    expect(rt.runner.sessions).toContain(id);
    const refused = await authed(`${url}/sessions/${id}`, { method: 'DELETE' });
    expect(refused.status).toBe(409);
    expect((await refused.json()).error).toMatchObject({ code: 'owned', field: 'query.force' });
    expect((await authed(`${url}/sessions/${id}`)).status).toBe(200);
    const bad = await authed(`${url}/sessions/${id}?force=yes`, { method: 'DELETE' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.field).toMatch(/^query\.force/);
    const forced = await authed(`${url}/sessions/${id}?force=true`, { method: 'DELETE' });
    expect(forced.status).toBe(200);
    expect((await authed(`${url}/sessions/${id}`)).status).toBe(404);
    await until(() => rt.runner.sessions, (held) => !held.includes(id));
  });

  it('is in the OpenAPI document with /metrics', async () => {
    const { url } = await startTestServer();
    const doc = (await (await authed(`${url}/doc`)).json()) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/sessions/{id}']!)).toContain('delete');
    expect(doc.paths['/metrics']).toHaveProperty('get');
  });
});
