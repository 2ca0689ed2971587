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
 * Directories are handled the same way (`openDirConfined`, `openChildDir`, `mkdirConfined`): a
 * walk lists each directory through its descriptor and opens children with `O_NOFOLLOW`, so a
 * directory swapped for a symlink mid-walk is refused, never followed.
 *
 * Layers 3 and 4 need Linux's /proc. Elsewhere the file is opened by path with `O_NOFOLLOW` and
 * checked by comparing device and inode with the real path's, which leaves a small race window.
 * This confines file tools only; bash is not confined by path rules.
 */
import { constants, type Dirent, type Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  FileAccessError,
  FileNotFoundError,
  InvalidPathError,
  NotADirectoryError,
  NotAFileError,
  PathOutsideLocationError,
} from './errors.js';

const { O_RDONLY, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;

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

// ---- directories --------------------------------------------------------------------------------

/**
 * A directory inside the location, held open. Names under it are resolved through its descriptor
 * (`/proc/self/fd/D/name`), so renaming or swapping its path for a symlink cannot redirect them.
 * The caller closes `handle`.
 */
export interface ConfinedDir {
  handle: FileHandle;
  /** Real path of the directory when it was opened (verified inside the real location). */
  realPath: string;
  /** Real path of the session directory, against which every child is checked. */
  realLocation: string;
}

/**
 * Opens the directory `relPath` (relative to `location`, or absolute inside it) for walking, with
 * the same checks as `openConfined`. Throws NotADirectoryError when it names something else. Use
 * it, not `realpathInside`, as the start of a walk: it pins the directory against a later swap.
 */
export async function openDirConfined(location: string, relPath: string): Promise<ConfinedDir> {
  const { handle, realPath } = await openConfined(location, relPath, O_RDONLY | O_NONBLOCK);
  return asConfinedDir(handle, realPath, await realLocationOf(location), relPath);
}

async function asConfinedDir(handle: FileHandle, realPath: string, realLocation: string, shown: string): Promise<ConfinedDir> {
  const stat = await handle.stat().catch(async (err: unknown) => {
    await handle.close();
    throw toFileError(err, shown);
  });
  if (!stat.isDirectory()) {
    await handle.close();
    throw new NotADirectoryError(shown);
  }
  return { handle, realPath, realLocation };
}

/**
 * Up to `max` entries of `dir` (unsorted, without `.` and `..`) and whether it had more. Reads
 * through the pinned descriptor, so the listing is of the directory that was opened.
 */
export async function readDirConfined(dir: ConfinedDir, max: number): Promise<{ entries: Dirent[]; more: boolean }> {
  const reader = await fs.opendir(await childBase(dir)).catch((err: unknown) => {
    throw toFileError(err, dir.realPath);
  });
  const entries: Dirent[] = [];
  try {
    for (let entry = await reader.read(); entry !== null; entry = await reader.read()) {
      if (entries.length >= max) return { entries, more: true };
      entries.push(entry);
    }
    return { entries, more: false };
  } finally {
    await reader.close();
  }
}

/**
 * Opens the subdirectory `name` of `dir` without following a symlink: a child that is (or was
 * swapped for) a symlink or anything but a directory is refused with NotADirectoryError.
 */
export async function openChildDir(dir: ConfinedDir, name: string): Promise<ConfinedDir> {
  const file = await openChild(dir, name, O_RDONLY | O_NONBLOCK | O_DIRECTORY);
  return asConfinedDir(file.handle, file.realPath, dir.realLocation, name);
}

/**
 * Opens the file `name` of `dir` with `flags` (`O_NOFOLLOW` is always added), verified inside;
 * `mode` gives the permission bits of a file `O_CREAT` makes.
 */
export async function openChildFile(dir: ConfinedDir, name: string, flags: number, mode?: number): Promise<ConfinedFile> {
  return openChild(dir, name, flags, mode);
}

/**
 * Renames the entry `from` of `dir` to `to` in the same directory (through its pinned descriptor,
 * so the rename happens in the directory that was opened and verified), replacing `to`
 * atomically. For restoring a file from a staged copy.
 */
export async function renameInDir(dir: ConfinedDir, from: string, to: string): Promise<void> {
  checkChildName(from);
  checkChildName(to);
  const base = await childBase(dir);
  await fs.rename(path.join(base, from), path.join(base, to)).catch((err: unknown) => {
    throw toFileError(err, path.join(dir.realPath, to));
  });
}

/** Removes the file (or symlink) `name` of `dir`, never a directory; false when it was not there. */
export async function unlinkInDir(dir: ConfinedDir, name: string): Promise<boolean> {
  checkChildName(name);
  try {
    await fs.unlink(path.join(await childBase(dir), name));
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw toFileError(err, path.join(dir.realPath, name));
  }
}

/** `lstat` of `name` in `dir`: the entry itself (a symlink is not followed). */
export async function lstatChild(dir: ConfinedDir, name: string): Promise<Stats> {
  checkChildName(name);
  return fs.lstat(path.join(await childBase(dir), name));
}

/** The target text of the symlink `name` in `dir` (not resolved, not followed). */
export async function readlinkChild(dir: ConfinedDir, name: string): Promise<string> {
  checkChildName(name);
  return fs.readlink(path.join(await childBase(dir), name));
}

async function openChild(dir: ConfinedDir, name: string, flags: number, mode?: number): Promise<ConfinedFile> {
  checkChildName(name);
  const req: OpenRequest = { realLocation: dir.realLocation, shown: path.join(dir.realPath, name), flags: flags | O_NOFOLLOW, mode };
  if (!(await hasProcFd())) return openByPathChecked(req, path.join(dir.realPath, name));
  const handle = await fs.open(`${fdPath(dir.handle.fd)}/${name}`, req.flags, req.mode).catch((err: unknown) => {
    // With O_DIRECTORY | O_NOFOLLOW, a symlink (or any non-directory) fails with ENOTDIR.
    if (isErrno(err, 'ENOTDIR') && (flags & O_DIRECTORY) !== 0) throw new NotADirectoryError(req.shown);
    throw toFileError(err, req.shown);
  });
  return verifyOpened(req, handle);
}

/** The path through which `dir`'s children are reached: its pinned descriptor where /proc exists. */
async function childBase(dir: ConfinedDir): Promise<string> {
  return (await hasProcFd()) ? fdPath(dir.handle.fd) : dir.realPath;
}

function checkChildName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`not a directory entry name: ${JSON.stringify(name)}`);
  }
}

/**
 * Creates the directory `relDir` and its missing parents inside the location (`mkdir -p`),
 * refusing with PathOutsideLocationError as soon as an existing component resolves outside it.
 * Each component is created and then opened through its parent's pinned descriptor and verified,
 * so no directory is ever created outside, whatever is swapped meanwhile. Existing symlinked
 * directories that stay inside are followed.
 */
export async function mkdirConfined(location: string, relDir: string, mode = 0o777): Promise<void> {
  const abs = resolveInside(location, relDir);
  const realLocation = await realLocationOf(location);
  const parts = path.relative(path.resolve(location), abs).split(path.sep).filter((part) => part !== '');
  let dir = await openDirConfined(realLocation, '.');
  try {
    for (const part of parts) {
      const next = await openOrMakeChildDir(dir, part, mode, relDir);
      await dir.handle.close();
      dir = next;
    }
  } finally {
    await dir.handle.close();
  }
}

async function openOrMakeChildDir(dir: ConfinedDir, name: string, mode: number, shown: string): Promise<ConfinedDir> {
  const child = path.join(await childBase(dir), name);
  await fs.mkdir(child, mode).catch((err: unknown) => {
    if (!isErrno(err, 'EEXIST')) throw toFileError(err, shown);
  });
  // Follows a symlink on purpose (an in-location link to a directory is fine); the check after
  // opening is what confines: the opened directory's real path must be inside.
  const req: OpenRequest = { realLocation: dir.realLocation, shown, flags: O_RDONLY | O_NONBLOCK | O_DIRECTORY, mode: undefined };
  const handle = await openOrThrow(req, child);
  const realPath = await realPathOfOpened(req, handle, child);
  if (!isInside(dir.realLocation, realPath)) {
    await handle.close();
    throw new PathOutsideLocationError(shown, 'resolves outside the session directory through a symlinked directory');
  }
  return asConfinedDir(handle, realPath, dir.realLocation, shown);
}

/** The real path of an opened handle: from /proc where it exists, else by resolving `file` again. */
async function realPathOfOpened(req: OpenRequest, handle: FileHandle, file: string): Promise<string> {
  try {
    return (await hasProcFd()) ? await fs.readlink(fdPath(handle.fd)) : await fs.realpath(file);
  } catch (err) {
    await handle.close();
    throw toFileError(err, req.shown);
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
