/**
 * Reading a file's checkpoint state through confinement: its content hash (kept as a blob when
 * asked), `null` when there is no file, or `{ uncaptured }` saying why the content cannot stand
 * for it (a symlink, a special file, too large, unreadable).
 */
import { constants } from 'node:fs';
import path from 'node:path';
import type { CheckpointFileState } from '../../store/schemas.js';
import { openConfined } from '../confine.js';
import { FileAccessError, FileNotFoundError, ToolError } from '../errors.js';
import { readUpTo } from '../../core/files.js';
import { hashBytes, type BlobStore } from './blobs.js';

const { O_RDONLY, O_NONBLOCK } = constants;

export interface ReadStateOptions {
  /** Larger files are `{ uncaptured }`. */
  maxBytes: number;
  /** Keep the content as a blob (else only hash it). */
  blobs?: BlobStore;
}

/**
 * The state of `relPath` inside `location` now. Symlinks are not followed: a path that is (now)
 * a symlink is `{ uncaptured }`, which never equals a recorded state.
 */
export async function readFileState(location: string, relPath: string, options: ReadStateOptions): Promise<{ state: CheckpointFileState; mode?: number }> {
  let file;
  try {
    file = await openConfined(location, relPath, O_RDONLY | O_NONBLOCK, { followSymlinksInside: false });
  } catch (error) {
    if (error instanceof FileNotFoundError) return { state: null };
    if (error instanceof FileAccessError && error.code === 'ELOOP') return { state: { uncaptured: 'it is a symbolic link' } };
    if (error instanceof ToolError) return { state: { uncaptured: `unreadable: ${error.message}` } };
    throw error;
  }
  try {
    const stat = await file.handle.stat();
    const mode = stat.mode & 0o7777;
    if (!stat.isFile()) return { state: { uncaptured: stat.isDirectory() ? 'it is a directory' : 'it is not a regular file' }, mode };
    if (stat.size > options.maxBytes) return { state: { uncaptured: `${stat.size} bytes, over the ${options.maxBytes}-byte bound` }, mode };
    const bytes = await readUpTo(file.handle, stat.size);
    return { state: options.blobs ? await options.blobs.put(bytes) : hashBytes(bytes), mode };
  } finally {
    await file.handle.close();
  }
}

/** `realPath` relative to the real `location`, `/`-separated; undefined when it is not strictly inside. */
export function relativeInside(location: string, realPath: string): string | undefined {
  const rel = path.relative(location, realPath);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) return undefined;
  return rel.split(path.sep).join('/');
}

/** Two states are the same file content (or both no file). `{ uncaptured }` equals nothing. */
export function sameState(a: CheckpointFileState, b: CheckpointFileState): boolean {
  if (a === null || b === null) return a === b;
  return typeof a === 'string' && typeof b === 'string' && a === b;
}
