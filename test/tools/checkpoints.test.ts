import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { undoActivity } from '../../ops/checkpoints.js';
import { BlobStore, hashBytes } from '../../tools/checkpoints/blobs.js';
import { IgnoreRules } from '../../tools/checkpoints/ignore.js';
import { restoreFiles } from '../../tools/checkpoints/restore.js';
import { FileCheckpoints, withinEventBounds } from '../../tools/checkpoints/service.js';
import { CHECKPOINT_EVENT_BYTES_MAX, CHECKPOINT_EVENT_FILES_MAX } from '../../core/limits.js';
import { PathOutsideLocationError } from '../../tools/errors.js';
import type { CallCheckpoint, PriorFile } from '../../tools/types.js';
import { tempDir, tempStore } from '../helpers.js';
import { fileFixture, OUTSIDE_SECRET, snapshot } from './fixture.js';

/** A recorder that only remembers what tools report, for checking the tools themselves. */
function spy(): CallCheckpoint & { kept: { realPath: string; prior: PriorFile }[] } {
  const kept: { realPath: string; prior: PriorFile }[] = [];
  return {
    kept,
    async keepBefore(realPath, prior) {
      kept.push({ realPath, prior: prior && 'bytes' in prior ? { bytes: Buffer.from(prior.bytes), mode: prior.mode } : prior });
    },
    aroundCommand: (run) => run(),
    incomplete() {},
    track() {},
  };
}

describe('file checkpoints - what the tools report', () => {
  it('write - reports a new file as not existing, and an overwritten one with its prior bytes and mode, read through the handle it writes', async () => {
    const f = fileFixture();
    const existing = f.put('run.sh', 'old content that is longer\n');
    fs.chmodSync(existing, 0o751);
    const checkpoint = spy();
    await f.registry.execute('write', { path: 'new/a.txt', content: 'A' }, { ...f.context(), checkpoint });
    await f.registry.execute('write', { path: 'run.sh', content: 'new' }, { ...f.context(), checkpoint });
    expect(checkpoint.kept).toEqual([
      { realPath: path.join(f.location, 'new/a.txt'), prior: null },
      { realPath: existing, prior: { bytes: Buffer.from('old content that is longer\n'), mode: 0o751 } },
    ]);
    expect(fs.readFileSync(existing, 'utf8')).toBe('new');
    expect(fs.statSync(existing).mode & 0o777).toBe(0o751);
  });

  it('write - through an in-location symlink reports the real file it changes', async () => {
    const f = fileFixture();
    f.put('AGENTS.md', 'rules\n');
    fs.symlinkSync('AGENTS.md', path.join(f.location, 'CLAUDE.md'));
    const checkpoint = spy();
    await f.registry.execute('write', { path: 'CLAUDE.md', content: 'new rules\n' }, { ...f.context(), checkpoint });
    expect(checkpoint.kept).toEqual([{ realPath: path.join(f.location, 'AGENTS.md'), prior: { bytes: Buffer.from('rules\n'), mode: expect.any(Number) } }]);
  });

  it('edit - reports the exact bytes it replaces', async () => {
    const f = fileFixture();
    const file = f.put('a.txt', '\ufeffcafé\r\nline\n');
    const checkpoint = spy();
    await f.registry.execute('edit', { path: 'a.txt', old_string: 'line', new_string: 'LINE' }, { ...f.context(), checkpoint });
    expect(checkpoint.kept).toEqual([{ realPath: file, prior: { bytes: Buffer.from('\ufeffcafé\r\nline\n'), mode: expect.any(Number) } }]);
  });

  it('service - a call records each file once: prior content from the first report, after-state read at the end; a write of the same content records nothing', async () => {
    const f = fileFixture();
    const service = new FileCheckpoints(tempDir());
    const begin = (callId: string) =>
      service.begin({ sessionId: 'ses_1', activityId: 'act_1', callId, tool: 'write', location: f.location, signal: new AbortController().signal, bash: true });
    f.put('same.txt', 'same');
    const same = begin('call_same');
    await f.registry.execute('write', { path: 'same.txt', content: 'same' }, { ...f.context(), checkpoint: same });
    await service.finish(same);
    expect(service.take('call_same')).toBeUndefined();

    const twice = begin('call_twice');
    await twice.keepBefore(path.join(f.location, 'x.txt'), null);
    await twice.keepBefore(path.join(f.location, 'x.txt'), { bytes: Buffer.from('ignored'), mode: 0o644 });
    await twice.keepBefore('/elsewhere/y.txt', null); // outside the location: ignored
    f.put('x.txt', 'now');
    await service.finish(twice);
    expect(service.take('call_twice')).toEqual({ activityId: 'act_1', callId: 'call_twice', tool: 'write', files: [{ path: 'x.txt', before: null, after: hashBytes(Buffer.from('now')) }] });
    expect(service.take('call_twice')).toBeUndefined(); // handed over once
    expect((await service.blobs.read(hashBytes(Buffer.from('now')), 100))?.toString()).toBe('now');
  });
});

describe('file checkpoints - event bounds', () => {
  it('withinEventBounds - keeps the first files that fit one event, by count and by bytes', () => {
    const many = Array.from({ length: CHECKPOINT_EVENT_FILES_MAX + 5 }, (_, i) => ({ path: `f${i}`, before: null, after: null }));
    expect(withinEventBounds(many)).toHaveLength(CHECKPOINT_EVENT_FILES_MAX);
    const long = Array.from({ length: 1_000 }, (_, i) => ({ path: `${'d/'.repeat(1_000)}${i}`, before: null, after: null }));
    const kept = withinEventBounds(long);
    expect(kept.length).toBeLessThan(long.length);
    expect(Buffer.byteLength(JSON.stringify(kept))).toBeLessThanOrEqual(CHECKPOINT_EVENT_BYTES_MAX);
  });
});

describe('file checkpoints - blobs', () => {
  it('blobs - content-addressed and written once; a damaged blob reads as missing', async () => {
    const blobs = new BlobStore(tempDir());
    const hash = await blobs.put(Buffer.from('content'));
    expect(hash).toBe(hashBytes(Buffer.from('content')));
    expect(blobs.pathOf(hash)).toMatch(new RegExp(`checkpoints/blobs/${hash.slice(0, 2)}/${hash}$`));
    const ino = fs.statSync(blobs.pathOf(hash)).ino;
    expect(await blobs.put(Buffer.from('content'))).toBe(hash);
    expect(fs.statSync(blobs.pathOf(hash)).ino).toBe(ino); // not written again
    expect(fs.statSync(blobs.pathOf(hash)).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.join(blobs.dir, '..', 'tmp'))).toEqual([]); // no temporary file left
    expect((await blobs.read(hash, 100))?.toString()).toBe('content');
    expect(await blobs.read(hash, 3)).toBeUndefined(); // over the caller's bound
    fs.writeFileSync(blobs.pathOf(hash), 'tampered');
    expect(await blobs.read(hash, 100)).toBeUndefined();
    expect(() => blobs.pathOf('../../etc/passwd')).toThrow(/not a blob hash/);
  });
});

describe('file checkpoints - ignore rules', () => {
  it('ignore - nested .gitignore files decide before their parents; rules above the session directory apply up to the repository root', async () => {
    const repo = fs.realpathSync(tempDir());
    fs.mkdirSync(path.join(repo, '.git', 'info'), { recursive: true });
    fs.writeFileSync(path.join(repo, '.git', 'info', 'exclude'), 'secret.txt\n');
    fs.writeFileSync(path.join(repo, '.gitignore'), '*.log\npkg/dist/\n');
    const location = path.join(repo, 'pkg');
    fs.mkdirSync(location);
    const rules = (await IgnoreRules.forLocation(location)).with('', 'tmp/\n').with('src', '!keep.log\n');
    expect(rules.ignores('debug.log', false)).toBe(true); // from the repository root's .gitignore
    expect(rules.ignores('dist', true)).toBe(true); // `pkg/dist/` anchored at the root, seen from pkg
    expect(rules.ignores('secret.txt', false)).toBe(true); // .git/info/exclude
    expect(rules.ignores('tmp', true)).toBe(true);
    expect(rules.ignores('src/keep.log', false)).toBe(false); // the deeper file re-includes it
    expect(rules.ignores('src/other.log', false)).toBe(true);
    expect(rules.ignores('src/main.ts', false)).toBe(false);
    // Outside a repository, parent directories' files are not read.
    const loose = fs.realpathSync(tempDir());
    fs.writeFileSync(path.join(loose, '.gitignore'), '*\n');
    fs.mkdirSync(path.join(loose, 'work'));
    expect((await IgnoreRules.forLocation(path.join(loose, 'work'))).ignores('a.txt', false)).toBe(false);
  });
});

describe('file checkpoints - restoring through confinement', () => {
  it('restore - a directory swapped for a symlink to outside is refused; nothing is written outside', async () => {
    const f = fileFixture();
    const blobs = new BlobStore(tempDir());
    const hash = await blobs.put(Buffer.from('restored'));
    fs.symlinkSync(f.outside, path.join(f.location, 'sub'));
    const before = snapshot(f.outside);
    await expect(restoreFiles(f.location, blobs, [{ path: 'sub/secret.txt', to: hash }])).rejects.toBeInstanceOf(PathOutsideLocationError);
    await expect(restoreFiles(f.location, blobs, [{ path: 'sub/secret.txt', to: null }])).rejects.toBeInstanceOf(PathOutsideLocationError);
    expect(snapshot(f.outside)).toEqual(before);
    expect(fs.readFileSync(path.join(f.outside, 'secret.txt'), 'utf8')).toBe(OUTSIDE_SECRET);
  });

  it('restore - staging fails for one file: the others are not touched and no temporary file is left', async () => {
    const f = fileFixture();
    const blobs = new BlobStore(tempDir());
    const good = await blobs.put(Buffer.from('good'));
    f.put('a.txt', 'current a');
    const missing = hashBytes(Buffer.from('never kept'));
    await expect(restoreFiles(f.location, blobs, [{ path: 'a.txt', to: good }, { path: 'b.txt', to: missing }])).rejects.toThrow(/b\.txt.*no longer kept/);
    expect(fs.readFileSync(path.join(f.location, 'a.txt'), 'utf8')).toBe('current a');
    expect(fs.readdirSync(f.location)).toEqual(['a.txt']);
  });

  it('undo - refuses a session held by a live owner elsewhere', async () => {
    const store = tempStore();
    const sessionId = store.ids.next('ses');
    store.append({ sessionId, type: 'session.created', data: { location: tempDir(), model: 'openai/test' } });
    store.owners.acquire(sessionId, 'otherhost:1:own', 60_000, store.clock.now());
    await expect(undoActivity(store, new BlobStore(tempDir()), sessionId)).rejects.toThrow(/owned by a live process \(otherhost:1:own\)/);
  });
});
