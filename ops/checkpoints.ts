/**
 * File checkpoints as operations: what an activity (or a whole session) changed, undoing an
 * activity, and restoring a directory to its state at a seq (fork --restore-files).
 *
 * The checkpoint projection (store/checkpoints.ts) holds, per tool call, each changed file's state
 * before the call's first change and after the call; undos and fork restores are records of their
 * own. Composing records in log order gives, per path, the state before the first and after the
 * last. Restoring then means: check that every file is what the log says it should be now
 * (refusing, naming each file, where it is not), stage every new content beside its file, and
 * only then rename them all into place and delete what did not exist — so a refusal or a failure
 * while staging changes nothing. Every file operation goes through tools/confine.ts.
 */
import { hostname } from 'node:os';
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from 'diff';
import { CHECKPOINT_BINARY_SNIFF_BYTES, CHECKPOINT_DIFF_TIMEOUT_MS, CHECKPOINT_EVENT_FILES_MAX, CHECKPOINT_FILE_BYTES_MAX, OWNER_LEASE_TTL_MS } from '../core/limits.js';
import { ownerProcessGone } from '../core/liveness.js';
import { SessionNotFoundError, StoreError, type CheckpointFileState, type CheckpointRow, type Lease, type Store } from '../store/index.js';
import type { BlobStore } from '../tools/checkpoints/blobs.js';
import { readFileState, sameState } from '../tools/checkpoints/files.js';
import { withinEventBounds } from '../tools/checkpoints/service.js';
import { restoreFiles, type RestoreStep } from '../tools/checkpoints/restore.js';

// ---- composing records ------------------------------------------------------------------------

/** One file's net change over a run of checkpoint records. */
export interface FileChange {
  path: string;
  before: CheckpointFileState;
  after: CheckpointFileState;
  /** Permission bits before the first change, when recorded. */
  mode: number | null;
  /** Seq of the last record that touched it. */
  lastSeq: number;
}

/** Per path, the state before the first record and after the last (records in seq order). Unchanged paths are dropped. */
export function compose(records: readonly CheckpointRow[]): FileChange[] {
  const files = new Map<string, FileChange>();
  for (const r of records) {
    for (const f of r.files) {
      const known = files.get(f.path);
      if (known) {
        known.after = f.after;
        known.lastSeq = r.seq;
      } else {
        files.set(f.path, { path: f.path, before: f.before, after: f.after, mode: f.mode, lastSeq: r.seq });
      }
    }
  }
  // `sameState` is false for an uncaptured state, so a file whose content was not captured always shows.
  return [...files.values()].filter((f) => !sameState(f.before, f.after)).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Why a set of records does not tell the whole story (one line per distinct reason). */
export function notesOf(records: readonly CheckpointRow[]): string[] {
  const notes = new Set<string>();
  for (const r of records) if (r.kind === 'change' && r.incomplete) notes.add(`${r.tool ?? 'a tool'} call ${r.callId}: ${r.incomplete}`);
  return [...notes];
}

function isUncaptured(state: CheckpointFileState): state is { uncaptured: string } {
  return state !== null && typeof state === 'object';
}

// ---- errors ------------------------------------------------------------------------------------

/** Files that are not what the log says they should be now: nothing was restored. */
export class CheckpointConflictError extends StoreError {
  override name = 'CheckpointConflictError';
  constructor(
    what: string,
    readonly files: { path: string; reason: string }[],
  ) {
    super(`${what}: ${files.length === 1 ? 'a file' : `${files.length} files`} changed since, so nothing was restored:\n${files.map((f) => `  ${f.path}: ${f.reason}`).join('\n')}`);
  }
}

/** Files whose content was not captured (or no longer kept), so they cannot be restored. */
export class CheckpointIncompleteError extends StoreError {
  override name = 'CheckpointIncompleteError';
  constructor(
    what: string,
    readonly files: { path: string; reason: string }[],
    readonly notes: string[],
    hint: string,
  ) {
    const lines = [...files.map((f) => `  ${f.path}: ${f.reason}`), ...notes.map((n) => `  note: ${n}`)];
    super(`${what}: the checkpoint is not complete, so nothing was restored${hint}:\n${lines.join('\n')}`);
  }
}

/** A session busy with work (an activity open, recovering) or held by another live process. */
export class CheckpointBusyError extends StoreError {
  override name = 'CheckpointBusyError';
}

/** No such activity, nothing recorded, or already undone. */
export class CheckpointTargetError extends StoreError {
  override name = 'CheckpointTargetError';
}

// ---- diff --------------------------------------------------------------------------------------

export type DiffStatus = 'created' | 'deleted' | 'modified';

export interface DiffFile {
  path: string;
  status: DiffStatus;
  before: CheckpointFileState;
  after: CheckpointFileState;
  /** Sizes of the kept contents, when known. */
  beforeBytes?: number;
  afterBytes?: number;
  binary?: boolean;
  /** Unified diff (`--- a/path` / `+++ b/path`), for text files whose contents are kept. */
  patch?: string;
  /** Why there is no patch (content not captured, no longer kept, too costly to diff). */
  note?: string;
}

export interface DiffReport {
  sessionId: string;
  /** `activity`: one activity (`activityId`, null when none has changes left); `session`: the whole session. */
  scope: 'activity' | 'session';
  /** The activity shown; null for the whole session, or when no activity has changes that are not undone. */
  activityId: string | null;
  /** Seq of the undo that put this activity's changes back, if one did. */
  undoneSeq: number | null;
  files: DiffFile[];
  /** What the checkpoints did not capture (bash scans past their bounds, background jobs…). */
  notes: string[];
}

export interface DiffOptions {
  /** An activity id (or unique prefix); default: the last activity whose changes are not undone. */
  activity?: string;
  /** The whole session: every change and restore from its first checkpoint to its last. */
  all?: boolean;
}

/**
 * What an activity (or the whole session) changed, with unified diffs read from the kept blobs.
 * Throws SessionNotFoundError or CheckpointTargetError (unknown activity).
 */
export async function diffSession(store: Store, blobs: BlobStore, sessionId: string, options: DiffOptions = {}): Promise<DiffReport> {
  if (!store.queries.session(sessionId)) throw new SessionNotFoundError(sessionId);
  const records = store.queries.checkpoints.records(sessionId);
  if (options.all) return { sessionId, scope: 'session', activityId: null, undoneSeq: null, files: await describe(blobs, compose(records)), notes: notesOf(records) };
  const activityId = options.activity !== undefined ? resolveActivity(store, sessionId, options.activity) : store.queries.checkpoints.lastChangedActivity(sessionId);
  if (activityId === null) return { sessionId, scope: 'activity', activityId: null, undoneSeq: null, files: [], notes: [] };
  const own = records.filter((r) => r.kind === 'change' && r.activityId === activityId);
  return {
    sessionId,
    scope: 'activity',
    activityId,
    undoneSeq: own.find((r) => r.undoneSeq !== null)?.undoneSeq ?? null,
    files: await describe(blobs, compose(own)),
    notes: notesOf(own),
  };
}

/** An activity of the session by id or unique prefix. */
export function resolveActivity(store: Store, sessionId: string, idOrPrefix: string): string {
  const ids = new Set(store.queries.activities(sessionId).map((a) => a.activityId));
  for (const r of store.queries.checkpoints.records(sessionId)) if (r.activityId !== null) ids.add(r.activityId);
  if (ids.has(idOrPrefix)) return idOrPrefix;
  const matches = [...ids].filter((id) => id.startsWith(idOrPrefix));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new CheckpointTargetError(`session ${sessionId} has no activity "${idOrPrefix}" (see loom tail ${sessionId})`);
  throw new CheckpointTargetError(`"${idOrPrefix}" matches ${matches.length} activities of session ${sessionId}; give more of the id`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

async function describe(blobs: BlobStore, changes: FileChange[]): Promise<DiffFile[]> {
  const out: DiffFile[] = [];
  for (const c of changes) {
    const status: DiffStatus = c.before === null ? 'created' : c.after === null ? 'deleted' : 'modified';
    const file: DiffFile = { path: c.path, status, before: c.before, after: c.after };
    const [before, after] = [await contentOf(blobs, c.before), await contentOf(blobs, c.after)];
    if (before.bytes) file.beforeBytes = before.bytes.length;
    if (after.bytes) file.afterBytes = after.bytes.length;
    const missing = [before.note && `before: ${before.note}`, after.note && `after: ${after.note}`].filter(Boolean);
    if (missing.length > 0) {
      file.note = missing.join('; ');
      out.push(file);
      continue;
    }
    const oldText = textOf(before.bytes);
    const newText = textOf(after.bytes);
    if (oldText === undefined || newText === undefined) {
      file.binary = true;
      out.push(file);
      continue;
    }
    const patch = createTwoFilesPatch(c.before === null ? '/dev/null' : `a/${c.path}`, c.after === null ? '/dev/null' : `b/${c.path}`, oldText, newText, undefined, undefined, {
      context: 3,
      headerOptions: FILE_HEADERS_ONLY,
      timeout: CHECKPOINT_DIFF_TIMEOUT_MS,
    });
    if (patch === undefined) file.note = `the diff took longer than ${CHECKPOINT_DIFF_TIMEOUT_MS} ms to compute`;
    else file.patch = patch;
    out.push(file);
  }
  return out;
}

/** The kept bytes of a state (empty for no file), or why there are none. */
async function contentOf(blobs: BlobStore, state: CheckpointFileState): Promise<{ bytes?: Buffer; note?: string }> {
  if (state === null) return { bytes: Buffer.alloc(0) };
  if (isUncaptured(state)) return { note: `not captured (${state.uncaptured})` };
  const bytes = await blobs.read(state, CHECKPOINT_FILE_BYTES_MAX);
  return bytes ? { bytes } : { note: 'its content is no longer kept (checkpoint retention)' };
}

/** The text of `bytes`, or undefined when they look binary (a NUL byte early on, or invalid UTF-8). */
function textOf(bytes: Buffer | undefined): string | undefined {
  if (!bytes) return undefined;
  if (bytes.subarray(0, CHECKPOINT_BINARY_SNIFF_BYTES).includes(0)) return undefined;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The report as text: one block per file (a unified diff, or a line saying what changed) and the notes. */
export function renderDiff(report: DiffReport): string {
  const scope = report.scope === 'session' ? `session ${report.sessionId}` : `activity ${report.activityId}`;
  const lines: string[] = [];
  if (report.scope === 'activity' && report.activityId === null) {
    return `no activity of session ${report.sessionId} has file changes that are not undone (loom diff ${report.sessionId} --all shows the whole session)\n`;
  }
  if (report.files.length === 0 && report.notes.length === 0) return `${scope}: no net file changes\n`;
  const undone = report.undoneSeq !== null ? ` (undone at seq ${report.undoneSeq})` : '';
  lines.push(`# ${scope}${undone}: ${report.files.length} file${report.files.length === 1 ? '' : 's'} changed`);
  for (const f of report.files) {
    if (f.patch !== undefined) {
      lines.push(`# ${f.status} ${f.path}`);
      lines.push(f.patch.replace(/\n$/, ''));
    } else if (f.binary) {
      lines.push(`# ${f.status} ${f.path}: binary file (${sizes(f)})`);
    } else {
      lines.push(`# ${f.status} ${f.path}: ${f.note ?? 'no diff'}`);
    }
  }
  for (const n of report.notes) lines.push(`# not captured: ${n}`);
  return `${lines.join('\n')}\n`;
}

function sizes(f: DiffFile): string {
  const b = f.status === 'created' ? '-' : f.beforeBytes === undefined ? '?' : `${f.beforeBytes} bytes`;
  const a = f.status === 'deleted' ? '-' : f.afterBytes === undefined ? '?' : `${f.afterBytes} bytes`;
  return `${b} → ${a}`;
}

// ---- restoring ---------------------------------------------------------------------------------

/** One file to put back: it must hold `expect` now, and will hold `to`. */
interface Target {
  path: string;
  expect: CheckpointFileState;
  to: CheckpointFileState;
  mode: number | null;
}

export interface RestoredFile {
  path: string;
  from: CheckpointFileState;
  to: CheckpointFileState;
}

interface Plan {
  steps: RestoreStep[];
  restored: RestoredFile[];
  skipped: { path: string; reason: string }[];
}

/**
 * Checks every target against the file system and the kept blobs. Returns the plan, or throws
 * CheckpointConflictError (files changed since; `explain` names who changed each) or
 * CheckpointIncompleteError (content not captured or no longer kept, unless `partial`).
 */
async function plan(
  location: string,
  blobs: BlobStore,
  targets: Target[],
  what: string,
  options: { partial: boolean; notes: string[]; explain: (path: string, now: CheckpointFileState) => string },
): Promise<Plan> {
  const conflicts: { path: string; reason: string }[] = [];
  const gaps: { path: string; reason: string }[] = [];
  const steps: RestoreStep[] = [];
  const restored: RestoredFile[] = [];
  for (const t of targets) {
    if (isUncaptured(t.to)) {
      gaps.push({ path: t.path, reason: `its prior content was not captured (${t.to.uncaptured})` });
      continue;
    }
    if (isUncaptured(t.expect)) {
      gaps.push({ path: t.path, reason: `its content after the change was not captured (${t.expect.uncaptured}), so it cannot be checked` });
      continue;
    }
    const now = await readFileState(location, t.path, { maxBytes: CHECKPOINT_FILE_BYTES_MAX });
    if (!sameState(now.state, t.expect)) {
      conflicts.push({ path: t.path, reason: `${describeNow(now.state, t.expect)}; ${options.explain(t.path, now.state)}` });
      continue;
    }
    if (t.to !== null && !(await blobs.has(t.to))) {
      gaps.push({ path: t.path, reason: 'its prior content is no longer kept (checkpoint retention)' });
      continue;
    }
    steps.push({ path: t.path, to: t.to, mode: t.mode ?? now.mode });
    restored.push({ path: t.path, from: t.expect, to: t.to });
  }
  if (conflicts.length > 0) throw new CheckpointConflictError(what, conflicts);
  const all = [...restored, ...gaps];
  if (withinEventBounds(all).length < all.length) throw new CheckpointTargetError(`${what}: ${all.length} files are more than one restore records (CHECKPOINT_EVENT_FILES_MAX, CHECKPOINT_EVENT_BYTES_MAX)`);
  if (gaps.length > 0 && !options.partial) throw new CheckpointIncompleteError(what, gaps, options.notes, '; --partial restores the files that were captured');
  if (!options.partial && options.notes.length > 0) throw new CheckpointIncompleteError(what, [], options.notes, '; --partial restores the files that were captured');
  return { steps, restored, skipped: gaps };
}

function describeNow(now: CheckpointFileState, expect: CheckpointFileState): string {
  if (now === null) return 'it was deleted since';
  if (expect === null) return 'it exists again';
  if (isUncaptured(now)) return `it changed since (${now.uncaptured})`;
  return 'its content changed since';
}

/**
 * Who changed `path` after `afterSeq`, in words: the last later record that touched it, when it
 * left the file as it is now; otherwise someone outside Loom.
 */
function explainer(records: readonly CheckpointRow[], afterSeq: number): (path: string, now: CheckpointFileState) => string {
  const outside = 'changed outside Loom (by you or another program)';
  return (path, now) => {
    const later = records.filter((r) => r.seq > afterSeq && r.files.some((f) => f.path === path)).at(-1);
    if (!later) return outside;
    const left = later.files.find((f) => f.path === path)!.after;
    const by = later.kind === 'restore' ? `restored at seq ${later.seq} by ${later.activityId ? `the undo of activity ${later.activityId}` : 'a fork restore'}` : `changed by activity ${later.activityId} at seq ${later.seq}`;
    if (!sameState(left, now)) return `${by}, and since then ${outside}`;
    return later.kind === 'restore' ? by : `${by} (undo that activity first)`;
  };
}

// ---- undo --------------------------------------------------------------------------------------

export interface UndoOptions {
  /** An activity id (or unique prefix); default: the last activity whose changes are not undone. */
  activity?: string;
  /** Restore what was captured and skip (and name) files that were not. */
  partial?: boolean;
  /** Owner id for the lease (default `host:pid:undo`). */
  ownerId?: string;
}

export interface UndoResult {
  sessionId: string;
  activityId: string;
  /** Seq of the `checkpoint.restored` event. */
  seq: number;
  restored: RestoredFile[];
  skipped: { path: string; reason: string }[];
}

/**
 * Puts back the files an activity changed, as they were before it (DESIGN: request vs owner
 * events — the undo is an owner event, so it takes the session's lease like `cancel` does when no
 * live owner holds it, and refuses when one does, or when an activity is open).
 *
 * Refuses (CheckpointConflictError, naming each file and who changed it) when any file is not the
 * activity's recorded after-state now: an earlier activity whose files a later one changed again is
 * undone by undoing the later one first. Refuses (CheckpointIncompleteError) when the checkpoint
 * is incomplete, unless `partial`. Nothing is restored in either case.
 */
export async function undoActivity(store: Store, blobs: BlobStore, sessionId: string, options: UndoOptions = {}): Promise<UndoResult> {
  return withSessionLease(store, sessionId, options.ownerId ?? `${hostname()}:${process.pid}:undo`, 'undo', async (lease, location) => {
    const activityId = options.activity !== undefined ? resolveActivity(store, sessionId, options.activity) : store.queries.checkpoints.lastChangedActivity(sessionId);
    if (activityId === null) throw new CheckpointTargetError(`session ${sessionId} has no activity with file changes left to undo`);
    const records = store.queries.checkpoints.records(sessionId);
    const own = records.filter((r) => r.kind === 'change' && r.activityId === activityId);
    if (own.length === 0) throw new CheckpointTargetError(`activity ${activityId} has no recorded file changes`);
    const undone = own.find((r) => r.undoneSeq !== null);
    if (undone) throw new CheckpointTargetError(`activity ${activityId} was undone already (at seq ${undone.undoneSeq})`);
    const changes = compose(own);
    const what = `cannot undo activity ${activityId}`;
    const lastSeq = own.at(-1)!.seq;
    if (changes.length > CHECKPOINT_EVENT_FILES_MAX) throw new CheckpointTargetError(`${what}: it changed ${changes.length} files, more than ${CHECKPOINT_EVENT_FILES_MAX} restore in one step`);
    const targets = changes.map((c) => ({ path: c.path, expect: c.after, to: c.before, mode: c.mode }));
    const p = await plan(location, blobs, targets, what, { partial: options.partial === true, notes: notesOf(own), explain: explainer(records, lastSeq) });
    const seq = await apply(store, lease, location, blobs, p, { reason: 'undo', activityId });
    return { sessionId, activityId, seq, restored: p.restored, skipped: p.skipped };
  });
}

// ---- fork --restore-files ----------------------------------------------------------------------

export interface ForkRestorePlan {
  location: string;
  atSeq: number;
  sourceId: string;
  plan: Plan;
}

/**
 * Plans putting the session directory back to its state at `atSeq` of `sourceId`: every change
 * and restore recorded after that seq, composed, undone. Throws like `undoActivity` when a file is
 * not what the log says it is now, or when a change after the seq was not captured (unless
 * `partial`). Changes nothing.
 */
export async function planForkRestore(store: Store, blobs: BlobStore, sourceId: string, atSeq: number, options: { partial?: boolean } = {}): Promise<ForkRestorePlan> {
  const session = store.queries.session(sourceId);
  if (!session) throw new SessionNotFoundError(sourceId);
  const records = store.queries.checkpoints.records(sourceId);
  const later = records.filter((r) => r.seq > atSeq);
  const changes = compose(later);
  const what = `cannot restore the files of ${sourceId} to seq ${atSeq}`;
  if (changes.length > CHECKPOINT_EVENT_FILES_MAX) throw new CheckpointTargetError(`${what}: ${changes.length} files changed after it, more than ${CHECKPOINT_EVENT_FILES_MAX} restore in one step`);
  const targets = changes.map((c) => ({ path: c.path, expect: c.after, to: c.before, mode: c.mode }));
  const lastSeq = later.at(-1)?.seq ?? atSeq;
  const p = await plan(session.location, blobs, targets, what, { partial: options.partial === true, notes: notesOf(later), explain: explainer(records, lastSeq) });
  return { location: session.location, atSeq, sourceId, plan: p };
}

/**
 * Restores the planned files and returns the `checkpoint.restored` data to record in the fork.
 * Call it after the fork is made (nothing in the plan changes files).
 */
export async function applyForkRestore(blobs: BlobStore, restore: ForkRestorePlan): Promise<RestoredFile[]> {
  await restoreFiles(restore.location, blobs, restore.plan.steps);
  return restore.plan.restored;
}

export function forkRestoredEvent(restore: ForkRestorePlan) {
  return {
    reason: 'fork' as const,
    atSeq: restore.atSeq,
    sourceId: restore.sourceId,
    files: restore.plan.restored,
    ...(restore.plan.skipped.length > 0 ? { skipped: restore.plan.skipped } : {}),
  };
}

// ---- shared ------------------------------------------------------------------------------------

async function apply(store: Store, lease: Lease, location: string, blobs: BlobStore, p: Plan, what: { reason: 'undo'; activityId: string }): Promise<number> {
  // The staging is the slow part; a lease that lapsed meanwhile is not written under.
  if (!store.owners.renew(lease, OWNER_LEASE_TTL_MS, store.clock.now())) throw new CheckpointBusyError(`session ${lease.sessionId}: the lease was lost while preparing the restore; nothing was restored`);
  await restoreFiles(location, blobs, p.steps);
  const [e] = store.append({
    sessionId: lease.sessionId,
    epoch: lease.epoch,
    type: 'checkpoint.restored',
    data: { reason: what.reason, activityId: what.activityId, files: p.restored, ...(p.skipped.length > 0 ? { skipped: p.skipped } : {}) },
  });
  return e!.seq;
}

/**
 * Runs `fn` holding the session's lease: refused (CheckpointBusyError) when another live process
 * holds it (a dead process's lease on this host is taken over) or when the session has an activity
 * open or is recovering. Released afterwards.
 */
async function withSessionLease<T>(store: Store, sessionId: string, ownerId: string, verb: string, fn: (lease: Lease, location: string) => Promise<T>): Promise<T> {
  const now = store.clock.now();
  let lease = store.owners.acquire(sessionId, ownerId, OWNER_LEASE_TTL_MS, now);
  if (!lease) {
    const current = store.owners.get(sessionId, now);
    if (current?.live && ownerProcessGone(current.ownerId)) lease = store.owners.takeOver(sessionId, current.ownerId, current.epoch, ownerId, OWNER_LEASE_TTL_MS, now);
    if (!lease) {
      if (!store.queries.session(sessionId)) throw new SessionNotFoundError(sessionId);
      throw new CheckpointBusyError(`cannot ${verb}: session ${sessionId} is owned by a live process (${current?.ownerId ?? 'unknown'}); try again when it is idle and released`);
    }
  }
  try {
    const session = store.queries.session(sessionId);
    if (!session) throw new SessionNotFoundError(sessionId);
    if (session.status !== 'idle') {
      throw new CheckpointBusyError(`cannot ${verb}: session ${sessionId} is ${session.status === 'recovering' ? 'recovering (decide it with loom recover first)' : `busy (activity ${session.activityId} is open; wait for it or loom cancel it)`}`);
    }
    return await fn(lease, session.location);
  } finally {
    store.owners.release(lease);
  }
}
