import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { GLOB_RESULTS_MAX } from '../../core/limits.js';
import { builtinTools } from '../../tools/builtin/index.js';
import { InvalidGlobError, NotADirectoryError, PathOutsideLocationError } from '../../tools/errors.js';
import { compileGlob } from '../../tools/glob.js';
import { fileFixture, type FileFixture } from './fixture.js';

let f: FileFixture;

beforeEach(() => {
  f = fileFixture();
});

const glob = (input: unknown) => f.run('glob', input);

/** Writes a file with a given modification time (seconds since the epoch). */
function put(rel: string, mtime: number): void {
  const file = f.put(rel, rel);
  fs.utimesSync(file, mtime, mtime);
}

describe('compileGlob', () => {
  it('compileGlob - a pattern without "/" matches names at any depth', () => {
    const match = compileGlob('*.ts');
    expect(match('a.ts')).toBe(true);
    expect(match('src/deep/a.ts')).toBe(true);
    expect(match('a.js')).toBe(false);
  });

  it('compileGlob - a pattern with "/" is anchored at the directory searched', () => {
    const match = compileGlob('src/**/*.ts');
    expect(match('src/a.ts')).toBe(true);
    expect(match('src/x/y/a.ts')).toBe(true);
    expect(match('lib/src/a.ts')).toBe(false);
  });

  it('compileGlob - matches dot files and braces', () => {
    expect(compileGlob('*')('.env')).toBe(true);
    expect(compileGlob('.env*')('config/.env.local')).toBe(true);
    expect(compileGlob('*.{ts,tsx}')('a.tsx')).toBe(true);
  });

  it('compileGlob - refuses empty, absolute and climbing patterns', () => {
    expect(() => compileGlob('  ')).toThrow(InvalidGlobError);
    expect(() => compileGlob('/etc/*')).toThrow(InvalidGlobError);
    expect(() => compileGlob('../outside/*')).toThrow(/climbs out/);
    expect(() => compileGlob('src/../../x')).toThrow(InvalidGlobError);
  });
});

describe('glob', () => {
  it('glob - is registered as idempotent', () => {
    expect(builtinTools.find((t) => t.name === 'glob')?.idempotent).toBe(true);
  });

  it('glob - returns matching files newest first, relative to the location', async () => {
    put('src/old.ts', 1_000_000);
    put('src/new.ts', 3_000_000);
    put('lib/mid.ts', 2_000_000);
    put('README.md', 4_000_000);
    const result = await glob({ pattern: '**/*.ts' });
    expect(result.output).toBe('src/new.ts\nlib/mid.ts\nsrc/old.ts');
    expect(result.metadata).toMatchObject({ matches: 3 });
  });

  it('glob - searches under path and names results relative to the location', async () => {
    put('src/a/x.ts', 1_000_000);
    put('other/y.ts', 1_000_000);
    const result = await glob({ pattern: '*.ts', path: 'src' });
    expect(result.output).toBe('src/a/x.ts');
  });

  it('glob - says when nothing matches', async () => {
    put('a.md', 1_000_000);
    expect((await glob({ pattern: '*.ts' })).output).toBe('No files match "*.ts" under ./');
  });

  it('glob - skips node_modules and .git unless the path is inside them', async () => {
    put('node_modules/pkg/index.js', 1_000_000);
    put('.git/hooks/x.js', 1_000_000);
    put('index.js', 1_000_000);
    expect((await glob({ pattern: '*.js' })).output).toBe('index.js');
    expect((await glob({ pattern: '*.js', path: 'node_modules' })).output).toBe('node_modules/pkg/index.js');
  });

  it('glob - cuts at the result bound and says how many matched', async () => {
    for (let i = 0; i < GLOB_RESULTS_MAX + 5; i++) put(`f${String(i).padStart(4, '0')}.txt`, 1_000_000 + i);
    const result = await glob({ pattern: '*.txt' });
    const lines = result.output.split('\n');
    expect(lines).toHaveLength(GLOB_RESULTS_MAX + 1);
    expect(lines[0]).toBe(`f${String(GLOB_RESULTS_MAX + 4).padStart(4, '0')}.txt`);
    expect(lines.at(-1)).toBe(`(showing ${GLOB_RESULTS_MAX} of ${GLOB_RESULTS_MAX + 5} matching files, newest first; narrow the pattern or the path)`);
    expect(result.truncated).toBe(true);
  });

  it('glob - does not follow symlinks, inside or out', async () => {
    put('real/a.ts', 1_000_000);
    fs.symlinkSync('real', path.join(f.location, 'alias'));
    fs.symlinkSync('real/a.ts', path.join(f.location, 'link.ts'));
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    const result = await glob({ pattern: '**/*' });
    expect(result.output).toBe('real/a.ts');
  });

  it('glob - refuses a path outside, through "..", a symlink or an absolute path', async () => {
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    await expect(glob({ pattern: '*', path: '..' })).rejects.toThrow(PathOutsideLocationError);
    await expect(glob({ pattern: '*', path: f.outside })).rejects.toThrow(PathOutsideLocationError);
    await expect(glob({ pattern: '*', path: 'out' })).rejects.toThrow(PathOutsideLocationError);
  });

  it('glob - refuses a pattern that climbs out, and a path that is a file', async () => {
    put('a.txt', 1_000_000);
    await expect(glob({ pattern: '../outside/*' })).rejects.toThrow(InvalidGlobError);
    await expect(glob({ pattern: '*', path: 'a.txt' })).rejects.toThrow(NotADirectoryError);
  });
});
