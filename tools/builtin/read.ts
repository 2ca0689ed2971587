/**
 * The `read` tool: a text file inside the session's directory, as numbered lines (`cat -n` style),
 * a window at a time. Idempotent, so recovery may run it again after a crash.
 */
import { constants, type Stats } from 'node:fs';
import { z } from 'zod';
import {
  READ_FILE_BYTES_MAX,
  READ_LINE_CHARS_MAX,
  READ_LINES_DEFAULT,
  READ_OUTPUT_BYTES_MAX,
  TOOL_TIMEOUT_DEFAULT_MS,
} from '../../core/limits.js';
import { openConfined } from '../confine.js';
import { FileTooLargeError, NotAFileError } from '../errors.js';
import { decodeText, readWhole } from '../text.js';
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
