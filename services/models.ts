/**
 * The model service every loom process runs (services/runtime.ts): the model catalog, the provider
 * registry that fills it, the models registered by `loom models add` / `POST /models` (the
 * `models` table), and the system events that tell other processes and subscribers what changed.
 *
 * What is recorded in the system log, and when:
 * - `provider.loaded` when a provider's load ends with an outcome different from the last one
 *   recorded for that id (first load, a fixed or broken configuration): every process loads its
 *   providers, and recording identical outcomes would add events on every command;
 * - `model.added|updated|removed` when the catalog entry in force changes to something not yet
 *   recorded under that id: a registration (CLI, HTTP, plugin), a removal, a provider's models
 *   appearing for the first time, a price changed in config. The same change seen again by another
 *   process is not recorded twice (store/catalog.ts `appendSystemFact`).
 *
 * Other processes see registrations without a restart: the service follows the system log (the
 * store's change detector notices other processes' commits), re-reads the `models` table on a
 * `model.*` event and the global config on `config.updated`.
 */
import { SYSTEM_FOLLOW_PAGE_EVENTS, MODELS_REGISTERED_MAX } from '../core/limits.js';
import { canonicalJson, createModelCatalog, modelIdSchema, modelSettingsSchema, providerOf, type CatalogChange, type CatalogService, type LayerEntry, type ModelSettings } from '../llm/catalog.js';
import type { ModelInfo } from '../llm/modelInfo.js';
import { parseModelRef, ProviderRegistry, providerSettings, withIdempotent, type ProviderPlugin, type ProviderStatus } from '../llm/providers.js';
import type { ProviderResolver } from '../actors/session.js';
import { appendSystemFact, RegisteredModels, systemLogHead, type AnyEnvelope, type Store } from '../store/index.js';
import { loadConfig, type ResolvedConfig } from './config.js';
import type { CredentialProvider } from './credentials.js';

/** A registration that cannot be taken; `field` names what is wrong (`context`, `cost.input`, `id`). */
export class ModelRegistrationError extends Error {
  override name = 'ModelRegistrationError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** `loom models rm` / `DELETE /models/:id` of a model nobody registered that way. */
export class ModelNotRegisteredError extends Error {
  override name = 'ModelNotRegisteredError';
  constructor(
    readonly modelId: string,
    /** Where the entry in force comes from; undefined when the catalog does not know the model at all. */
    readonly source: ModelInfo['source'] | undefined,
  ) {
    super(
      source === undefined
        ? `model ${modelId} is not in the catalog (loom models lists it)`
        : `model ${modelId} comes from ${source === 'builtin' ? 'Loom\'s built-in list' : source === 'config' ? 'config (providers.<id>.models)' : `the ${source}`}, ` +
            'not from loom models add or POST /models, so it cannot be removed that way' +
            (source === 'config' ? '; remove it from the config file' : ''),
    );
  }
}

/** One model as `loom models` and `GET /models` show it. */
export interface ModelView extends ModelInfo {
  /** The provider's state in this process (`unknown`: nothing configures the provider). */
  providerState: ProviderStatus['state'] | 'unknown';
}

export interface ModelsView {
  models: ModelView[];
  providers: ProviderStatus[];
  /** Why the global config could not be read (providers then come from the environment only). */
  configError?: string;
}

export interface ModelServiceOptions {
  store: Store;
  home: string;
  env: NodeJS.ProcessEnv;
  /** The auth service's credential store; without it keys come from the environment and config. */
  credentials?: CredentialProvider;
  /** Reads the global config; default `loadConfig({ home })`. */
  loadGlobalConfig?: () => Promise<ResolvedConfig>;
  /** Provider kinds besides the built-in ones. */
  plugins?: readonly ProviderPlugin[];
  /** Provider load timeout (default PROVIDER_LOAD_TIMEOUT_MS). */
  loadTimeoutMs?: number;
}

export interface ModelService {
  readonly catalog: CatalogService;
  readonly providers: ProviderRegistry;
  /**
   * Registers `id` for every process (the `models` table), or replaces its registration; the
   * fields left out come from the entry below (provider, config) or the defaults. Records the
   * change. Returns the entry now in force. Throws ModelRegistrationError naming the bad field.
   */
  register(id: string, settings: ModelSettings, source: 'cli' | 'http'): ModelInfo;
  /**
   * Removes a registration made by `register`; returns the entry removed and the one now in force
   * (the provider's or config's entry it covered, if any). Throws ModelNotRegisteredError otherwise.
   */
  unregister(id: string): { removed: ModelInfo; now: ModelInfo | undefined };
  /** The catalog and provider statuses (optionally of one provider). */
  view(filter?: { provider?: string }): ModelsView;
  /** A session's resolver: the registry, with the session config's `idempotent` where it says so. */
  resolverFor(config: ResolvedConfig): ProviderResolver;
  /** Reads the global config again and reconfigures the providers (done on `config.updated`). */
  reloadConfig(): Promise<void>;
  /** Resolves when the first config read has been applied and every provider load started has ended. */
  settled(): Promise<void>;
  /** Calls `listener` whenever a provider load ends (ready or failed); returns the unsubscribe function. */
  onProviderLoaded(listener: (status: ProviderStatus) => void): () => void;
  close(): void;
}

/**
 * Starts the model service: the catalog with the registered models at once, the providers in the
 * background (after the global config is read), and the system-log follower. Never waits.
 */
export function openModelService(options: ModelServiceOptions): ModelService {
  const { store } = options;
  const catalog = createModelCatalog();
  const loadListeners = new Set<(status: ProviderStatus) => void>();
  const registered = new RegisteredModels(store.db);
  let closed = false;

  // Changes of the catalog entry in force are recorded (once across processes), except while the
  // registered models are re-read: at start and after another process's change, which that
  // process recorded (re-recording a process's own partial view at start would add events on
  // every command).
  let quiet = 0;
  const silently = (fn: () => void) => {
    quiet++;
    try {
      fn();
    } finally {
      quiet--;
    }
  };
  catalog.onChange((change) => {
    if (quiet === 0) record(() => recordModelChange(store, change));
  });
  const providers = new ProviderRegistry({
    env: options.env,
    credentials: options.credentials,
    catalog,
    loadTimeoutMs: options.loadTimeoutMs,
    plugins: options.plugins,
    onLoaded: (status) => {
      record(() => recordProviderLoaded(store, status));
      for (const l of [...loadListeners]) l(status);
    },
  });
  const record = (fn: () => void) => {
    if (closed) return;
    try {
      fn();
    } catch (error) {
      // The change stands in this process; it is not worth failing for a log that cannot take it (a closing store).
      if (process.env.LOOM_DEBUG) process.stderr.write(`loom: system event not recorded: ${(error as Error)?.message ?? String(error)}\n`);
    }
  };

  const reloadRegistered = () => {
    const entries: Record<string, LayerEntry> = {};
    for (const row of registered.list()) {
      const settings = modelSettingsSchema.safeParse(row.patch);
      if (!settings.success || !modelIdSchema.safeParse(row.modelId).success) continue; // a row a newer Loom wrote; skip it rather than fail
      entries[row.modelId] = { source: row.source, settings: settings.data, full: false };
    }
    catalog.setLayer('registered', entries);
  };
  silently(reloadRegistered);

  // ---- config ----
  const loadGlobal = options.loadGlobalConfig ?? (async () => (await loadConfig({ home: options.home })).config);
  let configError: string | undefined;
  let configuredOnce = false;
  const reloadConfig = async () => {
    try {
      const config = await loadGlobal();
      configError = undefined;
      if (!closed) providers.configure(providerSettings(config));
    } catch (error) {
      configError = (error as Error)?.message ?? String(error);
      // A broken file at start: the environment still configures providers. Later: the last good config stays.
      if (!configuredOnce && !closed) providers.configure({});
    }
    configuredOnce = true;
  };
  const firstConfig = reloadConfig();

  // ---- following the system log ----
  let cursor = systemLogHead(store);
  let scheduled = false;
  const follow = () => {
    scheduled = false;
    if (closed) return;
    let models = false;
    let config = false;
    for (;;) {
      let page: AnyEnvelope[];
      try {
        page = store.readSystem({ after: cursor, limit: SYSTEM_FOLLOW_PAGE_EVENTS });
      } catch {
        return; // the store is closing
      }
      for (const e of page) {
        cursor = e.seq;
        if (e.type.startsWith('model.')) models = true;
        if (e.type === 'config.updated') config = true;
      }
      if (page.length < SYSTEM_FOLLOW_PAGE_EVENTS) break;
    }
    if (models) silently(reloadRegistered);
    if (config) void reloadConfig();
  };
  const unfollow = store.changes.subscribe(() => {
    if (scheduled || closed) return;
    scheduled = true;
    setImmediate(follow);
  });

  const inTransaction = <T>(fn: () => T): T => {
    try {
      return store.transaction(fn);
    } catch (error) {
      silently(reloadRegistered); // the table rolled back: the catalog follows it again
      throw error;
    }
  };

  return {
    catalog,
    providers,
    register(id, settings, source) {
      const idOk = modelIdSchema.safeParse(id);
      if (!idOk.success) throw new ModelRegistrationError('id', `model id "${id}": ${idOk.error.issues[0]!.message}`);
      const parsed = modelSettingsSchema.safeParse(settings);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const field = issue.path.join('.') || 'settings';
        throw new ModelRegistrationError(field, `${field}: ${issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}` : issue.message}`);
      }
      if (registered.get(id) === undefined && registered.count() >= MODELS_REGISTERED_MAX) {
        throw new ModelRegistrationError('id', `${MODELS_REGISTERED_MAX} models are registered (MODELS_REGISTERED_MAX); remove one first (loom models rm)`);
      }
      inTransaction(() => {
        registered.put({ modelId: id, provider: providerOf(id), patch: parsed.data, source, updatedAt: new Date(store.clock.now()).toISOString() });
        reloadRegistered();
      });
      return catalog.get(id)!;
    },
    unregister(id) {
      const before = catalog.get(id);
      if (registered.get(id) === undefined) throw new ModelNotRegisteredError(id, before?.source);
      inTransaction(() => {
        registered.delete(id);
        reloadRegistered();
      });
      return { removed: before!, now: catalog.get(id) };
    },
    view(filter = {}) {
      const statuses = providers.statuses();
      const state = new Map(statuses.map((s) => [s.id, s.state]));
      // Providers in the order of their statuses (built-in kinds first), models by id within each.
      const order = new Map(statuses.map((s, i) => [s.id, i]));
      const models = catalog
        .list()
        .filter((m) => filter.provider === undefined || m.provider === filter.provider)
        .sort((a, b) => (order.get(a.provider) ?? statuses.length) - (order.get(b.provider) ?? statuses.length) || a.provider.localeCompare(b.provider) || a.id.localeCompare(b.id))
        .map((m) => ({ ...m, providerState: state.get(m.provider) ?? ('unknown' as const) }));
      return {
        models,
        providers: statuses.filter((s) => filter.provider === undefined || s.id === filter.provider),
        ...(configError === undefined ? {} : { configError }),
      };
    },
    resolverFor(config) {
      const own = providerSettings(config);
      return (ref) => {
        const resolved = providers.resolve(ref);
        const idempotent = own[parseModelRef(ref).providerId]?.idempotent;
        return idempotent === undefined ? resolved : { provider: withIdempotent(resolved.provider, idempotent), model: resolved.model };
      };
    },
    reloadConfig,
    async settled() {
      await firstConfig;
      await providers.settled();
    },
    onProviderLoaded(listener) {
      loadListeners.add(listener);
      return () => void loadListeners.delete(listener);
    },
    close() {
      closed = true;
      unfollow();
      providers.close();
    },
  };
}

// ---- recording -----------------------------------------------------------------------------------

/** The `model.*` event data of a catalog entry (no secrets: ids, capabilities, limits, prices). */
export function modelEventData(info: ModelInfo) {
  return {
    model: info.id,
    source: info.source,
    ...(info.name === undefined ? {} : { name: info.name }),
    capabilities: { ...info.capabilities },
    limits: { ...info.limits },
    ...(info.cost === undefined ? {} : { cost: { ...info.cost } }),
  };
}

function recordModelChange(store: Store, change: CatalogChange): void {
  const data = modelEventData(change.model);
  appendSystemFact(store, `model:${change.model.id}`, { type: change.type, data }, canonicalJson(data));
}

function recordProviderLoaded(store: Store, status: ProviderStatus): void {
  const data = {
    provider: status.id,
    ...(status.kind === null ? {} : { kind: status.kind }),
    ok: status.state === 'ready',
    ...(status.error === undefined ? {} : { error: status.error }),
    models: status.models,
    ...(status.origin === null ? {} : { origin: status.origin }),
  };
  appendSystemFact(store, `provider:${status.id}`, { type: 'provider.loaded', data }, canonicalJson(data));
}
