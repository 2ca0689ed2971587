import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { GREP_BATCH_FILES, GREP_LINE_COLUMNS_MAX, GREP_MATCHES_MAX } from '../../core/limits.js';
import { builtinTools } from '../../tools/builtin/index.js';
import { createGrepTool } from '../../tools/builtin/grep.js';
import {
  GrepPatternError,
  PathOutsideLocationError,
  RipgrepNotInstalledError,
  ToolCancelledError,
  ToolTimeoutError,
} from '../../tools/errors.js';
import { createToolRegistry } from '../../tools/registry.js';
import { fileFixture, OUTSIDE_SECRET, type FileFixture } from './fixture.js';

let f: FileFixture;

beforeEach(() => {
  f = fileFixture();
});

const grep = (input: unknown) => f.run('grep', input);

/** A stand-in for rg that records its pid and hangs, to see that grep kills it. */
function hangingRipgrep(): { command: string; pidFile: string } {
  const pidFile = path.join(f.root, 'rg.pid');
  const command = path.join(f.root, 'fake-rg');
  fs.writeFileSync(command, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 60\n`, { mode: 0o755 });
  return { command, pidFile };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) for a condition that another process makes true. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting until ${what}`);
}

describe('grep', () => {
  it('grep - is registered as idempotent', () => {
    expect(builtinTools.find((t) => t.name === 'grep')?.idempotent).toBe(true);
  });

  it('grep - returns matching lines grouped by file, paths relative to the location', async () => {
    f.put('src/a.ts', 'const alpha = 1;\nconst beta = 2;\nalpha();\n');
    f.put('src/b.ts', 'nothing here\n');
    f.put('lib/c.ts', 'let alpha;\n');
    const result = await grep({ pattern: 'alpha' });
    expect(result.output).toBe(['3 matches in 2 files', 'lib/c.ts:', '  1: let alpha;', 'src/a.ts:', '  1: const alpha = 1;', '  3: alpha();'].join('\n'));
    expect(result.metadata).toMatchObject({ matches: 3, files: 2, searched: 3 });
  });

  it('grep - searches a subdirectory or a single file', async () => {
    f.put('src/a.ts', 'needle\n');
    f.put('other/b.ts', 'needle\n');
    expect((await grep({ pattern: 'needle', path: 'src' })).output).toBe('1 match in 1 file\nsrc/a.ts:\n  1: needle');
    expect((await grep({ pattern: 'needle', path: 'other/b.ts' })).output).toBe('1 match in 1 file\nother/b.ts:\n  1: needle');
  });

  it('grep - filters files with include', async () => {
    f.put('a.ts', 'needle\n');
    f.put('b.md', 'needle\n');
    f.put('deep/c.ts', 'needle\n');
    const result = await grep({ pattern: 'needle', include: '*.ts' });
    expect(result.output).toBe('2 matches in 2 files\na.ts:\n  1: needle\ndeep/c.ts:\n  1: needle');
  });

  it('grep - honours ignore_case and fixed_strings', async () => {
    f.put('a.txt', 'Hello\nfoo.bar\nfooXbar\n');
    expect((await grep({ pattern: 'hello', ignore_case: true })).output).toContain('1: Hello');
    const literal = await grep({ pattern: 'foo.bar', fixed_strings: true });
    expect(literal.output).toBe('1 match in 1 file\na.txt:\n  2: foo.bar');
  });

  it('grep - takes a pattern that starts with a dash as a pattern', async () => {
    f.put('a.txt', 'x --version y\n');
    expect((await grep({ pattern: '--version' })).output).toContain('1: x --version y');
  });

  it('grep - says when nothing matches', async () => {
    f.put('a.txt', 'x\n');
    expect((await grep({ pattern: 'nope' })).output).toBe('No matches for "nope" (1 files searched)');
  });

  it('grep - reports a binary file that matches without printing it', async () => {
    f.put('bin.dat', Buffer.concat([Buffer.from('needle\n'), Buffer.from([0, 1, 2]), Buffer.from('\n')]));
    expect((await grep({ pattern: 'needle' })).output).toContain('bin.dat: binary file matches (not shown)');
  });

  it('grep - skips node_modules unless the path is inside it', async () => {
    f.put('node_modules/pkg/index.js', 'needle\n');
    f.put('index.js', 'needle\n');
    expect((await grep({ pattern: 'needle' })).output).toBe('1 match in 1 file\nindex.js:\n  1: needle');
    expect((await grep({ pattern: 'needle', path: 'node_modules' })).output).toContain('node_modules/pkg/index.js:');
  });

  it('grep - does not follow symlinks, to files or directories, inside or out', async () => {
    f.put('real/a.txt', 'OUTSIDE-SECRET but inside\n');
    fs.symlinkSync('real', path.join(f.location, 'alias'));
    fs.symlinkSync(path.join(f.outside, 'secret.txt'), path.join(f.location, 'link.txt'));
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    const result = await grep({ pattern: 'OUTSIDE-SECRET' });
    expect(result.output).toBe('1 match in 1 file\nreal/a.txt:\n  1: OUTSIDE-SECRET but inside');
  });

  it('grep - refuses a search root outside the location', async () => {
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    await expect(grep({ pattern: 'x', path: '..' })).rejects.toThrow(PathOutsideLocationError);
    await expect(grep({ pattern: 'x', path: 'out' })).rejects.toThrow(PathOutsideLocationError);
    await expect(grep({ pattern: 'x', path: path.join(f.outside, 'secret.txt') })).rejects.toThrow(PathOutsideLocationError);
  });

  it('grep - finds matches across several ripgrep batches, in path order', async () => {
    const count = GREP_BATCH_FILES * 2 + 3;
    for (let i = 0; i < count; i++) f.put(`f${String(i).padStart(4, '0')}.txt`, i % 50 === 0 ? 'needle\n' : 'hay\n');
    const result = await grep({ pattern: 'needle' });
    const files = result.output.split('\n').filter((line) => line.endsWith(':'));
    expect(files).toEqual(Array.from({ length: Math.ceil(count / 50) }, (_, k) => `f${String(k * 50).padStart(4, '0')}.txt:`));
    expect(result.metadata).toMatchObject({ searched: count });
  });

  it('grep - stops at the match bound and says so', async () => {
    f.put('many.txt', 'needle\n'.repeat(GREP_MATCHES_MAX * 5));
    f.put('more.txt', 'needle\n'.repeat(GREP_MATCHES_MAX * 5));
    const result = await grep({ pattern: 'needle' });
    expect(result.metadata).toMatchObject({ matches: GREP_MATCHES_MAX });
    expect(result.truncated).toBe(true);
    expect(result.output).toContain(`(stopped at the first ${GREP_MATCHES_MAX} matches;`);
  });

  it('grep - shows a bounded preview of a 50 MB line', async () => {
    const line = Buffer.alloc(50 * 1024 * 1024, 0x78);
    line.write('needle', 10);
    f.put('huge.txt', Buffer.concat([line, Buffer.from('\nshort needle\n')]));
    const result = await grep({ pattern: 'needle' });
    expect(Buffer.byteLength(result.output)).toBeLessThan(2 * GREP_LINE_COLUMNS_MAX + 200);
    expect(result.output).toContain('omitted end of long line');
    expect(result.output).toContain('2: short needle');
  });

  it('grep - refuses an invalid regular expression with ripgrep\'s reason', async () => {
    f.put('a.txt', 'x\n');
    const failure = grep({ pattern: 'a(b' });
    await expect(failure).rejects.toThrow(GrepPatternError);
    await expect(failure).rejects.toThrow(/regex parse error/);
  });

  it('grep - names the package to install when rg is missing', async () => {
    f.put('a.txt', 'x\n');
    const registry = createToolRegistry();
    registry.register(createGrepTool({ command: path.join(f.root, 'no-such-rg') }));
    const failure = registry.execute('grep', { pattern: 'x' }, f.context());
    await expect(failure).rejects.toThrow(RipgrepNotInstalledError);
    await expect(failure).rejects.toThrow(/Debian package "ripgrep"/);
  });

  it('grep - kills ripgrep when the call times out', async () => {
    f.put('a.txt', 'x\n');
    const { command, pidFile } = hangingRipgrep();
    const registry = createToolRegistry();
    registry.register(createGrepTool({ command, timeoutMs: 500 }));
    await expect(registry.execute('grep', { pattern: 'x' }, f.context())).rejects.toThrow(ToolTimeoutError);
    await eventually(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '', 'the fake rg wrote its pid');
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await eventually(() => !isAlive(pid), `rg (pid ${pid}) was killed`);
  });

  it('grep - kills ripgrep when the call is cancelled', async () => {
    f.put('a.txt', 'x\n');
    const { command, pidFile } = hangingRipgrep();
    const registry = createToolRegistry();
    registry.register(createGrepTool({ command }));
    const cancel = new AbortController();
    const running = registry.execute('grep', { pattern: 'x' }, f.context(cancel.signal));
    await eventually(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '', 'the fake rg started');
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    cancel.abort();
    await expect(running).rejects.toThrow(ToolCancelledError);
    await eventually(() => !isAlive(pid), `rg (pid ${pid}) was killed`);
  });

  it('grep - never shows the outside secret', async () => {
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    f.put('a.txt', 'inside\n');
    const result = await grep({ pattern: 'SECRET' });
    expect(result.output).not.toContain(OUTSIDE_SECRET.trim());
  });
});
