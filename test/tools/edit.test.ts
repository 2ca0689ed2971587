import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { EDIT_FILE_BYTES_MAX } from '../../core/limits.js';
import { builtinTools } from '../../tools/builtin/index.js';
import {
  BinaryFileError,
  EditAmbiguousError,
  EditNoChangeError,
  EditNoMatchError,
  FileNotFoundError,
  FileTooLargeError,
  NotAFileError,
  NotUtf8Error,
  PathOutsideLocationError,
  ToolInputError,
} from '../../tools/errors.js';
import { fileFixture, OUTSIDE_SECRET, type FileFixture } from './fixture.js';

let f: FileFixture;

beforeEach(() => {
  f = fileFixture();
});

const edit = (input: unknown) => f.run('edit', input);
const content = (rel: string) => fs.readFileSync(path.join(f.location, rel), 'utf8');

describe('edit', () => {
  it('edit - is registered and not idempotent', () => {
    expect(builtinTools.find((t) => t.name === 'edit')?.idempotent).toBe(false);
  });

  it('edit - replaces a unique occurrence', async () => {
    f.put('a.ts', 'const a = 1;\nconst b = 2;\n');
    const result = await edit({ path: 'a.ts', old_string: 'const b = 2;', new_string: 'const b = 3;' });
    expect(content('a.ts')).toBe('const a = 1;\nconst b = 3;\n');
    expect(result.output).toBe('Edited "a.ts": replaced 1 occurrence');
  });

  it('edit - shrinks a file (no stale tail left behind)', async () => {
    f.put('a.txt', 'keep\nremove this long line\nend\n');
    await edit({ path: 'a.txt', old_string: 'remove this long line\n', new_string: '' });
    expect(content('a.txt')).toBe('keep\nend\n');
  });

  it('edit - fails clearly when old_string is missing', async () => {
    f.put('a.txt', 'alpha\n');
    const failure = edit({ path: 'a.txt', old_string: 'beta', new_string: 'gamma' });
    await expect(failure).rejects.toThrow(EditNoMatchError);
    await expect(failure).rejects.toThrow(/not found in "a\.txt"/);
    expect(content('a.txt')).toBe('alpha\n');
  });

  it('edit - fails when old_string is not unique, saying how many and what to do', async () => {
    f.put('a.txt', 'x = 1\nx = 1\nx = 1\n');
    const failure = edit({ path: 'a.txt', old_string: 'x = 1', new_string: 'x = 2' });
    await expect(failure).rejects.toThrow(EditAmbiguousError);
    await expect(failure).rejects.toThrow(/occurs 3 times.*more surrounding lines.*replace_all/);
    expect(content('a.txt')).toBe('x = 1\nx = 1\nx = 1\n');
  });

  it('edit - replaces every occurrence with replace_all', async () => {
    f.put('a.txt', 'x = 1\nx = 1\nx = 1\n');
    const result = await edit({ path: 'a.txt', old_string: 'x = 1', new_string: 'x = 2', replace_all: true });
    expect(content('a.txt')).toBe('x = 2\nx = 2\nx = 2\n');
    expect(result.output).toBe('Edited "a.txt": replaced 3 occurrences');
  });

  it('edit - replace_all with a single occurrence replaces it', async () => {
    f.put('a.txt', 'one two\n');
    await edit({ path: 'a.txt', old_string: 'two', new_string: '2', replace_all: true });
    expect(content('a.txt')).toBe('one 2\n');
  });

  it('edit - fails when old_string equals new_string', async () => {
    f.put('a.txt', 'same\n');
    await expect(edit({ path: 'a.txt', old_string: 'same', new_string: 'same' })).rejects.toThrow(EditNoChangeError);
  });

  it('edit - takes "$" sequences in new_string literally', async () => {
    f.put('a.txt', 'price\n');
    await edit({ path: 'a.txt', old_string: 'price', new_string: "$& costs $1 and $'" });
    expect(content('a.txt')).toBe("$& costs $1 and $'\n");
  });

  it('edit - keeps the file mode and a byte-order mark', async () => {
    const file = f.put('bom.txt', '\ufeffhello\n');
    fs.chmodSync(file, 0o640);
    await edit({ path: 'bom.txt', old_string: 'hello', new_string: 'world' });
    expect(fs.readFileSync(file, 'utf8')).toBe('\ufeffworld\n');
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
  });

  it('edit - edits the target of an in-location symlink and keeps the link', async () => {
    f.put('docs/AGENTS.md', 'rule one\n');
    fs.symlinkSync('docs/AGENTS.md', path.join(f.location, 'CLAUDE.md'));
    await edit({ path: 'CLAUDE.md', old_string: 'one', new_string: 'two' });
    expect(content('docs/AGENTS.md')).toBe('rule two\n');
    expect(fs.lstatSync(path.join(f.location, 'CLAUDE.md')).isSymbolicLink()).toBe(true);
  });

  it('edit - refuses a binary file and leaves it alone', async () => {
    const bytes = Buffer.from([0x61, 0x00, 0x62, 0x0a]);
    f.put('bin.dat', bytes);
    await expect(edit({ path: 'bin.dat', old_string: 'a', new_string: 'c' })).rejects.toThrow(BinaryFileError);
    expect(fs.readFileSync(path.join(f.location, 'bin.dat'))).toEqual(bytes);
  });

  it('edit - refuses a file that is not valid UTF-8 and leaves it alone', async () => {
    const bytes = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]); // "café" in Latin-1
    f.put('latin1.txt', bytes);
    await expect(edit({ path: 'latin1.txt', old_string: 'caf', new_string: 'tea' })).rejects.toThrow(NotUtf8Error);
    expect(fs.readFileSync(path.join(f.location, 'latin1.txt'))).toEqual(bytes);
  });

  it('edit - refuses a file over the size bound', async () => {
    f.put('big.txt', Buffer.alloc(EDIT_FILE_BYTES_MAX + 1, 0x61));
    await expect(edit({ path: 'big.txt', old_string: 'a', new_string: 'b' })).rejects.toThrow(FileTooLargeError);
  });

  it('edit - refuses a directory and a missing file', async () => {
    fs.mkdirSync(path.join(f.location, 'dir'));
    await expect(edit({ path: 'dir', old_string: 'a', new_string: 'b' })).rejects.toThrow(NotAFileError);
    await expect(edit({ path: 'missing.txt', old_string: 'a', new_string: 'b' })).rejects.toThrow(FileNotFoundError);
  });

  it('edit - refuses a symlink pointing outside and leaves the target alone', async () => {
    fs.symlinkSync(path.join(f.outside, 'secret.txt'), path.join(f.location, 'link.txt'));
    await expect(edit({ path: 'link.txt', old_string: 'OUTSIDE', new_string: 'pwned' })).rejects.toThrow(PathOutsideLocationError);
    expect(fs.readFileSync(path.join(f.outside, 'secret.txt'), 'utf8')).toBe(OUTSIDE_SECRET);
  });

  it('edit - refuses an empty old_string', async () => {
    f.put('a.txt', 'x\n');
    await expect(edit({ path: 'a.txt', old_string: '', new_string: 'y' })).rejects.toThrow(ToolInputError);
  });
});
