/**
 * The `edit` tool: exact string replacement in a text file inside the session's directory. The
 * file is read and written back through one confined descriptor, so its mode, owner and links stay
 * as they were. Not idempotent (running an edit twice may apply it twice).
 */
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { z } from 'zod';
import { EDIT_FILE_BYTES_MAX, TOOL_TIMEOUT_DEFAULT_MS } from '../../core/limits.js';
import { openConfined } from '../confine.js';
import { EditAmbiguousError, EditNoChangeError, EditNoMatchError, FileTooLargeError, NotAFileError, NotUtf8Error } from '../errors.js';
import { readWhole } from '../text.js';
import type { Tool } from '../types.js';

const { O_RDWR, O_NONBLOCK } = constants;

const editInput = z.object({
  path: z.string().min(1).describe('Path of the file, relative to the session directory (an absolute path must be inside it).'),
  old_string: z.string().min(1).describe('The exact text to replace, whitespace and line breaks included; it must occur exactly once unless replace_all is set.'),
  new_string: z.string().describe('The text to put in its place (must differ from old_string).'),
  replace_all: z.boolean().optional().describe('Replace every occurrence of old_string (default false).'),
});

export type EditInput = z.infer<typeof editInput>;

/** Fails on invalid UTF-8 instead of replacing it, and keeps a byte-order mark as text. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export const editTool: Tool<EditInput> = {
  name: 'edit',
  description:
    'Replace exact text in a file in the session directory. old_string must match the file exactly ' +
    '(read it first) and occur once, unless replace_all is true. Binary files and files larger than ' +
    `${EDIT_FILE_BYTES_MAX} bytes are refused. To create a file, use "write".`,
  input: editInput,
  idempotent: false,
  timeoutMs: TOOL_TIMEOUT_DEFAULT_MS,
  async execute(input, ctx) {
    if (input.old_string === input.new_string) throw new EditNoChangeError(input.path);
    // O_NONBLOCK: a FIFO must not block the open; it is refused as not a file right after.
    const { handle, realPath } = await openConfined(ctx.location, input.path, O_RDWR | O_NONBLOCK);
    try {
      const { text, bytes: prior, mode } = await readText(handle, input.path, ctx.signal);
      const { edited, count } = replace(text, input);
      ctx.signal.throwIfAborted();
      // The bytes just read, through the handle that writes: exactly what the edit replaces.
      await ctx.checkpoint?.keepBefore(realPath, { bytes: prior, mode });
      const bytes = Buffer.from(edited, 'utf8');
      await writeInPlace(handle, bytes);
      return {
        output: `Edited "${input.path}": replaced ${count} ${count === 1 ? 'occurrence' : 'occurrences'}`,
        metadata: { path: input.path, replacements: count, bytes: bytes.length },
      };
    } finally {
      await handle.close();
    }
  },
};

async function readText(handle: FileHandle, path: string, signal: AbortSignal): Promise<{ text: string; bytes: Buffer; mode: number }> {
  const stat = await handle.stat();
  if (!stat.isFile()) throw new NotAFileError(path, stat.isDirectory() ? 'directory' : 'special file');
  if (stat.size > EDIT_FILE_BYTES_MAX) throw new FileTooLargeError(path, stat.size, EDIT_FILE_BYTES_MAX);
  const bytes = await readWhole(handle, stat.size, path, signal);
  try {
    return { text: strictUtf8.decode(bytes), bytes, mode: stat.mode & 0o7777 };
  } catch {
    throw new NotUtf8Error(path);
  }
}

function replace(text: string, input: EditInput): { edited: string; count: number } {
  const count = countOccurrences(text, input.old_string);
  if (count === 0) throw new EditNoMatchError(input.path);
  if (count > 1 && input.replace_all !== true) throw new EditAmbiguousError(input.path, count);
  // A function replacement: `$&`, `$1`… in new_string are taken literally.
  const edited = input.replace_all === true ? text.replaceAll(input.old_string, () => input.new_string) : text.replace(input.old_string, () => input.new_string);
  return { edited, count };
}

/** Non-overlapping occurrences, as replaceAll counts them. */
function countOccurrences(text: string, needle: string): number {
  let count = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) count++;
  return count;
}

/** Writes `bytes` from offset 0 through the same descriptor, then cuts what is left of the old content. */
async function writeInPlace(handle: FileHandle, bytes: Buffer): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, written);
    written += bytesWritten;
  }
  await handle.truncate(bytes.length);
}
