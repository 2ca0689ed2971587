/**
 * Attachments: files and URLs given with an input, materialised at admission. A file is read
 * inside the session's directory through `openConfined` (text only, size-bounded); a URL is fetched
 * with the webfetch limits (tools/fetch.ts) and HTML becomes Markdown. Either every attachment
 * resolves or the admission is refused with an `AttachmentError` naming the one that failed, so
 * nothing unresolved is ever stored: resolve first, then `store.admitInput({ attachments })`.
 */
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  INPUT_ATTACHMENT_BYTES_MAX,
  INPUT_ATTACHMENT_NAME_CHARS_MAX,
  INPUT_ATTACHMENTS_BYTES_MAX,
  INPUT_ATTACHMENTS_MAX,
  WEBFETCH_BODY_BYTES_MAX,
} from '../core/limits.js';
import type { InputAttachment } from '../store/schemas.js';
import { openConfined } from './confine.js';
import { fetchText, type FetchLimits } from './fetch.js';

/** An attachment could not be materialised; the input was not admitted. */
export class AttachmentError extends Error {
  override name = 'AttachmentError';
  constructor(
    /** The attachment as given ('' for a problem with the whole list). */
    readonly spec: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(spec === '' ? `cannot attach: ${reason}` : `cannot attach "${spec}": ${reason}`, options);
  }
}

export interface MaterializeOptions {
  /** Relative file paths are resolved against this directory (the CLI passes its working directory); default the location. */
  cwd?: string;
  /** Overrides of the webfetch limits (tests use short timeouts). */
  fetchLimits?: FetchLimits;
}

/**
 * Resolves every spec — an `http(s)://` URL, or a path to a text file inside `location` — into its
 * text, in order. Refuses, with an AttachmentError naming the spec: more than INPUT_ATTACHMENTS_MAX
 * specs, a path outside the location (also through symlinks), a missing or non-regular file, a
 * binary file or body, one over INPUT_ATTACHMENT_BYTES_MAX, a body cut at WEBFETCH_BODY_BYTES_MAX,
 * an unreachable URL, and all of them over INPUT_ATTACHMENTS_BYTES_MAX together.
 */
export async function materializeAttachments(
  location: string,
  specs: readonly string[],
  signal: AbortSignal,
  options: MaterializeOptions = {},
): Promise<InputAttachment[]> {
  if (specs.length > INPUT_ATTACHMENTS_MAX) {
    throw new AttachmentError('', `${specs.length} attachments were given; an input may have at most ${INPUT_ATTACHMENTS_MAX}`);
  }
  const out: InputAttachment[] = [];
  let total = 0;
  for (const spec of specs) {
    signal.throwIfAborted();
    if (spec === '') throw new AttachmentError(spec, 'the path or URL is empty');
    if (spec.length > INPUT_ATTACHMENT_NAME_CHARS_MAX) throw new AttachmentError(spec.slice(0, 80) + '…', `it is longer than ${INPUT_ATTACHMENT_NAME_CHARS_MAX} characters`);
    const attachment = isUrl(spec) ? await attachUrl(spec, signal, options.fetchLimits) : await attachFile(location, spec, options.cwd ?? location, signal);
    total += attachment.bytes;
    if (total > INPUT_ATTACHMENTS_BYTES_MAX) {
      throw new AttachmentError(spec, `the attachments add up to more than ${INPUT_ATTACHMENTS_BYTES_MAX} bytes, the most one input may carry`);
    }
    out.push(attachment);
  }
  return out;
}

/** Anything with a scheme and `//` is a URL (non-http ones are refused by the fetch); the rest are paths. */
function isUrl(spec: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(spec);
}

async function attachUrl(spec: string, signal: AbortSignal, limits: FetchLimits = {}): Promise<InputAttachment> {
  const fetched = await fetchText(spec, signal, { ...limits, format: 'markdown' }).catch((err: unknown) => {
    throw new AttachmentError(spec, err instanceof Error ? err.message : String(err), { cause: err });
  });
  if (fetched.cut) {
    const max = limits.bodyBytesMax ?? WEBFETCH_BODY_BYTES_MAX;
    throw new AttachmentError(spec, `its body is larger than ${max} bytes, the most a fetch reads; attach a smaller page or a file`);
  }
  const bytes = Buffer.byteLength(fetched.text);
  if (bytes > INPUT_ATTACHMENT_BYTES_MAX) throw new AttachmentError(spec, tooLarge(bytes));
  const mediaType = fetched.converted ? 'text/markdown' : fetched.mediaType === '' || fetched.mediaType === 'application/octet-stream' ? 'text/plain' : fetched.mediaType;
  return { kind: 'url', name: spec, mediaType, text: fetched.text, bytes };
}

async function attachFile(location: string, spec: string, cwd: string, signal: AbortSignal): Promise<InputAttachment> {
  const abs = path.resolve(cwd, spec);
  const refuse = (err: unknown): never => {
    throw new AttachmentError(spec, err instanceof Error ? err.message : String(err), { cause: err });
  };
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
  const { handle } = await openConfined(location, abs, constants.O_RDONLY | constants.O_NONBLOCK).catch(refuse);
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new AttachmentError(spec, 'it is a directory; attach files one by one');
    if (!stat.isFile()) throw new AttachmentError(spec, 'it is not a regular file');
    if (stat.size > INPUT_ATTACHMENT_BYTES_MAX) throw new AttachmentError(spec, tooLarge(stat.size));
    const bytes = await readAll(handle, stat.size, signal).catch(refuse);
    if (bytes.includes(0)) throw new AttachmentError(spec, 'it looks binary (it contains a NUL byte); only text files are attached');
    const text = decodeUtf8(bytes);
    const name = path.relative(location, abs) || path.basename(abs);
    return { kind: 'file', name, mediaType: mediaTypeOf(abs), text, bytes: Buffer.byteLength(text) };
  } finally {
    await handle.close();
  }
}

/** The file's first `size` bytes (what fstat saw; growth since is ignored, so memory stays bounded). */
async function readAll(handle: FileHandle, size: number, signal: AbortSignal): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  let filled = 0;
  while (filled < size) {
    signal.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, filled, size - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

function decodeUtf8(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function tooLarge(bytes: number): string {
  return `it is ${bytes} bytes; an attachment may have at most ${INPUT_ATTACHMENT_BYTES_MAX}`;
}

const MEDIA_TYPES: Record<string, string> = {
  '.md': 'text/markdown',
  '.markdown': 'text/markdown',
  '.html': 'text/html',
  '.htm': 'text/html',
  '.css': 'text/css',
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.xml': 'application/xml',
  '.yaml': 'application/yaml',
  '.yml': 'application/yaml',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.ts': 'text/x-typescript',
  '.py': 'text/x-python',
  '.sh': 'application/x-sh',
};

function mediaTypeOf(file: string): string {
  return MEDIA_TYPES[path.extname(file).toLowerCase()] ?? 'text/plain';
}
