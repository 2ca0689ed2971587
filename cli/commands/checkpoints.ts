import {
  CheckpointBusyError,
  CheckpointConflictError,
  CheckpointIncompleteError,
  CheckpointTargetError,
  diffSession,
  renderDiff,
  undoActivity,
  type RestoredFile,
} from '../../ops/checkpoints.js';
import { BlobStore } from '../../tools/checkpoints/blobs.js';
import { BlobMissingError } from '../../tools/checkpoints/restore.js';
import { EXIT, UsageError } from '../exit.js';
import { openStore } from '../runtime.js';
import { colorsFor } from '../style.js';
import { requireSession } from './session.js';

/**
 * `loom diff ID [--activity A | --all] [--json]`: what an activity changed in files (default: the
 * last one whose changes are not undone), or the whole session, as unified diffs with created,
 * deleted and binary files summarised and what the checkpoints did not capture.
 */
export async function diffCommand(idArg: string, opts: { activity?: string; all?: boolean; json?: boolean }): Promise<number> {
  if (opts.all && opts.activity !== undefined) throw new UsageError('diff takes --activity or --all, not both');
  const { home, store } = openStore();
  try {
    const session = requireSession(store, idArg);
    let report;
    try {
      report = await diffSession(store, new BlobStore(home), session.sessionId, { activity: opts.activity, all: opts.all });
    } catch (error) {
      if (error instanceof CheckpointTargetError) throw new UsageError(error.message);
      throw error;
    }
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return EXIT.ok;
    }
    process.stdout.write(colorDiff(renderDiff(report)));
    return EXIT.ok;
  } finally {
    store.close();
  }
}

/** Unified-diff colours on a terminal: file headers bold, removals red, additions green, hunks cyan. */
function colorDiff(text: string): string {
  const c = colorsFor(process.stdout);
  if (!c.enabled) return text;
  return text
    .split('\n')
    .map((line) => {
      if (line.startsWith('# ')) return c.bold(line);
      if (line.startsWith('--- ') || line.startsWith('+++ ')) return c.bold(line);
      if (line.startsWith('@@')) return c.cyan(line);
      if (line.startsWith('-')) return c.red(line);
      if (line.startsWith('+')) return c.green(line);
      return line;
    })
    .join('\n');
}

/**
 * `loom undo ID [--activity A] [--partial] [--json]`: puts back the files an activity changed (ops/checkpoints.ts).
 * Exit 0 restored; 1 refused (files changed since, an incomplete checkpoint, the session busy or
 * owned elsewhere) with nothing restored; 2 no such activity or nothing to undo.
 */
export async function undoCommand(idArg: string, opts: { activity?: string; partial?: boolean; json?: boolean }): Promise<number> {
  const { home, store } = openStore();
  try {
    const session = requireSession(store, idArg);
    let result;
    try {
      result = await undoActivity(store, new BlobStore(home), session.sessionId, { activity: opts.activity, partial: opts.partial });
    } catch (error) {
      if (error instanceof CheckpointTargetError) throw new UsageError(error.message);
      if (error instanceof CheckpointConflictError || error instanceof CheckpointIncompleteError || error instanceof CheckpointBusyError || error instanceof BlobMissingError) {
        if (opts.json) process.stdout.write(`${JSON.stringify({ refused: true, error: error.name, message: error.message, files: 'files' in error ? error.files : [] })}\n`);
        process.stderr.write(`${colorsFor(process.stderr).red('loom:')} ${error.message}\n`);
        return EXIT.failed;
      }
      throw error;
    }
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return EXIT.ok;
    }
    for (const f of result.restored) process.stdout.write(`${verb(f)} ${f.path}\n`);
    for (const f of result.skipped) process.stdout.write(`skipped ${f.path}: ${f.reason}\n`);
    process.stderr.write(`undid activity ${result.activityId}: ${result.restored.length} file(s) restored${result.skipped.length > 0 ? `, ${result.skipped.length} skipped` : ''} (seq ${result.seq})\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}

function verb(f: RestoredFile): string {
  if (f.to === null) return 'deleted';
  if (f.from === null) return 'recreated';
  return 'restored';
}
