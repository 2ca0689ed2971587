import { describe, expect, it } from 'vitest';
import { createApp, type ServerContext } from '../../../server/app.js';
import { machineGraphOf } from '../../../server/inspector/statechart.js';
import { inspectorRoutes } from '../../../server/routes/inspector.js';
import { tempStore } from '../../helpers.js';

const TOKEN = 'inspector-test-token-0123456789';
const HOST = 'loom.test:4747';

/**
 * The real app (Host check, auth, error handling, /doc) with the inspector's routes over a temp
 * store, called in-process: these routes read only the store, so no sessions run here.
 */
function app() {
  const rt = { store: tempStore(), token: TOKEN, allowedHosts: new Set([HOST]), version: '0.0.0-test' } as unknown as ServerContext;
  const hono = createApp(rt, [inspectorRoutes]);
  const get = (path: string, auth = true) => hono.request(path, { headers: { host: HOST, ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) } });
  return { rt, get };
}

describe('inspector routes', () => {
  it('GET /machines/:name - the graphs of the session, tool-call and job machines', async () => {
    const { get } = app();
    for (const name of ['session', 'toolCall', 'job'] as const) {
      const res = await get(`/machines/${name}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(machineGraphOf(name));
    }
  });

  it('GET /machines/:name - an unknown machine is a 400 naming path.name; no token is a 401', async () => {
    const { get } = app();
    const unknown = await get('/machines/nope');
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error.field).toBe('path.name');
    expect((await get('/machines/session', false)).status).toBe(401);
    expect((await get('/machines/session/svg', false)).status).toBe(401);
  });

  it('GET /machines/:name/svg - draws the machine with the given state highlighted; an unknown state is a 400', async () => {
    const { get } = app();
    const res = await get('/machines/session/svg?state=awaitingTools');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('image/svg+xml');
    const svg = await res.text();
    expect(svg).toMatch(/<g class="state atomic active" data-state="awaitingTools" aria-current="true">/);
    const plain = await (await get('/machines/toolCall/svg')).text();
    expect(plain).not.toContain('aria-current');
    const bad = await get('/machines/session/svg?state=nowhere');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatchObject({ field: 'query.state', message: expect.stringContaining('no state "nowhere"') });
    expect((await get('/machines/nope/svg')).status).toBe(400);
  });

  it('GET /events/info - the newest gseq and every event type', async () => {
    const { rt, get } = app();
    rt.store.append({ sessionId: null, type: 'config.updated', data: { source: 'test', keys: [] } } as never);
    const info = await (await get('/events/info')).json();
    expect(info.gseq).toBe(rt.store.maxGseq());
    expect(info.gseq).toBeGreaterThan(0);
    expect(info.types).toEqual(expect.arrayContaining(['permission.asked', 'permission.replied', 'tool.settled', 'activity.settled']));
  });

  it('GET /inspector - the page and its assets are served without the token, from this server, with a strict CSP', async () => {
    const { get } = app();
    const page = await get('/inspector', false);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'; script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/inspector/assets/app.js"></script>');
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toContain(TOKEN);
    const js = await get('/inspector/assets/app.js', false);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toContain('text/javascript');
    expect((await js.text()).length).toBeGreaterThan(1000);
    const css = await get('/inspector/assets/app.css', false);
    expect(css.headers.get('content-type')).toContain('text/css');
  });

  it('GET /inspector/assets/:file - only the bundle files are served', async () => {
    const { get } = app();
    for (const path of ['/inspector/assets/other.js', '/inspector/assets/..%2F..%2Fpackage.json', '/inspector/assets/app.js.map']) {
      const res = await get(path, false);
      expect(res.status).toBe(404);
      expect((await res.json()).error.field).toBe('path.file');
    }
    // Only the page is public: the API next to it still needs the token.
    expect((await get('/inspectorx', false)).status).toBe(401);
    expect((await get('/sessions', false)).status).toBe(401);
  });

  it('GET /doc - the inspector routes are documented', async () => {
    const { get } = app();
    const doc = await (await get('/doc')).json();
    for (const path of ['/machines/{name}', '/machines/{name}/svg', '/events/info', '/inspector', '/inspector/assets/{file}']) expect(doc.paths[path]).toBeDefined();
  });
});
