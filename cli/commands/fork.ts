import { applyForkRestore, CheckpointConflictError, CheckpointIncompleteError, CheckpointTargetError, forkRestoredEvent, planForkRestore, type ForkRestorePlan } from '../../ops/checkpoints.js';
import { InvalidForkPointError, forkSession } from '../../store/fork.js';
import { BlobStore } from '../../tools/checkpoints/blobs.js';
import { EXIT, UsageError } from '../exit.js';
import { openStore } from '../runtime.js';
import { colorsFor } from '../style.js';
import { requireSession } from './session.js';

/**
 * `loom session fork ID --at SEQ [--restore-files [--partial]]`: a new session whose history is
 * ID's up to SEQ (store/fork.ts). Prints the new session id on stdout (the whole result as one
 * JSON object with --json) and a line about what was copied on stderr. Nothing runs: prompt the
 * fork to continue from there.
 *
 * With --restore-files, the files of the session directory (which the fork shares with ID) are put
 * back to their state at SEQ first: every change recorded after SEQ is undone (ops/checkpoints.ts),
 * recorded in the fork as `checkpoint.restored`. It refuses, naming the files, when one changed
 * since its last recorded change, or when ID is busy; then no fork is made either.
 */
export async function sessionFork(idArg: string, opts: { at: string; json?: boolean; restoreFiles?: boolean; partial?: boolean }): Promise<number> {
  const atSeq = Number(opts.at);
  if (!/^\d+$/.test(String(opts.at).trim()) || !Number.isSafeInteger(atSeq)) throw new UsageError(`--at ${opts.at}: expected a seq (a whole number, 1 or more)`);
  if (opts.partial && !opts.restoreFiles) throw new UsageError('--partial goes with --restore-files');
  const { home, store } = openStore();
  try {
    const source = requireSession(store, idArg);
    const blobs = new BlobStore(home);
    let restore: ForkRestorePlan | undefined;
    if (opts.restoreFiles) {
      if (atSeq < 1 || atSeq > source.lastSeq) throw new UsageError(new InvalidForkPointError(source.sessionId, atSeq, source.lastSeq).message);
      if (source.status !== 'idle') throw new UsageError(`--restore-files: session ${source.sessionId} is ${source.status}; its files may still change (wait for it, or cancel it)`);
      try {
        restore = await planForkRestore(store, blobs, source.sessionId, atSeq, { partial: opts.partial });
      } catch (error) {
        if (error instanceof CheckpointTargetError) throw new UsageError(error.message);
        if (error instanceof CheckpointConflictError || error instanceof CheckpointIncompleteError) {
          process.stderr.write(`${colorsFor(process.stderr).red('loom:')} ${error.message}\nno fork was made\n`);
          return EXIT.failed;
        }
        throw error;
      }
      // Files first: a fork that says it restored them must not exist unless they were.
      await applyForkRestore(blobs, restore);
    }
    let result;
    try {
      const plan = restore;
      result = forkSession(store, source.sessionId, atSeq, {
        append: plan && plan.plan.restored.length + plan.plan.skipped.length > 0 ? (sessionId, epoch) => [{ sessionId, epoch, type: 'checkpoint.restored', data: forkRestoredEvent(plan) }] : undefined,
      });
    } catch (error) {
      if (error instanceof InvalidForkPointError) throw new UsageError(error.message);
      throw error;
    }
    const restored = restore ? { restoredFiles: restore.plan.restored, skippedFiles: restore.plan.skipped, location: restore.location } : {};
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ ...result, ...restored })}\n`);
      return 0;
    }
    const closed = result.abandonedActivityId
      ? `; activity ${result.abandonedActivityId} was unsettled at that point and is settled abandoned in the fork`
      : '';
    process.stderr.write(`forked ${result.sourceId} at seq ${atSeq}: ${result.copied} event(s) copied${closed}\n`);
    if (restore) {
      const n = restore.plan.restored.length;
      process.stderr.write(`${n === 0 ? 'no recorded file changes after that seq: nothing to restore' : `restored ${n} file(s) in ${restore.location} to their state at seq ${atSeq}`}${restore.plan.skipped.length > 0 ? `; skipped ${restore.plan.skipped.map((s) => s.path).join(', ')} (not captured)` : ''}\n`);
    }
    process.stdout.write(`${result.sessionId}\n`);
    return 0;
  } finally {
    store.close();
  }
}
