/**
 * Instruction files: the project's own words to the agent (AGENTS.md, CLAUDE.md), found from the
 * session's directory up to the repository root, plus a global AGENTS.md in `$LOOM_HOME`. They go
 * into every request's system prompt, each labelled with its path (services/agents.ts).
 *
 * Bounded and safe to read: at most INSTRUCTION_DIRS_MAX directories are walked, at most
 * INSTRUCTION_FILES_MAX files and INSTRUCTION_TOTAL_BYTES_MAX bytes are taken (the nearest files
 * first), one file is read up to INSTRUCTION_FILE_BYTES_MAX bytes, and a file is opened with
 * O_NONBLOCK and must be a regular file, so a FIFO or a device in its place never hangs a turn.
 */
import { readUpTo } from '../core/files.js';
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { INSTRUCTION_DIRS_MAX, INSTRUCTION_FILE_BYTES_MAX, INSTRUCTION_FILES_MAX, INSTRUCTION_TOTAL_BYTES_MAX } from '../core/limits.js';

/** The names looked for in each directory, in this order. */
export const INSTRUCTION_FILE_NAMES = ['AGENTS.md', 'CLAUDE.md'] as const;

/** The global instruction file's name in `$LOOM_HOME`. */
export const GLOBAL_INSTRUCTION_FILE = 'AGENTS.md';

export interface InstructionFile {
  /** Absolute path as found (a symlink is followed, and named by its own path). */
  path: string;
  /** `global` ($LOOM_HOME) or `project` (the session's directory or one above it). */
  scope: 'global' | 'project';
  /** The text read, cut at INSTRUCTION_FILE_BYTES_MAX (never inside a UTF-8 sequence). */
  text: string;
  /** The file's size in bytes, as fstat saw it. */
  bytes: number;
  truncated: boolean;
}

export interface Instructions {
  /** Files to put in the prompt: the global one first, then from the farthest directory to the nearest. */
  files: InstructionFile[];
  /** The repository root (the nearest directory with a `.git`), or null when the walk found none. */
  repositoryRoot: string | null;
  /** Files found but left out, with why (over a bound, unreadable, not a regular file). */
  skipped: { path: string; reason: string }[];
}

export interface DiscoverOptions {
  /** The session's directory. */
  location: string;
  /** `$LOOM_HOME`, where the global AGENTS.md lives. */
  home: string;
  /**
   * The user's home directory: the walk upwards never reads it or anything above it (unless the
   * session's directory is itself there). Undefined: no such bound.
   */
  userHome?: string;
}

/**
 * Finds and reads the instruction files of a session directory:
 * 1. directories from `location` upwards: each one's AGENTS.md and CLAUDE.md; the walk stops after
 *    the first directory holding `.git` (the repository root), at the filesystem root, before
 *    `userHome`, or after INSTRUCTION_DIRS_MAX directories;
 * 2. `$LOOM_HOME/AGENTS.md`.
 * The nearest files win the bounds. A file reached twice (CLAUDE.md as a symlink to AGENTS.md) is
 * taken once. Never throws for a file: what cannot be read is listed in `skipped`.
 */
export async function discoverInstructions(options: DiscoverOptions): Promise<Instructions> {
  const location = path.resolve(options.location);
  const { dirs, repositoryRoot } = await walkUp(location, options.userHome === undefined ? undefined : path.resolve(options.userHome));
  // Priority: nearest directory first, then the global file; the prompt shows them the other way round.
  const candidates: { path: string; scope: InstructionFile['scope']; depth: number }[] = [];
  for (const [depth, dir] of dirs.entries()) for (const name of INSTRUCTION_FILE_NAMES) candidates.push({ path: path.join(dir, name), scope: 'project', depth });
  candidates.push({ path: path.join(path.resolve(options.home), GLOBAL_INSTRUCTION_FILE), scope: 'global', depth: dirs.length });

  const taken: (InstructionFile & { depth: number })[] = [];
  const skipped: Instructions['skipped'] = [];
  const seen = new Set<string>();
  let total = 0;
  for (const candidate of candidates) {
    const read = await readInstructionFile(candidate.path);
    if (read === undefined) continue;
    if ('reason' in read) {
      skipped.push({ path: candidate.path, reason: read.reason });
      continue;
    }
    if (seen.has(read.identity)) continue;
    seen.add(read.identity);
    const size = Buffer.byteLength(read.text);
    if (taken.length >= INSTRUCTION_FILES_MAX) {
      skipped.push({ path: candidate.path, reason: `over the limit of ${INSTRUCTION_FILES_MAX} instruction files` });
      continue;
    }
    if (total + size > INSTRUCTION_TOTAL_BYTES_MAX) {
      skipped.push({ path: candidate.path, reason: `over the limit of ${INSTRUCTION_TOTAL_BYTES_MAX} bytes of instructions` });
      continue;
    }
    total += size;
    taken.push({ path: candidate.path, scope: candidate.scope, depth: candidate.depth, text: read.text, bytes: read.bytes, truncated: read.truncated });
  }
  // Farthest first (the global file farthest of all); within a directory, AGENTS.md before CLAUDE.md.
  const files = taken.map((f, i) => ({ f, i })).sort((a, b) => b.f.depth - a.f.depth || a.i - b.i).map(({ f: { depth: _depth, ...file } }) => file);
  return { files, repositoryRoot, skipped };
}

/** The directories to look in, nearest first, and the repository root if the walk found one. */
async function walkUp(location: string, userHome: string | undefined): Promise<{ dirs: string[]; repositoryRoot: string | null }> {
  const dirs: string[] = [];
  let dir = location;
  for (let i = 0; i < INSTRUCTION_DIRS_MAX; i++) {
    // The session's own directory is always read; above it, never $HOME or what lies above it.
    if (i > 0 && userHome !== undefined && !isStrictlyInside(dir, userHome)) break;
    dirs.push(dir);
    if (await exists(path.join(dir, '.git'))) return { dirs, repositoryRoot: dir };
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return { dirs, repositoryRoot: null };
}

function isStrictlyInside(dir: string, ancestor: string): boolean {
  const rel = path.relative(ancestor, dir);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

type ReadResult = { text: string; bytes: number; truncated: boolean; identity: string } | { reason: string } | undefined;

/** One file: undefined when it does not exist, `{ reason }` when it cannot be used. */
async function readInstructionFile(file: string): Promise<ReadResult> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO in place of the file must not hang the turn.
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    return { reason: `cannot be opened (${code ?? (error as Error).message})` };
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { reason: 'is not a regular file' };
    const limit = Math.min(stat.size, INSTRUCTION_FILE_BYTES_MAX);
    const truncated = stat.size > INSTRUCTION_FILE_BYTES_MAX;
    let text = decodeWhole(await readUpTo(handle, limit));
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return { text, bytes: stat.size, truncated, identity: `${stat.dev}:${stat.ino}` };
  } catch (error) {
    return { reason: `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
  } finally {
    await handle.close();
  }
}

/** UTF-8 text of `bytes`, dropping a character cut at the end by the byte bound. */
function decodeWhole(bytes: Buffer): string {
  return bytes.toString('utf8').replace(/\uFFFD$/, '');
}

/**
 * The instructions as a system prompt section: each file in a block labelled with its path, a
 * truncated file marked so, and the files left out named with why (so a missing rule is explained).
 */
export function renderInstructions(instructions: Instructions): string {
  if (instructions.files.length === 0 && instructions.skipped.length === 0) return '';
  const blocks = instructions.files.map((f) => {
    const note = f.truncated ? `\n[truncated: only the first ${INSTRUCTION_FILE_BYTES_MAX} of ${f.bytes} bytes are shown]` : '';
    const body = f.text.endsWith('\n') ? f.text : `${f.text}\n`;
    return `<instructions path="${attribute(f.path)}" scope="${f.scope}">\n${body}</instructions>${note}`;
  });
  const lines = [
    'Instruction files (the user\'s and the project\'s instructions; nearer directories come later and take precedence):',
    ...blocks,
  ];
  if (instructions.skipped.length > 0) {
    lines.push(`Instruction files not included: ${instructions.skipped.map((s) => `${s.path} (${s.reason})`).join('; ')}.`);
  }
  return lines.join('\n\n');
}

function attribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}
