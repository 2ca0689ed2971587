/**
 * Watching one file for changes, for services that reload what they read (config, credentials).
 *
 * The file's directory is watched rather than the file: editors save by writing a new file and
 * renaming it over the old one, which ends a watch on the file itself, and the file may not exist
 * yet. When the directory does not exist either (a project without `.loom/`), its parent is
 * watched until it appears. Changes are debounced (an editor's save is several writes). Where
 * fs.watch fails (network filesystems, exhausted inotify watches) or is not wanted, the file's
 * size, mtime and inode are polled instead.
 *
 * The callback means "look again", not "it changed": callers compare what they read.
 */
import { watch as fsWatch, statSync, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CONFIG_POLL_INTERVAL_MS, CONFIG_RELOAD_DEBOUNCE_MAX_MS, CONFIG_RELOAD_DEBOUNCE_MS } from '../core/limits.js';

/** `watch`: fs.watch, falling back to polling where it fails; `poll`: polling only. */
export type WatchMode = 'watch' | 'poll';

export interface FileWatchOptions {
  mode?: WatchMode;
  /** Quiet time after the last event before the callback runs. Default CONFIG_RELOAD_DEBOUNCE_MS. */
  debounceMs?: number;
  /** Longest the callback waits while events keep coming. Default CONFIG_RELOAD_DEBOUNCE_MAX_MS. */
  debounceMaxMs?: number;
  /** Polling interval. Default CONFIG_POLL_INTERVAL_MS. */
  pollMs?: number;
  /** Replaces fs.watch (tests make it fail to exercise the fallback). */
  watch?: typeof fsWatch;
  /** Told once when fs.watch failed and polling took over. */
  onFallback?: (error: Error) => void;
}

export interface FileWatch {
  /** How the file is watched now (`poll` after a fallback). */
  readonly mode: WatchMode;
  close(): void;
}

/** Watches `file`; `onChange` runs (debounced) after the file may have changed. Timers never keep the process alive. */
export function watchFile(file: string, onChange: () => void, options: FileWatchOptions = {}): FileWatch {
  return new DirectoryWatch(path.resolve(file), onChange, options);
}

class DirectoryWatch implements FileWatch {
  mode: WatchMode;
  private watcher: FSWatcher | undefined;
  /** The directory watched now (its inode: one deleted and made again needs a new watch) and the entry in it that leads to the file. */
  private watched: { dir: string; entry: string; ino: bigint } | undefined;
  private poller: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private firstEventAt: number | undefined;
  private signature: string;
  private closed = false;
  private readonly debounceMs: number;
  private readonly debounceMaxMs: number;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    private readonly options: FileWatchOptions,
  ) {
    this.mode = options.mode ?? 'watch';
    this.debounceMs = options.debounceMs ?? CONFIG_RELOAD_DEBOUNCE_MS;
    this.debounceMaxMs = options.debounceMaxMs ?? CONFIG_RELOAD_DEBOUNCE_MAX_MS;
    this.signature = signatureOf(file);
    if (this.mode === 'watch') this.arm();
    else this.startPolling();
  }

  close(): void {
    this.closed = true;
    this.disarm();
    if (this.poller) clearInterval(this.poller);
    if (this.timer) clearTimeout(this.timer);
    this.poller = this.timer = undefined;
  }

  /** Watches the nearest existing directory on the way to the file (its own, else its parent's). */
  private arm(): void {
    const target = nearestDirectory(this.file);
    if (target === undefined) return this.fallBack(new Error(`neither ${path.dirname(this.file)} nor its parent exists`));
    if (this.watcher && this.watched?.dir === target.dir && this.watched.ino === target.ino) return;
    this.disarm();
    const self = path.basename(target.dir);
    try {
      const watcher = (this.options.watch ?? fsWatch)(target.dir, { persistent: false }, (_event, name) => {
        // No name (some platforms): anything in the directory may be it. The directory's own name: it was removed.
        if (name === null || name === undefined || String(name) === target.entry || String(name) === self) this.schedule();
      });
      watcher.on('error', (error) => this.fallBack(error));
      this.watcher = watcher;
      this.watched = target;
    } catch (error) {
      this.fallBack(error as Error);
    }
  }

  private disarm(): void {
    try {
      this.watcher?.close();
    } catch {
      // already closed
    }
    this.watcher = undefined;
    this.watched = undefined;
  }

  private fallBack(error: Error): void {
    if (this.closed || this.mode === 'poll') return;
    this.disarm();
    this.mode = 'poll';
    this.options.onFallback?.(error);
    this.startPolling();
  }

  private startPolling(): void {
    this.poller = setInterval(() => {
      const now = signatureOf(this.file);
      if (now === this.signature) return;
      this.signature = now;
      this.onChange();
    }, this.options.pollMs ?? CONFIG_POLL_INTERVAL_MS);
    this.poller.unref();
  }

  /** Trailing debounce, but never later than debounceMaxMs after the first event of a burst. */
  private schedule(): void {
    if (this.closed) return;
    const now = performance.now();
    this.firstEventAt ??= now;
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstEventAt + this.debounceMaxMs - now));
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), wait);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.firstEventAt = undefined;
    if (this.closed) return;
    // The directory may have appeared (watch it instead of its parent) or gone (watch the parent).
    this.arm();
    this.signature = signatureOf(this.file);
    this.onChange();
  }
}

/** The file's directory if it exists, else its parent; with the name in it that leads to the file. */
function nearestDirectory(file: string): { dir: string; entry: string; ino: bigint } | undefined {
  const dir = path.dirname(file);
  const own = directoryInode(dir);
  if (own !== undefined) return { dir, entry: path.basename(file), ino: own };
  const parent = path.dirname(dir);
  const up = parent === dir ? undefined : directoryInode(parent);
  return up === undefined ? undefined : { dir: parent, entry: path.basename(dir), ino: up };
}

function directoryInode(dir: string): bigint | undefined {
  try {
    const s = statSync(dir, { bigint: true });
    return s.isDirectory() ? s.ino : undefined;
  } catch {
    return undefined;
  }
}

/** What polling compares: inode, size, mtime and ctime (a rename over the file changes the inode). */
function signatureOf(file: string): string {
  try {
    const s = statSync(file, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return 'missing';
  }
}
