/**
 * The bounded scan around a `bash` command: a confined walk of the session directory (no symlink
 * followed, `.git` and other version-control directories skipped, `.gitignore` rules respected)
 * recording each regular file's stat, and — before the command — keeping each file's content as a
 * blob, so a file the command changes or deletes can be shown and restored.
 *
 * Bounded by entries, depth, bytes of content kept and bytes per file (`ScanBounds`, defaults in
 * core/limits.ts). A scan that stops early says so in `incomplete`: changes in what it did not see
 * are not captured. Content is content-addressed, and the previous scan of a directory is
 * remembered (path → stat and hash), so a file whose stat did not change is not read again.
 */
import { constants, type Dirent, type Stats } from 'node:fs';
import {
  CHECKPOINT_IGNORE_FILE_BYTES_MAX,
  CHECKPOINT_SCAN_BYTES_MAX,
  CHECKPOINT_SCAN_DEPTH_MAX,
  CHECKPOINT_SCAN_ENTRIES_MAX,
  CHECKPOINT_SCAN_FILE_BYTES_MAX,
  WALK_DIR_ENTRIES_MAX,
} from '../../core/limits.js';
import { lstatChild, openChildDir, openChildFile, openDirConfined, readDirConfined, type ConfinedDir } from '../confine.js';
import { ToolError } from '../errors.js';
import { readUpTo } from '../../core/files.js';
import type { BlobStore } from './blobs.js';
import { IgnoreRules } from './ignore.js';

const { O_RDONLY, O_NONBLOCK } = constants;

/** Version-control data: never scanned, whatever the ignore rules say. */
const SKIPPED_DIRS: ReadonlySet<string> = new Set(['.git', '.hg', '.svn', '.jj']);

export interface ScanBounds {
  entriesMax: number;
  depthMax: number;
  /** Content bytes kept per scan (summed over the files seen). */
  bytesMax: number;
  /** Content bytes kept per file. */
  fileBytesMax: number;
}

export const DEFAULT_SCAN_BOUNDS: ScanBounds = {
  entriesMax: CHECKPOINT_SCAN_ENTRIES_MAX,
  depthMax: CHECKPOINT_SCAN_DEPTH_MAX,
  bytesMax: CHECKPOINT_SCAN_BYTES_MAX,
  fileBytesMax: CHECKPOINT_SCAN_FILE_BYTES_MAX,
};

/** What identifies a file's version without reading it. */
export interface FileStat {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** Permission bits. */
  mode: number;
}

export interface ScannedFile extends FileStat {
  /** The content's hash, when the scan kept it. */
  hash?: string;
  /** Why the content was not kept (a scan that keeps content). */
  uncaptured?: string;
}

export interface DirectoryScan {
  /** Regular files by path (relative, `/`-separated). */
  files: Map<string, ScannedFile>;
  /** Why the scan does not cover the whole directory (empty: it does). */
  incomplete: string[];
}

/** The previous scan of a directory: path → stat and content hash. */
export type ScanCache = Map<string, FileStat & { hash: string }>;

export interface ScanOptions {
  blobs: BlobStore;
  /** Keep every file's content (the scan before a command). */
  keep: boolean;
  bounds: ScanBounds;
  /** Files whose stat matches here are not read again (their blob is touched instead). */
  cache?: ScanCache;
  signal?: AbortSignal;
}

export function sameStat(a: FileStat, b: FileStat): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.mode === b.mode;
}

interface Walk {
  options: ScanOptions;
  entries: number;
  bytes: number;
  files: Map<string, ScannedFile>;
  incomplete: Set<string>;
}

/** Scans `location` (its real path). Throws only when the directory itself cannot be opened, or on abort. */
export async function scanDirectory(location: string, options: ScanOptions): Promise<DirectoryScan> {
  const walk: Walk = { options, entries: 0, bytes: 0, files: new Map(), incomplete: new Set() };
  const rules = await IgnoreRules.forLocation(location);
  const root = await openDirConfined(location, '.');
  try {
    await walkDir(walk, root, '', 0, rules);
  } finally {
    await root.handle.close();
  }
  return { files: walk.files, incomplete: [...walk.incomplete] };
}

/** Returns false once the walk must stop. */
async function walkDir(walk: Walk, dir: ConfinedDir, rel: string, depth: number, rules: IgnoreRules): Promise<boolean> {
  const { bounds, signal } = walk.options;
  let listed: { entries: Dirent[]; more: boolean };
  try {
    listed = await readDirConfined(dir, WALK_DIR_ENTRIES_MAX);
  } catch (error) {
    if (depth === 0 || !(error instanceof ToolError)) throw error;
    walk.incomplete.add(`the directory "${rel}" could not be read`);
    return true;
  }
  if (listed.more) walk.incomplete.add(`the directory "${rel || '.'}" has more than ${WALK_DIR_ENTRIES_MAX} entries`);
  const entries = listed.entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const here = await withGitignore(dir, rel, entries, rules);
  for (const entry of entries) {
    signal?.throwIfAborted();
    if (walk.entries >= bounds.entriesMax) {
      walk.incomplete.add(`the scan stopped after ${bounds.entriesMax} files and directories`);
      return false;
    }
    walk.entries++;
    const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) {
      if (SKIPPED_DIRS.has(entry.name) || here.ignores(childRel, true)) continue;
      if (depth >= bounds.depthMax) {
        walk.incomplete.add(`directories more than ${bounds.depthMax} levels deep were not scanned`);
        continue;
      }
      if (!(await descend(walk, dir, entry.name, childRel, depth + 1, here))) return false;
    } else if (entry.isFile() && !here.ignores(childRel, false)) {
      await visitFile(walk, dir, entry.name, childRel);
    }
    // Symlinks and special files are not scanned (a command that changes one is not captured).
  }
  return true;
}

async function descend(walk: Walk, parent: ConfinedDir, name: string, rel: string, depth: number, rules: IgnoreRules): Promise<boolean> {
  let child: ConfinedDir;
  try {
    child = await openChildDir(parent, name);
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    return true; // gone or swapped for a symlink since it was listed: not followed
  }
  try {
    return await walkDir(walk, child, rel, depth, rules);
  } finally {
    await child.handle.close();
  }
}

async function withGitignore(dir: ConfinedDir, rel: string, entries: Dirent[], rules: IgnoreRules): Promise<IgnoreRules> {
  if (!entries.some((e) => e.name === '.gitignore' && e.isFile())) return rules;
  try {
    const { handle } = await openChildFile(dir, '.gitignore', O_RDONLY | O_NONBLOCK);
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) return rules;
      return rules.with(rel, (await readUpTo(handle, Math.min(stat.size, CHECKPOINT_IGNORE_FILE_BYTES_MAX))).toString('utf8'));
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof ToolError) return rules;
    throw error;
  }
}

async function visitFile(walk: Walk, dir: ConfinedDir, name: string, rel: string): Promise<void> {
  let stat: Stats;
  try {
    stat = await lstatChild(dir, name);
  } catch {
    return; // removed since it was listed
  }
  if (!stat.isFile()) return;
  const file: ScannedFile = statOf(stat);
  walk.files.set(rel, file);
  if (walk.options.keep) await keepContent(walk, dir, name, rel, file);
}

async function keepContent(walk: Walk, dir: ConfinedDir, name: string, rel: string, file: ScannedFile): Promise<void> {
  const { bounds, blobs, cache } = walk.options;
  if (file.size > bounds.fileBytesMax) {
    file.uncaptured = `${file.size} bytes, over the ${bounds.fileBytesMax}-byte bound of the bash scan`;
    return;
  }
  if (walk.bytes + file.size > bounds.bytesMax) {
    file.uncaptured = `past the ${bounds.bytesMax}-byte bound of the bash scan`;
    return;
  }
  walk.bytes += file.size;
  const cached = cache?.get(rel);
  if (cached && sameStat(cached, file) && (await blobs.touch(cached.hash))) {
    file.hash = cached.hash;
    return;
  }
  try {
    const { handle } = await openChildFile(dir, name, O_RDONLY | O_NONBLOCK);
    try {
      const stat = await handle.stat();
      if (!stat.isFile() || stat.ino !== file.ino || stat.size > bounds.fileBytesMax) {
        file.uncaptured = 'it changed while it was scanned';
        return;
      }
      const bytes = await readUpTo(handle, stat.size);
      // The stat that goes with the content read: a write between lstat and read shows as a change later.
      Object.assign(file, statOf(stat));
      file.hash = await blobs.put(bytes);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    file.uncaptured = `unreadable: ${error.message}`;
  }
}

function statOf(stat: Stats): ScannedFile {
  return { size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino, mode: stat.mode & 0o7777 };
}
