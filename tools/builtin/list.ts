/**
 * The `list` tool: a directory tree inside the session's directory, directories first, each level
 * sorted by name. Bounded in entries and depth; every directory's own entries are shown before
 * its subdirectories are expanded, so a large first subdirectory cannot hide the rest. Symlinks
 * are shown with their target and never descended into. Idempotent.
 */
import { z } from 'zod';
import { LIST_DEPTH_MAX, LIST_ENTRIES_MAX, LIST_IGNORE_PATTERNS_MAX, TOOL_TIMEOUT_DEFAULT_MS, WALK_DIR_ENTRIES_MAX } from '../../core/limits.js';
import { openChildDir, openDirConfined, readDirConfined, readlinkChild, type ConfinedDir } from '../confine.js';
import { ToolError } from '../errors.js';
import { compileGlob, type GlobMatcher } from '../glob.js';
import { DEFAULT_IGNORED_DIRS, kindOf, type EntryKind } from '../walk.js';
import { relativeTo } from './paths.js';
import type { Tool } from '../types.js';

const listInput = z.object({
  path: z.string().min(1).optional().describe('Directory to list, relative to the session directory (default: the session directory).'),
  ignore: z
    .array(z.string().min(1))
    .max(LIST_IGNORE_PATTERNS_MAX)
    .optional()
    .describe('Glob patterns of entries to leave out (a pattern without "/" matches names at any depth, e.g. "*.log").'),
});

export type ListInput = z.infer<typeof listInput>;

interface Node {
  name: string;
  kind: EntryKind;
  children?: Node[];
  /** Why a directory is not expanded, or how many entries were left out. */
  note?: string;
  target?: string;
}

interface Budget {
  remaining: number;
  cut: boolean;
  depthCut: boolean;
  ignore: GlobMatcher[];
  signal: AbortSignal;
}

export const listTool: Tool<ListInput> = {
  name: 'list',
  description:
    'List a directory of the session as a tree (directories first, sorted). ' +
    `At most ${LIST_ENTRIES_MAX} entries and ${LIST_DEPTH_MAX} levels; ` +
    `${[...DEFAULT_IGNORED_DIRS].slice(0, 6).join(', ')} and similar directories are shown but not expanded. ` +
    'Symlinks are shown with their target and not followed.',
  input: listInput,
  idempotent: true,
  timeoutMs: TOOL_TIMEOUT_DEFAULT_MS,
  async execute(input, ctx) {
    const ignore = (input.ignore ?? []).map(compileGlob);
    const root = await openDirConfined(ctx.location, input.path ?? '.');
    const budget: Budget = { remaining: LIST_ENTRIES_MAX, cut: false, depthCut: false, ignore, signal: ctx.signal };
    let nodes: Node[];
    try {
      nodes = await listDir(root, '', 1, budget);
    } finally {
      await root.handle.close();
    }
    const shown = LIST_ENTRIES_MAX - budget.remaining;
    const lines = [`${relativeTo(root.realLocation, root.realPath)}/`, ...render(nodes, 1)];
    if (shown === 0) lines.push('  (empty)');
    if (budget.cut) lines.push(`(listing stopped at ${LIST_ENTRIES_MAX} entries; list a subdirectory to see more)`);
    if (budget.depthCut) lines.push(`(directories more than ${LIST_DEPTH_MAX} levels down are not expanded; list them to see inside)`);
    return { output: lines.join('\n'), truncated: budget.cut, metadata: { entries: shown } };
  },
};

async function listDir(dir: ConfinedDir, relDir: string, depth: number, budget: Budget): Promise<Node[]> {
  budget.signal.throwIfAborted();
  const { entries, more } = await readDirConfined(dir, WALK_DIR_ENTRIES_MAX);
  const kept = entries
    .map((dirent) => ({ name: dirent.name, kind: kindOf(dirent) }))
    .filter((entry) => !budget.ignore.some((match) => match(join(relDir, entry.name))))
    .sort(directoriesFirst);
  const taken = kept.slice(0, budget.remaining);
  budget.remaining -= taken.length;
  const nodes: Node[] = taken.map((entry) => ({ ...entry }));
  const left = kept.length - taken.length;
  if (left > 0 || more) {
    budget.cut = true;
    nodes.push({ name: '', kind: 'other', note: more ? `… more entries (over ${WALK_DIR_ENTRIES_MAX})` : `… ${left} more entries` });
  }
  for (const node of nodes) {
    if (node.kind === 'symlink') node.target = await readlinkChild(dir, node.name).catch(() => '?');
    if (node.kind === 'dir') await expand(dir, node, join(relDir, node.name), depth, budget);
  }
  return nodes;
}

async function expand(parent: ConfinedDir, node: Node, relPath: string, depth: number, budget: Budget): Promise<void> {
  if (DEFAULT_IGNORED_DIRS.has(node.name)) {
    node.note = 'not expanded by default; list it by path to see inside';
    return;
  }
  if (depth >= LIST_DEPTH_MAX) {
    budget.depthCut = true;
    return;
  }
  if (budget.remaining === 0) return;
  let child: ConfinedDir;
  try {
    child = await openChildDir(parent, node.name);
  } catch (err) {
    // Swapped for a symlink or removed since it was listed: shown, never followed.
    if (!(err instanceof ToolError)) throw err;
    node.note = 'changed while listing; not expanded';
    return;
  }
  try {
    node.children = await listDir(child, relPath, depth + 1, budget);
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    node.note = `not readable (${err.message})`;
  } finally {
    await child.handle.close();
  }
}

function directoriesFirst(a: { name: string; kind: EntryKind }, b: { name: string; kind: EntryKind }): number {
  const ad = a.kind === 'dir' ? 0 : 1;
  const bd = b.kind === 'dir' ? 0 : 1;
  if (ad !== bd) return ad - bd;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function render(nodes: Node[], depth: number): string[] {
  const indent = '  '.repeat(depth);
  const lines: string[] = [];
  for (const node of nodes) {
    if (node.name === '') {
      lines.push(`${indent}${node.note ?? ''}`);
      continue;
    }
    const note = node.note === undefined ? '' : `  (${node.note})`;
    if (node.kind === 'dir') lines.push(`${indent}${node.name}/${note}`);
    else if (node.kind === 'symlink') lines.push(`${indent}${node.name} -> ${node.target ?? '?'}`);
    else lines.push(`${indent}${node.name}${note}`);
    if (node.children !== undefined) lines.push(...render(node.children, depth + 1));
  }
  return lines;
}

function join(relDir: string, name: string): string {
  return relDir === '' ? name : `${relDir}/${name}`;
}
