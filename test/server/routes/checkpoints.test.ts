import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LoomApiError } from '../../../sdk/index.js';
import { authed, startTestServer } from '../harness.js';

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('GET /sessions/:id/diff', () => {
  it('diff - the SDK gets what the last activity changed, the whole session with all=true, and a 404 naming query.activity for an unknown one', async () => {
    const { client, dir, url } = await startTestServer({
      script: [{ toolCalls: [{ name: 'write', arguments: { path: 'hello.txt', content: 'hi\n' } }] }, { text: 'written' }],
    });
    mkdirSync(join(dir, '.loom'));
    writeFileSync(join(dir, '.loom', 'config.jsonc'), '{ "version": 1, "permission": { "rules": [{ "tool": "*", "action": "allow" }] } }\n');
    const { session } = await client.createSession({ location: dir, text: 'write hello' });
    await until(() => client.getSession(session.sessionId), (s) => s.status === 'idle' && s.lastActivityStatus === 'completed');

    const report = await client.diff(session.sessionId);
    expect(report.activityId).toMatch(/^act_/);
    expect(report.files).toEqual([
      expect.objectContaining({ path: 'hello.txt', status: 'created', before: null, patch: expect.stringContaining('--- /dev/null\n+++ b/hello.txt') }),
    ]);
    expect(report.notes).toEqual([]);
    const all = await client.diff(session.sessionId, { all: true });
    expect(all).toMatchObject({ scope: 'session', activityId: null, files: [{ path: 'hello.txt', status: 'created' }] });
    const byPrefix = await client.diff(session.sessionId, { activity: report.activityId!.slice(0, 10) });
    expect(byPrefix.activityId).toBe(report.activityId);

    const missing = await client.diff(session.sessionId, { activity: 'act_nope' }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(LoomApiError);
    expect(missing).toMatchObject({ status: 404, field: 'query.activity' });
    const both = await authed(`${url}/sessions/${session.sessionId}/diff?all=true&activity=x`);
    expect(both.status).toBe(400);
    const badAll = await authed(`${url}/sessions/${session.sessionId}/diff?all=yes`);
    expect(badAll.status).toBe(400);
    expect(((await badAll.json()) as { error: { field: string } }).error.field).toBe('query.all');
    expect((await authed(`${url}/sessions/ses_none/diff`)).status).toBe(404);
  });
});
