import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readBoundedLines } from '../../tools/lines.js';

async function collect(chunks: Iterable<Buffer | string> | AsyncIterable<Buffer>, lineBytesMax = 10, totalBytesMax = 1_000) {
  const lines: { text: string; cut: boolean }[] = [];
  const read = await readBoundedLines(Readable.from(chunks), { lineBytesMax, totalBytesMax }, (line, cut) => {
    lines.push({ text: line.toString('utf8'), cut });
  });
  return { lines, read };
}

describe('readBoundedLines', () => {
  it('readBoundedLines - splits lines across chunks and delivers a last line without a newline', async () => {
    const { lines, read } = await collect(['ab\ncd', 'e\n', 'f']);
    expect(lines).toEqual([
      { text: 'ab', cut: false },
      { text: 'cde', cut: false },
      { text: 'f', cut: false },
    ]);
    expect(read).toEqual({ end: 'end', bytes: 8 });
  });

  it('readBoundedLines - keeps at most lineBytesMax bytes of a line, flags it, and goes on', async () => {
    const { lines } = await collect(['0123456789abcdef', 'ghij\nnext\n']);
    expect(lines).toEqual([
      { text: '0123456789', cut: true },
      { text: 'next', cut: false },
    ]);
  });

  it('readBoundedLines - reads a 50 MB line without a newline holding only its bounded head', async () => {
    async function* huge(): AsyncIterable<Buffer> {
      const chunk = Buffer.alloc(64 * 1024, 0x78);
      for (let sent = 0; sent < 50 * 1024 * 1024; sent += chunk.length) yield chunk;
    }
    const { lines, read } = await collect(huge(), 4096, 64 * 1024 * 1024);
    expect(lines).toHaveLength(1);
    expect(lines[0].text).toHaveLength(4096);
    expect(lines[0].cut).toBe(true);
    expect(read.end).toBe('end');
  });

  it('readBoundedLines - stops at totalBytesMax', async () => {
    const { lines, read } = await collect(['aaaa\n', 'bbbb\n', 'cccc\n'], 10, 7);
    expect(lines).toEqual([{ text: 'aaaa', cut: false }]);
    expect(read).toEqual({ end: 'bytes', bytes: 7 });
  });

  it('readBoundedLines - stops when the handler says so and destroys the stream', async () => {
    const stream = Readable.from(['1\n2\n3\n', '4\n']);
    const seen: string[] = [];
    const read = await readBoundedLines(stream, { lineBytesMax: 10, totalBytesMax: 100 }, (line) => {
      seen.push(line.toString());
      return seen.length < 2;
    });
    expect(seen).toEqual(['1', '2']);
    expect(read.end).toBe('stopped');
    expect(stream.destroyed).toBe(true);
  });
});
