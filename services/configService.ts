/**
 * The config service: the config in force for each session directory (and for the global file
 * alone), kept current while the process runs (hot reload, DESIGN §8).
 *
 * Every file it has loaded is watched (services/watch.ts). A changed file is read again; when it
 * is valid, every scope (directory) that uses it is merged again and, where the settings in force
 * changed, subscribers are told which keys (`updated`). When it is not valid, the last good
 * contents of that file stay in force and subscribers are told why (`rejected`, with file, line
 * and key). A file that was removed counts as empty. Scopes are merged from each file's last good
 * contents, so a broken project file does not hold back a valid change to the global one.
 *
 * services/runtime.ts subscribes first: it records `config.updated` / `config.rejected` system
 * events and hands the new config to the live sessions of the directory. Other services
 * (catalog, plugins, MCP) subscribe to reconfigure themselves.
 */
import { CONFIG_SCOPES_MAX, CONFIG_SUBSCRIBERS_MAX } from '../core/limits.js';
import {
  changedConfigKeys,
  ConfigError,
  configPaths,
  mergeConfigFiles,
  notesOf,
  readConfigFile,
  type ConfigFile,
  type ConfigNote,
  type ConfigScope,
  type ResolvedConfig,
} from './config.js';
import { watchFile, type FileWatch, type FileWatchOptions, type WatchMode } from './watch.js';

/** What subscribers hear. */
export type ConfigChange =
  | {
      type: 'updated';
      /** The session directory whose config changed; undefined for the global scope. */
      location: string | undefined;
      /** The file whose change was applied. */
      source: string;
      /** Dotted paths of the settings that changed (see changedConfigKeys); never values. */
      keys: string[];
      config: ResolvedConfig;
      previous: ResolvedConfig;
      /** The files in force now, global first. */
      sources: string[];
    }
  | {
      type: 'rejected';
      /** The file that could not be applied. */
      file: string;
      error: ConfigError;
    };

export interface ConfigService {
  /**
   * The config in force for a session directory (global file merged with the directory's own),
   * or for the global file alone when `location` is undefined. Loaded on first use, then kept
   * current. The first load rejects with a ConfigError when a file is invalid (nothing is
   * cached, so the next call tries again); after that, the last good config stays in force.
   */
  configFor(location?: string): Promise<ResolvedConfig>;
  /** The config of a scope already loaded, if any (the newest applied). */
  current(location?: string): ResolvedConfig | undefined;
  /** The files in force for a loaded scope, global first. */
  sources(location?: string): string[] | undefined;
  /**
   * Calls `listener` after every applied change and every rejected file, in subscription order.
   * A listener that throws is skipped (the others still hear). Returns the unsubscribe function.
   */
  subscribe(listener: (change: ConfigChange) => void): () => void;
  /** Reads every loaded file again now, as a watch event would (tests; a SIGHUP handler). */
  refresh(): Promise<void>;
  /** How files are watched: `watch`, `poll` (also after a fallback), or `off`. */
  readonly watchMode: WatchMode | 'off';
  /** Stops watching. The configs stay readable. */
  close(): void;
}

export interface ConfigServiceOptions {
  /** `$LOOM_HOME`. */
  home: string;
  /** `watch` (default; polling where fs.watch fails), `poll`, or `off` (load once, never reload). */
  watch?: WatchMode | 'off';
  /** Told once per file and version when a file older than the current version is read. */
  onNotes?: (note: ConfigNote) => void;
  /** Told when fs.watch failed for a file and polling took over. */
  onWatchFallback?: (file: string, error: Error) => void;
  /** Debounce and polling intervals, and a replacement for fs.watch (tests). */
  watchOptions?: Pick<FileWatchOptions, 'debounceMs' | 'debounceMaxMs' | 'pollMs' | 'watch'>;
}

/** One loaded file: its last good contents and who uses it. */
interface FileEntry {
  file: string;
  scope: ConfigScope;
  /** Last good contents; undefined while the file does not exist. */
  last: ConfigFile | undefined;
  /** The text of `last`, so an unchanged file is not applied twice. */
  text: string | undefined;
  /** The error last reported for the file, so the same failure is not reported twice in a row. */
  lastError: string | undefined;
  /** The scopes (keys) merged from it. */
  users: Set<string>;
  watch: FileWatch | undefined;
  /** Reads of one file run one after another. */
  queue: Promise<void>;
}

interface Scope {
  location: string | undefined;
  files: string[];
  config: ResolvedConfig;
}

const GLOBAL = '\u0000global';

export function createConfigService(options: ConfigServiceOptions): ConfigService {
  return new LiveConfig(options);
}

class LiveConfig implements ConfigService {
  private readonly files = new Map<string, FileEntry>();
  /** Least recently used first (a use moves a scope to the end). */
  private readonly scopes = new Map<string, Scope>();
  private readonly loading = new Map<string, Promise<ResolvedConfig>>();
  private readonly listeners = new Set<(change: ConfigChange) => void>();
  /** The version each file was last noted at, so notes are told once. */
  private readonly noted = new Map<string, number>();
  private fellBack = false;
  private closed = false;

  constructor(private readonly options: ConfigServiceOptions) {}

  get watchMode(): WatchMode | 'off' {
    const mode = this.options.watch ?? 'watch';
    return mode === 'watch' && this.fellBack ? 'poll' : mode;
  }

  configFor(location?: string): Promise<ResolvedConfig> {
    const key = location ?? GLOBAL;
    const scope = this.scopes.get(key);
    if (scope) {
      this.scopes.delete(key);
      this.scopes.set(key, scope);
      return Promise.resolve(scope.config);
    }
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(key, location).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  current(location?: string): ResolvedConfig | undefined {
    return this.scopes.get(location ?? GLOBAL)?.config;
  }

  sources(location?: string): string[] | undefined {
    const scope = this.scopes.get(location ?? GLOBAL);
    return scope && this.present(scope).map((f) => f.file);
  }

  subscribe(listener: (change: ConfigChange) => void): () => void {
    if (this.listeners.size >= CONFIG_SUBSCRIBERS_MAX) throw new Error(`config subscribers are limited to ${CONFIG_SUBSCRIBERS_MAX} (CONFIG_SUBSCRIBERS_MAX)`);
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async refresh(): Promise<void> {
    await Promise.all([...this.files.values()].map((entry) => this.reread(entry)));
  }

  close(): void {
    this.closed = true;
    for (const entry of this.files.values()) entry.watch?.close();
  }

  // ---- loading ----

  private async load(key: string, location: string | undefined): Promise<ResolvedConfig> {
    const paths = configPaths({ home: this.options.home, location });
    // A new scope reads its files afresh (a watch may not have caught up with a write just made);
    // a file another scope knows that cannot be read now keeps its last good contents.
    const read = new Map<string, ConfigFile | undefined>();
    for (const { file, scope } of paths) {
      const known = this.files.get(file);
      if (!known) {
        read.set(file, await readConfigFile(file, scope));
        continue;
      }
      try {
        read.set(file, await readConfigFile(file, scope));
      } catch {
        read.set(file, known.last);
      }
    }
    const present = [...read.values()].filter((f): f is ConfigFile => f !== undefined);
    const config = mergeConfigFiles(present);
    for (const f of present) this.note(f);
    const scope: Scope = { location, files: paths.map((p) => p.file), config };
    for (const { file, scope: fileScope } of paths) this.use(file, fileScope, key, read.get(file));
    this.scopes.set(key, scope);
    this.evict();
    return config;
  }

  /** Registers `key` as a user of `file`, watching it from its first use. */
  private use(file: string, scope: ConfigScope, key: string, contents: ConfigFile | undefined): void {
    let entry = this.files.get(file);
    if (!entry) {
      entry = { file, scope, last: contents, text: contents?.text, lastError: undefined, users: new Set(), watch: undefined, queue: Promise.resolve() };
      this.files.set(file, entry);
      const mode = this.options.watch ?? 'watch';
      if (mode !== 'off' && !this.closed) {
        const target = entry;
        entry.watch = watchFile(file, () => void this.reread(target), {
          ...this.options.watchOptions,
          mode,
          onFallback: (error) => {
            this.fellBack = true;
            this.options.onWatchFallback?.(file, error);
          },
        });
      }
    }
    entry.users.add(key);
  }

  /** Beyond CONFIG_SCOPES_MAX, the least recently used scope is dropped (and files no scope uses are unwatched). */
  private evict(): void {
    while (this.scopes.size > CONFIG_SCOPES_MAX) {
      const [key, scope] = this.scopes.entries().next().value as [string, Scope];
      this.scopes.delete(key);
      for (const file of scope.files) {
        const entry = this.files.get(file);
        if (!entry) continue;
        entry.users.delete(key);
        if (entry.users.size > 0) continue;
        entry.watch?.close();
        this.files.delete(file);
      }
    }
  }

  // ---- reloading ----

  private reread(entry: FileEntry): Promise<void> {
    entry.queue = entry.queue.then(() => this.apply(entry)).catch(() => undefined);
    return entry.queue;
  }

  private async apply(entry: FileEntry): Promise<void> {
    if (this.files.get(entry.file) !== entry) return; // evicted meanwhile
    let contents: ConfigFile | undefined;
    try {
      contents = await readConfigFile(entry.file, entry.scope);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      if (error.message === entry.lastError) return; // the same failure: reported already
      entry.lastError = error.message;
      this.emit({ type: 'rejected', file: entry.file, error });
      return;
    }
    entry.lastError = undefined;
    if (contents?.text === entry.text) return; // unchanged (or still missing)
    entry.text = contents?.text;
    entry.last = contents;
    if (contents) this.note(contents);
    for (const key of entry.users) this.remerge(key, entry.file);
  }

  private remerge(key: string, source: string): void {
    const scope = this.scopes.get(key);
    if (!scope) return;
    let config: ResolvedConfig;
    try {
      config = mergeConfigFiles(this.present(scope));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      this.emit({ type: 'rejected', file: error.file, error });
      return;
    }
    const keys = changedConfigKeys(scope.config, config);
    if (keys.length === 0) return;
    const previous = scope.config;
    scope.config = config;
    this.emit({ type: 'updated', location: scope.location, source, keys, config, previous, sources: this.present(scope).map((f) => f.file) });
  }

  /** The last good contents of a scope's files that exist, global first. */
  private present(scope: Scope): ConfigFile[] {
    return scope.files.map((f) => this.files.get(f)?.last).filter((f): f is ConfigFile => f !== undefined);
  }

  private note(file: ConfigFile): void {
    const [note] = notesOf([file]);
    if (note === undefined || this.noted.get(file.file) === file.version) return;
    this.noted.set(file.file, file.version);
    this.options.onNotes?.(note);
  }

  private emit(change: ConfigChange): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch {
        // one subscriber's failure is not the others'
      }
    }
  }
}
