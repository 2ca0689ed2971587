import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointConflictError, CheckpointIncompleteError, diffSession, renderDiff, undoActivity } from '../../ops/checkpoints.js';
import type { AnyEnvelope } from '../../store/index.js';
import { FileCheckpoints, type CheckpointServiceOptions } from '../../tools/checkpoints/service.js';
import type { ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { tempDir } from '../helpers.js';
import { createHarness, type Harness } from '../actors/harness.js';

const allow = { permission: { rules: [{ tool: '*', action: 'allow' as const }] } };
const call = (name: string, args: Record<string, unknown>): ScriptedTurn => ({ toolCalls: [{ name, arguments: args }] });
const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];

async function checkpointed(script: ScriptedTurn[], options: CheckpointServiceOptions = {}, config: object = allow) {
  const home = tempDir();
  const checkpoints = new FileCheckpoints(home, options);
  const h = await createHarness({ script, config, home, toolServices: { checkpoints } });
  const file = (rel: string) => join(h.location, rel);
  const read = (rel: string) => readFileSync(file(rel), 'utf8');
  /** Runs one activity: admits TEXT and runs the session until it is quiet. */
  const activity = async (text: string) => {
    h.admit('queue', text);
    await h.run();
    return of(h.events(), 'activity.opened').at(-1)!.data.activityId;
  };
  return { h, home, checkpoints, file, read, activity };
}

function release(h: Harness): void {
  // Undo takes the session's lease like any command from another process: the harness lets go first.
  h.coordinator.release(h.sessionId);
}

describe('file checkpoints - diff and undo', () => {
  it('checkpoints - write, edit and bash across three activities: diffs per activity and for the session; undo goes back one activity at a time, refusing an earlier one while a later one changed its files', async () => {
    const { h, checkpoints, file, read, activity } = await checkpointed([
      // activity 1: create a.txt, edit b.txt
      call('write', { path: 'a.txt', content: 'alpha\n' }),
      call('edit', { path: 'b.txt', old_string: 'two', new_string: 'TWO' }),
      { text: 'first done' },
      // activity 2: bash appends to b.txt, deletes c.txt, creates d/e.txt
      call('bash', { command: 'echo three >> b.txt && rm c.txt && mkdir -p d && printf "new\\n" > d/e.txt' }),
      { text: 'second done' },
      // activity 3: edit a.txt
      call('edit', { path: 'a.txt', old_string: 'alpha', new_string: 'ALPHA' }),
      { text: 'third done' },
    ]);
    writeFileSync(file('b.txt'), 'one\ntwo\n');
    writeFileSync(file('c.txt'), 'doomed\n', { mode: 0o640 });
    const a1 = await activity('make a and fix b');
    const a2 = await activity('shell work');
    const a3 = await activity('shout a');
    expect(read('a.txt')).toBe('ALPHA\n');
    expect(read('b.txt')).toBe('one\nTWO\nthree\n');
    expect(existsSync(file('c.txt'))).toBe(false);

    // Each checkpoint is appended in the transaction of its call's settlement, right before it.
    const events = h.events();
    const recorded = of(events, 'checkpoint.recorded');
    expect(recorded.map((e) => e.data.tool)).toEqual(['write', 'edit', 'bash', 'edit']);
    for (const r of recorded) {
      const settled = events.find((e) => e.type === 'tool.settled' && e.data.callId === r.data.callId)!;
      expect(settled.seq).toBe(r.seq + 1);
      expect(settled.gseq).toBe(r.gseq + 1);
    }
    expect(recorded[0]!.data.files).toEqual([{ path: 'a.txt', before: null, after: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    const bashFiles = recorded[2]!.data.files.map((f) => [f.path, f.before === null ? 'created' : f.after === null ? 'deleted' : 'modified']);
    expect(bashFiles).toEqual([
      ['b.txt', 'modified'],
      ['c.txt', 'deleted'],
      ['d/e.txt', 'created'],
    ]);
    expect(recorded[2]!.data.files.find((f) => f.path === 'c.txt')!.mode).toBe(0o640);

    // Default diff: the last activity that changed files.
    const last = await diffSession(h.store, checkpoints.blobs, h.sessionId);
    expect(last.activityId).toBe(a3);
    expect(last.files.map((f) => [f.path, f.status])).toEqual([['a.txt', 'modified']]);
    expect(last.files[0]!.patch).toContain('-alpha\n+ALPHA');
    const first = await diffSession(h.store, checkpoints.blobs, h.sessionId, { activity: a1 });
    expect(first.files.map((f) => [f.path, f.status])).toEqual([
      ['a.txt', 'created'],
      ['b.txt', 'modified'],
    ]);
    const text = renderDiff(first);
    expect(text).toContain('--- /dev/null\n+++ b/a.txt');
    expect(text).toContain('--- a/b.txt\n+++ b/b.txt');
    expect(text).toContain('-two\n+TWO');
    const whole = await diffSession(h.store, checkpoints.blobs, h.sessionId, { all: true });
    expect(whole.files.map((f) => [f.path, f.status])).toEqual([
      ['a.txt', 'created'],
      ['b.txt', 'modified'],
      ['c.txt', 'deleted'],
      ['d/e.txt', 'created'],
    ]);
    expect(whole.files.find((f) => f.path === 'a.txt')!.patch).toContain('+ALPHA');

    release(h);
    // Undoing activity 1 first is refused: activities 2 and 3 changed its files since. Nothing moves.
    const refused = await undoActivity(h.store, checkpoints.blobs, h.sessionId, { activity: a1 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CheckpointConflictError);
    expect((refused as Error).message).toMatch(new RegExp(`a\\.txt: its content changed since; changed by activity ${a3}`));
    expect((refused as Error).message).toMatch(new RegExp(`b\\.txt: its content changed since; changed by activity ${a2}`));
    expect(read('a.txt')).toBe('ALPHA\n');
    expect(read('b.txt')).toBe('one\nTWO\nthree\n');

    // Default undo: the last activity; then the one before; then the first.
    const u3 = await undoActivity(h.store, checkpoints.blobs, h.sessionId);
    expect(u3.activityId).toBe(a3);
    expect(read('a.txt')).toBe('alpha\n');
    const u2 = await undoActivity(h.store, checkpoints.blobs, h.sessionId);
    expect(u2.activityId).toBe(a2);
    expect(read('b.txt')).toBe('one\nTWO\n');
    expect(read('c.txt')).toBe('doomed\n');
    expect(statSync(file('c.txt')).mode & 0o777).toBe(0o640);
    expect(existsSync(file('d/e.txt'))).toBe(false);
    const u1 = await undoActivity(h.store, checkpoints.blobs, h.sessionId);
    expect(u1.activityId).toBe(a1);
    expect(existsSync(file('a.txt'))).toBe(false); // it was created by the activity: undo deletes it
    expect(read('b.txt')).toBe('one\ntwo\n');

    // The log tells the story; nothing is left to undo, and an undone activity is not undone twice.
    const restored = of(h.events(), 'checkpoint.restored');
    expect(restored.map((e) => e.data.activityId)).toEqual([a3, a2, a1]);
    expect(restored[2]!.data.files).toEqual([
      { path: 'a.txt', from: expect.any(String), to: null },
      { path: 'b.txt', from: expect.any(String), to: expect.any(String) },
    ]);
    await expect(undoActivity(h.store, checkpoints.blobs, h.sessionId)).rejects.toThrow(/no activity with file changes left to undo/);
    await expect(undoActivity(h.store, checkpoints.blobs, h.sessionId, { activity: a2 })).rejects.toThrow(/was undone already/);
    expect((await diffSession(h.store, checkpoints.blobs, h.sessionId, { activity: a1 })).undoneSeq).toBe(restored[2]!.seq);
    // Over the whole session, every change was put back.
    const net = await diffSession(h.store, checkpoints.blobs, h.sessionId, { all: true });
    expect(net.files).toEqual([]);
    expect(renderDiff(net)).toBe(`session ${h.sessionId}: no net file changes\n`);
    // The projection is a pure function of the log.
    const before = h.store.queries.checkpoints.records(h.sessionId);
    h.store.rebuildProjections();
    expect(h.store.queries.checkpoints.records(h.sessionId)).toEqual(before);
  });

  it('checkpoints - undo refuses, naming the file, when the user edited it after the activity; nothing is restored', async () => {
    const { h, checkpoints, file, read, activity } = await checkpointed([
      call('write', { path: 'notes.md', content: 'agent notes\n' }),
      call('edit', { path: 'keep.md', old_string: 'old', new_string: 'new' }),
      { text: 'done' },
    ]);
    writeFileSync(file('notes.md'), 'my notes\n');
    writeFileSync(file('keep.md'), 'old text\n');
    await activity('rewrite the notes');
    writeFileSync(file('notes.md'), 'agent notes\nand my edit\n'); // the user edits after the activity
    release(h);
    const error = await undoActivity(h.store, checkpoints.blobs, h.sessionId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointConflictError);
    expect((error as CheckpointConflictError).files).toEqual([{ path: 'notes.md', reason: 'its content changed since; changed outside Loom (by you or another program)' }]);
    expect((error as Error).message).toMatch(/nothing was restored/);
    // keep.md could have been restored, but nothing is half-restored.
    expect(read('keep.md')).toBe('new text\n');
    expect(read('notes.md')).toBe('agent notes\nand my edit\n');
    expect(of(h.events(), 'checkpoint.restored')).toHaveLength(0);
    // Deleting a file the activity wrote is a change too.
    writeFileSync(file('notes.md'), 'agent notes\n');
    await undoActivity(h.store, checkpoints.blobs, h.sessionId);
    expect(read('notes.md')).toBe('my notes\n');
    expect(read('keep.md')).toBe('old text\n');
  });

  it('checkpoints - bash: ignored files and .git are not scanned; a scan past its bound says bash changes were not fully captured, and undo needs --partial', async () => {
    const { h, checkpoints, file, read, activity } = await checkpointed(
      [call('bash', { command: 'echo built > build/out.js && echo 2 > z9.txt && echo HEAD2 > .git/HEAD && echo changed > a1.txt' }), { text: 'done' }],
      { scan: { entriesMax: 6 } },
    );
    mkdirSync(file('build'));
    mkdirSync(file('.git'));
    writeFileSync(file('.git/HEAD'), 'HEAD\n');
    writeFileSync(file('.gitignore'), 'build/\n');
    writeFileSync(file('a1.txt'), 'one\n');
    for (let i = 0; i < 8; i++) writeFileSync(file(`m${i}.txt`), `${i}\n`);
    writeFileSync(file('z9.txt'), '1\n');
    const act = await activity('build it');
    expect(read('a1.txt')).toBe('changed\n');
    const report = await diffSession(h.store, checkpoints.blobs, h.sessionId);
    expect(report.activityId).toBe(act);
    // a1.txt sorts early enough to be scanned; z9.txt is past the bound; build/ is ignored; .git is skipped.
    expect(report.files.map((f) => f.path)).toEqual(['a1.txt']);
    expect(report.notes).toEqual([expect.stringMatching(/bash call .*: bash changes were not fully captured: the scan stopped after 6 files and directories/)]);
    expect(renderDiff(report)).toMatch(/# not captured: bash call .*not fully captured/);
    release(h);
    await expect(undoActivity(h.store, checkpoints.blobs, h.sessionId)).rejects.toBeInstanceOf(CheckpointIncompleteError);
    expect(read('a1.txt')).toBe('changed\n');
    const partial = await undoActivity(h.store, checkpoints.blobs, h.sessionId, { partial: true });
    expect(partial.restored.map((f) => f.path)).toEqual(['a1.txt']);
    expect(read('a1.txt')).toBe('one\n');
    expect(read('z9.txt')).toBe('2\n'); // not captured, so not restored
  });

  it('checkpoints - bash: a file past the per-file bound shows as changed but not captured, and is skipped by a partial undo', async () => {
    const { h, checkpoints, file, read, activity } = await checkpointed(
      [call('bash', { command: 'echo tail >> big.bin && echo small2 > small.txt' }), { text: 'done' }],
      { scan: { fileBytesMax: 100 } },
    );
    writeFileSync(file('big.bin'), 'x'.repeat(500));
    writeFileSync(file('small.txt'), 'small\n');
    await activity('touch files');
    const report = await diffSession(h.store, checkpoints.blobs, h.sessionId);
    const big = report.files.find((f) => f.path === 'big.bin')!;
    expect(big.status).toBe('modified');
    expect(big.note).toMatch(/before: not captured \(500 bytes, over the 100-byte bound of the bash scan\)/);
    expect(renderDiff(report)).toMatch(/# modified big\.bin: before: not captured/);
    release(h);
    const refused = await undoActivity(h.store, checkpoints.blobs, h.sessionId).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CheckpointIncompleteError);
    expect((refused as Error).message).toMatch(/big\.bin: its prior content was not captured/);
    const partial = await undoActivity(h.store, checkpoints.blobs, h.sessionId, { partial: true });
    expect(partial.skipped.map((s) => s.path)).toEqual(['big.bin']);
    expect(read('small.txt')).toBe('small\n');
    expect(of(h.events(), 'checkpoint.restored')[0]!.data.skipped).toEqual([{ path: 'big.bin', reason: expect.stringMatching(/not captured/) }]);
  });

  it('checkpoints - a binary file is summarised by size, not diffed', async () => {
    const { h, checkpoints, file, activity } = await checkpointed([call('bash', { command: "printf 'a\\000b\\000c' > img.bin" }), { text: 'done' }]);
    writeFileSync(file('img.bin'), Buffer.from([1, 0, 2]));
    await activity('binary');
    const report = await diffSession(h.store, checkpoints.blobs, h.sessionId);
    expect(report.files).toEqual([expect.objectContaining({ path: 'img.bin', status: 'modified', binary: true, beforeBytes: 3, afterBytes: 5 })]);
    expect(renderDiff(report)).toContain('# modified img.bin: binary file (3 bytes → 5 bytes)');
  });

  it('checkpoints - a bash call cancelled while its command runs: the settlement is recorded at once, its changes right after it', async () => {
    const { h, checkpoints, file } = await checkpointed([call('bash', { command: 'echo partial > p.txt; sleep 20' }), { text: 'never' }]);
    h.admit('steer', 'start something long');
    const run = h.run();
    const started = await h.waitFor((e) => e.type === 'tool.started');
    while (!existsSync(file('p.txt'))) await new Promise((r) => setTimeout(r, 20));
    const activityId = of(h.events(), 'activity.opened')[0]!.data.activityId;
    h.store.append({ sessionId: h.sessionId, type: 'cancel.requested', data: { activityId } });
    h.coordinator.get(h.sessionId)!.catchUp();
    await run;
    const late = await h.waitFor((e) => e.type === 'checkpoint.recorded');
    const settled = of(h.events(), 'tool.settled')[0]!;
    expect(settled.data.status).toBe('interrupted');
    expect(late.seq).toBeGreaterThan(settled.seq);
    expect(late.seq).toBeGreaterThan(started.seq);
    expect((late.data as { files: unknown[] }).files).toEqual([{ path: 'p.txt', before: null, after: expect.any(String) }]);
    const report = await diffSession(h.store, checkpoints.blobs, h.sessionId);
    expect(report.files.map((f) => [f.path, f.status])).toEqual([['p.txt', 'created']]);
  });

  it('checkpoints - config checkpoints.enabled false records nothing; a background bash job is named as not captured', async () => {
    const off = await checkpointed([call('write', { path: 'x.txt', content: 'x' }), { text: 'done' }], {}, { ...allow, checkpoints: { enabled: false } });
    await off.activity('write x');
    expect(of(off.h.events(), 'checkpoint.recorded')).toHaveLength(0);
    expect(renderDiff(await diffSession(off.h.store, off.checkpoints.blobs, off.h.sessionId))).toMatch(/no activity of session .* has file changes that are not undone/);

    const bg = await checkpointed([call('bash', { command: 'true', background: true }), { text: 'started' }, { text: 'job done' }]);
    await bg.activity('in the background');
    const report = await diffSession(bg.h.store, bg.checkpoints.blobs, bg.h.sessionId);
    expect(report.notes).toEqual([expect.stringMatching(/background bash job was started: changes it makes to files are not captured/)]);
  });
});
