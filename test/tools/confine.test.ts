import { constants } from 'node:fs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  isInside,
  mkdirConfined,
  openChildDir,
  openConfined,
  openDirConfined,
  readDirConfined,
  realpathInside,
  resolveInside,
} from '../../tools/confine.js';
import { FileAccessError, FileNotFoundError, InvalidPathError, NotADirectoryError, PathOutsideLocationError } from '../../tools/errors.js';

let root: string;
let location: string;
let outside: string;

beforeEach(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'loom-confine-')));
  location = path.join(root, 'project');
  outside = path.join(root, 'outside');
  fs.mkdirSync(path.join(location, 'src'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(location, 'src', 'a.txt'), 'inside\n');
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret\n');
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

async function readVia(relPath: string, options = {}): Promise<string> {
  const { handle } = await openConfined(location, relPath, constants.O_RDONLY, options);
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

describe('isInside', () => {
  it('isInside - accepts the root itself and paths beneath it', () => {
    expect(isInside('/a/b', '/a/b')).toBe(true);
    expect(isInside('/a/b', '/a/b/c/d')).toBe(true);
  });

  it('isInside - refuses siblings that share a name prefix', () => {
    expect(isInside('/a/b', '/a/bc')).toBe(false);
    expect(isInside('/a/b', '/a')).toBe(false);
  });

  it('isInside - treats a file named "..x" as inside', () => {
    expect(isInside('/a/b', '/a/b/..x')).toBe(true);
  });
});

describe('resolveInside', () => {
  it('resolveInside - resolves a relative path against the location', () => {
    expect(resolveInside(location, 'src/a.txt')).toBe(path.join(location, 'src', 'a.txt'));
  });

  it('resolveInside - accepts an absolute path inside the location', () => {
    const abs = path.join(location, 'src', 'a.txt');
    expect(resolveInside(location, abs)).toBe(abs);
  });

  it('resolveInside - accepts ".." that stays inside', () => {
    expect(resolveInside(location, 'src/../src/a.txt')).toBe(path.join(location, 'src', 'a.txt'));
  });

  it('resolveInside - refuses a ".." escape and names the path', () => {
    expect(() => resolveInside(location, '../outside/secret.txt')).toThrow(PathOutsideLocationError);
    expect(() => resolveInside(location, '../outside/secret.txt')).toThrow(/"\.\.\/outside\/secret\.txt"/);
  });

  it('resolveInside - refuses an absolute path outside the location', () => {
    expect(() => resolveInside(location, '/etc/passwd')).toThrow(PathOutsideLocationError);
  });

  it('resolveInside - refuses an empty path', () => {
    expect(() => resolveInside(location, '')).toThrow(InvalidPathError);
  });

  it('resolveInside - refuses a path with a NUL byte', () => {
    expect(() => resolveInside(location, 'a\0b')).toThrow(InvalidPathError);
  });
});

describe('openConfined', () => {
  it('openConfined - opens a file inside and reports its real path', async () => {
    const { handle, realPath } = await openConfined(location, 'src/a.txt', constants.O_RDONLY);
    try {
      expect(realPath).toBe(path.join(location, 'src', 'a.txt'));
      expect(await handle.readFile('utf8')).toBe('inside\n');
    } finally {
      await handle.close();
    }
  });

  it('openConfined - refuses a ".." escape', async () => {
    await expect(readVia('../outside/secret.txt')).rejects.toThrow(PathOutsideLocationError);
  });

  it('openConfined - refuses a final-component symlink pointing outside', async () => {
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(location, 'link.txt'));
    await expect(readVia('link.txt')).rejects.toThrow(PathOutsideLocationError);
  });

  it('openConfined - refuses a symlinked parent directory pointing outside', async () => {
    fs.symlinkSync(outside, path.join(location, 'out'));
    await expect(readVia('out/secret.txt')).rejects.toThrow(PathOutsideLocationError);
  });

  it('openConfined - follows a final-component symlink whose target is inside', async () => {
    fs.symlinkSync('src/a.txt', path.join(location, 'alias.txt'));
    await expect(readVia('alias.txt')).resolves.toBe('inside\n');
  });

  it('openConfined - refuses an inside symlink when following is off', async () => {
    fs.symlinkSync('src/a.txt', path.join(location, 'alias.txt'));
    await expect(readVia('alias.txt', { followSymlinksInside: false })).rejects.toThrow(FileAccessError);
  });

  it('openConfined - refuses a dangling symlink', async () => {
    fs.symlinkSync(path.join(outside, 'missing.txt'), path.join(location, 'dangling.txt'));
    await expect(readVia('dangling.txt')).rejects.toThrow(FileNotFoundError);
  });

  it('openConfined - does not create a file through a dangling symlink pointing outside', async () => {
    fs.symlinkSync(path.join(outside, 'created.txt'), path.join(location, 'dangling.txt'));
    const flags = constants.O_WRONLY | constants.O_CREAT;
    await expect(openConfined(location, 'dangling.txt', flags, { mode: 0o644 })).rejects.toThrow();
    expect(fs.existsSync(path.join(outside, 'created.txt'))).toBe(false);
  });

  it('openConfined - creates a new file inside when asked to', async () => {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
    const { handle, realPath } = await openConfined(location, 'src/new.txt', flags, { mode: 0o644 });
    await handle.writeFile('new');
    await handle.close();
    expect(realPath).toBe(path.join(location, 'src', 'new.txt'));
    expect(fs.readFileSync(realPath, 'utf8')).toBe('new');
  });

  it('openConfined - reports a missing file with its path', async () => {
    await expect(readVia('src/missing.txt')).rejects.toThrow(FileNotFoundError);
    await expect(readVia('src/missing.txt')).rejects.toThrow(/"src\/missing\.txt"/);
  });

  it('openConfined - reports a missing parent directory as a missing file', async () => {
    await expect(readVia('nope/missing.txt')).rejects.toThrow(FileNotFoundError);
  });

  it('openConfined - works when the location itself is reached through a symlink', async () => {
    const alias = path.join(root, 'alias');
    fs.symlinkSync(location, alias);
    const { handle, realPath } = await openConfined(alias, 'src/a.txt', constants.O_RDONLY);
    await handle.close();
    expect(realPath).toBe(path.join(location, 'src', 'a.txt'));
  });
});

describe('realpathInside', () => {
  it('realpathInside - returns the real path of a directory inside', async () => {
    await expect(realpathInside(location, 'src')).resolves.toBe(path.join(location, 'src'));
  });

  it('realpathInside - refuses a symlinked directory pointing outside', async () => {
    fs.symlinkSync(outside, path.join(location, 'out'));
    await expect(realpathInside(location, 'out')).rejects.toThrow(PathOutsideLocationError);
  });
});

describe('openDirConfined', () => {
  it('openDirConfined - opens a directory inside and reads it through its descriptor', async () => {
    const dir = await openDirConfined(location, 'src');
    try {
      expect(dir.realPath).toBe(path.join(location, 'src'));
      const { entries, more } = await readDirConfined(dir, 10);
      expect(entries.map((e) => e.name)).toEqual(['a.txt']);
      expect(more).toBe(false);
    } finally {
      await dir.handle.close();
    }
  });

  it('openDirConfined - refuses a file, and a symlinked directory pointing outside', async () => {
    await expect(openDirConfined(location, 'src/a.txt')).rejects.toThrow(NotADirectoryError);
    fs.symlinkSync(outside, path.join(location, 'out'));
    await expect(openDirConfined(location, 'out')).rejects.toThrow(PathOutsideLocationError);
  });

  it('readDirConfined - stops at its bound and says there is more', async () => {
    for (const name of ['b', 'c', 'd']) fs.writeFileSync(path.join(location, 'src', name), '');
    const dir = await openDirConfined(location, 'src');
    try {
      const { entries, more } = await readDirConfined(dir, 2);
      expect(entries).toHaveLength(2);
      expect(more).toBe(true);
    } finally {
      await dir.handle.close();
    }
  });

  it('openChildDir - refuses a child that is a symlink, even one pointing inside', async () => {
    fs.symlinkSync('src', path.join(location, 'alias'));
    const root = await openDirConfined(location, '.');
    try {
      await expect(openChildDir(root, 'alias')).rejects.toThrow(NotADirectoryError);
      const child = await openChildDir(root, 'src');
      await child.handle.close();
    } finally {
      await root.handle.close();
    }
  });
});

describe('mkdirConfined', () => {
  it('mkdirConfined - creates missing directories inside, and is a no-op when they exist', async () => {
    await mkdirConfined(location, 'x/y/z');
    expect(fs.statSync(path.join(location, 'x/y/z')).isDirectory()).toBe(true);
    await mkdirConfined(location, 'x/y/z');
    await mkdirConfined(location, '.');
  });

  it('mkdirConfined - goes through an in-location symlinked directory', async () => {
    fs.symlinkSync('src', path.join(location, 'alias'));
    await mkdirConfined(location, 'alias/new');
    expect(fs.statSync(path.join(location, 'src/new')).isDirectory()).toBe(true);
  });

  it('mkdirConfined - refuses a symlinked component pointing outside and creates nothing there', async () => {
    fs.symlinkSync(outside, path.join(location, 'out'));
    await expect(mkdirConfined(location, 'out/made/deeper')).rejects.toThrow(PathOutsideLocationError);
    expect(fs.existsSync(path.join(outside, 'made'))).toBe(false);
  });

  it('mkdirConfined - refuses ".." and a component that is a file', async () => {
    await expect(mkdirConfined(location, '../outside/made')).rejects.toThrow(PathOutsideLocationError);
    expect(fs.existsSync(path.join(outside, 'made'))).toBe(false);
    await expect(mkdirConfined(location, 'src/a.txt/sub')).rejects.toThrow(FileNotFoundError);
  });
});
