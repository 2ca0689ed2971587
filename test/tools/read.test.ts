import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { READ_FILE_BYTES_MAX, READ_LINE_CHARS_MAX, READ_LINES_DEFAULT, TOOL_OUTPUT_BYTES_MAX } from '../../core/limits.js';
import { builtinTools, createDefaultRegistry } from '../../tools/builtin/index.js';
import {
  BinaryFileError,
  FileNotFoundError,
  FileTooLargeError,
  NotAFileError,
  PathOutsideLocationError,
  ToolInputError,
} from '../../tools/errors.js';
import type { ToolRegistry } from '../../tools/registry.js';
import type { ToolContext } from '../../tools/types.js';

let root: string;
let location: string;
let outside: string;
let registry: ToolRegistry;

beforeEach(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'loom-read-')));
  location = path.join(root, 'project');
  outside = path.join(root, 'outside');
  fs.mkdirSync(location);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret\n');
  registry = createDefaultRegistry();
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function write(relPath: string, content: string | Buffer): void {
  const file = path.join(location, relPath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

function lines(count: number): string {
  return Array.from({ length: count }, (_, i) => `line ${i + 1}`).join('\n') + '\n';
}

function context(): ToolContext {
  return { sessionId: 'ses_1', activityId: '', callId: 'call_1', location, home: location, signal: new AbortController().signal, services: {} };
}

function read(input: unknown) {
  return registry.execute('read', input, context());
}

describe('read', () => {
  it('read - is registered as an idempotent built-in', () => {
    const tool = builtinTools.find((t) => t.name === 'read');
    expect(tool?.idempotent).toBe(true);
    expect(registry.specs().map((s) => s.name)).toContain('read');
  });

  it('read - returns a file inside the location as numbered lines', async () => {
    write('src/a.txt', 'alpha\nbeta\n');
    const result = await read({ path: 'src/a.txt' });
    expect(result.output).toBe('     1\talpha\n     2\tbeta');
  });

  it('read - accepts an absolute path inside the location', async () => {
    write('a.txt', 'alpha\n');
    const result = await read({ path: path.join(location, 'a.txt') });
    expect(result.output).toBe('     1\talpha');
  });

  it('read - keeps a last line without a newline and strips CRLF', async () => {
    write('a.txt', 'one\r\ntwo');
    const result = await read({ path: 'a.txt' });
    expect(result.output).toBe('     1\tone\n     2\ttwo');
  });

  it('read - refuses an absolute path outside the location', async () => {
    await expect(read({ path: path.join(outside, 'secret.txt') })).rejects.toThrow(PathOutsideLocationError);
  });

  it('read - refuses a "../" escape', async () => {
    await expect(read({ path: '../outside/secret.txt' })).rejects.toThrow(PathOutsideLocationError);
  });

  it('read - refuses a final-component symlink pointing outside', async () => {
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(location, 'link.txt'));
    const failure = read({ path: 'link.txt' });
    await expect(failure).rejects.toThrow(PathOutsideLocationError);
    await expect(failure).rejects.toThrow(/"link\.txt"/);
  });

  it('read - refuses a symlinked parent directory pointing outside', async () => {
    fs.symlinkSync(outside, path.join(location, 'out'));
    await expect(read({ path: 'out/secret.txt' })).rejects.toThrow(PathOutsideLocationError);
  });

  it('read - follows a symlink whose target is inside', async () => {
    write('docs/AGENTS.md', 'rules\n');
    fs.symlinkSync('docs/AGENTS.md', path.join(location, 'CLAUDE.md'));
    const result = await read({ path: 'CLAUDE.md' });
    expect(result.output).toBe('     1\trules');
  });

  it('read - starts at offset and returns limit lines', async () => {
    write('a.txt', lines(10));
    const result = await read({ path: 'a.txt', offset: 3, limit: 2 });
    expect(result.output).toBe('     3\tline 3\n     4\tline 4\n(file has 10 lines; showing 3-4; use offset=5 to read more)');
  });

  it('read - has no trailer when the window reaches the end', async () => {
    write('a.txt', lines(5));
    const result = await read({ path: 'a.txt', offset: 4 });
    expect(result.output).toBe('     4\tline 4\n     5\tline 5');
  });

  it('read - says when offset is past the end', async () => {
    write('a.txt', lines(3));
    const result = await read({ path: 'a.txt', offset: 9 });
    expect(result.output).toBe('(file has 3 lines; offset 9 is past the end)');
  });

  it('read - refuses an offset below 1', async () => {
    write('a.txt', lines(3));
    await expect(read({ path: 'a.txt', offset: 0 })).rejects.toThrow(ToolInputError);
  });

  it('read - refuses a limit that is not a whole number', async () => {
    write('a.txt', lines(3));
    await expect(read({ path: 'a.txt', limit: 1.5 })).rejects.toThrow(/"limit"/);
  });

  it('read - refuses a missing path argument', async () => {
    await expect(read({})).rejects.toThrow(/"read".*"path"/);
  });

  it('read - returns the default number of lines and says how to read on', async () => {
    write('a.txt', lines(READ_LINES_DEFAULT + 500));
    const result = await read({ path: 'a.txt' });
    const out = result.output.split('\n');
    expect(out).toHaveLength(READ_LINES_DEFAULT + 1);
    expect(out.at(-2)).toBe(`${String(READ_LINES_DEFAULT).padStart(6)}\tline ${READ_LINES_DEFAULT}`);
    expect(out.at(-1)).toBe(
      `(file has ${READ_LINES_DEFAULT + 500} lines; showing 1-${READ_LINES_DEFAULT}; use offset=${READ_LINES_DEFAULT + 1} to read more)`,
    );
  });

  it('read - cuts lines longer than the line bound', async () => {
    write('a.txt', `${'x'.repeat(READ_LINE_CHARS_MAX + 10)}\nshort\n`);
    const result = await read({ path: 'a.txt' });
    const [first, second] = result.output.split('\n');
    expect(first).toBe(`     1\t${'x'.repeat(READ_LINE_CHARS_MAX)}… [line cut at ${READ_LINE_CHARS_MAX} of ${READ_LINE_CHARS_MAX + 10} characters]`);
    expect(second).toBe('     2\tshort');
  });

  it('read - stops at the output bound and keeps its trailer', async () => {
    write('a.txt', Array.from({ length: 100 }, () => 'y'.repeat(1_500)).join('\n'));
    const result = await read({ path: 'a.txt' });
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(TOOL_OUTPUT_BYTES_MAX);
    expect(result.output).toMatch(/\(file has 100 lines; showing 1-\d+, stopped at the output size limit; use offset=\d+ to read more\)$/);
    expect(result.output).not.toContain('[output truncated');
  });

  it('read - says a file is empty', async () => {
    write('empty.txt', '');
    const result = await read({ path: 'empty.txt' });
    expect(result.output).toBe('(file "empty.txt" is empty)');
  });

  it('read - refuses a binary file', async () => {
    write('bin.dat', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0x02]));
    const failure = read({ path: 'bin.dat' });
    await expect(failure).rejects.toThrow(BinaryFileError);
    await expect(failure).rejects.toThrow(/"bin\.dat"/);
  });

  it('read - reads a file whose NUL byte comes after the sniffed prefix', async () => {
    write('late.txt', Buffer.concat([Buffer.from('a'.repeat(9_000) + '\n'), Buffer.from([0]), Buffer.from('\n')]));
    const result = await read({ path: 'late.txt', limit: 1 });
    expect(result.output.startsWith('     1\taaaa')).toBe(true);
  });

  it('read - refuses a missing file and names it', async () => {
    const failure = read({ path: 'missing.txt' });
    await expect(failure).rejects.toThrow(FileNotFoundError);
    await expect(failure).rejects.toThrow(/"missing\.txt"/);
  });

  it('read - refuses a directory with a clear error', async () => {
    fs.mkdirSync(path.join(location, 'src'));
    const failure = read({ path: 'src' });
    await expect(failure).rejects.toThrow(NotAFileError);
    await expect(failure).rejects.toThrow(/"src" is a directory/);
  });

  it('read - refuses the session directory itself', async () => {
    await expect(read({ path: '.' })).rejects.toThrow(NotAFileError);
  });

  it('read - refuses a named pipe without blocking', async () => {
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [path.join(location, 'pipe')]);
    await expect(read({ path: 'pipe' })).rejects.toThrow(/named pipe/);
  });

  it('read - refuses a file over the size bound', async () => {
    const file = path.join(location, 'huge.txt');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, READ_FILE_BYTES_MAX + 1); // sparse: no disk used
    await expect(read({ path: 'huge.txt' })).rejects.toThrow(FileTooLargeError);
  });
});
