/**
 * The checkpoint service a session runtime gives its tools (`toolServices.checkpoints`): one
 * recorder per tool call, the blob store under `$LOOM_HOME/checkpoints/`, the remembered scans of
 * session directories, and the finished records waiting for their call's settlement.
 *
 * How a call is recorded (actors/toolCall.ts drives it):
 * 1. `begin` makes the call's recorder; the registry hands it the running tool (`track`).
 * 2. `write` and `edit` call `keepBefore` with the file's prior bytes, read through the handle they
 *    will write through (or `null`: they create it); `bash` runs its command inside
 *    `aroundCommand`, which scans the directory before (keeping contents) and after (stats).
 * 3. `finish` waits for the tool itself (bounded), reads each reported file's state after the call,
 *    drops files that ended as they began, and leaves the record for `take`.
 * 4. The settlement takes it and appends `checkpoint.recorded` in the same transaction as
 *    `tool.settled`; a call settled early (cancel, timeout) while its tool still ran gets its record
 *    appended right after, by the tool call's child.
 */
import {
  CHECKPOINT_EVENT_BYTES_MAX,
  CHECKPOINT_EVENT_FILES_MAX,
  CHECKPOINT_FILE_BYTES_MAX,
  CHECKPOINT_LATE_WAIT_MS,
  CHECKPOINT_PATH_CHARS_MAX,
  CHECKPOINT_PENDING_CALLS_MAX,
  CHECKPOINT_REASON_CHARS_MAX,
  CHECKPOINT_SCAN_CACHE_LOCATIONS_MAX,
} from '../../core/limits.js';
import type { CheckpointFile, CheckpointFileState } from '../../store/schemas.js';
import type { CallCheckpoint, CheckpointCall, CheckpointRecord, CheckpointService, PriorFile } from '../types.js';
import { BlobStore } from './blobs.js';
import { readFileState, relativeInside, sameState } from './files.js';
import { DEFAULT_SCAN_BOUNDS, sameStat, scanDirectory, type DirectoryScan, type ScanBounds, type ScanCache } from './scan.js';

export interface CheckpointServiceOptions {
  /** Bounds of the bash scans (tests make them small); defaults from core/limits.ts. */
  scan?: Partial<ScanBounds>;
  /** Bytes of a file `write`/`edit` content kept (CHECKPOINT_FILE_BYTES_MAX). */
  fileBytesMax?: number;
  /** How long `finish` waits for a tool still running after its call settled (CHECKPOINT_LATE_WAIT_MS). */
  lateWaitMs?: number;
}

interface Entry {
  before: CheckpointFileState;
  /** Set by the bash comparison; read at `finish` otherwise. */
  after?: CheckpointFileState;
  mode?: number;
}

export class FileCheckpoints implements CheckpointService {
  readonly blobs: BlobStore;
  readonly bounds: ScanBounds;
  readonly fileBytesMax: number;
  readonly lateWaitMs: number;
  private readonly scans = new Map<string, ScanCache>();
  private readonly pending = new Map<string, CheckpointRecord>();

  constructor(home: string, options: CheckpointServiceOptions = {}) {
    this.blobs = new BlobStore(home);
    this.bounds = { ...DEFAULT_SCAN_BOUNDS, ...options.scan };
    this.fileBytesMax = options.fileBytesMax ?? CHECKPOINT_FILE_BYTES_MAX;
    this.lateWaitMs = options.lateWaitMs ?? CHECKPOINT_LATE_WAIT_MS;
  }

  begin(call: CheckpointCall): CallCheckpoint {
    return new CallRecorder(this, call);
  }

  async finish(recorder: CallCheckpoint): Promise<void> {
    if (!(recorder instanceof CallRecorder)) throw new Error('finish: not a recorder of this service');
    const record = await recorder.finish();
    if (!record) return;
    if (this.pending.size >= CHECKPOINT_PENDING_CALLS_MAX) this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(record.callId, record);
  }

  take(callId: string): CheckpointRecord | undefined {
    const record = this.pending.get(callId);
    this.pending.delete(callId);
    return record;
  }

  /** Scans a directory; the scan before a command keeps contents and refreshes the remembered scan. */
  async scan(location: string, keep: boolean, signal?: AbortSignal): Promise<DirectoryScan> {
    const cache = this.scans.get(location);
    return scanDirectory(location, { blobs: this.blobs, keep, bounds: this.bounds, cache, signal });
  }

  /**
   * The files a command changed, from the scans before and after it. A file whose stat is unchanged
   * is taken as unchanged; one whose stat changed is read, and dropped when its content is the
   * same. The remembered scan of the directory becomes the after-state.
   */
  async compare(location: string, before: DirectoryScan, after: DirectoryScan): Promise<Map<string, Entry>> {
    const changes = new Map<string, Entry>();
    const cache: ScanCache = new Map();
    for (const [path, a] of after.files) {
      const b = before.files.get(path);
      if (b && sameStat(b, a)) {
        if (b.hash !== undefined) cache.set(path, { ...a, hash: b.hash });
        continue;
      }
      const { state } = await readFileState(location, path, { maxBytes: this.bounds.fileBytesMax, blobs: this.blobs });
      if (typeof state === 'string') cache.set(path, { ...a, hash: state });
      const prior: CheckpointFileState = b
        ? (b.hash ?? { uncaptured: b.uncaptured ?? 'its prior content was not kept' })
        : before.incomplete.length > 0
          ? { uncaptured: 'it was not seen by the bounded scan before the command' }
          : null;
      if (sameState(prior, state)) continue;
      changes.set(path, { before: prior, after: state, mode: b?.mode });
    }
    // A file missing after an incomplete scan may merely not have been reached: not taken as deleted.
    if (after.incomplete.length === 0) {
      for (const [path, b] of before.files) {
        if (after.files.has(path)) continue;
        changes.set(path, { before: b.hash ?? { uncaptured: b.uncaptured ?? 'its prior content was not kept' }, after: null, mode: b.mode });
      }
    }
    this.remember(location, cache);
    return changes;
  }

  private remember(location: string, cache: ScanCache): void {
    this.scans.delete(location);
    if (this.scans.size >= CHECKPOINT_SCAN_CACHE_LOCATIONS_MAX) this.scans.delete(this.scans.keys().next().value!);
    this.scans.set(location, cache);
  }
}

class CallRecorder implements CallCheckpoint {
  private readonly files = new Map<string, Entry>();
  private readonly reasons = new Set<string>();
  private readonly reporting: Promise<void>[] = [];
  private tracked: Promise<unknown> | undefined;
  private done = false;

  constructor(
    private readonly service: FileCheckpoints,
    private readonly call: CheckpointCall,
  ) {}

  keepBefore(realPath: string, prior: PriorFile): Promise<void> {
    const path = relativeInside(this.call.location, realPath);
    if (path === undefined || this.files.has(path)) return Promise.resolve();
    const entry: Entry = { before: null, mode: prior?.mode };
    this.files.set(path, entry);
    const kept = (async () => {
      if (prior === null) entry.before = null;
      else if ('uncaptured' in prior) entry.before = { uncaptured: prior.uncaptured };
      else if (prior.bytes.length > this.service.fileBytesMax) entry.before = { uncaptured: `${prior.bytes.length} bytes, over the ${this.service.fileBytesMax}-byte bound` };
      else entry.before = await this.service.blobs.put(prior.bytes);
    })().catch((error: unknown) => {
      entry.before = { uncaptured: `its prior content could not be kept: ${(error as Error)?.message ?? String(error)}` };
    });
    this.reporting.push(kept);
    return kept;
  }

  async aroundCommand<T>(run: () => Promise<T>): Promise<T> {
    if (!this.call.bash) {
      this.incomplete('checkpoints of bash commands are off (config checkpoints.bash: false)');
      return run();
    }
    let before: DirectoryScan | undefined;
    try {
      before = await this.service.scan(this.call.location, true, this.call.signal);
    } catch (error) {
      if (this.call.signal.aborted) throw error;
      this.incomplete(`bash changes were not captured: the scan before the command failed (${(error as Error)?.message ?? String(error)})`);
    }
    try {
      return await run();
    } finally {
      if (before) await this.compareAfter(before);
    }
  }

  private async compareAfter(before: DirectoryScan): Promise<void> {
    try {
      // Not the call's signal: after a cancel the command's changes still have to be recorded.
      const after = await this.service.scan(this.call.location, false);
      const changes = await this.service.compare(this.call.location, before, after);
      for (const [path, entry] of changes) {
        const known = this.files.get(path);
        if (known) known.after = entry.after;
        else this.files.set(path, entry);
      }
      const reasons = [...new Set([...before.incomplete, ...after.incomplete])];
      if (reasons.length > 0) this.incomplete(`bash changes were not fully captured: ${reasons.join('; ')}`);
    } catch (error) {
      this.incomplete(`bash changes were not captured: the scan after the command failed (${(error as Error)?.message ?? String(error)})`);
    }
  }

  incomplete(reason: string): void {
    this.reasons.add(reason);
  }

  track(running: Promise<unknown>): void {
    this.tracked = running;
  }

  async finish(): Promise<CheckpointRecord | undefined> {
    if (this.done) return undefined;
    this.done = true;
    if (this.tracked) {
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        this.tracked.then(
          () => true,
          () => true,
        ),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.service.lateWaitMs))),
      ]);
      clearTimeout(timer);
      if (!finished) this.incomplete('the tool was still running when its changes were recorded');
    }
    await Promise.all(this.reporting);
    const files: CheckpointFile[] = [];
    for (const [path, entry] of this.files) {
      if (path.length > CHECKPOINT_PATH_CHARS_MAX) {
        this.incomplete(`a changed file whose path is longer than ${CHECKPOINT_PATH_CHARS_MAX} characters was not recorded`);
        continue;
      }
      const after = entry.after !== undefined ? entry.after : (await readFileState(this.call.location, path, { maxBytes: this.service.fileBytesMax, blobs: this.service.blobs })).state;
      if (sameState(entry.before, after)) continue;
      files.push({ path, before: clipState(entry.before), after: clipState(after), ...(entry.mode === undefined ? {} : { mode: entry.mode }) });
    }
    if (files.length === 0 && this.reasons.size === 0) return undefined;
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const kept = withinEventBounds(files);
    const omitted = files.length - kept.length;
    if (omitted > 0) this.incomplete(`${omitted} more changed files were not recorded (at most ${CHECKPOINT_EVENT_FILES_MAX} files and ${CHECKPOINT_EVENT_BYTES_MAX} bytes per call)`);
    const reason = [...this.reasons].join('; ');
    return {
      activityId: this.call.activityId,
      callId: this.call.callId,
      tool: this.call.tool,
      files: kept,
      ...(reason === '' ? {} : { incomplete: clip(reason, CHECKPOINT_REASON_CHARS_MAX) }),
      ...(omitted > 0 ? { omittedFiles: omitted } : {}),
    };
  }
}

/** The first files that fit one event: CHECKPOINT_EVENT_FILES_MAX of them, CHECKPOINT_EVENT_BYTES_MAX of JSON. */
export function withinEventBounds<T>(files: readonly T[]): T[] {
  const out: T[] = [];
  let bytes = 0;
  for (const f of files) {
    bytes += Buffer.byteLength(JSON.stringify(f)) + 1;
    if (out.length >= CHECKPOINT_EVENT_FILES_MAX || bytes > CHECKPOINT_EVENT_BYTES_MAX) break;
    out.push(f);
  }
  return out;
}

/** Reasons come from error messages: kept within the event schema's bound. */
function clipState(state: CheckpointFileState): CheckpointFileState {
  return state !== null && typeof state === 'object' ? { uncaptured: clip(state.uncaptured, CHECKPOINT_REASON_CHARS_MAX) } : state;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
