import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { LIST_DEPTH_MAX, LIST_ENTRIES_MAX } from '../../core/limits.js';
import { builtinTools } from '../../tools/builtin/index.js';
import { FileNotFoundError, InvalidGlobError, NotADirectoryError, PathOutsideLocationError } from '../../tools/errors.js';
import { fileFixture, type FileFixture } from './fixture.js';

let f: FileFixture;

beforeEach(() => {
  f = fileFixture();
});

const list = (input: unknown = {}) => f.run('list', input);

describe('list', () => {
  it('list - is registered as idempotent', () => {
    expect(builtinTools.find((t) => t.name === 'list')?.idempotent).toBe(true);
  });

  it('list - shows a tree, directories first, each level sorted', async () => {
    f.put('b.txt', '');
    f.put('a.txt', '');
    f.put('src/z.ts', '');
    f.put('src/lib/y.ts', '');
    f.put('docs/readme.md', '');
    const result = await list();
    expect(result.output).toBe(['./', '  docs/', '    readme.md', '  src/', '    lib/', '      y.ts', '    z.ts', '  a.txt', '  b.txt'].join('\n'));
    expect(result.metadata).toMatchObject({ entries: 8 });
  });

  it('list - lists a subdirectory by path, named relative to the location', async () => {
    f.put('src/lib/y.ts', '');
    const result = await list({ path: 'src' });
    expect(result.output).toBe(['src/', '  lib/', '    y.ts'].join('\n'));
  });

  it('list - says a directory is empty', async () => {
    fs.mkdirSync(path.join(f.location, 'empty'));
    expect((await list({ path: 'empty' })).output).toBe('empty/\n  (empty)');
  });

  it('list - shows .git and node_modules but does not expand them', async () => {
    f.put('.git/HEAD', 'ref');
    f.put('node_modules/pkg/index.js', '');
    f.put('index.ts', '');
    const result = await list();
    expect(result.output).toContain('  .git/  (not expanded by default');
    expect(result.output).toContain('  node_modules/  (not expanded by default');
    expect(result.output).not.toContain('HEAD');
    expect(result.output).not.toContain('pkg');
  });

  it('list - expands a default-skipped directory when asked for it by path', async () => {
    f.put('node_modules/pkg/index.js', '');
    expect((await list({ path: 'node_modules' })).output).toContain('index.js');
  });

  it('list - leaves out entries matching ignore patterns', async () => {
    f.put('a.log', '');
    f.put('src/b.log', '');
    f.put('src/c.ts', '');
    const result = await list({ ignore: ['*.log'] });
    expect(result.output).toBe(['./', '  src/', '    c.ts'].join('\n'));
  });

  it('list - shows symlinks with their target and never descends into them', async () => {
    f.put('real/inside.txt', '');
    fs.symlinkSync('real', path.join(f.location, 'alias'));
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    const result = await list();
    expect(result.output).toContain('  alias -> real');
    expect(result.output).toContain(`  out -> ${f.outside}`);
    expect(result.output).not.toContain('secret.txt');
    expect(result.output.match(/inside\.txt/g)).toHaveLength(1);
  });

  it('list - refuses a starting directory that is a symlink pointing outside', async () => {
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    await expect(list({ path: 'out' })).rejects.toThrow(PathOutsideLocationError);
  });

  it('list - refuses "..", an absolute path outside, a file and a missing directory', async () => {
    f.put('a.txt', '');
    await expect(list({ path: '..' })).rejects.toThrow(PathOutsideLocationError);
    await expect(list({ path: f.outside })).rejects.toThrow(PathOutsideLocationError);
    await expect(list({ path: 'a.txt' })).rejects.toThrow(NotADirectoryError);
    await expect(list({ path: 'missing' })).rejects.toThrow(FileNotFoundError);
  });

  it('list - refuses an ignore pattern that climbs out', async () => {
    await expect(list({ ignore: ['../x'] })).rejects.toThrow(InvalidGlobError);
  });

  it('list - stops at the entry bound, showing top-level entries before deeper ones', async () => {
    for (let i = 0; i < LIST_ENTRIES_MAX + 50; i++) f.put(`aaa/f${String(i).padStart(5, '0')}.txt`, '');
    f.put('top.txt', '');
    const result = await list();
    expect(result.truncated).toBe(true);
    expect(result.output).toContain('  top.txt');
    expect(result.output).toContain('… 52 more entries'); // two top-level entries claimed their share first
    expect(result.output).toContain(`(listing stopped at ${LIST_ENTRIES_MAX} entries; list a subdirectory to see more)`);
    expect(result.metadata).toMatchObject({ entries: LIST_ENTRIES_MAX });
  });

  it('list - does not expand directories deeper than the depth bound', async () => {
    const deep = Array.from({ length: LIST_DEPTH_MAX + 2 }, (_, i) => `d${i}`).join('/');
    f.put(`${deep}/leaf.txt`, '');
    const result = await list();
    expect(result.output).not.toContain('leaf.txt');
    expect(result.output).toContain(`d${LIST_DEPTH_MAX - 1}/`);
    expect(result.output).not.toContain(`d${LIST_DEPTH_MAX}/`);
    expect(result.output).toContain('not expanded; list them to see inside');
  });
});
