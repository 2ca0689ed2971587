/**
 * A confined depth-first walk of a directory tree for `glob` and `grep`. Every directory is
 * opened through its parent's pinned descriptor without following symlinks, and listed through
 * its own descriptor, so swapping a directory for a symlink mid-walk cannot lead the walk out of
 * the session directory. Symlinks are reported as entries and never descended into.
 */
import type { Dirent } from 'node:fs';
import { WALK_DIR_ENTRIES_MAX } from '../core/limits.js';
import { openChildDir, readDirConfined, type ConfinedDir } from './confine.js';
import { ToolError } from './errors.js';

/**
 * Directories the walking tools skip unless the walk starts inside them: version-control data,
 * dependencies, caches and build output. `list` shows them, collapsed.
 */
export const DEFAULT_IGNORED_DIRS: ReadonlySet<string> = new Set([
  '.git',
  '.hg',
  '.svn',
  '.jj',
  'node_modules',
  'bower_components',
  '__pycache__',
  '.venv',
  'venv',
  '.tox',
  '.mypy_cache',
  '.pytest_cache',
  '.ruff_cache',
  '.next',
  '.nuxt',
  '.turbo',
  '.parcel-cache',
  '.gradle',
  '.cache',
  'dist',
  'build',
  'target',
  'coverage',
]);

export type EntryKind = 'file' | 'dir' | 'symlink' | 'other';

export interface WalkEntry {
  /** The open directory holding the entry; open or stat the entry through it. */
  dir: ConfinedDir;
  name: string;
  /** Path relative to the walk's root, `/`-separated. */
  relPath: string;
  kind: EntryKind;
}

export interface WalkOptions {
  /** Levels below the root to descend (0: the root's entries only). */
  maxDepth: number;
  /** Entries to visit before stopping. */
  maxEntries: number;
  signal: AbortSignal;
  /** Directories not descended into (default: DEFAULT_IGNORED_DIRS by name). */
  skipDir?: (name: string, relPath: string) => boolean;
}

export interface WalkSummary {
  /** Entries visited. */
  entries: number;
  /** True when the walk stopped at `maxEntries`, at `maxDepth`, or at a directory's entry bound. */
  incomplete: boolean;
  /** Entries that changed under the walk (vanished, or became a symlink) or could not be opened. */
  skipped: number;
}

/** Called per entry; return false to stop the walk. */
export type WalkVisitor = (entry: WalkEntry) => Promise<boolean | void> | boolean | void;

/**
 * Visits every entry under `root` (which stays open; the caller closes it), in name order,
 * depth first. Directories are visited before their contents.
 */
export async function walkConfined(root: ConfinedDir, options: WalkOptions, visit: WalkVisitor): Promise<WalkSummary> {
  const summary: WalkSummary = { entries: 0, incomplete: false, skipped: 0 };
  const skipDir = options.skipDir ?? ((name: string) => DEFAULT_IGNORED_DIRS.has(name));
  await walkDir({ options, visit, summary, skipDir }, root, '', 0);
  return summary;
}

interface Walk {
  options: WalkOptions;
  visit: WalkVisitor;
  summary: WalkSummary;
  skipDir: (name: string, relPath: string) => boolean;
}

/** Returns false once the walk must stop. */
async function walkDir(walk: Walk, dir: ConfinedDir, relDir: string, depth: number): Promise<boolean> {
  const listed = await readDirConfined(dir, WALK_DIR_ENTRIES_MAX).catch((err: unknown) => {
    // An unreadable subdirectory is skipped; an unreadable root is the caller's error.
    if (depth === 0 || !(err instanceof ToolError)) throw err;
    walk.summary.skipped++;
    return { entries: [], more: false };
  });
  const { entries, more } = listed;
  if (more) walk.summary.incomplete = true;
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const dirent of entries) {
    walk.options.signal.throwIfAborted();
    if (walk.summary.entries >= walk.options.maxEntries) {
      walk.summary.incomplete = true;
      return false;
    }
    walk.summary.entries++;
    const relPath = relDir === '' ? dirent.name : `${relDir}/${dirent.name}`;
    const kind = kindOf(dirent);
    if ((await walk.visit({ dir, name: dirent.name, relPath, kind })) === false) return false;
    if (kind !== 'dir' || walk.skipDir(dirent.name, relPath)) continue;
    if (depth >= walk.options.maxDepth) {
      walk.summary.incomplete = true;
      continue;
    }
    if (!(await descend(walk, dir, dirent.name, relPath, depth + 1))) return false;
  }
  return true;
}

async function descend(walk: Walk, parent: ConfinedDir, name: string, relPath: string, depth: number): Promise<boolean> {
  let child: ConfinedDir;
  try {
    child = await openChildDir(parent, name);
  } catch (err) {
    // Swapped for a symlink, removed, or unreadable since it was listed: skip it, never follow.
    if (!(err instanceof ToolError)) throw err;
    walk.summary.skipped++;
    return true;
  }
  try {
    return await walkDir(walk, child, relPath, depth);
  } finally {
    await child.handle.close();
  }
}

/** The entry's own kind; a symlink is a symlink, whatever it points to. */
export function kindOf(dirent: Dirent): EntryKind {
  if (dirent.isSymbolicLink()) return 'symlink';
  if (dirent.isDirectory()) return 'dir';
  if (dirent.isFile()) return 'file';
  return 'other';
}
