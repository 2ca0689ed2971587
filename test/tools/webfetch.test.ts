import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WEBFETCH_BODY_BYTES_MAX } from '../../core/limits.js';
import { builtinTools, createDefaultRegistry } from '../../tools/builtin/index.js';
import { ToolCancelledError, ToolInputError } from '../../tools/errors.js';
import {
  BinaryContentError,
  FetchAbortedError,
  FetchConnectionError,
  FetchHttpError,
  FetchTimeoutError,
  fetchBounded,
  fetchText,
  InvalidUrlError,
  TooManyRedirectsError,
  UnsupportedUrlSchemeError,
} from '../../tools/fetch.js';
import type { ToolContext } from '../../tools/types.js';
import { onCleanup, tempDir } from '../helpers.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  url: string;
  /** Resolves when the server sees the connection of the n-th request close. */
  closed: Promise<void>[];
  /** Bytes each response managed to write before its connection closed. */
  written: number[];
}

/** A real HTTP server on loopback; every request's socket is watched so tests can see it close. */
async function serve(routes: Record<string, Handler>): Promise<TestServer> {
  const closed: Promise<void>[] = [];
  const written: number[] = [];
  const server = createServer((req, res) => {
    const index = closed.length;
    written.push(0);
    closed.push(new Promise((resolve) => req.socket.once('close', () => resolve())));
    const write = res.write.bind(res);
    res.write = ((chunk: any, ...rest: any[]) => {
      written[index]! += Buffer.byteLength(chunk);
      return write(chunk, ...rest);
    }) as typeof res.write;
    res.on('error', () => {});
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = routes[path];
    if (handler === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, closed, written };
}

const send =
  (contentType: string, body: string | Buffer): Handler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
  };

/** Writes 64 KiB chunks for as long as the client reads. */
const endless: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': res.getHeader('content-type') ?? 'text/plain' });
  const chunk = Buffer.alloc(64 * 1024, 'a');
  const pump = (): void => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
};

/** Sends headers and a little body, then nothing more. */
const stalls: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write('the beginning');
};

const silent: Handler = () => {};

const PAGE = `<!doctype html><html><head><title>Notes</title><style>body { color: red }</style></head>
<body><h1>Shopping</h1><p>Buy <strong>milk</strong> and <a href="/eggs">eggs</a>.</p>
<script>document.write('tracking')</script><ul><li>one</li><li>two</li></ul></body></html>`;

const never = new AbortController().signal;

function context(signal: AbortSignal = never): ToolContext {
  return { sessionId: 'ses_1', activityId: '', callId: 'call_1', location: tempDir(), home: tempDir(), signal, services: {} };
}

describe('fetchText', () => {
  it('fetchText - turns HTML into Markdown by default, dropping scripts and styles', async () => {
    const s = await serve({ '/page': send('text/html; charset=utf-8', PAGE) });
    const got = await fetchText(`${s.url}/page`, never);
    expect(got.converted).toBe(true);
    expect(got.text).toContain('# Shopping');
    expect(got.text).toContain('Buy **milk** and [eggs](/eggs).');
    expect(got.text).toMatch(/- {1,3}one\n- {1,3}two/);
    expect(got.text).not.toContain('tracking');
    expect(got.text).not.toContain('color: red');
  });

  it('fetchText - turns HTML into plain text without markup', async () => {
    const s = await serve({ '/page': send('text/html', PAGE) });
    const got = await fetchText(`${s.url}/page`, never, { format: 'text' });
    expect(got.text).toContain('Shopping\n\nBuy milk and eggs.');
    expect(got.text).not.toMatch(/[#*[\]]/);
  });

  it('fetchText - keeps the markup when html is asked for', async () => {
    const s = await serve({ '/page': send('text/html', PAGE) });
    const got = await fetchText(`${s.url}/page`, never, { format: 'html' });
    expect(got.text).toBe(PAGE);
    expect(got.converted).toBe(false);
  });

  it('fetchText - returns plain text and JSON as they are, whatever the format', async () => {
    const s = await serve({ '/a.txt': send('text/plain', '# not *markdown*\n'), '/a.json': send('application/json', '{"a": "<b>"}') });
    expect((await fetchText(`${s.url}/a.txt`, never, { format: 'text' })).text).toBe('# not *markdown*\n');
    expect((await fetchText(`${s.url}/a.json`, never)).text).toBe('{"a": "<b>"}');
  });

  it('fetchText - decodes the charset the server names', async () => {
    const s = await serve({ '/latin1': send('text/plain; charset=iso-8859-1', Buffer.from([0x63, 0x61, 0x66, 0xe9])) });
    expect((await fetchText(`${s.url}/latin1`, never)).text).toBe('café');
  });

  it('fetchText - reads an untyped text body and refuses an untyped binary one', async () => {
    const s = await serve({
      '/text': send('application/octet-stream', 'plain words'),
      '/bin': send('application/octet-stream', Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00])),
    });
    expect((await fetchText(`${s.url}/text`, never)).text).toBe('plain words');
    await expect(fetchText(`${s.url}/bin`, never)).rejects.toThrow(BinaryContentError);
  });

  it('fetchText - refuses a binary content type without reading its body', async () => {
    const endlessPng: Handler = (req, res) => {
      res.setHeader('content-type', 'image/png');
      endless(req, res);
    };
    const s = await serve({ '/png': endlessPng });
    const failure = fetchText(`${s.url}/png`, never);
    await expect(failure).rejects.toThrow(BinaryContentError);
    await expect(failure).rejects.toThrow(/image\/png.*only text is fetched/);
    await s.closed[0];
  });
});

describe('fetchBounded', () => {
  it('fetchBounded - cuts a body larger than the cap, stops reading and closes the connection', async () => {
    const s = await serve({ '/big': endless });
    const got = await fetchBounded(`${s.url}/big`, never, { bodyBytesMax: 100_000 });
    expect(got.cut).toBe(true);
    expect(got.body.length).toBe(100_000);
    await s.closed[0]; // the server sees the connection go away (the endless writer would never end it)
    // Only what socket buffers absorbed beyond the cap was ever written: memory stayed bounded.
    expect(s.written[0]).toBeLessThan(100_000 + 16 * 1024 * 1024);
  });

  it('fetchBounded - a body of exactly the cap is not cut', async () => {
    const s = await serve({ '/exact': send('text/plain', 'x'.repeat(1_000)) });
    const got = await fetchBounded(`${s.url}/exact`, never, { bodyBytesMax: 1_000 });
    expect(got.cut).toBe(false);
    expect(got.body.length).toBe(1_000);
  });

  it('fetchBounded - gives up on a server that stops sending the body', async () => {
    const s = await serve({ '/stall': stalls });
    const failure = fetchBounded(`${s.url}/stall`, never, { bodyIdleTimeoutMs: 200 });
    await expect(failure).rejects.toThrow(FetchTimeoutError);
    await expect(failure).rejects.toMatchObject({ phase: 'body', message: expect.stringMatching(/stopped sending the body.*200 ms/) });
    await s.closed[0];
  });

  it('fetchBounded - the overall deadline stops a body that trickles forever', async () => {
    const s = await serve({
      '/trickle': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const timer = setInterval(() => res.write('.'), 20);
        res.on('close', () => clearInterval(timer));
      },
    });
    const failure = fetchBounded(`${s.url}/trickle`, never, { timeoutMs: 300, bodyIdleTimeoutMs: 5_000 });
    await expect(failure).rejects.toMatchObject({ name: 'FetchTimeoutError', phase: 'total' });
    await s.closed[0];
  });

  it('fetchBounded - gives up on a server that never sends headers', async () => {
    const s = await serve({ '/silent': silent });
    const failure = fetchBounded(`${s.url}/silent`, never, { headersTimeoutMs: 200 });
    await expect(failure).rejects.toMatchObject({ name: 'FetchTimeoutError', phase: 'headers' });
    await expect(failure).rejects.toThrow(/sent no response headers within 200 ms/);
    await s.closed[0];
  });

  it('fetchBounded - follows redirects up to the bound', async () => {
    const s = await serve({
      '/r1': (_req, res) => res.writeHead(301, { location: '/r2' }).end(),
      '/r2': (_req, res) => res.writeHead(302, { location: '/final' }).end(),
      '/final': send('text/plain', 'arrived'),
    });
    const got = await fetchBounded(`${s.url}/r1`, never, { redirectsMax: 2 });
    expect(got.body.toString()).toBe('arrived');
    expect(got.url).toBe(`${s.url}/final`);
    expect(got.redirects).toBe(2);
  });

  it('fetchBounded - refuses more redirects than the bound', async () => {
    const s = await serve({ '/loop': (_req, res) => res.writeHead(307, { location: '/loop' }).end() });
    const failure = fetchBounded(`${s.url}/loop`, never, { redirectsMax: 3 });
    await expect(failure).rejects.toThrow(TooManyRedirectsError);
    await expect(failure).rejects.toThrow(/redirected more than 3 times/);
    expect(s.closed).toHaveLength(4);
  });

  it('fetchBounded - refuses a redirect to another scheme', async () => {
    const s = await serve({ '/away': (_req, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end() });
    const failure = fetchBounded(`${s.url}/away`, never);
    await expect(failure).rejects.toThrow(UnsupportedUrlSchemeError);
    await expect(failure).rejects.toThrow(/"file:\/\/\/etc\/passwd" \(redirected from .*\/away"\): the scheme "file"/);
  });

  it.each([
    ['ftp://example.com/file.txt', 'ftp'],
    ['file:///etc/passwd', 'file'],
    ['javascript:alert(1)', 'javascript'],
    ['data:text/plain,hello', 'data'],
  ])('fetchBounded - refuses the non-http scheme of %s', async (url, scheme) => {
    const failure = fetchBounded(url, never);
    await expect(failure).rejects.toThrow(UnsupportedUrlSchemeError);
    await expect(failure).rejects.toThrow(`the scheme "${scheme}" is not supported`);
  });

  it('fetchBounded - refuses text that is not an absolute URL, and credentials', async () => {
    await expect(fetchBounded('example.com/page', never)).rejects.toThrow(InvalidUrlError);
    await expect(fetchBounded('http://user:secret@127.0.0.1/', never)).rejects.toThrow(/credentials/);
  });

  it('fetchBounded - reports an HTTP error status', async () => {
    const s = await serve({});
    await expect(fetchBounded(`${s.url}/missing`, never)).rejects.toThrow(FetchHttpError);
    await expect(fetchBounded(`${s.url}/missing`, never)).rejects.toThrow(/HTTP 404 Not Found/);
  });

  it('fetchBounded - reports a refused connection naming the URL', async () => {
    const s = await serve({});
    const closedPort = new URL(s.url).port;
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    expect(String(port)).not.toBe(closedPort);
    const failure = fetchBounded(`http://127.0.0.1:${port}/x`, never);
    await expect(failure).rejects.toThrow(FetchConnectionError);
    await expect(failure).rejects.toThrow(/ECONNREFUSED/);
  });

  it('fetchBounded - stops when its signal fires while waiting for headers', async () => {
    const s = await serve({ '/silent': silent });
    const controller = new AbortController();
    const failure = fetchBounded(`${s.url}/silent`, controller.signal);
    while (s.closed.length === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await expect(failure).rejects.toThrow(FetchAbortedError);
    await s.closed[0];
  });

  it('fetchBounded - stops when its signal fires mid-body', async () => {
    const s = await serve({ '/stall': stalls });
    const controller = new AbortController();
    const failure = fetchBounded(`${s.url}/stall`, controller.signal);
    while (s.written[0] === undefined || s.written[0] === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await expect(failure).rejects.toThrow(FetchAbortedError);
    await s.closed[0];
  });
});

describe('webfetch tool', () => {
  it('webfetch - is a built-in and not idempotent', () => {
    const tool = builtinTools.find((t) => t.name === 'webfetch');
    expect(tool?.idempotent).toBe(false);
  });

  it('webfetch - returns a page as Markdown through the registry', async () => {
    const s = await serve({ '/page': send('text/html', PAGE) });
    const result = await createDefaultRegistry().execute('webfetch', { url: `${s.url}/page` }, context());
    expect(result.output).toContain('# Shopping');
    expect(result.metadata).toMatchObject({ status: 200, contentType: 'text/html', cut: false });
  });

  it('webfetch - says when it followed a redirect', async () => {
    const s = await serve({ '/old': (_req, res) => res.writeHead(301, { location: '/new' }).end(), '/new': send('text/plain', 'moved here') });
    const result = await createDefaultRegistry().execute('webfetch', { url: `${s.url}/old`, format: 'text' }, context());
    expect(result.output).toBe(`(redirected to ${s.url}/new)\n\nmoved here`);
  });

  it('webfetch - cuts a body over WEBFETCH_BODY_BYTES_MAX and says so', async () => {
    const s = await serve({ '/big': endless });
    const result = await createDefaultRegistry().execute('webfetch', { url: `${s.url}/big` }, context());
    expect(result.truncated).toBe(true);
    expect(result.metadata).toMatchObject({ cut: true, bodyBytes: WEBFETCH_BODY_BYTES_MAX });
    // The cut page is longer than a tool result may be: the registry's preview keeps the notice in its tail.
    expect(result.output).toMatch(/\[body cut: the response is larger than \d+ bytes, the most webfetch reads; the content above is its beginning\]\n\[output truncated: .* saved at /);
    await s.closed[0];
  });

  it('webfetch - refuses a non-http scheme with an error naming it', async () => {
    await expect(createDefaultRegistry().execute('webfetch', { url: 'ftp://example.com/' }, context())).rejects.toThrow(/the scheme "ftp" is not supported/);
  });

  it('webfetch - refuses a timeout over its bound', async () => {
    await expect(createDefaultRegistry().execute('webfetch', { url: 'http://127.0.0.1/', timeout: 10_000 }, context())).rejects.toThrow(ToolInputError);
  });

  it('webfetch - a cancel from the context stops the fetch', async () => {
    const s = await serve({ '/silent': silent });
    const controller = new AbortController();
    const running = createDefaultRegistry().execute('webfetch', { url: `${s.url}/silent` }, context(controller.signal));
    while (s.closed.length === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await expect(running).rejects.toThrow(ToolCancelledError);
    await s.closed[0];
  });
});
