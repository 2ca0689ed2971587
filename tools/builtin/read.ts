/**
 * The `read` tool: a text file inside the session's directory, as numbered lines (`cat -n` style),
 * a window at a time. Idempotent, so recovery may run it again after a crash.
 */
import { constants, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { z } from 'zod';
import {
  READ_BINARY_SNIFF_BYTES,
  READ_CHUNK_BYTES,
  READ_FILE_BYTES_MAX,
  READ_LINE_CHARS_MAX,
  READ_LINES_DEFAULT,
  READ_OUTPUT_BYTES_MAX,
  TOOL_TIMEOUT_DEFAULT_MS,
} from '../../core/limits.js';
import { openConfined } from '../confine.js';
import { BinaryFileError, FileTooLargeError, NotAFileError } from '../errors.js';
import type { Tool, ToolResult } from '../types.js';

const readInput = z.object({
  path: z.string().min(1).describe('Path of the file, relative to the session directory (an absolute path must be inside it).'),
  offset: z.number().int().min(1).optional().describe('Line number to start from, 1-based (default 1).'),
  limit: z.number().int().min(1).optional().describe(`Number of lines to return (default ${READ_LINES_DEFAULT}).`),
});

export type ReadInput = z.infer<typeof readInput>;

export const readTool: Tool<ReadInput> = {
  name: 'read',
  description:
    'Read a text file in the session directory. Returns numbered lines (line number, tab, text); ' +
    `at most ${READ_LINES_DEFAULT} lines unless "limit" says otherwise; use "offset" to continue. ` +
    `Lines longer than ${READ_LINE_CHARS_MAX} characters are cut. Binary files and directories are refused.`,
  input: readInput,
  idempotent: true,
  timeoutMs: TOOL_TIMEOUT_DEFAULT_MS,
  pagesOwnOutput: true,
  async execute(input, ctx) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears.
    const { handle } = await openConfined(ctx.location, input.path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const stat = await handle.stat();
      checkReadable(input.path, stat);
      const bytes = await readWhole(handle, stat.size, input.path, ctx.signal);
      return renderLines(input, decodeText(bytes));
    } finally {
      await handle.close();
    }
  },
};

function checkReadable(path: string, stat: Stats): void {
  if (stat.isDirectory()) throw new NotAFileError(path, 'directory', 'read takes a file; list the directory with a listing tool');
  if (!stat.isFile()) throw new NotAFileError(path, kindOf(stat));
  if (stat.size > READ_FILE_BYTES_MAX) throw new FileTooLargeError(path, stat.size, READ_FILE_BYTES_MAX);
}

function kindOf(stat: Stats): string {
  if (stat.isFIFO()) return 'named pipe';
  if (stat.isSocket()) return 'socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'device';
  return 'special file';
}

/**
 * Reads the file's first `size` bytes (what fstat saw; growth since is ignored, so memory stays
 * bounded), refusing it as binary as soon as its first bytes are in.
 */
async function readWhole(handle: FileHandle, size: number, path: string, signal: AbortSignal): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  const sniffBytes = Math.min(size, READ_BINARY_SNIFF_BYTES);
  let filled = 0;
  let sniffed = false;
  while (filled < size) {
    signal.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, filled, Math.min(READ_CHUNK_BYTES, size - filled), filled);
    if (bytesRead === 0) break; // the file shrank while we read it
    filled += bytesRead;
    if (!sniffed && filled >= sniffBytes) {
      sniffed = true;
      if (hasNul(buffer.subarray(0, sniffBytes))) throw new BinaryFileError(path);
    }
  }
  const bytes = buffer.subarray(0, filled);
  if (!sniffed && hasNul(bytes.subarray(0, READ_BINARY_SNIFF_BYTES))) throw new BinaryFileError(path);
  return bytes;
}

function hasNul(bytes: Buffer): boolean {
  return bytes.includes(0);
}

/** UTF-8 with a leading byte-order mark dropped; invalid sequences become U+FFFD. */
function decodeText(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Lines without their terminators (`\n` or `\r\n`); a final newline does not start a line. */
function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

function renderLines(input: ReadInput, text: string): ToolResult {
  const lines = splitLines(text);
  const total = lines.length;
  const first = input.offset ?? 1;
  if (total === 0) return { output: `(file "${input.path}" is empty)`, metadata: { totalLines: 0 } };
  if (first > total) {
    return { output: `(file has ${total} lines; offset ${first} is past the end)`, metadata: { totalLines: total } };
  }
  const wanted = Math.min(total, first - 1 + (input.limit ?? READ_LINES_DEFAULT));
  const { text: body, last } = numberLines(lines, first, wanted);
  const cutByBytes = last < wanted;
  const trailer = last < total ? `\n${moreTrailer(total, first, last, cutByBytes)}` : '';
  return {
    output: body + trailer,
    truncated: cutByBytes,
    metadata: { totalLines: total, firstLine: first, lastLine: last },
  };
}

/** Numbered lines `first..wanted`, stopping early (after at least one line) at READ_OUTPUT_BYTES_MAX. */
function numberLines(lines: string[], first: number, wanted: number): { text: string; last: number } {
  const out: string[] = [];
  let bytes = 0;
  let last = first - 1;
  for (let n = first; n <= wanted; n++) {
    const line = `${String(n).padStart(6)}\t${cutLine(lines[n - 1])}`;
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > READ_OUTPUT_BYTES_MAX && n > first) break;
    out.push(line);
    last = n;
  }
  return { text: out.join('\n'), last };
}

function cutLine(line: string): string {
  if (line.length <= READ_LINE_CHARS_MAX) return line;
  let end = READ_LINE_CHARS_MAX;
  const code = line.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--; // do not split a surrogate pair
  return `${line.slice(0, end)}… [line cut at ${READ_LINE_CHARS_MAX} of ${line.length} characters]`;
}

function moreTrailer(total: number, first: number, last: number, cutByBytes: boolean): string {
  const why = cutByBytes ? ', stopped at the output size limit' : '';
  return `(file has ${total} lines; showing ${first}-${last}${why}; use offset=${last + 1} to read more)`;
}
