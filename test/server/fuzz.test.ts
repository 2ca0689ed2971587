import fc from 'fast-check';
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN } from './harness.js';

/** Every endpoint of the contract, with `{id}`, `{requestId}` and `{jobId}` to fill. */
const ENDPOINTS: [string, string][] = [
  ['GET', '/health'],
  ['POST', '/auth/cookie'],
  ['GET', '/sessions'],
  ['POST', '/sessions'],
  ['GET', '/sessions/{id}'],
  ['GET', '/sessions/{id}/state'],
  ['POST', '/sessions/{id}/inputs'],
  ['POST', '/sessions/{id}/run'],
  ['POST', '/sessions/{id}/compact'],
  ['POST', '/sessions/{id}/wake'],
  ['POST', '/sessions/{id}/cancel'],
  ['POST', '/sessions/{id}/recovery'],
  ['GET', '/sessions/{id}/permissions'],
  ['POST', '/sessions/{id}/permissions/revoke'],
  ['POST', '/sessions/{id}/permissions/{requestId}'],
  ['GET', '/sessions/{id}/jobs'],
  ['POST', '/jobs/{jobId}/cancel'],
  ['GET', '/sessions/{id}/events'],
  ['GET', '/sessions/{id}/events/stream'],
  ['GET', '/events/stream'],
  ['GET', '/machines/session'],
  ['GET', '/models'],
  ['GET', '/config'],
  ['GET', '/doc'],
];

/** Keys the contract's bodies know, so generated objects often get past "unknown key" into the value checks. */
const KEYS = ['location', 'model', 'title', 'doubleTexting', 'text', 'mode', 'clientId', 'reason', 'decision', 'reply', 'message', 'tool', 'pattern', 'token', 'jobId'];

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** Raw HTTP over loopback (fetch refuses malformed headers and some paths before sending them). */
function send(port: number, r: Sent): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: r.method, path: r.path, headers: r.headers }, (res) => {
      const contentType = String(res.headers['content-type'] ?? '');
      if (contentType.startsWith('text/event-stream')) {
        res.destroy(); // a stream opened: the status is all we need
        resolve({ status: res.statusCode!, contentType, body: '' });
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, contentType, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}

const segment = (valid: string) =>
  fc.oneof(
    fc.constant(valid),
    fc.constant(valid.slice(0, 6)),
    fc.string({ maxLength: 40 }).map(encodeURIComponent),
    fc.string({ unit: 'grapheme', maxLength: 20 }).map(encodeURIComponent),
    fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', '..', '.', '%2F', 'a%2Fb', 'x'.repeat(300), '-1', '0', 'null', '%C0%AF'),
  );

const queryArb = fc.oneof(
  fc.constant(''),
  fc
    .record({ after: fc.oneof(fc.integer(), fc.string({ maxLength: 12 }), fc.constantFrom('1e3', '9'.repeat(30), '0x10', '-0', ' 1', 'NaN')), limit: fc.oneof(fc.integer(), fc.string({ maxLength: 8 })) }, { requiredKeys: [] })
    .map((q) => `?${Object.entries(q).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&')}`),
  fc.constantFrom('?after', '?after=&after=3', '?limit=1&limit=2', '?%zz=1', '?after=%'),
);

const valueArb = fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.constantFrom('steer', 'queue', 'once', 'always', 'reject', 'retry', 'abandon', '', '/tmp', 'openai/x'));
const bodyArb = fc.oneof(
  fc.constant(undefined),
  fc.dictionary(fc.constantFrom(...KEYS), valueArb, { maxKeys: 4 }).map((o) => JSON.stringify(o)),
  fc.dictionary(fc.string({ maxLength: 10 }), valueArb, { maxKeys: 3 }).map((o) => JSON.stringify(o)),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 60 }),
  fc.constantFrom('{', '{"text":', '[]', 'null', '"x"', '{"__proto__":{"a":1}}', '{"text":"\\ud800"}', '\u0000', '{"text":"a","text":1}'),
);

const headersArb = fc.record(
  {
    contentType: fc.constantFrom(undefined, 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', ''),
    auth: fc.constantFrom('good', 'good', 'good', 'good', 'good', 'good', 'good', 'cookie', 'none', 'wrong', 'basic', 'bad-cookie'),
    lastEventId: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 20 }).filter((s) => /^[\x20-\x7e]*$/.test(s)), fc.constantFrom('5', '-1', '99999999999999999999', ' ')),
    host: fc.constantFrom('ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'evil.example', 'localhost:1'),
  },
  { requiredKeys: ['auth', 'host'] },
);

describe('server bad input (property-based)', () => {
  it('fuzz - malformed bodies, params, queries and headers to every endpoint: no 5xx, no crash, every 4xx names the field', async () => {
    const { client, dir, running } = await startTestServer();
    const { session } = await client.createSession({ location: dir });
    const port = running.port;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ENDPOINTS), segment(session.sessionId), segment('req_x'), queryArb, bodyArb, headersArb, async ([method, template], id, requestId, query, body, h) => {
        const path = template.replace('{id}', id).replace('{requestId}', requestId).replace('{jobId}', id) + query;
        const headers: Record<string, string> = { host: h.host === 'ok' ? `127.0.0.1:${port}` : h.host };
        if (h.auth === 'good') headers.authorization = `Bearer ${TEST_TOKEN}`;
        if (h.auth === 'wrong') headers.authorization = 'Bearer nope';
        if (h.auth === 'basic') headers.authorization = `Basic ${TEST_TOKEN}`;
        if (h.auth === 'cookie') headers.cookie = `loom_session=${TEST_TOKEN}`;
        if (h.auth === 'bad-cookie') headers.cookie = 'loom_session="%; =;;';
        if (h.contentType !== undefined) headers['content-type'] = h.contentType;
        if (h.lastEventId !== undefined) headers['last-event-id'] = h.lastEventId;
        if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
        const res = await send(port, { method, path, headers, body });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect(res.status, `${method} ${path} ${JSON.stringify(headers)} ${body}: ${res.body}`).toBeLessThan(500);
        if (res.status >= 400) {
          const parsed = JSON.parse(res.body) as { error: { code: string; message: string; field?: string } };
          expect(parsed.error.field, `${method} ${path} ${body}: ${res.body}`).toMatch(/^(body|query|path|header|cookie)(\.|$)/);
          expect(parsed.error.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 1000 },
    );
    if (process.env.LOOM_FUZZ_DEBUG) console.log(JSON.stringify([...statuses]));
    // Still serving, and a mix of outcomes was exercised.
    expect((await client.health()).ok).toBe(true);
    expect([...statuses.keys()].filter((s) => s >= 400).length).toBeGreaterThanOrEqual(4);
  });
});
