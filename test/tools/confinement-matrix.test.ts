/**
 * Attack class × file tool: every cell must be refused with a typed error, and no byte outside the
 * session directory may be read, shown or changed. The race class runs each tool many times while
 * another process keeps swapping a directory (and a file) for a symlink to the outside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PathOutsideLocationError, ToolError } from '../../tools/errors.js';
import { fileFixture, OUTSIDE_SECRET, snapshot, type FileFixture } from './fixture.js';

/** Tool calls per tool while the swapper runs. */
const RACE_RUNS = 150;

const SECRET_MARK = OUTSIDE_SECRET.trim();

/** A regular expression matching SECRET_MARK without containing it (grep echoes its pattern). */
const SECRET_PATTERN = SECRET_MARK.replace('R', '[R]');

let f: FileFixture;

beforeEach(() => {
  f = fileFixture();
  // The outside holds a file named like the one inside the race directory, so a run that got
  // through the symlink would read, list or change it.
  fs.writeFileSync(path.join(f.outside, 'inside.txt'), OUTSIDE_SECRET);
});

/** Paths an attack class hands the tools: one naming a file, one naming a directory. */
interface Target {
  file: string;
  dir: string;
}

interface AttackClass {
  name: string;
  setup(): Target;
}

const attacks: AttackClass[] = [
  { name: '".." traversal', setup: () => ({ file: '../outside/secret.txt', dir: '../outside' }) },
  { name: 'absolute path outside', setup: () => ({ file: path.join(f.outside, 'secret.txt'), dir: path.join(f.outside, 'sub') }) },
  {
    name: 'final symlink pointing out',
    setup: () => {
      fs.symlinkSync(path.join(f.outside, 'secret.txt'), path.join(f.location, 'link.txt'));
      fs.symlinkSync(path.join(f.outside, 'sub'), path.join(f.location, 'linkdir'));
      return { file: 'link.txt', dir: 'linkdir' };
    },
  },
  {
    name: 'symlinked parent directory pointing out',
    setup: () => {
      fs.symlinkSync(f.outside, path.join(f.location, 'out'));
      return { file: 'out/secret.txt', dir: 'out/sub' };
    },
  },
  {
    name: 'symlink in a deeper parent',
    setup: () => {
      fs.mkdirSync(path.join(f.location, 'a', 'b'), { recursive: true });
      fs.symlinkSync(f.outside, path.join(f.location, 'a', 'b', 'out'));
      return { file: 'a/b/out/secret.txt', dir: 'a/b/out/sub' };
    },
  },
];

/** Each tool's call against a target, built to touch the outside file if confinement failed. */
const calls: Record<string, (t: Target) => unknown[]> = {
  read: (t) => [{ path: t.file }],
  write: (t) => [
    { path: t.file, content: 'pwned\n' },
    { path: `${t.dir}/created/new.txt`, content: 'pwned\n' },
  ],
  edit: (t) => [{ path: t.file, old_string: SECRET_MARK, new_string: 'pwned' }],
  list: (t) => [{ path: t.dir }],
  glob: (t) => [{ pattern: '**/*', path: t.dir }],
  grep: (t) => [
    { pattern: SECRET_MARK, path: t.dir },
    { pattern: SECRET_MARK, path: t.file },
  ],
};

const tools = Object.keys(calls);

describe('confinement matrix', () => {
  for (const attack of attacks) {
    for (const tool of tools) {
      it(`confinement - ${tool} refuses ${attack.name}`, async () => {
        const target = attack.setup();
        const before = snapshot(f.outside);
        for (const input of calls[tool](target)) {
          await expect(f.run(tool, input)).rejects.toThrow(PathOutsideLocationError);
        }
        expect(snapshot(f.outside)).toEqual(before);
      });
    }
  }
});

describe('confinement - in-location symlinks', () => {
  it('confinement - read follows a symlinked file and a symlinked directory that stay inside', async () => {
    f.put('docs/AGENTS.md', 'rules\n');
    fs.symlinkSync('docs/AGENTS.md', path.join(f.location, 'CLAUDE.md'));
    fs.symlinkSync('docs', path.join(f.location, 'handbook'));
    expect((await f.run('read', { path: 'CLAUDE.md' })).output).toBe('     1\trules');
    expect((await f.run('read', { path: 'handbook/AGENTS.md' })).output).toBe('     1\trules');
  });

  it('confinement - list, glob and grep start from an in-location symlinked directory', async () => {
    f.put('docs/a.md', 'needle\n');
    fs.symlinkSync('docs', path.join(f.location, 'handbook'));
    expect((await f.run('list', { path: 'handbook' })).output).toBe('docs/\n  a.md');
    expect((await f.run('glob', { pattern: '*.md', path: 'handbook' })).output).toBe('docs/a.md');
    expect((await f.run('grep', { pattern: 'needle', path: 'handbook' })).output).toContain('docs/a.md:');
  });
});

/**
 * Keeps swapping `race` (a directory holding inside.txt) and `racefile` (a file) with symlinks to
 * the outside directory and outside/inside.txt (which holds the secret), as fast as it can, until
 * killed. Nothing it links to is named secret.txt, so that name in any output is a leak.
 */
const SWAPPER = `
const fs = require('node:fs');
const path = require('node:path');
const [location, outside] = process.argv.slice(1);
const race = path.join(location, 'race'), parkedDir = path.join(location, '.parked-dir');
const file = path.join(location, 'racefile'), parkedFile = path.join(location, '.parked-file');
// A step may fail when a tool created "race" or "racefile" while it was parked; the removals
// (which never follow a symlink) heal that within one round.
const step = (fn) => { try { fn(); } catch {} };
let swaps = 0;
for (;;) {
  step(() => fs.renameSync(race, parkedDir));
  step(() => fs.symlinkSync(outside, race));
  step(() => fs.renameSync(file, parkedFile));
  step(() => fs.symlinkSync(path.join(outside, 'inside.txt'), file));
  step(() => fs.rmSync(race, { recursive: true, force: true }));
  step(() => fs.renameSync(parkedDir, race));
  step(() => fs.rmSync(file, { force: true }));
  step(() => fs.renameSync(parkedFile, file));
  if (++swaps % 1000 === 0) process.stdout.write('.');
}
`;

describe('confinement - a symlink swapped in between check and use', () => {
  let swapper: ChildProcess | undefined;
  let swaps = 0;

  beforeEach(async () => {
    fs.mkdirSync(path.join(f.location, 'race'));
    fs.writeFileSync(path.join(f.location, 'race', 'inside.txt'), 'inside\n');
    fs.writeFileSync(path.join(f.location, 'racefile'), 'inside\n');
    swaps = 0;
    swapper = spawn(process.execPath, ['-e', SWAPPER, f.location, f.outside], { stdio: ['ignore', 'pipe', 'inherit'] });
    swapper.stdout!.on('data', (chunk: Buffer) => {
      swaps += chunk.length * 1000;
    });
    // Start racing only once the swapper is demonstrably running.
    await new Promise<void>((resolve) => swapper!.stdout!.once('data', () => resolve()));
  });

  afterEach(async () => {
    const child = swapper;
    swapper = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  });

  /** Runs each input RACE_RUNS times; every run must succeed without outside bytes or fail typed. */
  async function race(tool: string, inputs: unknown[]): Promise<Record<string, number>> {
    const before = snapshot(f.outside);
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < RACE_RUNS; i++) {
      for (const input of inputs) {
        const outcome = await f.run(tool, input).then(
          (result) => {
            expect(result.output).not.toContain(SECRET_MARK);
            expect(result.output).not.toContain('secret.txt');
            return 'ok';
          },
          (err: unknown) => {
            if (!(err instanceof ToolError)) throw err;
            return err.name;
          },
        );
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    }
    expect(snapshot(f.outside)).toEqual(before);
    // The race was real: some runs met the symlink (and were refused) while the swapper ran.
    expect(swaps).toBeGreaterThan(0);
    expect(outcomes.PathOutsideLocationError ?? 0).toBeGreaterThan(0);
    return outcomes;
  }

  it('confinement - read never reads the outside file', async () => {
    await race('read', [{ path: 'race/inside.txt' }, { path: 'racefile' }]);
  });

  it('confinement - write never writes or creates anything outside', async () => {
    await race('write', [
      { path: 'race/inside.txt', content: 'pwned\n' },
      { path: 'race/fresh/new.txt', content: 'pwned\n' },
      { path: 'racefile', content: 'pwned\n' },
    ]);
    expect(fs.existsSync(path.join(f.outside, 'fresh'))).toBe(false);
  });

  it('confinement - edit never changes the outside file', async () => {
    await race('edit', [
      { path: 'race/inside.txt', old_string: SECRET_MARK, new_string: 'pwned' },
      { path: 'racefile', old_string: SECRET_MARK, new_string: 'pwned' },
    ]);
  });

  it('confinement - list never shows the outside directory', async () => {
    await race('list', [{ path: 'race' }, { path: '.' }]);
  });

  it('confinement - glob never shows the outside directory', async () => {
    await race('glob', [
      { pattern: '**/*', path: 'race' },
      { pattern: '**/*', path: '.' },
    ]);
  });

  it('confinement - grep never reads the outside files', async () => {
    await race('grep', [
      { pattern: SECRET_PATTERN, path: 'race' },
      { pattern: SECRET_PATTERN, path: '.' },
      { pattern: SECRET_PATTERN, path: 'racefile' },
    ]);
  });
});
