import { createWriteStream, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { removeSession } from '../../ops/remove.js';
import {
  exportSession,
  importSession,
  InvalidImportError,
  SessionHasRunningJobsError,
  SessionOwnedError,
  type DoubleTextingPolicy,
} from '../../store/index.js';
import { resolveAgent } from '../../services/agents.js';
import { EXIT, UsageError } from '../exit.js';
import { openRuntime, openStore, resolveLocation } from '../runtime.js';
import { DEFAULT_MODEL } from './run.js';
import { requireSession } from './session.js';

/**
 * `loom session new`: creates a session in DIR without running anything (prompt it to start).
 * Prints the new id on stdout (the session row as JSON with --json).
 */
export async function sessionNew(opts: { dir: string; model?: string; title?: string; doubleTexting?: DoubleTextingPolicy; agent?: string; json?: boolean }): Promise<number> {
  const location = resolveLocation(opts.dir);
  const rt = await openRuntime();
  try {
    const config = await rt.configFor(location);
    const profile = resolveAgent(config, opts.agent); // an unknown agent is refused before anything is stored
    const model = opts.model ?? config.model ?? process.env.LOOM_MODEL ?? DEFAULT_MODEL;
    await rt.providers.ready(profile.model ?? model); // a session that could never run is refused now, as `run` does
    const sessionId = rt.store.ids.next('ses');
    rt.store.append({
      sessionId,
      type: 'session.created',
      data: {
        location,
        model,
        ...(opts.title ? { title: opts.title } : {}),
        ...(opts.doubleTexting ? { doubleTexting: opts.doubleTexting } : {}),
        ...(opts.agent ? { agent: profile.name } : {}),
      },
    });
    const row = rt.store.queries.session(sessionId)!;
    if (opts.json) process.stdout.write(`${JSON.stringify(row)}\n`);
    else {
      process.stderr.write(`session ${sessionId} (${model}, double-texting ${row.doubleTexting}) in ${location}\n`);
      process.stdout.write(`${sessionId}\n`);
    }
    return EXIT.ok;
  } finally {
    rt.close();
  }
}

/**
 * `loom session rm ID [--force]`: removes the session, its log, projections, snapshot, owner row,
 * jobs and permission rows, and its saved tool outputs and job files (ops/remove.ts). Refused while
 * a live owner holds it or its jobs run, unless --force.
 */
export async function sessionRm(idArg: string, opts: { force?: boolean; json?: boolean }): Promise<number> {
  const { home, store } = openStore();
  try {
    const sessionId = requireSession(store, idArg).sessionId;
    let removed;
    try {
      removed = await removeSession(store, home, sessionId, { force: opts.force, reason: 'rm' });
    } catch (error) {
      if (error instanceof SessionOwnedError || error instanceof SessionHasRunningJobsError) throw new UsageError(`${error.message} (loom session rm --force)`);
      throw error;
    }
    if (!removed) throw new Error(`session ${sessionId} changed while it was being removed; try again`);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(removed)}\n`);
      return EXIT.ok;
    }
    const forced = removed.forced ? ' (forced: a live owner held it)' : '';
    const stopped = removed.stoppedJobs.length > 0 ? `; stopped ${removed.stoppedJobs.length} running job(s)` : '';
    process.stdout.write(`removed ${sessionId}: ${removed.events} events, ${removed.removedPaths.length} file(s) or folder(s)${stopped}${forced}\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}

/**
 * `loom session export ID [--out FILE]`: the session's event log as NDJSON envelopes, on stdout or
 * into FILE (written beside it and renamed into place when complete; an existing FILE is refused).
 */
export async function sessionExport(idArg: string, opts: { out?: string }): Promise<number> {
  const { store } = openStore();
  try {
    const sessionId = requireSession(store, idArg).sessionId;
    if (opts.out === undefined) {
      // A reader that stops early (`| head`) ends the export quietly, as it would any Unix filter.
      let closed = false;
      const onError = (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPIPE') throw error;
        closed = true;
      };
      process.stdout.on('error', onError);
      try {
        const result = await exportSession(store, sessionId, process.stdout);
        process.stderr.write(`exported ${result.events} events of ${sessionId}\n`);
      } catch (error) {
        if (!closed && (error as NodeJS.ErrnoException).code !== 'EPIPE') throw error;
      } finally {
        process.stdout.off('error', onError);
      }
      return EXIT.ok;
    }
    if (existsSync(opts.out)) throw new UsageError(`--out ${opts.out}: the file exists; choose a new name (an export never overwrites)`);
    const partial = `${opts.out}.partial-${process.pid}`;
    const out = createWriteStream(partial, { flags: 'wx', mode: 0o600 });
    try {
      await once(out, 'open');
      const result = await exportSession(store, sessionId, out);
      out.end();
      await once(out, 'close');
      renameSync(partial, opts.out);
      process.stderr.write(`exported ${result.events} events of ${sessionId} to ${opts.out} (${statSync(opts.out).size} bytes)\n`);
      return EXIT.ok;
    } catch (error) {
      out.destroy();
      rmSync(partial, { force: true });
      throw error;
    }
  } finally {
    store.close();
  }
}

/**
 * `loom session import FILE [--dir DIR]`: replays an export into a new session (store/exchange.ts).
 * Prints the new id on stdout (the result as JSON with --json). A bad line is refused naming it
 * (exit 2) and nothing is stored.
 */
export async function sessionImport(file: string, opts: { dir?: string; json?: boolean }): Promise<number> {
  const location = opts.dir === undefined ? undefined : resolveLocation(opts.dir);
  const { store } = openStore();
  try {
    let result;
    try {
      result = importSession(store, file, location === undefined ? {} : { location });
    } catch (error) {
      if (error instanceof InvalidImportError) throw new UsageError(error.message);
      throw error;
    }
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return EXIT.ok;
    }
    const closed = result.abandonedActivityId ? `; the export ended inside activity ${result.abandonedActivityId}, settled abandoned` : '';
    process.stderr.write(`imported ${result.imported} events of ${result.sourceId} into ${result.sessionId}${closed}\n`);
    if (!existsSync(result.location)) process.stderr.write(`note: its directory ${result.location} does not exist here; import again with --dir DIR to work elsewhere\n`);
    process.stdout.write(`${result.sessionId}\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}
