import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INSTRUCTION_FILE_BYTES_MAX, INSTRUCTION_FILES_MAX } from '../../core/limits.js';
import { discoverInstructions, renderInstructions } from '../../services/instructions.js';
import { tempDir } from '../helpers.js';

/** `root/repo/.git`, `root/repo/pkg/app` as the session's directory, and an empty `$LOOM_HOME`. */
function layout() {
  const root = tempDir();
  const repo = join(root, 'repo');
  const location = join(repo, 'pkg', 'app');
  mkdirSync(join(repo, '.git'), { recursive: true });
  mkdirSync(location, { recursive: true });
  const home = tempDir();
  return { root, repo, location, home };
}

describe('instruction files - discovery', () => {
  it('finds AGENTS.md and CLAUDE.md from the session directory up to the repository root (nested dirs), farthest first, and stops there', async () => {
    const { root, repo, location, home } = layout();
    writeFileSync(join(root, 'AGENTS.md'), 'above the repository: never read\n');
    writeFileSync(join(repo, 'AGENTS.md'), 'repo rules\n');
    writeFileSync(join(repo, 'pkg', 'CLAUDE.md'), 'package rules\n');
    writeFileSync(join(location, 'AGENTS.md'), 'app rules\n');
    writeFileSync(join(location, 'CLAUDE.md'), 'app rules for claude\n');
    const found = await discoverInstructions({ location, home });
    expect(found.repositoryRoot).toBe(repo);
    expect(found.files.map((f) => f.path)).toEqual([
      join(repo, 'AGENTS.md'),
      join(repo, 'pkg', 'CLAUDE.md'),
      join(location, 'AGENTS.md'),
      join(location, 'CLAUDE.md'),
    ]);
    expect(found.files.map((f) => f.text)).toEqual(['repo rules\n', 'package rules\n', 'app rules\n', 'app rules for claude\n']);
  });

  it('adds the global $LOOM_HOME/AGENTS.md first; a .git file (a worktree) also marks the root', async () => {
    const root = tempDir();
    const worktree = join(root, 'wt');
    mkdirSync(worktree);
    writeFileSync(join(worktree, '.git'), 'gitdir: /elsewhere\n');
    writeFileSync(join(worktree, 'AGENTS.md'), 'worktree rules\n');
    writeFileSync(join(root, 'AGENTS.md'), 'outside\n');
    const home = tempDir();
    writeFileSync(join(home, 'AGENTS.md'), 'global rules\n');
    const found = await discoverInstructions({ location: worktree, home });
    expect(found.repositoryRoot).toBe(worktree);
    expect(found.files.map((f) => [f.scope, f.text])).toEqual([
      ['global', 'global rules\n'],
      ['project', 'worktree rules\n'],
    ]);
  });

  it('outside a repository the walk stops below $HOME (the home directory itself is not read)', async () => {
    const userHome = tempDir();
    const location = join(userHome, 'work', 'scratch');
    mkdirSync(location, { recursive: true });
    writeFileSync(join(userHome, 'AGENTS.md'), 'in $HOME: not read\n');
    writeFileSync(join(userHome, 'work', 'AGENTS.md'), 'work rules\n');
    const found = await discoverInstructions({ location, home: tempDir(), userHome });
    expect(found.repositoryRoot).toBeNull();
    expect(found.files.map((f) => f.text)).toEqual(['work rules\n']);
  });

  it('a file over INSTRUCTION_FILE_BYTES_MAX is cut and marked; files beyond INSTRUCTION_FILES_MAX are left out (the nearest kept) and named', async () => {
    const { repo, location, home } = layout();
    writeFileSync(join(location, 'AGENTS.md'), 'x'.repeat(INSTRUCTION_FILE_BYTES_MAX + 100));
    // More directories than the bound, each with a file: the farthest ones are left out.
    let dir = location;
    const deep: string[] = [];
    for (let i = 0; i < INSTRUCTION_FILES_MAX + 2; i++) {
      dir = join(dir, `d${i}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'AGENTS.md'), `level ${i}\n`);
      deep.push(dir);
    }
    const found = await discoverInstructions({ location: dir, home });
    expect(found.files).toHaveLength(INSTRUCTION_FILES_MAX);
    expect(found.files.at(-1)!.text).toBe(`level ${INSTRUCTION_FILES_MAX + 1}\n`);
    expect(found.skipped.map((s) => s.path)).toContain(join(location, 'AGENTS.md'));
    expect(found.skipped.every((s) => s.reason.includes('limit'))).toBe(true);
    const big = await discoverInstructions({ location, home });
    expect(big.files[0]!.truncated).toBe(true);
    expect(Buffer.byteLength(big.files[0]!.text)).toBe(INSTRUCTION_FILE_BYTES_MAX);
    expect(renderInstructions(big)).toContain(`[truncated: only the first ${INSTRUCTION_FILE_BYTES_MAX} of ${INSTRUCTION_FILE_BYTES_MAX + 100} bytes are shown]`);
    expect(repo).toBeDefined();
  });

  it('a FIFO or a directory in place of AGENTS.md is skipped without hanging; a CLAUDE.md symlinked to AGENTS.md is taken once', async () => {
    const { location, home } = layout();
    execFileSync('mkfifo', [join(location, 'AGENTS.md')]);
    mkdirSync(join(location, '..', 'CLAUDE.md'));
    const other = join(location, '..', '..');
    writeFileSync(join(other, 'AGENTS.md'), 'repo rules\n');
    symlinkSync(join(other, 'AGENTS.md'), join(other, 'CLAUDE.md'));
    const found = await discoverInstructions({ location, home });
    expect(found.files.map((f) => f.text)).toEqual(['repo rules\n']);
    expect(found.skipped.map((s) => s.reason)).toEqual(['is not a regular file', 'is not a regular file']);
  });

  it('renders each file in a block labelled with its path and scope', async () => {
    const { repo, location, home } = layout();
    writeFileSync(join(repo, 'AGENTS.md'), 'use tabs');
    const text = renderInstructions(await discoverInstructions({ location, home }));
    expect(text).toContain(`<instructions path="${join(repo, 'AGENTS.md')}" scope="project">\nuse tabs\n</instructions>`);
  });
});
