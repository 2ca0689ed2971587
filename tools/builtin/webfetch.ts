/**
 * The `webfetch` tool: GET an http(s) URL and return its content as text — HTML converted to
 * Markdown (default) or plain text, or kept as HTML; other text as it is; binary content refused.
 * Bounded by tools/fetch.ts (timeouts, redirects, a body cap applied while streaming).
 *
 * Not idempotent: DESIGN §5 re-runs only read, list, glob and grep after a crash. A GET is usually
 * harmless to repeat, but not always (links that confirm, unsubscribe or count), so an interrupted
 * fetch settles `interrupted` and the model decides whether to fetch again.
 */
import { z } from 'zod';
import { WEBFETCH_BODY_BYTES_MAX, WEBFETCH_TIMEOUT_DEFAULT_MS, WEBFETCH_TIMEOUT_MAX_MS, WEBFETCH_URL_CHARS_MAX } from '../../core/limits.js';
import { fetchText, type FetchedText } from '../fetch.js';
import type { Tool, ToolResult } from '../types.js';

/** Time the registry allows beyond the fetch's own deadline, for converting the HTML it read. */
const CONVERSION_MARGIN_MS = 15_000;

const webfetchInput = z.object({
  url: z.string().min(1).max(WEBFETCH_URL_CHARS_MAX).describe('The http:// or https:// URL to fetch.'),
  format: z
    .enum(['text', 'markdown', 'html'])
    .optional()
    .describe('How to return an HTML page: markdown (default), plain text, or the raw html. Other content is returned as it is.'),
  timeout: z
    .number()
    .int()
    .min(1)
    .max(WEBFETCH_TIMEOUT_MAX_MS / 1000)
    .optional()
    .describe(`Seconds the whole fetch may take (default ${WEBFETCH_TIMEOUT_DEFAULT_MS / 1000}, at most ${WEBFETCH_TIMEOUT_MAX_MS / 1000}).`),
});

export type WebfetchInput = z.infer<typeof webfetchInput>;

export const webfetchTool: Tool<WebfetchInput> = {
  name: 'webfetch',
  description:
    'Fetch a web page or text file over http(s) and return its content as text. HTML is converted to Markdown ' +
    `unless "format" asks for "text" or "html". Bodies over ${WEBFETCH_BODY_BYTES_MAX / (1024 * 1024)} MiB are cut; ` +
    'binary content (images, PDFs, archives) is refused.',
  input: webfetchInput,
  idempotent: false,
  timeoutMs: WEBFETCH_TIMEOUT_MAX_MS + CONVERSION_MARGIN_MS,
  async execute(input, ctx) {
    const timeoutMs = input.timeout !== undefined ? input.timeout * 1000 : WEBFETCH_TIMEOUT_DEFAULT_MS;
    const fetched = await fetchText(input.url, ctx.signal, { format: input.format ?? 'markdown', timeoutMs });
    return render(input.url, fetched);
  },
};

function render(asked: string, fetched: FetchedText): ToolResult {
  const notes: string[] = [];
  if (fetched.redirects > 0) notes.push(`(redirected to ${fetched.url})`);
  const body = fetched.text === '' ? `(the response from ${fetched.url} has an empty body)` : fetched.text;
  const cut = fetched.cut
    ? `\n\n[body cut: the response is larger than ${fetched.bodyBytes} bytes, the most webfetch reads; the content above is its beginning]`
    : '';
  return {
    output: `${notes.length > 0 ? `${notes.join('\n')}\n\n` : ''}${body}${cut}`,
    truncated: fetched.cut,
    metadata: {
      url: asked,
      finalUrl: fetched.url,
      status: fetched.status,
      contentType: fetched.contentType,
      bodyBytes: fetched.bodyBytes,
      cut: fetched.cut,
    },
  };
}
