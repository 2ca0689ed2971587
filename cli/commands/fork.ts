import { InvalidForkPointError, forkSession } from '../../store/fork.js';
import { UsageError } from '../exit.js';
import { openStore } from '../runtime.js';
import { requireSession } from './session.js';

/**
 * `loom session fork ID --at SEQ`: a new session whose history is ID's up to SEQ (store/fork.ts).
 * Prints the new session id on stdout (the whole result as one JSON object with --json) and a
 * line about what was copied on stderr. Nothing runs: prompt the fork to continue from there.
 */
export async function sessionFork(idArg: string, opts: { at: string; json?: boolean }): Promise<number> {
  const atSeq = Number(opts.at);
  if (!/^\d+$/.test(String(opts.at).trim()) || !Number.isSafeInteger(atSeq)) throw new UsageError(`--at ${opts.at}: expected a seq (a whole number, 1 or more)`);
  const { store } = openStore();
  try {
    const source = requireSession(store, idArg);
    let result;
    try {
      result = forkSession(store, source.sessionId, atSeq);
    } catch (error) {
      if (error instanceof InvalidForkPointError) throw new UsageError(error.message);
      throw error;
    }
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return 0;
    }
    const closed = result.abandonedActivityId
      ? `; activity ${result.abandonedActivityId} was unsettled at that point and is settled abandoned in the fork`
      : '';
    process.stderr.write(`forked ${result.sourceId} at seq ${atSeq}: ${result.copied} event(s) copied${closed}\n`);
    process.stdout.write(`${result.sessionId}\n`);
    return 0;
  } finally {
    store.close();
  }
}
