/**
 * Retention of file checkpoint content (`$LOOM_HOME/checkpoints/blobs/`). A checkpoint expires
 * when it is older than `retentionDays`, or — oldest first — when the kept content passes
 * `maxBytes`. A blob is removed when no unexpired checkpoint refers to it; a blob no checkpoint
 * refers to at all (the scan before a bash command keeps every file's content; checkpoints of
 * removed sessions) goes once it is older than CHECKPOINT_BLOB_GRACE_MS, which covers commands
 * still running. The log and the projection keep their records: an expired checkpoint's diff and
 * undo then say that its content is no longer kept.
 */
import { lstatSync, readdirSync, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { CHECKPOINT_BLOB_GRACE_MS, CHECKPOINT_PRUNE_BLOBS_PER_PASS_MAX } from '../core/limits.js';
import type { Store } from '../store/index.js';
import { BlobStore } from '../tools/checkpoints/blobs.js';

export interface CheckpointRetention {
  retentionDays: number;
  maxBytes: number;
}

export interface CheckpointPruneReport {
  /** Blob files removed (or, in a dry run, that would be) and their bytes. */
  blobs: number;
  bytes: number;
  /** What is kept after the pass. */
  keptBlobs: number;
  keptBytes: number;
  /** Checkpoints recorded before this time lost their content to the size bound. */
  expiredBefore?: string;
  /** More blob files than one pass looks at: the next pass continues. */
  more: boolean;
}

const DAY_MS = 24 * 60 * 60_000;
const HASH = /^[0-9a-f]{64}$/;

interface Blob {
  hash: string;
  path: string;
  size: number;
  mtimeMs: number;
}

export async function pruneCheckpoints(store: Store, home: string, policy: CheckpointRetention, options: { now: number; dryRun: boolean }): Promise<CheckpointPruneReport> {
  const blobs = new BlobStore(home);
  const { now, dryRun } = options;
  const report: CheckpointPruneReport = { blobs: 0, bytes: 0, keptBlobs: 0, keptBytes: 0, more: false };
  const listed = listBlobs(blobs.dir);
  report.more = listed.more;
  const referenced = store.queries.checkpoints.referencedBlobs(new Date(now - policy.retentionDays * DAY_MS).toISOString());
  const graceCutoff = now - CHECKPOINT_BLOB_GRACE_MS;
  const kept: Blob[] = [];
  const drop = (b: Blob) => {
    report.blobs++;
    report.bytes += b.size;
    if (!dryRun) removeFile(b.path);
  };
  for (const b of listed.blobs) {
    if (referenced.has(b.hash) || b.mtimeMs >= graceCutoff) kept.push(b);
    else drop(b);
  }
  // The size bound: expire the checkpoints whose newest reference is oldest until the rest fits.
  let total = kept.reduce((n, b) => n + b.size, 0);
  if (total > policy.maxBytes) {
    const byAge = kept.filter((b) => referenced.has(b.hash)).sort((a, b) => (referenced.get(a.hash)! < referenced.get(b.hash)! ? -1 : 1));
    const gone = new Set<string>();
    for (const b of byAge) {
      if (total <= policy.maxBytes) break;
      drop(b);
      gone.add(b.hash);
      total -= b.size;
      report.expiredBefore = referenced.get(b.hash);
    }
    for (let i = kept.length - 1; i >= 0; i--) if (gone.has(kept[i]!.hash)) kept.splice(i, 1);
  }
  report.keptBlobs = kept.length;
  report.keptBytes = kept.reduce((n, b) => n + b.size, 0);
  if (!dryRun) pruneTemp(join(home, 'checkpoints', 'tmp'), graceCutoff);
  return report;
}

/** Blob files under `dir/<aa>/`, at most CHECKPOINT_PRUNE_BLOBS_PER_PASS_MAX of them. */
function listBlobs(dir: string): { blobs: Blob[]; more: boolean } {
  const blobs: Blob[] = [];
  for (const fan of entries(dir)) {
    const sub = join(dir, fan);
    for (const name of entries(sub)) {
      if (!HASH.test(name)) continue;
      if (blobs.length >= CHECKPOINT_PRUNE_BLOBS_PER_PASS_MAX) return { blobs, more: true };
      const path = join(sub, name);
      const st = stat(path);
      if (st?.isFile()) blobs.push({ hash: name, path, size: st.size, mtimeMs: st.mtimeMs });
    }
  }
  return { blobs, more: false };
}

/** Temporary files of writes that never finished (a killed process), once past the grace period. */
function pruneTemp(dir: string, cutoff: number): void {
  for (const name of entries(dir)) {
    const path = join(dir, name);
    const st = stat(path);
    if (st?.isFile() && st.mtimeMs < cutoff) removeFile(path);
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function stat(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already (another pass, or a concurrent prune)
  }
}
