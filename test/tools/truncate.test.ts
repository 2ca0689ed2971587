import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { READ_LINES_DEFAULT, TOOL_OUTPUT_BYTES_MAX, TOOL_OUTPUT_LINES_MAX } from '../../core/limits.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import { createToolRegistry } from '../../tools/registry.js';
import { boundOutput, headAndTail, savedOutputPath, type OutputOwner } from '../../tools/truncate.js';
import type { Tool, ToolContext } from '../../tools/types.js';
import { tempDir } from '../helpers.js';

function owner(overrides: Partial<OutputOwner> = {}): OutputOwner {
  return { home: tempDir('loom-home-'), sessionId: 'ses_1', callId: 'call_1', location: tempDir('loom-loc-'), ...overrides };
}

const lineCount = (text: string) => text.split('\n').length;
const numbered = (count: number) => Array.from({ length: count }, (_, i) => `line ${i + 1}`).join('\n') + '\n';

describe('boundOutput', () => {
  it('boundOutput - leaves output within both limits alone and saves nothing', async () => {
    const o = owner();
    const text = numbered(TOOL_OUTPUT_LINES_MAX);
    const bounded = await boundOutput(text, o);
    expect(bounded).toEqual({ text, truncated: false });
    expect(fs.existsSync(path.join(o.home, 'tool-output'))).toBe(false);
  });

  it('boundOutput - beyond the lines limit shows head and tail and saves the full text', async () => {
    const o = owner();
    const text = numbered(TOOL_OUTPUT_LINES_MAX * 3);
    const bounded = await boundOutput(text, o);
    expect(bounded.truncated).toBe(true);
    expect(lineCount(bounded.text)).toBeLessThanOrEqual(TOOL_OUTPUT_LINES_MAX);
    expect(bounded.text.startsWith('line 1\nline 2\n')).toBe(true);
    expect(bounded.text).toContain(`line ${TOOL_OUTPUT_LINES_MAX * 3}\n`);
    expect(bounded.text).toMatch(/\[… \d+ lines \(\d+ bytes\) omitted here …\]/);
    expect(bounded.text).toContain(`the output has ${TOOL_OUTPUT_LINES_MAX * 3} lines`);
    const file = savedOutputPath(o.home, 'ses_1', 'call_1');
    expect(bounded.savedPath).toBe(file);
    expect(bounded.text).toContain(`The full output is saved at ${file} (outside the session directory).`);
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
  });

  it('boundOutput - saves with mode 0600 in directories of mode 0700', async () => {
    const o = owner();
    await boundOutput(numbered(TOOL_OUTPUT_LINES_MAX + 1), o);
    const file = savedOutputPath(o.home, 'ses_1', 'call_1');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(o.home, 'tool-output')).mode & 0o777).toBe(0o700);
  });

  it('boundOutput - beyond the bytes limit keeps the preview within it, notice included', async () => {
    const o = owner();
    const text = Array.from({ length: 40 }, (_, i) => `${i}:${'x'.repeat(4_000)}`).join('\n');
    const bounded = await boundOutput(text, o);
    expect(bounded.truncated).toBe(true);
    expect(Buffer.byteLength(bounded.text)).toBeLessThanOrEqual(TOOL_OUTPUT_BYTES_MAX);
    expect(bounded.text.startsWith('0:xxx')).toBe(true);
    expect(bounded.text).toContain(`39:${'x'.repeat(4_000)}\n[output truncated`);
    expect(fs.readFileSync(bounded.savedPath!, 'utf8')).toBe(text);
  });

  it('boundOutput - cuts one huge line into a head and a tail', async () => {
    const text = `START${'y'.repeat(300_000)}END`;
    const bounded = await boundOutput(text, owner());
    expect(Buffer.byteLength(bounded.text)).toBeLessThanOrEqual(TOOL_OUTPUT_BYTES_MAX);
    expect(bounded.text.startsWith('STARTyyy')).toBe(true);
    expect(bounded.text).toContain('yyyEND\n[output truncated');
  });

  it('boundOutput - never splits a multi-byte character in head or tail', async () => {
    for (const unit of ['€', '😀', 'aé😀']) {
      const text = unit.repeat(40_000);
      const bounded = await boundOutput(text, owner());
      expect(bounded.text).not.toContain('\uFFFD');
      expect(Buffer.byteLength(bounded.text)).toBeLessThanOrEqual(TOOL_OUTPUT_BYTES_MAX);
      const [head, rest] = bounded.text.split('\n[… ');
      const tail = rest!.slice(rest!.indexOf('…]\n') + 3).split('\n[output truncated')[0]!;
      expect(text.startsWith(head!)).toBe(true);
      expect(text.endsWith(tail)).toBe(true);
    }
  });

  it('boundOutput - suggests grep or read when the saved file is inside the session directory', async () => {
    const location = tempDir('loom-loc-');
    const bounded = await boundOutput(numbered(TOOL_OUTPUT_LINES_MAX + 10), owner({ home: path.join(location, '.loom-home'), location }));
    expect(bounded.text).toMatch(/use grep on it, or read it with an offset, to see the rest\.\]$/);
  });

  it('boundOutput - saves at most the saved-bytes bound and says so', async () => {
    const o = owner();
    const text = numbered(10_000);
    const bounded = await boundOutput(text, o, { linesMax: 100, bytesMax: 4_096, savedBytesMax: 1_000 });
    expect(fs.statSync(bounded.savedPath!).size).toBe(1_000);
    expect(fs.readFileSync(bounded.savedPath!, 'utf8')).toBe(text.slice(0, 1_000));
    expect(bounded.text).toContain(`Its first 1000 bytes are saved at ${bounded.savedPath}`);
    expect(lineCount(bounded.text)).toBeLessThanOrEqual(100);
  });

  it('boundOutput - still previews when the full output cannot be saved', async () => {
    const home = path.join(tempDir(), 'not-a-directory');
    fs.writeFileSync(home, 'a file where the home directory should be');
    const bounded = await boundOutput(numbered(TOOL_OUTPUT_LINES_MAX * 2), owner({ home }));
    expect(bounded.truncated).toBe(true);
    expect(bounded.savedPath).toBeUndefined();
    expect(bounded.text).toMatch(/The full output could not be saved \(.*ENOTDIR.*\)\.\]$/);
    expect(lineCount(bounded.text)).toBeLessThanOrEqual(TOOL_OUTPUT_LINES_MAX);
  });

  it('boundOutput - refuses to write through a symlink planted at the saved path', async () => {
    const o = owner();
    const target = path.join(tempDir(), 'victim.txt');
    fs.writeFileSync(target, 'keep me');
    const file = savedOutputPath(o.home, 'ses_1', 'call_1');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.symlinkSync(target, file);
    const bounded = await boundOutput(numbered(TOOL_OUTPUT_LINES_MAX * 2), o);
    expect(bounded.text).toMatch(/could not be saved \(.*ELOOP/);
    expect(fs.readFileSync(target, 'utf8')).toBe('keep me');
  });

  it('boundOutput - makes ids path-safe', () => {
    expect(savedOutputPath('/h', '../ses', 'a/b')).toBe('/h/tool-output/___ses/a_b.txt');
  });
});

describe('headAndTail', () => {
  it('headAndTail - head is a prefix, tail a suffix, both within the room and apart (property)', () => {
    const text = fc.array(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.constant('\n'), fc.constant('😀€\n')), { maxLength: 200 }).map((parts) => parts.join(''));
    fc.assert(
      fc.property(text, fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 400 }), (t, linesMax, bytesMax) => {
        const p = headAndTail(t, { linesMax, bytesMax });
        expect(t.startsWith(p.head)).toBe(true);
        expect(t.endsWith(p.tail)).toBe(true);
        expect(p.head.length + p.tail.length).toBeLessThanOrEqual(t.length);
        expect(Buffer.byteLength(p.head) + Buffer.byteLength(p.tail)).toBeLessThanOrEqual(bytesMax);
        expect(`${p.head}${p.tail}`).not.toContain('\uFFFD');
        expect(p.omittedBytes).toBe(Buffer.byteLength(t) - Buffer.byteLength(p.head) - Buffer.byteLength(p.tail));
        const lines = (s: string) => (s === '' ? 0 : s.replace(/\n$/, '').split('\n').length);
        expect(lines(p.head)).toBeLessThanOrEqual(Math.ceil(linesMax / 2));
        expect(lines(p.tail)).toBeLessThanOrEqual(Math.floor(linesMax / 2));
      }),
      { numRuns: 500 },
    );
  });
});

describe('registry output bounds', () => {
  const shout: Tool<{ lines: number }> = {
    name: 'shout',
    description: 'prints lines',
    input: z.object({ lines: z.number() }),
    idempotent: true,
    timeoutMs: 5_000,
    execute: async (input) => ({ output: numbered(input.lines) }),
  };

  function context(home: string, location = tempDir()): ToolContext {
    return { sessionId: 'ses_9', activityId: '', callId: 'call_9', location, home, signal: new AbortController().signal, services: {} };
  }

  it('registry - a long result becomes a preview and names the saved full output', async () => {
    const registry = createToolRegistry();
    registry.register(shout);
    const home = tempDir();
    const result = await registry.execute('shout', { lines: 5_000 }, context(home));
    expect(result.truncated).toBe(true);
    expect(result.fullOutputPath).toBe(path.join(home, 'tool-output', 'ses_9', 'call_9.txt'));
    expect(fs.readFileSync(result.fullOutputPath!, 'utf8')).toBe(numbered(5_000));
    expect(lineCount(result.output)).toBeLessThanOrEqual(TOOL_OUTPUT_LINES_MAX);
    expect(result.output).toContain('line 5000');
  });

  it('registry - a tool that pages its own output is only cut at the byte bound', async () => {
    const registry = createToolRegistry();
    registry.register({ ...shout, pagesOwnOutput: true });
    const home = tempDir();
    const result = await registry.execute('shout', { lines: TOOL_OUTPUT_LINES_MAX + 5 }, context(home));
    expect(result.truncated).toBe(false);
    expect(result.output).toBe(numbered(TOOL_OUTPUT_LINES_MAX + 5));
    expect(fs.existsSync(path.join(home, 'tool-output'))).toBe(false);
  });

  it('registry - read keeps its own default window and trailer', async () => {
    const location = tempDir();
    fs.writeFileSync(path.join(location, 'big.txt'), numbered(READ_LINES_DEFAULT * 2));
    const result = await createDefaultRegistry().execute('read', { path: 'big.txt' }, context(tempDir(), location));
    expect(result.output.split('\n')).toHaveLength(READ_LINES_DEFAULT + 1);
    expect(result.output).toMatch(/use offset=2001 to read more\)$/);
  });
});
