/**
 * `.gitignore` rules for the checkpoint scan, with the `ignore` package (git's matching rules).
 * Rules come from the repository's `.git/info/exclude`, every `.gitignore` between the repository
 * root and the session directory, and the `.gitignore` files met while walking it. A deeper file
 * decides before a shallower one, as in git (a `!negation` in a subdirectory re-includes a path a
 * parent ignored, unless a parent *directory* is ignored: the walk never enters it). The global
 * `core.excludesFile` is not read.
 */
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { CHECKPOINT_IGNORE_ANCESTORS_MAX, CHECKPOINT_IGNORE_FILE_BYTES_MAX } from '../../core/limits.js';
import { readUpTo } from '../../core/files.js';

interface Level {
  /** The directory (relative to the session directory, `/`-separated; '' for it and above) the rules belong to. */
  base: string;
  /** Prepended to paths tested against rules from above the session directory (`sub/dir/`). */
  prefix: string;
  rules: Ignore;
}

export class IgnoreRules {
  private constructor(private readonly levels: readonly Level[]) {}

  static none(): IgnoreRules {
    return new IgnoreRules([]);
  }

  /** These rules plus the `.gitignore` text of the directory `base` (relative, '' for the session directory). */
  with(base: string, text: string): IgnoreRules {
    return new IgnoreRules([...this.levels, { base, prefix: '', rules: ignore().add(text) }]);
  }

  /** Whether `relPath` (relative to the session directory, `/`-separated) is ignored. */
  ignores(relPath: string, isDir: boolean): boolean {
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const level = this.levels[i]!;
      let p: string;
      if (level.base === '') p = level.prefix + relPath;
      else if (relPath.startsWith(`${level.base}/`)) p = relPath.slice(level.base.length + 1);
      else continue;
      let result: ignore.TestResult;
      try {
        result = level.rules.test(isDir ? `${p}/` : p);
      } catch {
        continue; // a name the matcher refuses is not ignored
      }
      if (result.ignored) return true;
      if (result.unignored) return false;
    }
    return false;
  }

  /**
   * The rules that apply to the session directory from above it: the repository root is the
   * nearest directory (the session directory included) holding `.git`, at most
   * CHECKPOINT_IGNORE_ANCESTORS_MAX levels up. Outside a repository there are none (git would not
   * read those files either); the session directory's own `.gitignore` files are read by the walk.
   */
  static async forLocation(location: string): Promise<IgnoreRules> {
    const chain: string[] = [];
    let root: string | undefined;
    for (let dir = location, i = 0; i <= CHECKPOINT_IGNORE_ANCESTORS_MAX; i++) {
      chain.push(dir);
      if (await exists(path.join(dir, '.git'))) {
        root = dir;
        break;
      }
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
    if (root === undefined) return IgnoreRules.none();
    const levels: Level[] = [];
    const prefixOf = (dir: string) => {
      const rel = path.relative(dir, location).split(path.sep).join('/');
      return rel === '' ? '' : `${rel}/`;
    };
    const exclude = await readRules(path.join(root, '.git', 'info', 'exclude'));
    if (exclude !== undefined) levels.push({ base: '', prefix: prefixOf(root), rules: ignore().add(exclude) });
    // From the root down to the session directory's parent; the session directory's own file comes from the walk.
    for (const dir of chain.slice(1).reverse()) {
      const text = await readRules(path.join(dir, '.gitignore'));
      if (text !== undefined) levels.push({ base: '', prefix: prefixOf(dir), rules: ignore().add(text) });
    }
    return new IgnoreRules(levels);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** A rules file's text (its first CHECKPOINT_IGNORE_FILE_BYTES_MAX bytes), or undefined when there is none. */
export async function readRules(file: string): Promise<string | undefined> {
  let handle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return undefined;
    return (await readUpTo(handle, Math.min(stat.size, CHECKPOINT_IGNORE_FILE_BYTES_MAX))).toString('utf8');
  } finally {
    await handle.close();
  }
}
