/**
 * Path confinement: file tools may touch only files inside the session's directory (its
 * *location*). Node has no `openat`, so a check of the path string alone would be fooled by
 * symlinks and by races (a parent directory swapped for a symlink between check and open). The
 * defence here has four layers:
 *
 * 1. lexical: the path, resolved against the location, must stay inside it (`..` escapes refused);
 * 2. the real path of the parent directory (`fs.realpath`) must be inside the real location;
 * 3. the parent is opened as a directory and the file is opened *through that descriptor*
 *    (`/proc/self/fd/D/name`, which pins the directory like `openat` would) with `O_NOFOLLOW`, so a
 *    final-component symlink is never followed by the kernel;
 * 4. after open, `/proc/self/fd/N` is read back and the opened file's real path must be inside the
 *    real location; if not, the handle is closed and the open refused.
 *
 * A final-component symlink whose whole target lies inside the location is followed by resolving
 * it first and opening the resolved path (again with `O_NOFOLLOW`), so in-repo links such as
 * `CLAUDE.md -> AGENTS.md` work; pass `followSymlinksInside: false` to refuse every symlink.
 *
 * Layers 3 and 4 need Linux's /proc. Elsewhere the file is opened by path with `O_NOFOLLOW` and
 * checked by comparing device and inode with the real path's, which leaves a small race window.
 * This confines file tools only; bash is not confined by path rules.
 */
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { FileAccessError, FileNotFoundError, InvalidPathError, NotAFileError, PathOutsideLocationError } from './errors.js';

const { O_RDONLY, O_NOFOLLOW, O_DIRECTORY } = constants;

/** An opened file and the real path the kernel reports for it. The caller closes `handle`. */
export interface ConfinedFile {
  handle: FileHandle;
  realPath: string;
}

export interface OpenConfinedOptions {
  /** Permission bits when `flags` include `O_CREAT`. */
  mode?: number;
  /** Follow a final-component symlink whose target is inside the location (default true). */
  followSymlinksInside?: boolean;
}

/** True when `candidate` is `root` or lies beneath it. Both must be absolute and normalised. */
export function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  if (rel === '') return true;
  return rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/**
 * Resolves `relPath` against `location` lexically and refuses it unless it stays inside. Absolute
 * paths are accepted only when they are inside the location. Use it to validate and normalise a
 * path; it does not touch the file system, so symlinks are *not* checked: open files with
 * `openConfined` and walk directories from `realpathInside`.
 */
export function resolveInside(location: string, relPath: string): string {
  if (!path.isAbsolute(location)) throw new Error(`location must be absolute, got "${location}"`);
  if (relPath === '') throw new InvalidPathError(relPath, 'the path is empty');
  if (relPath.includes('\0')) throw new InvalidPathError(relPath, 'the path contains a NUL byte');
  const abs = path.resolve(location, relPath);
  if (!isInside(path.resolve(location), abs)) throw new PathOutsideLocationError(relPath);
  return abs;
}

/**
 * The real path (all symlinks resolved) of an existing file or directory, refused unless it is
 * inside the real location. For tools that walk directories (list, glob, grep); a file's contents
 * should be read through `openConfined` instead, which also closes the race this leaves open.
 */
export async function realpathInside(location: string, relPath: string): Promise<string> {
  const abs = resolveInside(location, relPath);
  const realLocation = await realLocationOf(location);
  const real = await fs.realpath(abs).catch((err: unknown) => {
    throw toFileError(err, relPath);
  });
  if (!isInside(realLocation, real)) {
    throw new PathOutsideLocationError(relPath, 'resolves outside the session directory through a symlink');
  }
  return real;
}

/**
 * Opens `relPath` (relative to `location`, or absolute inside it) with `flags` (`fs.constants`
 * bits; `O_NOFOLLOW` is always added) and returns the handle plus its real path. Refuses, with a
 * typed error naming the path, anything that resolves outside the location, lexically or through
 * a symlinked parent or final component. Gotcha: opening a FIFO for reading blocks until a writer
 * appears, so readers should pass `O_NONBLOCK` and check `stat().isFile()` themselves.
 */
export async function openConfined(
  location: string,
  relPath: string,
  flags: number,
  options: OpenConfinedOptions = {},
): Promise<ConfinedFile> {
  const abs = resolveInside(location, relPath);
  const realLocation = await realLocationOf(location);
  const rel = path.relative(path.resolve(location), abs);
  const follow = options.followSymlinksInside ?? true;
  return openRelative({ realLocation, shown: relPath, flags: flags | O_NOFOLLOW, mode: options.mode }, rel, follow);
}

interface OpenRequest {
  realLocation: string;
  /** The path as the caller wrote it; every error names this. */
  shown: string;
  flags: number;
  mode: number | undefined;
}

async function openRelative(req: OpenRequest, rel: string, follow: boolean): Promise<ConfinedFile> {
  if (rel === '') return verifyOpened(req, await openOrThrow(req, req.realLocation));
  const realParent = await realParentInside(req, path.dirname(rel));
  const base = path.basename(rel);
  try {
    return await openInDirectory(req, realParent, base);
  } catch (err) {
    if (!isErrno(err, 'ELOOP')) throw toFileError(err, req.shown);
    if (!follow) throw new FileAccessError(req.shown, 'ELOOP', 'it is a symbolic link, and symbolic links are not followed here');
    const target = await symlinkTargetInside(req, path.join(realParent, base));
    // One hop only: the target is fully resolved, so meeting a symlink again means a race.
    return openRelative(req, path.relative(req.realLocation, target), false);
  }
}

async function realParentInside(req: OpenRequest, parentRel: string): Promise<string> {
  const real = await fs.realpath(path.join(req.realLocation, parentRel)).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) throw new FileNotFoundError(req.shown, 'does not exist (its directory is missing)');
    throw toFileError(err, req.shown);
  });
  if (!isInside(req.realLocation, real)) {
    throw new PathOutsideLocationError(req.shown, 'resolves outside the session directory through a symlinked directory');
  }
  return real;
}

async function symlinkTargetInside(req: OpenRequest, link: string): Promise<string> {
  const target = await fs.realpath(link).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) throw new FileNotFoundError(req.shown, 'is a symbolic link to a file that does not exist');
    throw toFileError(err, req.shown);
  });
  if (!isInside(req.realLocation, target)) {
    throw new PathOutsideLocationError(req.shown, 'is a symbolic link that points outside the session directory');
  }
  return target;
}

async function openInDirectory(req: OpenRequest, realParent: string, base: string): Promise<ConfinedFile> {
  if (!(await hasProcFd())) return openByPathChecked(req, path.join(realParent, base));
  const dir = await fs.open(realParent, O_RDONLY | O_DIRECTORY);
  try {
    const dirReal = await fs.readlink(fdPath(dir.fd));
    if (!isInside(req.realLocation, dirReal)) {
      throw new PathOutsideLocationError(req.shown, 'resolves outside the session directory (its directory moved)');
    }
    // The kernel resolves /proc/self/fd/D to the opened directory itself, whatever its path is now.
    const handle = await fs.open(`${fdPath(dir.fd)}/${base}`, req.flags, req.mode);
    return await verifyOpened(req, handle);
  } finally {
    await dir.close();
  }
}

async function openOrThrow(req: OpenRequest, file: string): Promise<FileHandle> {
  return fs.open(file, req.flags, req.mode).catch((err: unknown) => {
    throw toFileError(err, req.shown);
  });
}

async function verifyOpened(req: OpenRequest, handle: FileHandle): Promise<ConfinedFile> {
  if (!(await hasProcFd())) return { handle, realPath: req.realLocation };
  try {
    const realPath = await fs.readlink(fdPath(handle.fd));
    if (!isInside(req.realLocation, realPath)) {
      throw new PathOutsideLocationError(req.shown, 'was opened outside the session directory (it moved while opening)');
    }
    return { handle, realPath };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Fallback without /proc: open by path, then compare device and inode with the real path's. */
async function openByPathChecked(req: OpenRequest, file: string): Promise<ConfinedFile> {
  const handle = await fs.open(file, req.flags, req.mode);
  try {
    const realPath = await fs.realpath(file);
    const [opened, named] = await Promise.all([handle.stat(), fs.stat(realPath)]);
    if (!isInside(req.realLocation, realPath) || opened.dev !== named.dev || opened.ino !== named.ino) {
      throw new PathOutsideLocationError(req.shown, 'was opened outside the session directory (it moved while opening)');
    }
    return { handle, realPath };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

async function realLocationOf(location: string): Promise<string> {
  return fs.realpath(location).catch((err: unknown) => {
    throw toFileError(err, location);
  });
}

let procFd: Promise<boolean> | undefined;

function hasProcFd(): Promise<boolean> {
  procFd ??=
    process.platform === 'linux'
      ? fs.access('/proc/self/fd').then(
          () => true,
          () => false,
        )
      : Promise.resolve(false);
  return procFd;
}

function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/**
 * Turns a Node file-system error into the typed tool error for `shown` (the path as the caller
 * wrote it). Errors that are already typed, and non-errno errors, are returned unchanged.
 */
export function toFileError(err: unknown, shown: string): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case undefined:
      return err;
    case 'ENOENT':
      return new FileNotFoundError(shown);
    case 'ENOTDIR':
      return new FileNotFoundError(shown, 'does not exist (a parent is not a directory)');
    case 'EISDIR':
      return new NotAFileError(shown, 'directory');
    case 'ELOOP':
      return new FileAccessError(shown, code, 'too many levels of symbolic links');
    case 'EACCES':
    case 'EPERM':
      return new FileAccessError(shown, code, 'permission denied');
    default:
      return new FileAccessError(shown, code, err.message);
  }
}
