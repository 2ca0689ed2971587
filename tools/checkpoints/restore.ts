/**
 * Putting files back from kept blobs, through confinement, all or nothing as far as a file system
 * allows: every new content is first written to a temporary file beside its target (created
 * exclusively through the pinned parent directory); only when all are staged are they renamed over
 * their targets (atomic per file) and the files to remove unlinked. A failure while staging
 * removes the temporary files and changes nothing.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import path from 'node:path';
import { CHECKPOINT_FILE_BYTES_MAX } from '../../core/limits.js';
import { mkdirConfined, openChildFile, openDirConfined, renameInDir, unlinkInDir, type ConfinedDir } from '../confine.js';
import { FileNotFoundError } from '../errors.js';
import type { BlobStore } from './blobs.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NONBLOCK } = constants;

/** One file to restore: `to` is the content hash it gets, or null (the file is removed). */
export interface RestoreStep {
  /** Relative to the session directory, `/`-separated. */
  path: string;
  to: string | null;
  /** Permission bits for the restored file (default: 0666 less the umask). */
  mode?: number;
}

/** A blob the plan counted on is gone (pruned between the check and the restore). */
export class BlobMissingError extends Error {
  override name = 'BlobMissingError';
  constructor(readonly path: string) {
    super(`the prior content of ${path} is no longer kept (checkpoint retention); nothing was restored`);
  }
}

interface Staged {
  dir: string;
  base: string;
  temp: string;
}

export async function restoreFiles(location: string, blobs: BlobStore, steps: readonly RestoreStep[]): Promise<void> {
  const staged: Staged[] = [];
  try {
    for (const step of steps) if (step.to !== null) staged.push(await stage(location, blobs, step));
  } catch (error) {
    await Promise.all(staged.map((s) => removeTemp(location, s)));
    throw error;
  }
  for (const s of staged) await withDir(location, s.dir, (dir) => renameInDir(dir, s.temp, s.base));
  for (const step of steps) {
    if (step.to !== null) continue;
    const { dir, base } = split(step.path);
    try {
      await withDir(location, dir, (d) => unlinkInDir(d, base));
    } catch (error) {
      if (!(error instanceof FileNotFoundError)) throw error; // its directory is gone too: nothing to remove
    }
  }
}

async function stage(location: string, blobs: BlobStore, step: RestoreStep): Promise<Staged> {
  const bytes = await blobs.read(step.to!, CHECKPOINT_FILE_BYTES_MAX);
  if (!bytes) throw new BlobMissingError(step.path);
  const { dir, base } = split(step.path);
  if (dir !== '.') await mkdirConfined(location, dir);
  const temp = `.${base.slice(0, 200)}.loom-restore-${randomBytes(6).toString('hex')}`;
  await withDir(location, dir, async (d) => {
    const { handle } = await openChildFile(d, temp, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, step.mode ?? 0o666);
    try {
      let written = 0;
      while (written < bytes.length) written += (await handle.write(bytes, written, bytes.length - written, written)).bytesWritten;
      // The umask narrowed the create mode; the recorded bits are what the file had.
      if (step.mode !== undefined) await handle.chmod(step.mode);
    } finally {
      await handle.close();
    }
  });
  return { dir, base, temp };
}

async function removeTemp(location: string, s: Staged): Promise<void> {
  try {
    await withDir(location, s.dir, (d) => unlinkInDir(d, s.temp));
  } catch {
    // best effort: a stray temporary file is visible and harmless
  }
}

async function withDir<T>(location: string, dir: string, fn: (d: ConfinedDir) => Promise<T>): Promise<T> {
  const d = await openDirConfined(location, dir);
  try {
    return await fn(d);
  } finally {
    await d.handle.close();
  }
}

function split(relPath: string): { dir: string; base: string } {
  const parts = relPath.split('/');
  const base = parts.pop()!;
  return { dir: parts.length === 0 ? '.' : parts.join(path.sep), base };
}
