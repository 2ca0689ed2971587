/**
 * The `grep` tool: lines matching a regular expression in files of the session, found by
 * ripgrep (Debian package `ripgrep`, command `rg`).
 *
 * Confinement: ripgrep opens files and directories by path and follows a directory swapped for a
 * symlink mid-walk, so it never walks here. The tree is walked confined (tools/walk.ts), each file
 * is opened confined with O_NOFOLLOW and verified, and ripgrep gets the open descriptors
 * (inherited as fds 3…, named `/proc/self/fd/N`), a batch at a time. It can read nothing else.
 *
 * Bounds: ripgrep is killed on timeout or cancel; it prints at most GREP_LINE_COLUMNS_MAX bytes of
 * a line (a preview of longer ones); its output is read by a bounded line reader (bytes per line
 * and in all), and it is killed once GREP_MATCHES_MAX matches are in. Idempotent.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import { z } from 'zod';
import {
  GREP_BATCH_FILES,
  GREP_LINE_BYTES_MAX,
  GREP_LINE_COLUMNS_MAX,
  GREP_MATCHES_MAX,
  GREP_OUTPUT_BYTES_MAX,
  GREP_STDERR_BYTES_MAX,
  TOOL_TIMEOUT_DEFAULT_MS,
  WALK_DEPTH_MAX,
  WALK_ENTRIES_MAX,
} from '../../core/limits.js';
import { openChildFile, openConfined, openDirConfined, type ConfinedDir } from '../confine.js';
import { GrepFailedError, GrepPatternError, NotADirectoryError, NotAFileError, RipgrepNotInstalledError, ToolError } from '../errors.js';
import { compileGlob, type GlobMatcher } from '../glob.js';
import { readBoundedLines } from '../lines.js';
import { walkConfined, type WalkSummary } from '../walk.js';
import { relativeTo, under } from './paths.js';
import type { Tool, ToolContext, ToolResult } from '../types.js';

const { O_RDONLY, O_NONBLOCK } = constants;

/** The first descriptor a child sees beyond stdin, stdout and stderr. */
const FIRST_CHILD_FD = 3;

const grepInput = z.object({
  pattern: z.string().min(1).describe('Regular expression (ripgrep / Rust syntax) to search for; set fixed_strings for literal text.'),
  path: z.string().min(1).optional().describe('File or directory to search, relative to the session directory (default: the session directory).'),
  include: z.string().min(1).optional().describe('Only search files whose path matches this glob, e.g. "*.ts" or "src/**/*.{js,jsx}".'),
  ignore_case: z.boolean().optional().describe('Match case-insensitively (default false).'),
  fixed_strings: z.boolean().optional().describe('Treat the pattern as literal text, not a regular expression (default false).'),
});

export type GrepInput = z.infer<typeof grepInput>;

export interface GrepToolOptions {
  /** The ripgrep command (default `rg`, looked up on PATH). */
  command?: string;
  timeoutMs?: number;
}

interface OpenFile {
  handle: FileHandle;
  /** Path relative to the location, as shown to the model. */
  path: string;
}

interface Hit {
  file: number;
  line: number;
  text: string;
}

interface Search {
  input: GrepInput;
  ctx: ToolContext;
  command: string;
  timeoutMs: number;
  batch: OpenFile[];
  /** Files handed to ripgrep so far; a hit's `file` indexes this. */
  files: string[];
  hits: Hit[];
  binary: Set<number>;
  bytes: number;
  /** Set once a bound is reached: stop walking and searching. */
  cut: string | undefined;
}

/** A grep tool running `options.command`; tests point it at a missing or a hanging command. */
export function createGrepTool(options: GrepToolOptions = {}): Tool<GrepInput> {
  const command = options.command ?? 'rg';
  const timeoutMs = options.timeoutMs ?? TOOL_TIMEOUT_DEFAULT_MS;
  return {
    name: 'grep',
    description:
      'Search file contents with a regular expression (ripgrep) under a file or directory of the session. ' +
      `Returns matching lines with paths relative to the session directory and line numbers; at most ${GREP_MATCHES_MAX} matches, ` +
      `lines cut to ${GREP_LINE_COLUMNS_MAX} bytes. Use "include" to filter files by glob. Symlinks are not followed; ` +
      '.git, node_modules, dist, build and similar directories are skipped unless "path" is inside them.',
    input: grepInput,
    idempotent: true,
    timeoutMs,
    async execute(input, ctx) {
      if (input.pattern.includes('\0')) throw new GrepPatternError(input.pattern, 'it contains a NUL byte');
      const include = input.include === undefined ? undefined : compileGlob(input.include);
      const search: Search = { input, ctx, command, timeoutMs, batch: [], files: [], hits: [], binary: new Set(), bytes: 0, cut: undefined };
      try {
        const summary = await searchTarget(search, include);
        return render(search, summary);
      } finally {
        await closeBatch(search);
      }
    },
  };
}

export const grepTool = createGrepTool();

async function searchTarget(search: Search, include: GlobMatcher | undefined): Promise<WalkSummary | undefined> {
  const target = search.input.path ?? '.';
  let root: ConfinedDir;
  try {
    root = await openDirConfined(search.ctx.location, target);
  } catch (err) {
    if (!(err instanceof NotADirectoryError)) throw err;
    await searchOneFile(search, target);
    return undefined;
  }
  try {
    const base = relativeTo(root.realLocation, root.realPath);
    const options = { maxDepth: WALK_DEPTH_MAX, maxEntries: WALK_ENTRIES_MAX, signal: search.ctx.signal };
    const summary = await walkConfined(root, options, async (entry) => {
      if (entry.kind !== 'file' || (include !== undefined && !include(entry.relPath))) return true;
      const opened = await openChildFile(entry.dir, entry.name, O_RDONLY | O_NONBLOCK).catch(skipToolError);
      if (opened === undefined) return true;
      // Checked on the descriptor: a FIFO swapped in since the listing would block ripgrep.
      if (await isRegularFile(opened.handle)) await add(search, opened.handle, under(base, entry.relPath));
      else await opened.handle.close();
      return search.cut === undefined;
    });
    if (search.cut === undefined) await runBatch(search);
    return summary;
  } finally {
    await root.handle.close();
  }
}

async function searchOneFile(search: Search, target: string): Promise<void> {
  const { handle, realPath } = await openConfined(search.ctx.location, target, O_RDONLY | O_NONBLOCK);
  if (!(await isRegularFile(handle))) {
    await handle.close();
    throw new NotAFileError(target, 'special file', 'grep searches regular files and directories');
  }
  await add(search, handle, relativeTo(await fs.realpath(search.ctx.location), realPath));
  await runBatch(search);
}

function skipToolError(err: unknown): undefined {
  // A file that vanished, became a symlink or is unreadable since it was listed is skipped.
  if (err instanceof ToolError) return undefined;
  throw err;
}

async function isRegularFile(handle: FileHandle): Promise<boolean> {
  const stat = await handle.stat().catch(() => undefined);
  return stat?.isFile() === true;
}

/** Queues an opened regular file for ripgrep, running a batch when it is full. */
async function add(search: Search, handle: FileHandle, path: string): Promise<void> {
  search.batch.push({ handle, path });
  if (search.batch.length >= GREP_BATCH_FILES) await runBatch(search);
}

async function closeBatch(search: Search): Promise<void> {
  const batch = search.batch;
  search.batch = [];
  await Promise.all(batch.map((file) => file.handle.close().catch(() => undefined)));
}

/** Runs ripgrep over the queued files, then closes them. */
async function runBatch(search: Search): Promise<void> {
  if (search.batch.length === 0) return;
  const first = search.files.length;
  search.files.push(...search.batch.map((file) => file.path));
  try {
    await runRipgrep(search, first);
  } finally {
    await closeBatch(search);
  }
}

function ripgrepArgs(search: Search): string[] {
  const args = ['--no-config', '--null', '--with-filename', '--line-number', '--no-heading', '--color=never'];
  args.push(`--max-columns=${GREP_LINE_COLUMNS_MAX}`, '--max-columns-preview', `--max-count=${GREP_MATCHES_MAX}`);
  if (search.input.ignore_case === true) args.push('--ignore-case');
  if (search.input.fixed_strings === true) args.push('--fixed-strings');
  args.push('--regexp', search.input.pattern, '--');
  search.batch.forEach((_, i) => args.push(`/proc/self/fd/${FIRST_CHILD_FD + i}`));
  return args;
}

async function runRipgrep(search: Search, first: number): Promise<void> {
  const { signal } = search.ctx;
  signal.throwIfAborted();
  const child = spawn(search.command, ripgrepArgs(search), {
    stdio: ['ignore', 'pipe', 'pipe', ...search.batch.map((file) => file.handle.fd)],
    timeout: search.timeoutMs,
    killSignal: 'SIGKILL',
  });
  const kill = () => child.kill('SIGKILL');
  signal.addEventListener('abort', kill, { once: true });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('close', (code) => resolve({ code }));
  });
  const stderr = collectStderr(child.stderr!);
  try {
    const read = await readBoundedLines(
      child.stdout!,
      { lineBytesMax: GREP_LINE_BYTES_MAX, totalBytesMax: GREP_OUTPUT_BYTES_MAX - search.bytes },
      (line, cut) => onLine(search, first, line, cut),
    );
    search.bytes += read.bytes;
    if (read.end === 'bytes') search.cut = `ripgrep's output reached ${GREP_OUTPUT_BYTES_MAX} bytes`;
    if (read.end !== 'end') kill();
    const { code, error } = await exited;
    signal.throwIfAborted();
    checkExit(search, code, error, read.end !== 'end', await stderr);
  } finally {
    signal.removeEventListener('abort', kill);
    if (child.exitCode === null && child.signalCode === null) kill();
  }
}

function collectStderr(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      if (text.length < GREP_STDERR_BYTES_MAX) text += chunk.toString('utf8').slice(0, GREP_STDERR_BYTES_MAX - text.length);
    });
    stream.on('close', () => resolve(text));
    stream.on('error', () => resolve(text));
  });
}

function checkExit(search: Search, code: number | null, error: Error | undefined, killedByUs: boolean, stderr: string): void {
  if (error !== undefined) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new RipgrepNotInstalledError(search.command);
    throw new GrepFailedError(error.message);
  }
  if (killedByUs || code === 0 || code === 1) return;
  const detail = describeStderr(stderr);
  if (/regex parse error|error parsing regex|regex.*error/i.test(stderr)) throw new GrepPatternError(search.input.pattern, detail);
  // Exit 2 also means "some file could not be read"; that is not worth failing the search for.
  if (code === 2 && search.hits.length > 0) return;
  throw new GrepFailedError(code === null ? 'it was killed' : `exit status ${code}${detail === '' ? '' : `: ${detail}`}`);
}

function describeStderr(stderr: string): string {
  return stderr.trim().split('\n').slice(0, 8).join(' ').replace(/\s+/g, ' ');
}

/** Parses one line of ripgrep output (`/proc/self/fd/N\0LINE:TEXT`); false once the match bound is reached. */
function onLine(search: Search, first: number, line: Buffer, cut: boolean): boolean {
  const nul = line.indexOf(0);
  if (nul === -1) {
    // "/proc/self/fd/N: binary file matches (found "\0" byte around offset K)"
    const file = fileIndex(search, first, line.subarray(0, line.indexOf(':')).toString('utf8'));
    if (file !== undefined && line.includes('binary file matches')) search.binary.add(file);
    return true;
  }
  const file = fileIndex(search, first, line.subarray(0, nul).toString('utf8'));
  const rest = line.subarray(nul + 1).toString('utf8');
  const colon = rest.indexOf(':');
  const lineNo = Number.parseInt(rest.slice(0, colon), 10);
  if (file === undefined || colon === -1 || !Number.isFinite(lineNo)) return true;
  let text = rest.slice(colon + 1);
  if (text.endsWith('\r')) text = text.slice(0, -1);
  search.hits.push({ file, line: lineNo, text: cut ? `${text} [... line cut]` : text });
  if (search.hits.length >= GREP_MATCHES_MAX) {
    search.cut = `the first ${GREP_MATCHES_MAX} matches`;
    return false;
  }
  return true;
}

function fileIndex(search: Search, first: number, shown: string): number | undefined {
  const match = /^\/proc\/self\/fd\/(\d+)$/.exec(shown);
  if (match === null) return undefined;
  const index = first + Number(match[1]) - FIRST_CHILD_FD;
  return index >= first && index < search.files.length ? index : undefined;
}

function render(search: Search, summary: WalkSummary | undefined): ToolResult {
  const hits = [...search.hits].sort((a, b) => a.file - b.file || a.line - b.line);
  const byFile = new Map<number, Hit[]>();
  for (const hit of hits) byFile.set(hit.file, [...(byFile.get(hit.file) ?? []), hit]);
  const files = [...new Set([...byFile.keys(), ...search.binary])].sort((a, b) => a - b);
  const lines: string[] = [];
  if (files.length === 0) lines.push(`No matches for ${JSON.stringify(search.input.pattern)} (${search.files.length} files searched)`);
  else lines.push(`${hits.length} ${hits.length === 1 ? 'match' : 'matches'} in ${byFile.size} ${byFile.size === 1 ? 'file' : 'files'}`);
  for (const file of files) {
    const fileHits = byFile.get(file);
    if (fileHits === undefined) {
      lines.push(`${search.files[file]}: binary file matches (not shown)`);
      continue;
    }
    lines.push(`${search.files[file]}:`);
    for (const hit of fileHits) lines.push(`  ${hit.line}: ${hit.text}`);
  }
  if (search.cut !== undefined) lines.push(`(stopped at ${search.cut}; narrow the pattern, the path or "include" to see the rest)`);
  if (summary?.incomplete === true) lines.push('(the search stopped early at its size or depth limit; results may be incomplete)');
  return {
    output: lines.join('\n'),
    truncated: search.cut !== undefined,
    metadata: { matches: hits.length, files: byFile.size, searched: search.files.length },
  };
}
