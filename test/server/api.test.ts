import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { BindRefusedError, loadServerToken, ServerTokenError } from '../../server/auth.js';
import { listen } from '../../server/server.js';
import { LoomApiError } from '../../sdk/index.js';
import { authed, startTestServer, TEST_TOKEN } from './harness.js';

/** A request with a Host header of our choosing (fetch does not let us set Host). */
function getWithHost(url: string, host: string, path = '/sessions'): Promise<{ status: number; body: any }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, headers: { host, authorization: `Bearer ${TEST_TOKEN}` } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in ${ms} ms: ${JSON.stringify(v)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function apiError(p: Promise<unknown>): Promise<LoomApiError> {
  try {
    await p;
  } catch (error) {
    if (error instanceof LoomApiError) return error;
    throw error;
  }
  throw new Error('expected an API error');
}

describe('server auth', () => {
  it('auth - a request without the token, or with a wrong one, gets 401 naming the header', async () => {
    const { url } = await startTestServer();
    for (const headers of [{}, { authorization: 'Bearer wrong-token-0000000000' }, { authorization: `Basic ${TEST_TOKEN}` }, { cookie: 'loom_session=nope' }] as Record<string, string>[]) {
      const res = await fetch(`${url}/sessions`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/Bearer/);
      expect((await res.json()).error).toMatchObject({ code: 'unauthorized', field: 'header.authorization' });
    }
    for (const path of ['/health', '/doc', '/events/stream', '/machines/session', '/nope']) expect((await fetch(`${url}${path}`)).status).toBe(401);
    expect((await authed(`${url}/sessions`)).status).toBe(200);
  });

  it('auth - POST /auth/cookie trades the token for an HttpOnly SameSite=Strict cookie that authorises requests', async () => {
    const { url } = await startTestServer();
    const wrong = await fetch(`${url}/auth/cookie`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'wrong-token-000000000' }) });
    expect(wrong.status).toBe(401);
    expect((await wrong.json()).error.field).toBe('body.token');
    const res = await fetch(`${url}/auth/cookie`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: TEST_TOKEN }) });
    expect(res.status).toBe(204);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^loom_session=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\//);
    const pair = cookie.split(';')[0]!;
    expect((await fetch(`${url}/sessions`, { headers: { cookie: pair } })).status).toBe(200);
    // The cookie also opens an SSE stream (what the inspector's EventSource sends).
    const sse = await fetch(`${url}/events/stream`, { headers: { cookie: pair } });
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/text\/event-stream/);
    await sse.body!.cancel();
  });

  it('host check - a request whose Host is not the bound address gets 421 (DNS rebinding)', async () => {
    const { url, running } = await startTestServer();
    const evil = await getWithHost(url, 'evil.example');
    expect(evil.status).toBe(421);
    expect(evil.body.error.field).toBe('header.host');
    expect((await getWithHost(url, `evil.example:${running.port}`)).status).toBe(421);
    expect((await getWithHost(url, `127.0.0.1:${running.port + 1}`)).status).toBe(421);
    expect((await getWithHost(url, `localhost:${running.port}`)).status).toBe(200);
    expect((await getWithHost(url, `127.0.0.1:${running.port}`)).status).toBe(200);
  });

  it('bind - a host other than loopback is refused unless the token was set explicitly', async () => {
    const { rt } = await startTestServer();
    await expect(listen(rt, { host: '0.0.0.0', port: 0, explicitToken: false })).rejects.toBeInstanceOf(BindRefusedError);
    await expect(listen(rt, { host: '192.0.2.1', port: 0, explicitToken: false })).rejects.toThrow(/LOOM_SERVER_TOKEN/);
  });

  it('token - generated once into $LOOM_HOME/server-token with mode 0600, reused, and refused when others can read it', () => {
    const home = tempDir();
    const first = loadServerToken(home, { env: {} });
    expect(first.explicit).toBe(false);
    expect(first.token).toMatch(/^[0-9a-f]{64}$/);
    const file = join(home, 'server-token');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadServerToken(home, { env: {} }).token).toBe(first.token);
    expect(loadServerToken(home, { env: { LOOM_SERVER_TOKEN: 'explicit-token-0123456789' } })).toMatchObject({ token: 'explicit-token-0123456789', explicit: true });
    expect(() => loadServerToken(home, { env: { LOOM_SERVER_TOKEN: 'short' } })).toThrow(ServerTokenError);
    const other = join(home, 'given-token');
    writeFileSync(other, 'given-token-0123456789abcdef\n', { mode: 0o600 });
    expect(loadServerToken(home, { env: {}, tokenFile: other })).toMatchObject({ token: 'given-token-0123456789abcdef', explicit: true });
    chmodSync(file, 0o644);
    expect(() => loadServerToken(home, { env: {} })).toThrow(/readable by others/);
    expect(readFileSync(file, 'utf8').trim()).toBe(first.token);
  });
});

describe('server endpoints', () => {
  it('sessions - create with text runs the session to completion; list, get (by prefix) and state show it', async () => {
    const { client, dir } = await startTestServer({ script: [{ text: 'hello from the model' }] });
    const created = await client.createSession({ location: dir, text: 'say hello', title: 'greeting' });
    expect(created.session).toMatchObject({ location: dir, title: 'greeting', model: 'openai/gpt-4o-mini' });
    expect(created.input).toMatchObject({ mode: 'queue', text: 'say hello' });
    const id = created.session.sessionId;
    const done = await until(() => client.getSession(id), (s) => s.lastActivityStatus === 'completed');
    expect(done.status).toBe('idle');
    expect((await client.getSession(id.slice(0, id.length - 2))).sessionId).toBe(id);
    expect((await client.listSessions()).sessions.map((s) => s.sessionId)).toContain(id);
    const state = await client.getSessionState(id);
    expect(state).toMatchObject({ sessionId: id, state: 'idle', children: [], inbox: [] });
    expect(state.usage.turns).toBe(1);
    const page = await client.eventsPage(id, { after: 0, limit: 3 });
    expect(page.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(page).toMatchObject({ next: 3, more: true });
    const rest = await client.eventsPage(id, { after: page.next });
    expect(rest.events[0]!.seq).toBe(4);
    expect(rest.events.some((e) => e.type === 'activity.settled')).toBe(true);
  });

  it('sessions - bad bodies and unknown ids are 4xx naming the field', async () => {
    const { client, dir } = await startTestServer();
    expect(await apiError(client.getSession('ses_nope'))).toMatchObject({ status: 404, field: 'path.id' });
    expect(await apiError(client.getSessionState('ses_nope'))).toMatchObject({ status: 404, field: 'path.id' });
    expect(await apiError(client.createSession({ location: 'relative/dir' }))).toMatchObject({ status: 400, field: 'body.location' });
    expect(await apiError(client.createSession({ location: join(dir, 'missing') }))).toMatchObject({ status: 400, field: 'body.location' });
    expect(await apiError(client.createSession({ location: dir, model: 'nope/model' }))).toMatchObject({ status: 400, field: 'body.model' });
    expect(await apiError(client.createSession({ location: dir, mode: 'queue' }))).toMatchObject({ status: 400, field: 'body.mode' });
    expect(await apiError(client.createSession({ location: dir, extra: 1 } as never))).toMatchObject({ status: 400, field: 'body.extra' });
    expect(await apiError(client.createSession({} as never))).toMatchObject({ status: 400, field: 'body.location' });
    expect((await client.listSessions()).sessions).toEqual([]); // nothing was created
  });

  it('inputs - admitted as queue when idle, idempotent by clientId, and a busy session applies its double-texting policy', async () => {
    const { client, dir } = await startTestServer({ respond: () => ({ text: 'slow answer', delayMs: 40, chunkSize: 1 }) });
    const { session } = await client.createSession({ location: dir, doubleTexting: 'reject' });
    const id = session.sessionId;
    const first = await client.prompt(id, { text: 'one', clientId: 'c-1' });
    expect(first).toMatchObject({ admitted: true, policy: null, input: { mode: 'queue' } });
    await until(() => client.getSession(id), (s) => s.status === 'active');
    const again = await client.prompt(id, { text: 'one', clientId: 'c-1' });
    expect(again).toMatchObject({ admitted: false, input: { inputId: first.input.inputId } });
    expect(await apiError(client.prompt(id, { text: 'two' }))).toMatchObject({ status: 409, code: 'busy', field: 'body.mode' });
    const queued = await client.prompt(id, { text: 'three', mode: 'queue' });
    expect(queued).toMatchObject({ admitted: true, input: { mode: 'queue' } });
    expect(await apiError(client.prompt(id, { text: '' }))).toMatchObject({ status: 400, field: 'body.text' });
    expect(await apiError(client.prompt(id, { text: 'x', mode: 'later' as never }))).toMatchObject({ status: 400, field: 'body.mode' });
    expect(await apiError(client.prompt('ses_nope', { text: 'x' }))).toMatchObject({ status: 404, field: 'path.id' });
    await until(() => client.getSession(id), (s) => s.activities === 2 && s.status === 'idle');
  });

  it('inputs - the interrupt policy records a cancel of the current activity with the input', async () => {
    const { client, dir } = await startTestServer({ respond: (_req, i) => (i === 0 ? { text: 'a long answer that goes on', delayMs: 60, chunkSize: 1 } : { text: 'short' }) });
    const { session } = await client.createSession({ location: dir, doubleTexting: 'interrupt', text: 'first' });
    const id = session.sessionId;
    await until(() => client.eventsPage(id), (p) => p.events.some((e) => e.type === 'text.delta'));
    const r = await client.prompt(id, { text: 'second' });
    expect(r).toMatchObject({ policy: 'interrupt', admitted: true, input: { mode: 'steer' } });
    const page = await until(() => client.eventsPage(id), (p) => p.events.some((e) => e.type === 'activity.settled'));
    const types = page.events.map((e) => e.type);
    expect(types.indexOf('cancel.requested')).toBe(types.indexOf('input.admitted', 2) - 1);
    expect(page.events.find((e) => e.type === 'activity.settled')!.data.status).toBe('cancelled');
  });

  it('run, wake, cancel and recovery - recorded as requests; cancel and recovery without an activity are 409', async () => {
    const { client, dir } = await startTestServer({ respond: () => ({ text: 'x'.repeat(200), delayMs: 30, chunkSize: 2 }) });
    const { session } = await client.createSession({ location: dir });
    const id = session.sessionId;
    expect(await apiError(client.cancel(id))).toMatchObject({ status: 409, field: 'path.id' });
    expect(await apiError(client.recover(id, { decision: 'retry' }))).toMatchObject({ status: 409, field: 'path.id' });
    expect(await apiError(client.recover(id, { decision: 'maybe' as never }))).toMatchObject({ status: 400, field: 'body.decision' });
    const wake = await client.wake(id);
    expect(wake.sessionId).toBe(id);
    const run = await client.run(id);
    expect(run.runId).toMatch(/^run_/);
    await until(() => client.eventsPage(id), (p) => p.events.some((e) => e.type === 'text.delta'));
    const cancel = await client.cancel(id, { reason: 'enough' });
    const page = await until(() => client.eventsPage(id), (p) => p.events.some((e) => e.type === 'activity.settled'));
    expect(page.events.find((e) => e.seq === cancel.seq)).toMatchObject({ type: 'cancel.requested', data: { reason: 'enough' } });
    expect(page.events.find((e) => e.type === 'activity.settled')!.data.status).toBe('cancelled');
    expect(page.events.find((e) => e.type === 'run.requested')!.data.runId).toBe(run.runId);
  });

  it('permissions - an ask waits durably; it is listed, shown in the state, answered over HTTP, and the tool runs', async () => {
    const { client, dir } = await startTestServer({
      script: [{ toolCalls: [{ name: 'write', arguments: { path: 'out.txt', content: 'written over HTTP\n' } }] }, { text: 'done' }],
    });
    const { session } = await client.createSession({ location: dir, text: 'write a file' });
    const id = session.sessionId;
    const asks = await until(() => client.permissions(id), (p) => p.pending.length === 1);
    const ask = asks.pending[0]!;
    expect(ask).toMatchObject({ tool: 'write', status: 'pending' });
    const state = await client.getSessionState(id);
    expect(state.state).toBe('awaitingTools');
    expect(state.children).toEqual([expect.objectContaining({ kind: 'toolCall', tool: 'write', state: 'awaitingPermission' })]);
    expect(state.permissions.pending[0].requestId).toBe(ask.requestId);
    expect(await apiError(client.replyPermission(id, 'req_nope', { reply: 'once' }))).toMatchObject({ status: 404, field: 'path.requestId' });
    expect(await apiError(client.replyPermission(id, ask.requestId, { reply: 'sure' as never }))).toMatchObject({ status: 400, field: 'body.reply' });
    await client.replyPermission(id, ask.requestId, { reply: 'always' });
    await until(() => client.getSession(id), (s) => s.lastActivityStatus === 'completed');
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('written over HTTP\n');
    expect(await apiError(client.replyPermission(id, ask.requestId, { reply: 'once' }))).toMatchObject({ status: 409, field: 'path.requestId' });
    const grants = (await client.permissions(id)).grants;
    expect(grants).toEqual([expect.objectContaining({ tool: 'write' })]);
    expect(await apiError(client.revokePermission(id, { tool: 'bash' }))).toMatchObject({ status: 404, field: 'body.tool' });
    const revoked = await client.revokePermission(id, { tool: 'write' });
    expect(revoked.revoked).toHaveLength(1);
    expect((await client.permissions(id)).grants).toEqual([]);
  });

  it('jobs - listed per session; cancelling an unknown job is 404 naming the job', async () => {
    const { client, dir } = await startTestServer();
    const { session } = await client.createSession({ location: dir });
    expect(await client.jobs(session.sessionId)).toEqual({ jobs: [] });
    expect(await apiError(client.cancelJob('job_nope'))).toMatchObject({ status: 404, field: 'path.jobId' });
    expect(await apiError(client.jobs('ses_nope'))).toMatchObject({ status: 404, field: 'path.id' });
  });

  it('events - the page query is validated', async () => {
    const { url, client, dir } = await startTestServer();
    const { session } = await client.createSession({ location: dir });
    for (const [q, field] of [['after=-1', 'query.after'], ['after=abc', 'query.after'], ['limit=0', 'query.limit'], ['limit=100000', 'query.limit']] as const) {
      const res = await authed(`${url}/sessions/${session.sessionId}/events?${q}`);
      expect(res.status).toBe(400);
      expect((await res.json()).error.field).toBe(field);
    }
    const bad = await authed(`${url}/sessions/${session.sessionId}/events/stream`, { headers: { 'last-event-id': 'x1' } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.field).toBe('header.last-event-id');
  });

  it('machines, models, config and doc - the statechart, the default model, the config with secrets redacted, OpenAPI 3.1', async () => {
    const { client, url, home } = await startTestServer();
    writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 1, model: 'openai/test-model', providers: { openai: { apiKey: 'sk-very-secret' } } }));
    // The inspector's graph of the statechart (server/inspector/graph.ts): state ids as `state` prints them.
    const machine = (await client.sessionMachine()) as { states: { id: string; initial: string | null }[] };
    expect(machine.states.map((s) => s.id)).toEqual(expect.arrayContaining(['idle', 'providerTurn', 'providerTurn.streaming', 'awaitingTools', 'steerCoalescing', 'recovering']));
    expect(machine.states.find((s) => s.id === '')!.initial).toBe('idle');
    const models = await client.models();
    expect(models.default).toBe('openai/test-model');
    expect(models.providers[0]).toMatchObject({ id: 'openai', configured: true });
    const config = await client.config();
    // A version 1 key is used from memory (models above: configured) and never shown.
    expect(JSON.stringify(config)).not.toContain('sk-very-secret');
    expect(config.config.providers).toEqual({});
    expect(config.config.version).toBe(2);
    const doc = (await (await authed(`${url}/doc`)).json()) as { openapi: string; paths: Record<string, object> };
    expect(doc.openapi).toBe('3.1.0');
    for (const p of ['/sessions', '/sessions/{id}', '/sessions/{id}/inputs', '/sessions/{id}/events/stream', '/events/stream', '/jobs/{jobId}/cancel', '/sessions/{id}/permissions/{requestId}']) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
  });

  it('bodies - a body that is not JSON is 415 or 400 naming it; a huge body is 413', async () => {
    const { url, client, dir } = await startTestServer();
    const { session } = await client.createSession({ location: dir });
    const path = `${url}/sessions/${session.sessionId}/inputs`;
    const text = await authed(path, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(text.status).toBe(415);
    expect((await text.json()).error.field).toBe('header.content-type');
    const broken = await authed(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":' });
    expect(broken.status).toBe(400);
    expect((await broken.json()).error.field).toBe('body');
    const huge = await authed(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'x'.repeat(3 * 1024 * 1024) }) });
    expect(huge.status).toBe(413);
    expect((await huge.json()).error.field).toBe('body');
  });
});
