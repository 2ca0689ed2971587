/**
 * The `glob` tool: files under a directory of the session whose path matches a glob pattern,
 * newest first. It walks the tree itself (tools/walk.ts: confined, never following symlinks)
 * and matches with picomatch, rather than asking ripgrep, because ripgrep opens every directory
 * by path and would follow a directory swapped for a symlink mid-walk. Idempotent.
 */
import { z } from 'zod';
import { GLOB_RESULTS_MAX, TOOL_TIMEOUT_DEFAULT_MS, WALK_DEPTH_MAX, WALK_ENTRIES_MAX } from '../../core/limits.js';
import { lstatChild, openDirConfined } from '../confine.js';
import { compileGlob } from '../glob.js';
import { walkConfined, type WalkSummary } from '../walk.js';
import { relativeTo, under } from './paths.js';
import type { Tool } from '../types.js';

const globInput = z.object({
  pattern: z.string().min(1).describe('Glob pattern, e.g. "**/*.ts" or "src/**/test_*.py"; a pattern without "/" matches file names at any depth.'),
  path: z.string().min(1).optional().describe('Directory to search, relative to the session directory (default: the session directory).'),
});

export type GlobInput = z.infer<typeof globInput>;

interface Match {
  path: string;
  mtimeMs: number;
}

export const globTool: Tool<GlobInput> = {
  name: 'glob',
  description:
    'Find files by glob pattern under a directory of the session; returns paths relative to the session ' +
    `directory, most recently modified first, at most ${GLOB_RESULTS_MAX}. Symlinks are not followed; ` +
    '.git, node_modules, dist, build and similar directories are skipped unless "path" is inside them.',
  input: globInput,
  idempotent: true,
  timeoutMs: TOOL_TIMEOUT_DEFAULT_MS,
  async execute(input, ctx) {
    const matches = compileGlob(input.pattern);
    const root = await openDirConfined(ctx.location, input.path ?? '.');
    const base = relativeTo(root.realLocation, root.realPath);
    const found: Match[] = [];
    let summary: WalkSummary;
    try {
      const options = { maxDepth: WALK_DEPTH_MAX, maxEntries: WALK_ENTRIES_MAX, signal: ctx.signal };
      summary = await walkConfined(root, options, async (entry) => {
        if (entry.kind !== 'file' || !matches(entry.relPath)) return;
        const stat = await lstatChild(entry.dir, entry.name).catch(() => undefined);
        if (stat?.isFile()) found.push({ path: under(base, entry.relPath), mtimeMs: stat.mtimeMs });
      });
    } finally {
      await root.handle.close();
    }
    return render(input, base, found, summary);
  },
};

function render(input: GlobInput, base: string, found: Match[], summary: WalkSummary) {
  found.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const shown = found.slice(0, GLOB_RESULTS_MAX);
  const lines = shown.map((m) => m.path);
  if (found.length === 0) lines.push(`No files match ${JSON.stringify(input.pattern)} under ${base}/`);
  const cut = found.length > shown.length;
  if (cut) lines.push(`(showing ${shown.length} of ${found.length} matching files, newest first; narrow the pattern or the path)`);
  if (summary.incomplete) lines.push('(the search stopped early at its size or depth limit; results may be incomplete)');
  return { output: lines.join('\n'), truncated: cut, metadata: { matches: found.length, shown: shown.length, incomplete: summary.incomplete } };
}
