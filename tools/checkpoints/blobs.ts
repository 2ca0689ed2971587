/**
 * Content-addressed storage of file contents for checkpoints: `$LOOM_HOME/checkpoints/blobs/<aa>/<sha256>`
 * (`aa` the first two hex digits, so no directory grows past a few thousand entries). A blob is
 * written once, atomically (a temporary file in `checkpoints/tmp/`, then renamed into place), and
 * only read back after its hash is checked again, so a blob damaged by a crash or by hand reads as
 * missing, never as wrong content. Files are 0600 and directories 0700: they hold copies of the
 * user's files.
 */
import { readUpTo } from '../../core/files.js';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_NONBLOCK } = constants;

const HASH = /^[0-9a-f]{64}$/;

/** The SHA-256 of `bytes`, in hex: a blob's name. */
export function hashBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class BlobStore {
  /** `$LOOM_HOME/checkpoints/blobs`. */
  readonly dir: string;
  private readonly tmp: string;

  constructor(home: string) {
    this.dir = path.join(home, 'checkpoints', 'blobs');
    this.tmp = path.join(home, 'checkpoints', 'tmp');
  }

  /** Where the blob `hash` lives (whether or not it exists). */
  pathOf(hash: string): string {
    if (!HASH.test(hash)) throw new Error(`not a blob hash: ${JSON.stringify(hash)}`);
    return path.join(this.dir, hash.slice(0, 2), hash);
  }

  /**
   * Keeps `bytes` and returns their hash. A blob that exists already is not written again (its
   * time is refreshed instead, so retention sees it in use).
   */
  async put(bytes: Uint8Array): Promise<string> {
    const hash = hashBytes(bytes);
    if (await this.touch(hash)) return hash;
    const final = this.pathOf(hash);
    await fs.mkdir(path.dirname(final), { recursive: true, mode: 0o700 });
    await fs.mkdir(this.tmp, { recursive: true, mode: 0o700 });
    const temp = path.join(this.tmp, `${hash}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const handle = await fs.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      await writeAll(handle, bytes);
    } catch (error) {
      await handle.close();
      await fs.rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    // Two writers of the same content race harmlessly: either rename leaves identical bytes.
    await fs.rename(temp, final).catch(async (error: unknown) => {
      await fs.rm(temp, { force: true });
      throw error;
    });
    return hash;
  }

  /** Refreshes the blob's modification time; false when it does not exist. */
  async touch(hash: string): Promise<boolean> {
    const now = new Date();
    try {
      await fs.utimes(this.pathOf(hash), now, now);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  async has(hash: string): Promise<boolean> {
    try {
      return (await fs.lstat(this.pathOf(hash))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * The blob's content, or undefined when it is missing (pruned by retention), larger than
   * `maxBytes`, or no longer matches its hash (damaged).
   */
  async read(hash: string, maxBytes: number): Promise<Buffer | undefined> {
    let handle: FileHandle;
    try {
      handle = await fs.open(this.pathOf(hash), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch {
      return undefined;
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile() || stat.size > maxBytes) return undefined;
      const bytes = await readUpTo(handle, stat.size);
      return hashBytes(bytes) === hash ? bytes : undefined;
    } finally {
      await handle.close();
    }
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, written);
    written += bytesWritten;
  }
}

