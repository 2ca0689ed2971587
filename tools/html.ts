/**
 * HTML to Markdown or plain text, with turndown (which parses with @mixmark-io/domino when there is
 * no DOM, as on Node). Scripts, styles and other non-content elements are dropped. Conversion is
 * synchronous and costs memory in proportion to the markup, so callers bound the HTML first
 * (WEBFETCH_BODY_BYTES_MAX).
 */
import TurndownService from 'turndown';

/** Elements whose content is never text a reader sees. */
const NON_CONTENT = ['script', 'style', 'noscript', 'template', 'iframe', 'object', 'embed', 'svg', 'canvas', 'head'] as const;

type Filter = TurndownService.Filter;

let markdown: TurndownService | undefined;
let text: TurndownService | undefined;

/** Markdown (ATX headings, fenced code, `-` bullets, inline links). */
export function htmlToMarkdown(html: string): string {
  markdown ??= createMarkdownService();
  return tidy(markdown.turndown(html));
}

/** Plain text: the same block structure as Markdown, without markup or escapes (links keep their text). */
export function htmlToText(html: string): string {
  text ??= createTextService();
  return tidy(text.turndown(html));
}

function createMarkdownService(): TurndownService {
  const service = new TurndownService({ headingStyle: 'atx', codeBlockStyle: 'fenced', bulletListMarker: '-' });
  service.remove(NON_CONTENT as unknown as Filter);
  return service;
}

function createTextService(): TurndownService {
  const service = new TurndownService({ headingStyle: 'atx', codeBlockStyle: 'fenced', bulletListMarker: '-' });
  service.remove(NON_CONTENT as unknown as Filter);
  // Markdown escapes (`\*`, `1\.`) would be noise in plain text.
  service.escape = (s: string) => s;
  const block = (content: string) => `\n\n${content.trim()}\n\n`;
  service.addRule('text-inline', { filter: ['a', 'em', 'i', 'strong', 'b', 'code', 'del', 's', 'strike', 'u', 'mark'] as Filter, replacement: (content) => content });
  service.addRule('text-heading', { filter: ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'] as Filter, replacement: block });
  service.addRule('text-quote', { filter: 'blockquote' as Filter, replacement: block });
  service.addRule('text-pre', { filter: 'pre' as Filter, replacement: (_content, node) => block(String((node as { textContent?: string }).textContent ?? '')) });
  service.addRule('text-image', {
    filter: 'img' as Filter,
    replacement: (_content, node) => String((node as { getAttribute(name: string): string | null }).getAttribute('alt') ?? ''),
  });
  service.addRule('text-rule', { filter: 'hr' as Filter, replacement: () => '\n\n' });
  return service;
}

/** Trailing spaces off each line and at most one blank line in a row. */
function tidy(s: string): string {
  return s
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
