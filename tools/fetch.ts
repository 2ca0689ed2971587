/**
 * Bounded HTTP fetching for `webfetch` and URL attachments: one GET over undici with a connect,
 * headers and body-idle timeout plus an overall deadline, at most WEBFETCH_REDIRECTS_MAX redirects
 * (each one checked for its scheme), and a body read as a stream that stops — and closes the
 * connection — at WEBFETCH_BODY_BYTES_MAX, before anything parses it. Binary content types are
 * refused as soon as the headers arrive; an untyped body is refused when its first bytes hold a NUL.
 *
 * Each fetch has its own undici Agent, destroyed at the end, so no socket outlives the call.
 */
import { STATUS_CODES } from 'node:http';
import { Agent, request, type Dispatcher } from 'undici';
import {
  WEBFETCH_BINARY_SNIFF_BYTES,
  WEBFETCH_BODY_BYTES_MAX,
  WEBFETCH_BODY_IDLE_TIMEOUT_MS,
  WEBFETCH_CONNECT_TIMEOUT_MS,
  WEBFETCH_HEADERS_TIMEOUT_MS,
  WEBFETCH_REDIRECTS_MAX,
  WEBFETCH_TIMEOUT_DEFAULT_MS,
  WEBFETCH_URL_CHARS_MAX,
} from '../core/limits.js';
import { ToolError } from './errors.js';
import { htmlToMarkdown, htmlToText } from './html.js';

// ---- errors ------------------------------------------------------------------------------------

/** The text is not an absolute URL. */
export class InvalidUrlError extends ToolError {
  override name = 'InvalidUrlError';
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(`invalid URL ${JSON.stringify(excerpt(url))}: ${reason}`);
  }
}

/** Only http and https are fetched (also as a redirect target). */
export class UnsupportedUrlSchemeError extends ToolError {
  override name = 'UnsupportedUrlSchemeError';
  constructor(
    readonly url: string,
    readonly scheme: string,
    via = '',
  ) {
    super(`cannot fetch "${excerpt(url)}"${via}: the scheme "${scheme}" is not supported; only http and https URLs are fetched`);
  }
}

export type FetchTimeoutPhase = 'connect' | 'headers' | 'body' | 'total';

/** One of the fetch's timers fired: which one, and after how long. */
export class FetchTimeoutError extends ToolError {
  override name = 'FetchTimeoutError';
  constructor(
    readonly url: string,
    readonly phase: FetchTimeoutPhase,
    readonly timeoutMs: number,
  ) {
    super(`fetching "${excerpt(url)}" timed out: ${PHASE_TEXT[phase]} within ${timeoutMs} ms`);
  }
}

const PHASE_TEXT: Record<FetchTimeoutPhase, string> = {
  connect: 'no connection was made',
  headers: 'the server sent no response headers',
  body: 'the server stopped sending the body (no data)',
  total: 'the whole fetch did not finish',
};

/** The host could not be reached or the connection broke (refused, reset, DNS failure, TLS error). */
export class FetchConnectionError extends ToolError {
  override name = 'FetchConnectionError';
  constructor(
    readonly url: string,
    readonly code: string,
    detail: string,
  ) {
    super(`cannot fetch "${excerpt(url)}": ${detail} (${code})`);
  }
}

/** The server answered with an HTTP error status (4xx, 5xx). */
export class FetchHttpError extends ToolError {
  override name = 'FetchHttpError';
  constructor(
    readonly url: string,
    readonly status: number,
  ) {
    super(`fetching "${excerpt(url)}" failed: HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`);
  }
}

/** More redirects than WEBFETCH_REDIRECTS_MAX. */
export class TooManyRedirectsError extends ToolError {
  override name = 'TooManyRedirectsError';
  constructor(
    readonly url: string,
    readonly redirectsMax: number,
  ) {
    super(`fetching "${excerpt(url)}" was redirected more than ${redirectsMax} times; it was given up`);
  }
}

/** The response is not text (an image, an archive, a PDF…); it is not read. */
export class BinaryContentError extends ToolError {
  override name = 'BinaryContentError';
  constructor(
    readonly url: string,
    readonly contentType: string,
  ) {
    super(`"${excerpt(url)}" is binary content (${contentType === '' ? 'no content type, and its first bytes hold a NUL' : contentType}); only text is fetched`);
  }
}

/** The caller's signal fired. */
export class FetchAbortedError extends ToolError {
  override name = 'FetchAbortedError';
  constructor(readonly url: string) {
    super(`fetching "${excerpt(url)}" was cancelled`);
  }
}

// ---- fetching ----------------------------------------------------------------------------------

/** Bounds of one fetch; every field defaults to the webfetch limit of the same name. */
export interface FetchLimits {
  /** The whole fetch: connect, redirects, headers and body. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** Longest silence between two body chunks. */
  bodyIdleTimeoutMs?: number;
  bodyBytesMax?: number;
  redirectsMax?: number;
}

export interface FetchedBody {
  /** The URL the body came from (after redirects). */
  url: string;
  redirects: number;
  status: number;
  /** The content-type header as sent ('' when absent). */
  contentType: string;
  /** Its lower-case essence (`text/html`), '' when absent. */
  mediaType: string;
  charset: string | undefined;
  body: Buffer;
  /** The body was longer than `bodyBytesMax`: reading stopped there and the connection was closed. */
  cut: boolean;
}

/**
 * GETs `url` within `limits` and returns its body, at most `bodyBytesMax` bytes of it. Refuses
 * (typed errors naming the URL) non-http(s) URLs and redirect targets, binary content, HTTP error
 * statuses, too many redirects, timeouts and a fired `signal`.
 */
export async function fetchBounded(url: string, signal: AbortSignal, limits: FetchLimits = {}): Promise<FetchedBody> {
  const l = resolveLimits(limits);
  let current = checkUrl(url);
  const guard = new FetchGuard(url, signal, l);
  const agent = new Agent({ connect: { timeout: l.connectTimeoutMs }, headersTimeout: l.headersTimeoutMs, bodyTimeout: l.bodyIdleTimeoutMs });
  try {
    for (let redirects = 0; ; redirects++) {
      const response = await guard.run(() => get(current, agent, guard.signal, l), current.href);
      const location = redirectTarget(response);
      if (location === undefined) return await guard.run(() => readResponse(current.href, redirects, response, l), current.href);
      discard(response.body);
      if (redirects >= l.redirectsMax) throw new TooManyRedirectsError(url, l.redirectsMax);
      current = checkUrl(location, current, ` (redirected from "${excerpt(current.href)}")`);
    }
  } finally {
    guard.dispose();
    await agent.destroy().catch(() => {});
  }
}

export type FetchFormat = 'text' | 'markdown' | 'html';

export interface FetchedText extends Omit<FetchedBody, 'body'> {
  text: string;
  /** Body bytes read (the text may be shorter or longer after conversion). */
  bodyBytes: number;
  /** Whether the body was HTML converted to `format`. */
  converted: boolean;
}

/**
 * `fetchBounded`, then the body as text: HTML in the asked `format` (Markdown by default; `html`
 * keeps the markup), any other text as it is, decoded with the response's charset (UTF-8 when it
 * names none or one Node does not know).
 */
export async function fetchText(url: string, signal: AbortSignal, options: FetchLimits & { format?: FetchFormat } = {}): Promise<FetchedText> {
  const { body, ...fetched } = await fetchBounded(url, signal, options);
  const raw = decode(body, fetched.charset, fetched.cut);
  const format = options.format ?? 'markdown';
  const html = isHtml(fetched.mediaType, raw);
  signal.throwIfAborted();
  const text = !html || format === 'html' ? raw : format === 'markdown' ? htmlToMarkdown(raw) : htmlToText(raw);
  return { ...fetched, text, bodyBytes: body.length, converted: html && format !== 'html' };
}

interface Limits {
  timeoutMs: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  bodyBytesMax: number;
  redirectsMax: number;
}

function resolveLimits(limits: FetchLimits): Limits {
  return {
    timeoutMs: limits.timeoutMs ?? WEBFETCH_TIMEOUT_DEFAULT_MS,
    connectTimeoutMs: limits.connectTimeoutMs ?? WEBFETCH_CONNECT_TIMEOUT_MS,
    headersTimeoutMs: limits.headersTimeoutMs ?? WEBFETCH_HEADERS_TIMEOUT_MS,
    bodyIdleTimeoutMs: limits.bodyIdleTimeoutMs ?? WEBFETCH_BODY_IDLE_TIMEOUT_MS,
    bodyBytesMax: limits.bodyBytesMax ?? WEBFETCH_BODY_BYTES_MAX,
    redirectsMax: limits.redirectsMax ?? WEBFETCH_REDIRECTS_MAX,
  };
}

/** An absolute http(s) URL, or a typed refusal. `base` resolves a relative redirect target. */
function checkUrl(text: string, base?: URL, via = ''): URL {
  if (text.length > WEBFETCH_URL_CHARS_MAX) throw new InvalidUrlError(text, `it is longer than ${WEBFETCH_URL_CHARS_MAX} characters`);
  let parsed: URL;
  try {
    parsed = new URL(text, base);
  } catch {
    throw new InvalidUrlError(text, 'it is not an absolute URL (write it with its scheme, as in https://example.com/page)');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UnsupportedUrlSchemeError(parsed.href, parsed.protocol.replace(/:$/, ''), via);
  if (parsed.username !== '' || parsed.password !== '') throw new InvalidUrlError(text, 'credentials in a URL are not sent');
  return parsed;
}

function get(url: URL, agent: Agent, signal: AbortSignal, l: Limits): Promise<Dispatcher.ResponseData> {
  return request(url, {
    method: 'GET',
    dispatcher: agent,
    signal,
    headersTimeout: l.headersTimeoutMs,
    bodyTimeout: l.bodyIdleTimeoutMs,
    headers: {
      accept: 'text/html, text/markdown;q=0.9, text/plain;q=0.8, application/json;q=0.7, */*;q=0.1',
      // The body is counted as it arrives; a compressed body would hide its real size.
      'accept-encoding': 'identity',
      'user-agent': 'loom-webfetch/0.1',
    },
  });
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

function redirectTarget(response: Dispatcher.ResponseData): string | undefined {
  if (!REDIRECT_STATUSES.has(response.statusCode)) return undefined;
  const location = response.headers.location;
  return typeof location === 'string' && location !== '' ? location : undefined;
}

async function readResponse(url: string, redirects: number, response: Dispatcher.ResponseData, l: Limits): Promise<FetchedBody> {
  const { statusCode: status, headers } = response;
  if (status >= 400) {
    discard(response.body);
    throw new FetchHttpError(url, status);
  }
  const contentType = headerText(headers['content-type']);
  const { mediaType, charset } = parseContentType(contentType);
  const kind = classify(mediaType);
  if (kind === 'binary') {
    discard(response.body);
    throw new BinaryContentError(url, contentType);
  }
  const encoding = headerText(headers['content-encoding']).toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    discard(response.body);
    throw new BinaryContentError(url, `${contentType || 'content'} encoded as ${encoding}, which was not asked for`);
  }
  const { body, cut } = await readCapped(response.body, l.bodyBytesMax);
  if (kind === 'sniff' && body.subarray(0, WEBFETCH_BINARY_SNIFF_BYTES).includes(0)) throw new BinaryContentError(url, contentType);
  return { url, redirects, status, contentType, mediaType, charset, body, cut };
}

/**
 * Reads at most `bytesMax` bytes, then destroys the stream (which closes the connection), so
 * memory holds the cap plus one chunk at most.
 */
async function readCapped(stream: Dispatcher.ResponseData['body'], bytesMax: number): Promise<{ body: Buffer; cut: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let cut = false;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const room = bytesMax - size;
      if (chunk.length > room) {
        if (room > 0) chunks.push(chunk.subarray(0, room));
        size = bytesMax;
        cut = true;
        break;
      }
      chunks.push(chunk);
      size += chunk.length;
    }
  } finally {
    if (cut || !stream.readableEnded) discard(stream);
  }
  return { body: Buffer.concat(chunks, size), cut };
}

/** Closes a body not read to its end (and its connection); undici reports that as an error, which is expected here. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {});
  body.destroy();
}

/** Text types are read, binary ones refused, and the rest (none, octet-stream) sniffed for a NUL. */
function classify(mediaType: string): 'text' | 'binary' | 'sniff' {
  if (mediaType === '' || mediaType === 'application/octet-stream') return 'sniff';
  if (mediaType.startsWith('text/')) return 'text';
  if (mediaType.endsWith('+json') || mediaType.endsWith('+xml')) return 'text';
  return TEXT_APPLICATION_TYPES.has(mediaType) ? 'text' : 'binary';
}

const TEXT_APPLICATION_TYPES = new Set([
  'application/json',
  'application/xml',
  'application/javascript',
  'application/ecmascript',
  'application/x-javascript',
  'application/x-sh',
  'application/x-httpd-php',
  'application/sql',
  'application/graphql',
  'application/toml',
  'application/yaml',
  'application/x-yaml',
  'application/x-ndjson',
  'application/jsonl',
  'application/csv',
  'application/x-tex',
  'application/x-latex',
]);

function parseContentType(value: string): { mediaType: string; charset: string | undefined } {
  const [essence = '', ...params] = value.split(';');
  let charset: string | undefined;
  for (const param of params) {
    const [key, raw] = param.split('=', 2);
    if (key?.trim().toLowerCase() === 'charset' && raw !== undefined) charset = raw.trim().replace(/^"|"$/g, '');
  }
  return { mediaType: essence.trim().toLowerCase(), charset };
}

function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

function decode(body: Buffer, charset: string | undefined, cut: boolean): string {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset ?? 'utf-8');
  } catch {
    decoder = new TextDecoder('utf-8');
  }
  const text = decoder.decode(body);
  // A cut body may end inside a character; drop its replacement rather than show it.
  return cut ? text.replace(/\uFFFD+$/, '') : text;
}

function isHtml(mediaType: string, text: string): boolean {
  if (mediaType === 'text/html' || mediaType === 'application/xhtml+xml') return true;
  return mediaType === '' || mediaType === 'application/octet-stream' ? /^\s*<(!doctype html|html[\s>])/i.test(text.slice(0, 1024)) : false;
}

// ---- cancellation and timers -------------------------------------------------------------------

/**
 * One signal for undici that fires on the caller's abort or the overall deadline, and the typed
 * error for whatever stopped the fetch.
 */
class FetchGuard {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private timedOut = false;

  constructor(
    private readonly url: string,
    private readonly caller: AbortSignal,
    private readonly limits: Limits,
  ) {
    if (caller.aborted) this.controller.abort(caller.reason);
    caller.addEventListener('abort', this.onCallerAbort, { once: true });
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new FetchTimeoutError(url, 'total', limits.timeoutMs));
    }, limits.timeoutMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Runs one step, turning whatever it throws into a typed error naming `url`. */
  async run<T>(step: () => Promise<T>, url: string): Promise<T> {
    if (this.controller.signal.aborted) throw this.stopped(url);
    try {
      return await step();
    } catch (err) {
      if (this.controller.signal.aborted) throw this.stopped(url);
      throw toFetchError(err, url, this.limits);
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.caller.removeEventListener('abort', this.onCallerAbort);
  }

  private stopped(url: string): ToolError {
    return this.timedOut ? new FetchTimeoutError(url, 'total', this.limits.timeoutMs) : new FetchAbortedError(url);
  }

  private readonly onCallerAbort = (): void => {
    this.controller.abort(this.caller.reason);
  };
}

/** Parses an undici or socket failure into a typed error; typed errors and bugs pass through. */
function toFetchError(err: unknown, url: string, l: Limits): unknown {
  if (err instanceof ToolError) return err;
  const code = errorCode(err);
  if (code === undefined || code.startsWith('UND_ERR_INVALID')) return err;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new FetchTimeoutError(url, 'connect', l.connectTimeoutMs);
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new FetchTimeoutError(url, 'headers', l.headersTimeoutMs);
  if (code === 'UND_ERR_BODY_TIMEOUT') return new FetchTimeoutError(url, 'body', l.bodyIdleTimeoutMs);
  const detail = err instanceof Error && err.message !== '' ? err.message : 'the connection failed';
  return new FetchConnectionError(url, code, detail);
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Node reports a refused connection to a name with several addresses as an AggregateError.
  if (error instanceof AggregateError) return errorCode(error.errors[0]);
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined ? undefined : errorCode(cause);
}

function excerpt(url: string): string {
  return url.length > 200 ? `${url.slice(0, 200)}…` : url;
}
