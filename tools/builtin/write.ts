/**
 * The `write` tool: creates or overwrites a text file inside the session's directory, creating
 * missing parent directories inside it. Not idempotent: after a crash the call settles
 * `interrupted` rather than running again.
 */
import { constants } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { FileHandle } from 'node:fs/promises';
import { CHECKPOINT_FILE_BYTES_MAX, TOOL_TIMEOUT_DEFAULT_MS, WRITE_CONTENT_BYTES_MAX } from '../../core/limits.js';
import { readUpTo } from '../../core/files.js';
import { mkdirConfined, openConfined, resolveInside, type ConfinedFile } from '../confine.js';
import { ContentTooLargeError, FileAccessError, NotAFileError } from '../errors.js';
import type { PriorFile, Tool } from '../types.js';

const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_NONBLOCK } = constants;

/** Permission bits of a new file, before the umask (as `touch` and editors create files). */
const NEW_FILE_MODE = 0o666;

const writeInput = z.object({
  path: z.string().min(1).describe('Path of the file, relative to the session directory (an absolute path must be inside it).'),
  content: z.string().describe('The whole new content of the file.'),
});

export type WriteInput = z.infer<typeof writeInput>;

export const writeTool: Tool<WriteInput> = {
  name: 'write',
  description:
    'Create or overwrite a text file in the session directory with the given content; missing parent ' +
    `directories are created. At most ${WRITE_CONTENT_BYTES_MAX} bytes. Prefer "edit" to change part of an existing file.`,
  input: writeInput,
  idempotent: false,
  timeoutMs: TOOL_TIMEOUT_DEFAULT_MS,
  async execute(input, ctx) {
    const bytes = Buffer.from(input.content, 'utf8');
    if (bytes.length > WRITE_CONTENT_BYTES_MAX) throw new ContentTooLargeError('write', bytes.length, WRITE_CONTENT_BYTES_MAX);
    const parent = path.dirname(resolveInside(ctx.location, input.path));
    await mkdirConfined(ctx.location, parent);
    ctx.signal.throwIfAborted();
    const { file, created, truncated } = await openForWrite(ctx.location, input.path, ctx.checkpoint !== undefined);
    try {
      const stat = await file.handle.stat();
      if (!stat.isFile()) throw new NotAFileError(input.path, 'special file', 'write only writes regular files');
      // The prior content is read through the handle that writes, so nothing can slip in between.
      if (ctx.checkpoint) {
        const prior: PriorFile = created
          ? null
          : truncated
            ? { uncaptured: 'it could not be read (write-only)', mode: stat.mode & 0o7777 }
            : await readPrior(file.handle, stat.size, stat.mode);
        await ctx.checkpoint.keepBefore(file.realPath, prior);
      }
      if (!created && !truncated) await file.handle.truncate(0);
      await writeAll(file.handle, bytes);
    } finally {
      await file.handle.close();
    }
    const lines = countLines(input.content);
    return {
      output: `${created ? 'Created' : 'Overwrote'} "${input.path}": ${bytes.length} bytes, ${lines} ${lines === 1 ? 'line' : 'lines'}`,
      metadata: { path: input.path, bytes: bytes.length, lines, created },
    };
  },
};

/**
 * Opens the file confined, creating it if missing. The exclusive create tells a new file from an
 * overwritten one; O_NONBLOCK keeps a FIFO from blocking the open (it is refused after). When the
 * prior content is to be kept, an existing file is opened for reading and writing without
 * truncation (the caller reads it, then truncates); a file that cannot be read is truncated on
 * open as before (`truncated`).
 */
async function openForWrite(location: string, relPath: string, keepPrior: boolean): Promise<{ file: ConfinedFile; created: boolean; truncated: boolean }> {
  try {
    const file = await openConfined(location, relPath, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, { mode: NEW_FILE_MODE });
    return { file, created: true, truncated: false };
  } catch (err) {
    if (!(err instanceof FileAccessError && err.code === 'EEXIST')) throw err;
  }
  if (keepPrior) {
    try {
      return { file: await openConfined(location, relPath, O_RDWR | O_NONBLOCK), created: false, truncated: false };
    } catch (err) {
      if (!(err instanceof FileAccessError && (err.code === 'EACCES' || err.code === 'EPERM'))) throw err;
    }
  }
  const file = await openConfined(location, relPath, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK, { mode: NEW_FILE_MODE });
  return { file, created: false, truncated: true };
}

/** The file's content before the write, for its checkpoint (or why it is not kept: too large). */
async function readPrior(handle: FileHandle, size: number, mode: number): Promise<PriorFile> {
  if (size > CHECKPOINT_FILE_BYTES_MAX) return { uncaptured: `${size} bytes, over the ${CHECKPOINT_FILE_BYTES_MAX}-byte bound`, mode: mode & 0o7777 };
  return { bytes: await readUpTo(handle, size), mode: mode & 0o7777 };
}

/** Writes `bytes` from offset 0 (positional writes: the read before moved nothing). */
async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, written);
    written += bytesWritten;
  }
}

/** Lines as an editor counts them: a final line without a newline counts, an empty file has none. */
export function countLines(text: string): number {
  if (text === '') return 0;
  let lines = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines++;
  return text.endsWith('\n') ? lines : lines + 1;
}
