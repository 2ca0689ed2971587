import fs from 'node:fs';
import { once } from 'node:events';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMessages, withAttachments } from '../../actors/history.js';
import { INPUT_ATTACHMENT_BYTES_MAX, INPUT_ATTACHMENTS_BYTES_MAX, INPUT_ATTACHMENTS_MAX } from '../../core/limits.js';
import { LimitExceededError, type Store } from '../../store/index.js';
import { PROJECTION_TABLES } from '../../store/migrations.js';
import type { InputAttachment } from '../../store/schemas.js';
import { AttachmentError, materializeAttachments, type MaterializeOptions } from '../../tools/attachments.js';
import { createHarness } from '../actors/harness.js';
import { onCleanup, tempDir, tempStore } from '../helpers.js';

const never = new AbortController().signal;

async function serve(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const PAGE = '<html><body><h1>Release notes</h1><p>Version <em>2</em> is out.</p><script>x()</script></body></html>';

async function pages(): Promise<string> {
  return serve((req, res) => {
    if (req.url === '/notes') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    } else if (req.url === '/plain') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('just text\n');
    } else if (req.url === '/huge') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('z'.repeat(INPUT_ATTACHMENT_BYTES_MAX + 1));
    } else if (req.url === '/endless') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'e');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    } else if (req.url === '/image') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(Buffer.from([0xff, 0xd8, 0xff]));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
}

/** A URL on a port nothing listens on. */
async function unreachable(): Promise<string> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}/page`;
}

interface World {
  store: Store;
  sessionId: string;
  location: string;
  outside: string;
}

function world(): World {
  const root = fs.realpathSync(tempDir('loom-attach-'));
  const location = path.join(root, 'project');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(location);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(location, 'notes.md'), 'remember the milk\n');
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret\n');
  const store = tempStore();
  const sessionId = store.ids.next('ses');
  store.append({ sessionId, type: 'session.created', data: { location, model: 'openai/test' } });
  return { store, sessionId, location, outside };
}

/** What the CLI does: resolve every attachment first, then admit; a refusal stores nothing. */
async function admitWith(w: World, specs: string[], options: MaterializeOptions = {}) {
  const attachments = await materializeAttachments(w.location, specs, never, options);
  return w.store.admitInput(w.sessionId, { mode: 'steer', text: 'see attached', attachments });
}

function expectNothingStored(w: World): void {
  expect(w.store.inputs(w.sessionId)).toEqual([]);
  expect(w.store.read(w.sessionId).map((e) => e.type)).toEqual(['session.created']);
}

describe('materializeAttachments', () => {
  it('attachments - a file and a URL are resolved and stored with the admitted input', async () => {
    const w = world();
    const base = await pages();
    const { input } = await admitWith(w, ['notes.md', `${base}/notes`, `${base}/plain`]);
    const expected: InputAttachment[] = [
      { kind: 'file', name: 'notes.md', mediaType: 'text/markdown', text: 'remember the milk\n', bytes: 18 },
      { kind: 'url', name: `${base}/notes`, mediaType: 'text/markdown', text: '# Release notes\n\nVersion _2_ is out.', bytes: 36 },
      { kind: 'url', name: `${base}/plain`, mediaType: 'text/plain', text: 'just text\n', bytes: 10 },
    ];
    expect(input.attachments).toEqual(expected);
    const admitted = w.store.read(w.sessionId).find((e) => e.type === 'input.admitted');
    expect(admitted?.data).toMatchObject({ text: 'see attached', attachments: expected });
  });

  it('attachments - a relative path is taken from the given working directory inside the location', async () => {
    const w = world();
    fs.mkdirSync(path.join(w.location, 'docs'));
    fs.writeFileSync(path.join(w.location, 'docs', 'a.txt'), 'a\n');
    const [a] = await materializeAttachments(w.location, ['a.txt'], never, { cwd: path.join(w.location, 'docs') });
    expect(a).toMatchObject({ kind: 'file', name: 'docs/a.txt', text: 'a\n' });
  });

  it('attachments - an input without attachments stores none', async () => {
    const w = world();
    const { input } = await admitWith(w, []);
    expect(input.attachments).toEqual([]);
    expect(w.store.read(w.sessionId).find((e) => e.type === 'input.admitted')?.data).not.toHaveProperty('attachments');
  });

  const refusals: [string, (w: World, base: string) => Promise<string[]> | string[], RegExp][] = [
    ['a path outside the directory', () => ['../outside/secret.txt'], /cannot attach "\.\.\/outside\/secret\.txt": path .* is outside the session directory/],
    ['an absolute path outside the directory', (w) => [path.join(w.outside, 'secret.txt')], /is outside the session directory/],
    [
      'a symlink pointing outside',
      (w) => {
        fs.symlinkSync(path.join(w.outside, 'secret.txt'), path.join(w.location, 'link.txt'));
        return ['link.txt'];
      },
      /cannot attach "link\.txt": .*symbolic link that points outside/,
    ],
    ['a missing file', () => ['missing.txt'], /cannot attach "missing\.txt": file .* does not exist/],
    [
      'a binary file',
      (w) => {
        fs.writeFileSync(path.join(w.location, 'logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x1a]));
        return ['logo.png'];
      },
      /cannot attach "logo\.png": it looks binary/,
    ],
    [
      'a directory',
      (w) => {
        fs.mkdirSync(path.join(w.location, 'src'));
        return ['src'];
      },
      /cannot attach "src": it is a directory/,
    ],
    [
      'a file over the attachment bound',
      (w) => {
        fs.writeFileSync(path.join(w.location, 'big.txt'), 'b'.repeat(INPUT_ATTACHMENT_BYTES_MAX + 1));
        return ['notes.md', 'big.txt'];
      },
      new RegExp(`cannot attach "big\\.txt": it is ${INPUT_ATTACHMENT_BYTES_MAX + 1} bytes`),
    ],
    ['a URL whose text is over the attachment bound', (_w, base) => [`${base}/huge`], /cannot attach ".*\/huge": it is \d+ bytes; an attachment may have at most/],
    ['a URL whose body is over the fetch cap', (_w, base) => [`${base}/endless`], /cannot attach ".*\/endless": its body is larger than \d+ bytes/],
    ['an unreachable URL', async () => ['notes.md', await unreachable()], /cannot attach "http:\/\/127\.0\.0\.1:\d+\/page": .*ECONNREFUSED/],
    ['a URL answering 404', (_w, base) => [`${base}/gone`], /HTTP 404/],
    ['a binary URL', (_w, base) => [`${base}/image`], /image\/jpeg.*only text is fetched/],
    ['a non-http URL', () => ['ftp://example.com/notes.txt'], /the scheme "ftp" is not supported/],
    ['too many attachments', () => Array.from({ length: INPUT_ATTACHMENTS_MAX + 1 }, () => 'notes.md'), new RegExp(`at most ${INPUT_ATTACHMENTS_MAX}`)],
    [
      'attachments over the total bound',
      (w) => {
        const each = 'c'.repeat(INPUT_ATTACHMENT_BYTES_MAX);
        for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(w.location, `part${i}.txt`), each);
        return Array.from({ length: 5 }, (_, i) => `part${i}.txt`);
      },
      new RegExp(`add up to more than ${INPUT_ATTACHMENTS_BYTES_MAX} bytes`),
    ],
  ];

  it.each(refusals)('attachments - refuses %s and stores nothing', async (_name, specsOf, message) => {
    const w = world();
    const base = await pages();
    const specs = await specsOf(w, base);
    const failure = admitWith(w, specs);
    await expect(failure).rejects.toThrow(AttachmentError);
    await expect(failure).rejects.toThrow(message);
    expectNothingStored(w);
  });

  it('attachments - a URL that never answers is refused after its timeout', async () => {
    const w = world();
    const base = await serve(() => {});
    const failure = admitWith(w, [`${base}/silent`], { fetchLimits: { headersTimeoutMs: 200 } });
    await expect(failure).rejects.toThrow(/cannot attach ".*\/silent": fetching .* timed out: the server sent no response headers/);
    expectNothingStored(w);
  });
});

describe('admitInput with attachments', () => {
  const attachment = (text: string, name = 'a.txt'): InputAttachment => ({ kind: 'file', name, mediaType: 'text/plain', text, bytes: Buffer.byteLength(text) });

  it('admitInput - refuses attachments over the bounds and stores nothing', () => {
    const w = world();
    expect(() => w.store.admitInput(w.sessionId, { mode: 'steer', text: 'x', attachments: [attachment('y'.repeat(INPUT_ATTACHMENT_BYTES_MAX + 1))] })).toThrow(
      LimitExceededError,
    );
    const many = Array.from({ length: INPUT_ATTACHMENTS_MAX + 1 }, () => attachment('y'));
    expect(() => w.store.admitInput(w.sessionId, { mode: 'steer', text: 'x', attachments: many })).toThrow(/INPUT_ATTACHMENTS_MAX/);
    expectNothingStored(w);
  });

  it('admitInput - attachments survive a projection rebuild', async () => {
    const w = world();
    await admitWith(w, ['notes.md']);
    const live = w.store.queries.dumpProjections(PROJECTION_TABLES);
    w.store.rebuildProjections();
    expect(w.store.queries.dumpProjections(PROJECTION_TABLES)).toEqual(live);
    expect(w.store.inputs(w.sessionId)[0]!.attachments).toEqual([attachment('remember the milk\n', 'notes.md')].map((a) => ({ ...a, mediaType: 'text/markdown' })));
  });
});

describe('attachments in the conversation', () => {
  it('withAttachments - appends one block per attachment after the text', () => {
    const text = withAttachments('look', [
      { kind: 'file', name: 'a "b".md', mediaType: 'text/markdown', text: 'one', bytes: 3 },
      { kind: 'url', name: 'https://x.test/?a=1&b=2', mediaType: 'text/plain', text: 'two\n', bytes: 4 },
    ]);
    expect(text).toBe(
      'look\n\n<attachment kind="file" name="a &quot;b&quot;.md" type="text/markdown">\none\n</attachment>\n\n' +
        '<attachment kind="url" name="https://x.test/?a=1&amp;b=2" type="text/plain">\ntwo\n</attachment>',
    );
  });

  it('buildMessages - a user message without attachments is its text alone', () => {
    const messages = buildMessages([{ messageId: 'in_1', role: 'user', activityId: 'act_1', seq: 2, parts: [], toolCalls: [], text: 'hi' }]);
    expect(messages).toEqual([{ role: 'user', content: 'hi' }]);
  });

  it('attachments - the attached file and page reach the provider request', async () => {
    const h = await createHarness({ script: [{ text: 'You need milk; version 2 is out.' }] });
    fs.writeFileSync(path.join(h.location, 'notes.md'), 'remember the milk\n');
    const base = await pages();
    const attachments = await materializeAttachments(fs.realpathSync(h.location), ['notes.md', `${base}/notes`], never);
    h.store.admitInput(h.sessionId, { mode: 'steer', text: 'what do these say?', attachments });
    await h.run();
    const body = h.server.requests[0]!.body as { messages: { role: string; content: string }[] };
    const user = body.messages.filter((m) => m.role === 'user').map((m) => m.content);
    expect(user).toEqual([
      'what do these say?\n\n<attachment kind="file" name="notes.md" type="text/markdown">\nremember the milk\n</attachment>\n\n' +
        `<attachment kind="url" name="${base}/notes" type="text/markdown">\n# Release notes\n\nVersion _2_ is out.\n</attachment>`,
    ]);
    expect(h.types()).toContain('activity.settled');
  });
});
