import { DRAIN_TIMEOUT_MS, MCP_STARTUP_WAIT_MS } from '../core/limits.js';
import type { AnyEnvelope } from '../store/index.js';
import { EXIT, exitCodeForStatus } from './exit.js';
import { createHumanRenderer, createJsonRenderer, type Renderer } from './render.js';
import type { CliRuntime } from './runtime.js';
import { ProgressLine } from './style.js';

export interface DriveOptions {
  json?: boolean;
  /** Render events after this seq. */
  after: number;
  /**
   * Background jobs (DESIGN §6): `wait` (run, prompt) keeps the session until its jobs have
   * settled and their results were answered; `detach` (the default) releases the session with its
   * jobs still running, their process groups recorded for the next owner to re-attach.
   */
  jobs?: 'wait' | 'detach';
  /**
   * Wait (at most MCP_STARTUP_WAIT_MS) for the MCP servers' first connection attempts before owning
   * the session, so its first turn or a resumed call finds their tools. Default true; a cancel needs no tools.
   */
  mcp?: boolean;
}

/**
 * Runs an owned session in the foreground until it is quiet, streaming its events. Ctrl-C records
 * a cancel of the current activity (a second Ctrl-C exits at once); SIGTERM drains: in-flight
 * provider streams and tools finish, nothing new is dispatched, then the lease is released and the
 * process exits 143 (bounded by DRAIN_TIMEOUT_MS).
 * Returns the exit code of the last activity settled while driving, 5 when the session waits
 * for a decision (a recovery decision, or permission asks no one here can answer: they stay
 * pending and the lease is released), or null when another live owner holds the session.
 */
export async function driveSession(rt: CliRuntime, sessionId: string, options: DriveOptions): Promise<number | null> {
  const { store, coordinator } = rt;
  const render: Renderer = options.json ? createJsonRenderer(process.stdout) : createHumanRenderer(process.stdout, process.stderr);
  // Run here: the first turn (or a call resumed after a crash) sees the MCP servers' tools; a slow server joins later.
  if (options.mcp !== false && !store.owners.get(sessionId, store.clock.now())?.live) await rt.mcp.ready(MCP_STARTUP_WAIT_MS);
  const actor = coordinator.own(sessionId);
  if (!actor) return null;
  let lastSeq = options.after;
  let lastStatus: string | null = null;
  // A progress line on a terminal while nothing else shows (cli/style.ts): never with --json or off a TTY.
  const progress = new ProgressLine(process.stderr, options.json ? { enabled: false } : {});
  let waitingForJobs = 0;
  const stopProgress = progress.enabled ? store.onAppended((events) => {
    for (const e of events) {
      const text = e.sessionId === sessionId ? progressText(e, waitingForJobs) : undefined;
      if (text !== undefined) progress.set(text);
    }
  }) : () => {};
  const show = (e: AnyEnvelope) => {
    if (e.seq <= lastSeq) return;
    lastSeq = e.seq;
    progress.clear();
    if (e.type === 'activity.settled') lastStatus = e.data.status;
    render.event(e);
  };
  const ac = new AbortController();
  const tail = (async () => {
    for await (const e of store.tail({ sessionId, after: lastSeq }, { signal: ac.signal })) show(e);
  })();
  let interrupts = 0;
  const onInt = () => {
    if (++interrupts > 1) process.exit(EXIT.cancelled);
    const activityId = actor.context().activity?.id;
    if (activityId) store.append({ sessionId, type: 'cancel.requested', data: { activityId, reason: 'Ctrl-C' } });
    // Waiting for background jobs with no activity running: Ctrl-C cancels the jobs.
    else for (const jobId of actor.unsettledJobs()) store.append({ sessionId, type: 'cancel.requested', data: { jobId, reason: 'Ctrl-C' } });
  };
  const onTerm = () => {
    // Drain: let in-flight work finish, send nothing new, then release the lease (bounded wait).
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS).unref());
    void Promise.race([actor.drain(), timeout]).then(() => {
      ac.abort();
      coordinator.release(sessionId);
      rt.close();
      process.exit(143);
    });
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    await coordinator.runUntilQuiet(sessionId);
    const jobs = actor.unsettledJobs();
    if (options.jobs === 'wait' && jobs.length > 0 && actor.failure === undefined) {
      process.stderr.write(`loom: waiting for ${jobs.length} background job${jobs.length === 1 ? '' : 's'} (${jobs.join(', ')}); Ctrl-C cancels them, --detach-jobs leaves them running\n`);
      waitingForJobs = jobs.length;
      progress.set(`waiting for ${jobs.length} background job${jobs.length === 1 ? '' : 's'}`);
      await coordinator.runUntilQuiet(sessionId, { jobs: true });
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    stopProgress();
    progress.stop();
  }
  const failure = actor.failure;
  store.flushSession(sessionId);
  ac.abort();
  await tail;
  for (let page = store.read(sessionId, { after: lastSeq }); page.length > 0; page = store.read(sessionId, { after: lastSeq })) page.forEach(show);
  render.end();
  const recovering = actor.snapshot().value === 'recovering';
  const asking = actor.waitingForPermission();
  // Releasing stops the waiting calls without recording anything: their asks stay pending in the log.
  const detached = actor.unsettledJobs();
  coordinator.release(sessionId);
  if (detached.length > 0 && failure === undefined) {
    process.stderr.write(`loom: ${detached.length} background job${detached.length === 1 ? '' : 's'} left running (${detached.join(', ')}); the next owner of ${sessionId} re-attaches them; see loom jobs ${sessionId}\n`);
  }
  if (failure !== undefined) throw failure;
  if (recovering) {
    process.stderr.write(`loom: session ${sessionId} is waiting for a recovery decision: loom recover ${sessionId} --retry|--abandon\n`);
    return EXIT.waiting;
  }
  if (asking) {
    process.stderr.write(describePendingAsks(rt, sessionId));
    return EXIT.waiting;
  }
  return exitCodeForStatus(lastStatus);
}

/**
 * What the progress line says after `e` committed: waiting for the provider between a dispatch and
 * its first chunk, for a retry's backoff, for background jobs between activities, nothing otherwise (a permission question
 * on the terminal must never share its line with a spinner); undefined leaves it as it is.
 */
function progressText(e: AnyEnvelope, jobs: number): string | null | undefined {
  switch (e.type) {
    case 'attempt.dispatched':
      return `waiting for ${e.data.model}`;
    case 'attempt.retrying':
      return `waiting ${Math.ceil(e.data.delayMs / 1000)}s to retry (attempt ${e.data.nextAttempt})`;
    case 'activity.settled':
      return jobs > 0 ? 'waiting for background jobs' : null;
    case 'text.delta':
    case 'reasoning.delta':
    case 'tool.called':
    case 'turn.finished':
    case 'attempt.failed':
    case 'permission.asked':
    case 'recovery.detected':
      return null;
    default:
      return undefined; // no change
  }
}

/** How to answer the asks a stopped run left pending. */
export function describePendingAsks(rt: Pick<CliRuntime, 'store'>, sessionId: string): string {
  const pending = rt.store.queries.permissions.pending(sessionId);
  const lines = [`loom: session ${sessionId} is waiting for a permission decision (${pending.length} pending):`];
  for (const p of pending) lines.push(`  ${p.requestId}  ${p.tool}  ${oneLine(p.summary ?? '', 120)}${p.pattern ? `  (always would allow: ${p.tool} ${p.pattern})` : ''}`);
  lines.push(`answer from any process: loom permit ${sessionId} ${pending[0]?.requestId ?? 'REQUEST'} once|always|reject [--message TEXT]`);
  return `${lines.join('\n')}\n`;
}

function oneLine(s: string, max: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}
