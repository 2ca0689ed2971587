import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { WRITE_CONTENT_BYTES_MAX } from '../../core/limits.js';
import { builtinTools } from '../../tools/builtin/index.js';
import { ContentTooLargeError, FileAccessError, NotAFileError, PathOutsideLocationError, ToolInputError } from '../../tools/errors.js';
import { fileFixture, OUTSIDE_SECRET, snapshot, type FileFixture } from './fixture.js';

let f: FileFixture;

beforeEach(() => {
  f = fileFixture();
});

const write = (input: unknown) => f.run('write', input);

describe('write', () => {
  it('write - is registered and not idempotent', () => {
    expect(builtinTools.find((t) => t.name === 'write')?.idempotent).toBe(false);
  });

  it('write - creates a new file and says so', async () => {
    const result = await write({ path: 'a.txt', content: 'one\ntwo\n' });
    expect(fs.readFileSync(path.join(f.location, 'a.txt'), 'utf8')).toBe('one\ntwo\n');
    expect(result.output).toBe('Created "a.txt": 8 bytes, 2 lines');
    expect(result.metadata).toMatchObject({ created: true, bytes: 8, lines: 2 });
  });

  it('write - overwrites an existing file, keeping its mode', async () => {
    const file = f.put('run.sh', 'old content that is longer\n');
    fs.chmodSync(file, 0o751);
    const result = await write({ path: 'run.sh', content: 'new' });
    expect(fs.readFileSync(file, 'utf8')).toBe('new');
    expect(fs.statSync(file).mode & 0o777).toBe(0o751);
    expect(result.output).toBe('Overwrote "run.sh": 3 bytes, 1 line');
  });

  it('write - writes an empty file', async () => {
    const result = await write({ path: 'empty.txt', content: '' });
    expect(fs.readFileSync(path.join(f.location, 'empty.txt'), 'utf8')).toBe('');
    expect(result.output).toBe('Created "empty.txt": 0 bytes, 0 lines');
  });

  it('write - counts bytes of multi-byte text', async () => {
    const result = await write({ path: 'u.txt', content: 'é€😀' });
    expect(result.metadata).toMatchObject({ bytes: 9, lines: 1 });
  });

  it('write - creates missing parent directories inside the location', async () => {
    await write({ path: 'a/b/c/d.txt', content: 'deep' });
    expect(fs.readFileSync(path.join(f.location, 'a/b/c/d.txt'), 'utf8')).toBe('deep');
  });

  it('write - accepts an absolute path inside the location', async () => {
    await write({ path: path.join(f.location, 'abs.txt'), content: 'x' });
    expect(fs.readFileSync(path.join(f.location, 'abs.txt'), 'utf8')).toBe('x');
  });

  it('write - writes through an in-location symlinked directory', async () => {
    fs.mkdirSync(path.join(f.location, 'real'));
    fs.symlinkSync('real', path.join(f.location, 'alias'));
    await write({ path: 'alias/new/x.txt', content: 'x' });
    expect(fs.readFileSync(path.join(f.location, 'real/new/x.txt'), 'utf8')).toBe('x');
  });

  it('write - refuses a parent directory that is a symlink pointing outside, creating nothing there', async () => {
    fs.symlinkSync(f.outside, path.join(f.location, 'out'));
    const before = snapshot(f.outside);
    await expect(write({ path: 'out/new/dir/x.txt', content: 'x' })).rejects.toThrow(PathOutsideLocationError);
    expect(snapshot(f.outside)).toEqual(before);
  });

  it('write - refuses a final symlink pointing outside and leaves the target alone', async () => {
    fs.symlinkSync(path.join(f.outside, 'secret.txt'), path.join(f.location, 'link.txt'));
    await expect(write({ path: 'link.txt', content: 'pwned' })).rejects.toThrow(PathOutsideLocationError);
    expect(fs.readFileSync(path.join(f.outside, 'secret.txt'), 'utf8')).toBe(OUTSIDE_SECRET);
  });

  it('write - does not create a file through a dangling symlink pointing outside', async () => {
    fs.symlinkSync(path.join(f.outside, 'created.txt'), path.join(f.location, 'dangling.txt'));
    await expect(write({ path: 'dangling.txt', content: 'x' })).rejects.toThrow();
    expect(fs.existsSync(path.join(f.outside, 'created.txt'))).toBe(false);
  });

  it('write - refuses a directory', async () => {
    fs.mkdirSync(path.join(f.location, 'dir'));
    await expect(write({ path: 'dir', content: 'x' })).rejects.toThrow(NotAFileError);
  });

  it('write - refuses a parent that is a file', async () => {
    f.put('file.txt', 'x');
    await expect(write({ path: 'file.txt/child.txt', content: 'x' })).rejects.toThrow(/file\.txt/);
  });

  it('write - refuses a FIFO without blocking', async () => {
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [path.join(f.location, 'pipe')]);
    await expect(write({ path: 'pipe', content: 'x' })).rejects.toThrow(FileAccessError);
  });

  it('write - refuses content over the size bound and writes nothing', async () => {
    const content = 'x'.repeat(WRITE_CONTENT_BYTES_MAX + 1);
    await expect(write({ path: 'big.txt', content })).rejects.toThrow(ContentTooLargeError);
    expect(fs.existsSync(path.join(f.location, 'big.txt'))).toBe(false);
  });

  it('write - refuses input without content', async () => {
    await expect(write({ path: 'a.txt' })).rejects.toThrow(ToolInputError);
  });
});
