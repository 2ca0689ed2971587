/**
 * A bounded line reader for the output of child processes. A process may print one line of any
 * length (a minified file, a 50 MB line without a newline): this keeps at most `lineBytesMax`
 * bytes of each line and reads at most `totalBytesMax` bytes in all, so its memory is bounded
 * whatever the process writes. Callers kill the process when it returns before the end.
 */
import type { Readable } from 'node:stream';

export interface BoundedLinesOptions {
  /** Bytes kept of one line; the rest of the line is dropped as it arrives. */
  lineBytesMax: number;
  /** Bytes read from the stream in all; reading stops beyond it. */
  totalBytesMax: number;
}

/** Called per line, without its `\n`; `cut` says bytes were dropped. Return false to stop reading. */
export type LineHandler = (line: Buffer, cut: boolean) => boolean | void;

export interface LinesRead {
  /** Why reading ended: the stream ended, the handler asked to stop, or the byte bound was reached. */
  end: 'end' | 'stopped' | 'bytes';
  /** Bytes read from the stream. */
  bytes: number;
}

/**
 * Reads `stream` line by line within the bounds. A final line without a newline is delivered
 * too. Leaving early destroys the stream (its async iterator does).
 */
export async function readBoundedLines(stream: Readable, options: BoundedLinesOptions, onLine: LineHandler): Promise<LinesRead> {
  const line = new LineBuffer(options.lineBytesMax);
  let total = 0;
  for await (const data of stream) {
    const chunk = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
    const room = options.totalBytesMax - total;
    const usable = chunk.length > room ? chunk.subarray(0, room) : chunk;
    total += usable.length;
    if (!feed(line, usable, onLine)) return { end: 'stopped', bytes: total };
    if (usable.length < chunk.length) return { end: 'bytes', bytes: total };
  }
  if (!line.empty() && line.emit(onLine) === false) return { end: 'stopped', bytes: total };
  return { end: 'end', bytes: total };
}

/** Splits `chunk` at newlines into `line`; false when the handler asked to stop. */
function feed(line: LineBuffer, chunk: Buffer, onLine: LineHandler): boolean {
  let start = 0;
  for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
    line.append(chunk.subarray(start, nl));
    if (line.emit(onLine) === false) return false;
    start = nl + 1;
  }
  line.append(chunk.subarray(start));
  return true;
}

class LineBuffer {
  private parts: Buffer[] = [];
  private bytes = 0;
  private cut = false;
  private seen = 0;

  constructor(private readonly max: number) {}

  append(part: Buffer): void {
    this.seen += part.length;
    const room = this.max - this.bytes;
    if (part.length > room) this.cut = true;
    const kept = part.length > room ? part.subarray(0, room) : part;
    if (kept.length === 0) return;
    // Copied: the chunk's memory is not pinned by a line that keeps a small slice of it.
    this.parts.push(Buffer.from(kept));
    this.bytes += kept.length;
  }

  empty(): boolean {
    return this.seen === 0;
  }

  emit(onLine: LineHandler): boolean | void {
    const text = Buffer.concat(this.parts, this.bytes);
    const cut = this.cut;
    this.parts = [];
    this.bytes = 0;
    this.cut = false;
    this.seen = 0;
    return onLine(text, cut);
  }
}
