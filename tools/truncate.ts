/**
 * Output truncation: what the model sees of a tool result that is too long. Beyond
 * TOOL_OUTPUT_LINES_MAX lines or TOOL_OUTPUT_BYTES_MAX bytes the model gets the head and the tail of
 * the output, a marker saying how much was left out between them, and a notice naming the file
 * under `$LOOM_HOME/tool-output/<sessionId>/<callId>.txt` where the full output was saved (mode
 * 0600, directories 0700; at most TOOL_OUTPUT_SAVED_BYTES_MAX bytes of it).
 */
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { TOOL_OUTPUT_BYTES_MAX, TOOL_OUTPUT_LINES_MAX, TOOL_OUTPUT_SAVED_BYTES_MAX } from '../core/limits.js';
import { isInside } from './confine.js';

export interface OutputBounds {
  linesMax: number;
  bytesMax: number;
  /** Bytes of the full output saved (default TOOL_OUTPUT_SAVED_BYTES_MAX). */
  savedBytesMax?: number;
}

export const DEFAULT_OUTPUT_BOUNDS: OutputBounds = { linesMax: TOOL_OUTPUT_LINES_MAX, bytesMax: TOOL_OUTPUT_BYTES_MAX };

/** A head-and-tail preview of a text, without the notice (see `previewOutput`). */
export interface Preview {
  head: string;
  tail: string;
  /** Lines of the original text (a final newline does not start a line). */
  totalLines: number;
  /** UTF-8 bytes of the original text. */
  totalBytes: number;
  /** Newlines in the part left out, so roughly the lines left out. */
  omittedLines: number;
  omittedBytes: number;
}

/** Whether `text` fits the bounds as it is. */
export function fitsBounds(text: string, bounds: OutputBounds = DEFAULT_OUTPUT_BOUNDS): boolean {
  // Three bytes per UTF-16 unit is the UTF-8 worst case, so short texts skip the byte count.
  const bytesFit = text.length * 3 <= bounds.bytesMax || Buffer.byteLength(text) <= bounds.bytesMax;
  return bytesFit && countLines(text, bounds.linesMax + 1) <= bounds.linesMax;
}

/**
 * The head and tail of `text` that fit in `room` (bytes and lines, split evenly between head and
 * tail), cut on line ends where that keeps at least half the room, and never inside a UTF-8
 * sequence. Use it when `fitsBounds` said no; head and tail never overlap.
 */
export function headAndTail(text: string, room: OutputBounds): Preview {
  const headRoom = { linesMax: Math.ceil(room.linesMax / 2), bytesMax: Math.ceil(room.bytesMax / 2) };
  const tailRoom = { linesMax: Math.floor(room.linesMax / 2), bytesMax: Math.floor(room.bytesMax / 2) };
  const head = headOf(text, headRoom);
  // The tail comes from what the head left, so they cannot overlap.
  const tail = tailOf(text.slice(head.length), tailRoom);
  const middle = text.slice(head.length, text.length - tail.length);
  const totalBytes = Buffer.byteLength(text);
  return {
    head,
    tail,
    totalLines: countLines(text, Number.POSITIVE_INFINITY),
    totalBytes,
    omittedLines: countNewlines(middle),
    omittedBytes: totalBytes - Buffer.byteLength(head) - Buffer.byteLength(tail),
  };
}

/** Where a tool call's full output is (or would be) saved. Ids are made path-safe. */
export function savedOutputPath(home: string, sessionId: string, callId: string): string {
  return path.join(home, 'tool-output', safeName(sessionId, 'session'), `${safeName(callId, 'call')}.txt`);
}

export interface SavedOutput {
  path: string;
  /** Bytes written: the whole output, or TOOL_OUTPUT_SAVED_BYTES_MAX of it. */
  bytes: number;
  complete: boolean;
}

/**
 * Writes `text` (at most `bytesMax` bytes of it, cut on a character boundary) to `file`, creating
 * its directories with mode 0700 and the file with mode 0600. A symlink in place of the file is
 * refused (O_NOFOLLOW). An existing file (the same call run again after a crash) is replaced.
 */
export async function saveOutput(file: string, text: string, bytesMax = TOOL_OUTPUT_SAVED_BYTES_MAX): Promise<SavedOutput> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const bytes = Buffer.from(text, 'utf8');
  const keep = utf8Boundary(bytes, bytesMax);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
  const handle = await fs.open(file, flags, 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(bytes.subarray(0, keep));
  } finally {
    await handle.close();
  }
  return { path: file, bytes: keep, complete: keep === bytes.length };
}

/** Where a bounded output came from, for the notice and the saved file. */
export interface OutputOwner {
  home: string;
  sessionId: string;
  callId: string;
  /** The session's directory: when the saved file is inside it, the notice suggests the file tools. */
  location: string;
}

export interface BoundedOutput {
  text: string;
  truncated: boolean;
  /** The saved full output, when the text was cut and saving worked. */
  savedPath?: string;
}

/**
 * What the model sees of a tool's output: `text` itself when it fits `bounds`; otherwise a
 * head-and-tail preview plus a notice, all within `bounds`, with the full output saved under
 * `owner.home`. Saving is best effort: when it fails the notice says why and the preview stands.
 * Gotcha: bounds smaller than the notice (a few hundred bytes, a few lines) yield the notice alone.
 */
export async function boundOutput(text: string, owner: OutputOwner, bounds: OutputBounds = DEFAULT_OUTPUT_BOUNDS): Promise<BoundedOutput> {
  if (fitsBounds(text, bounds)) return { text, truncated: false };
  const file = savedOutputPath(owner.home, owner.sessionId, owner.callId);
  const saved = await saveOutput(file, text, bounds.savedBytesMax).catch((err: unknown) => err as Error);
  const where = saved instanceof Error ? { failure: saved.message } : { saved, inside: isInside(owner.location, saved.path) };
  // The notice is sized with the largest counts it can carry, so the final one never overflows;
  // one more line and byte are kept for the newline that may end a head cut mid-line.
  const totalBytes = Buffer.byteLength(text);
  const totalLines = countLines(text, Number.POSITIVE_INFINITY);
  const widest = joinNotice(notice({ totalLines, totalBytes, omittedLines: totalLines, omittedBytes: totalBytes, headLines: totalLines, tailLines: totalLines }, where));
  const room = {
    bytesMax: Math.max(0, bounds.bytesMax - Buffer.byteLength(widest) - 1),
    linesMax: Math.max(0, bounds.linesMax - countNewlines(widest) - 1),
  };
  const preview = headAndTail(text, room);
  const counts = {
    ...preview,
    headLines: countLines(preview.head, Number.POSITIVE_INFINITY),
    tailLines: countLines(preview.tail, Number.POSITIVE_INFINITY),
  };
  const { marker, trailer } = notice(counts, where);
  const head = preview.head === '' || preview.head.endsWith('\n') ? preview.head : `${preview.head}\n`;
  return {
    text: `${head}${marker}${preview.tail}${trailer}`,
    truncated: true,
    ...(where.saved !== undefined ? { savedPath: where.saved.path } : {}),
  };
}

interface NoticeCounts {
  totalLines: number;
  totalBytes: number;
  omittedLines: number;
  omittedBytes: number;
  headLines: number;
  tailLines: number;
}

type SaveOutcome = { failure: string; saved?: undefined } | { saved: SavedOutput; inside: boolean; failure?: undefined };

/** The marker line between head and tail, and the trailer after the tail naming the saved file. */
function notice(c: NoticeCounts, where: SaveOutcome): { marker: string; trailer: string } {
  const marker = `[… ${c.omittedLines} lines (${c.omittedBytes} bytes) omitted here …]\n`;
  const shown = `the output has ${c.totalLines} lines (${c.totalBytes} bytes); shown are its first ${c.headLines} and last ${c.tailLines} lines`;
  return { marker, trailer: `\n[output truncated: ${shown}. ${savedSentence(where)}]` };
}

function joinNotice(n: { marker: string; trailer: string }): string {
  return n.marker + n.trailer;
}

function savedSentence(where: SaveOutcome): string {
  if (where.failure !== undefined) return `The full output could not be saved (${where.failure}).`;
  const { saved, inside } = where;
  const what = saved.complete ? 'The full output is saved' : `Its first ${saved.bytes} bytes are saved`;
  if (inside) return `${what} at ${saved.path}; use grep on it, or read it with an offset, to see the rest.`;
  return `${what} at ${saved.path} (outside the session directory).`;
}

/** The longest prefix of `text` within `room`. */
function headOf(text: string, room: OutputBounds): string {
  let end = 0;
  for (let n = 0; n < room.linesMax && end < text.length; n++) {
    const nl = text.indexOf('\n', end);
    end = nl < 0 ? text.length : nl + 1;
    if (end > room.bytesMax) break; // at least one byte per character: past the byte room already
  }
  const byLines = text.slice(0, end);
  const cut = utf8Head(byLines, room.bytesMax);
  return cut.length === byLines.length ? cut : onLineEnd(cut, 'head');
}

/** The longest suffix of `text` within `room`. */
function tailOf(text: string, room: OutputBounds): string {
  // A final newline belongs to the last line, so the search starts before it.
  let start = text.length;
  let from = text.endsWith('\n') ? text.length - 2 : text.length - 1;
  for (let n = 0; n < room.linesMax && start > 0; n++) {
    const nl = from < 0 ? -1 : text.lastIndexOf('\n', from);
    start = nl + 1;
    from = nl - 1;
    if (text.length - start > room.bytesMax) break;
  }
  const byLines = text.slice(start);
  const cut = utf8Tail(byLines, room.bytesMax);
  return cut.length === byLines.length ? cut : onLineEnd(cut, 'tail');
}

/** Trims a byte-cut head to its last line end (a tail to its first line start) if that keeps half of it. */
function onLineEnd(cut: string, side: 'head' | 'tail'): string {
  if (side === 'head') {
    const nl = cut.lastIndexOf('\n');
    return nl >= 0 && nl + 1 >= cut.length / 2 ? cut.slice(0, nl + 1) : cut;
  }
  const nl = cut.indexOf('\n');
  return nl >= 0 && nl < cut.length / 2 ? cut.slice(nl + 1) : cut;
}

/** The longest prefix of `text` of at most `bytesMax` UTF-8 bytes, whole characters only. */
function utf8Head(text: string, bytesMax: number): string {
  if (text.length * 3 <= bytesMax) return text;
  const bytes = Buffer.from(text.slice(0, bytesMax), 'utf8');
  if (bytes.length <= bytesMax && text.length <= bytesMax) return text;
  return bytes.subarray(0, utf8Boundary(bytes, bytesMax)).toString('utf8');
}

/** The longest suffix of `text` of at most `bytesMax` UTF-8 bytes, whole characters only. */
function utf8Tail(text: string, bytesMax: number): string {
  if (text.length * 3 <= bytesMax) return text;
  const bytes = Buffer.from(text.slice(Math.max(0, text.length - bytesMax)), 'utf8');
  if (bytes.length <= bytesMax && text.length <= bytesMax) return text;
  let start = Math.max(0, bytes.length - bytesMax);
  while (start < bytes.length && (bytes[start] & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString('utf8');
}

/** The largest cut ≤ `at` that does not split a UTF-8 sequence. */
function utf8Boundary(bytes: Buffer, at: number): number {
  let cut = Math.min(at, bytes.length);
  while (cut > 0 && cut < bytes.length && (bytes[cut] & 0xc0) === 0x80) cut--;
  return cut;
}

/** Lines of `text`, counting no further than `stopAt` (a final newline does not start a line). */
function countLines(text: string, stopAt: number): number {
  if (text === '') return 0;
  let lines = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < text.length - 1 && lines < stopAt; i = text.indexOf('\n', i + 1)) lines++;
  return lines;
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function safeName(id: string, fallback: string): string {
  const cleaned = id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 128);
  return cleaned === '' ? fallback : cleaned;
}
