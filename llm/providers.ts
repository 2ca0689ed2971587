/**
 * Providers as plugins (DESIGN §8, issue 8 item 5). A provider *kind* (openai = Chat Completions,
 * openai-responses, anthropic, or one a plugin adds) is a `ProviderPlugin`; a provider *id* (the
 * prefix of `provider/model`) is one configured instance of a kind: `openai`, `anthropic`, or a
 * custom id such as `groq` with `{ kind: 'openai', baseURL }`.
 *
 * The `ProviderRegistry` autoloads every provider whose config or credentials are present:
 * - each entry of `providers` in config (unless `enabled: false`);
 * - a built-in id whose environment is set (OPENAI_API_KEY or OPENAI_BASE_URL for `openai` and
 *   `openai-responses`, ANTHROPIC_API_KEY for `anthropic`);
 * - with a credential store (services/credentials.ts), a built-in id it holds a credential for.
 * Loads run in the background, each bounded by PROVIDER_LOAD_TIMEOUT_MS, and never delay the
 * caller. A load ends `ready` (its models go into the catalog) or `failed` (the error, secrets
 * scrubbed); either outcome is reported through `onLoaded`. A failed provider blocks nothing:
 * other providers work, and a session naming it gets a ProviderConfigError naming the provider
 * and the problem.
 */
import { PROVIDER_ERROR_CHARS_MAX, PROVIDER_LOAD_TIMEOUT_MS, PROVIDERS_MAX } from '../core/limits.js';
import type { ResolvedConfig } from '../services/config.js';
import type { CredentialProvider } from '../services/credentials.js';
import { createAnthropicProvider } from './anthropic.js';
import { builtinModels } from './builtinModels.js';
import { canonicalJson, type CatalogService, type LayerEntry, type ModelSettings } from './catalog.js';
import { ProviderConfigError } from './errors.js';
import { createOpenAIProvider } from './openai.js';
import { createOpenAIResponsesProvider } from './openai-responses.js';
import type { Provider, ProviderRequest, StreamEvent } from './types.js';

type Env = Record<string, string | undefined>;

// ---- settings ----------------------------------------------------------------------------------

/**
 * One provider's settings, in the shape of config version 2 (`providers: { [id]: … }`). The
 * registry reads only this shape; `providerSettings` turns the config in force into it.
 */
export interface ProviderSettings {
  /** The provider kind; defaults to the id when the id is a built-in kind. */
  kind?: string;
  baseURL?: string;
  /** The endpoint de-duplicates requests, so an ambiguous attempt may be retried automatically. */
  idempotent?: boolean;
  /** Extra request headers (config v2). */
  headers?: Record<string, string>;
  /** `false` keeps the entry in the file without loading it. */
  enabled?: boolean;
  /** Models of this provider, by the name the API takes, with what is known about them. */
  models?: Record<string, ModelSettings>;
  /** Config version 1 only: a key in the file (the environment wins). Version 2 keeps keys in the credentials file. */
  apiKey?: string;
}

/**
 * The provider settings of a config, by provider id: the ONE place the registry reads config.
 * Config version 2 has an entry per id (`providers: { [id]: … }`); `openai-responses` without an
 * entry of its own is configured by `openai`'s (the same endpoint and key, as in version 1). A
 * version 1 file's API key rides along in memory (`legacyApiKeys`), never written anywhere.
 */
export function providerSettings(config: ResolvedConfig): Record<string, ProviderSettings> {
  const out: Record<string, ProviderSettings> = {};
  const legacy = config.legacyApiKeys ?? {};
  for (const [id, settings] of Object.entries(config.providers)) {
    out[id] = { ...settings, ...(legacy[id] === undefined ? {} : { apiKey: legacy[id] }) };
  }
  if (out['openai-responses'] === undefined && config.providers.openai !== undefined) {
    const { kind: _kind, ...openai } = out.openai!;
    out['openai-responses'] = { ...openai, ...(legacy.openai === undefined ? {} : { apiKey: legacy.openai }) };
  }
  for (const [id, key] of Object.entries(legacy)) out[id] ??= { apiKey: key };
  return out;
}

// ---- plugins -----------------------------------------------------------------------------------

/** What a provider plugin gets to load one provider id. */
export interface ProviderLoadContext {
  id: string;
  kind: string;
  settings: ProviderSettings;
  env: Env;
  /** The auth service's credentials, when the process has one; without it, keys come from the environment and config. */
  credentials?: CredentialProvider;
  /** Aborted when the load times out or the registry is reconfigured or closed. */
  signal: AbortSignal;
}

export interface LoadedProvider {
  provider: Provider;
  /** Models the provider knows of, by the name its API takes (full entries). */
  models?: Record<string, ModelSettings>;
}

export interface ProviderPlugin {
  /** The kind name (`providers.<id>.kind`). */
  readonly kind: string;
  /** Shipped with Loom: its models are registered with source `builtin` (a plugin's with source `provider`). */
  readonly builtin?: boolean;
  /** Environment variables that configure it under its own id, named in "not configured" messages. */
  readonly envVariables?: readonly string[];
  /** True when the environment alone configures this kind under its own id. */
  detect?(env: Env): boolean;
  /** Builds the adapter; may find credentials or list models. Bounded by PROVIDER_LOAD_TIMEOUT_MS. */
  load(context: ProviderLoadContext): Promise<LoadedProvider>;
}

/** The kinds shipped with Loom. */
export const BUILTIN_KINDS = ['openai', 'openai-responses', 'anthropic'] as const;
export type BuiltinKind = (typeof BUILTIN_KINDS)[number];

const isBuiltinKind = (kind: string): kind is BuiltinKind => (BUILTIN_KINDS as readonly string[]).includes(kind);

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** The environment variables of a provider id: OPENAI_* for both OpenAI ids, ANTHROPIC_*, else `<ID>_API_KEY`. */
export function envNames(id: string): { key: string; baseURL?: string } {
  if (id === 'openai' || id === 'openai-responses') return { key: 'OPENAI_API_KEY', baseURL: 'OPENAI_BASE_URL' };
  if (id === 'anthropic') return { key: 'ANTHROPIC_API_KEY', baseURL: 'ANTHROPIC_BASE_URL' };
  return { key: `${id.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_API_KEY` };
}

export interface AdapterInput {
  id: string;
  kind: BuiltinKind;
  settings: ProviderSettings;
  env: Env;
  /**
   * The auth service: the adapter asks it for the id's credential before EVERY request
   * (environment over the credentials file, tokens refreshed), so a rotated key is used at once.
   */
  credentials?: CredentialProvider;
  /** Whether `credentials` holds one for the id (looked up by the loader); default: its `has`. */
  stored?: boolean;
}

/**
 * Builds the adapter of a built-in kind for one provider id: the one place adapters are made.
 * Built-in ids keep their rules: the environment (OPENAI_API_KEY, OPENAI_BASE_URL,
 * ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL) wins over config, and the errors name the variables.
 * A custom id takes its key from its stored credential or `<ID>_API_KEY` and its base URL from
 * config. Extra headers (`providers.<id>.headers`) are sent with every request; the credential's
 * and the adapter's own headers win. Throws ProviderConfigError naming what is missing or wrong.
 */
export function createAdapter(input: AdapterInput): Provider {
  const { id, kind, settings, env, credentials } = input;
  const names = envNames(id);
  // A static key (environment variable, a version 1 config) is the fallback when the auth service has none.
  const apiKey = nonEmpty(env[names.key]) ?? settings.apiKey;
  const baseURL = (names.baseURL ? nonEmpty(env[names.baseURL]) : undefined) ?? settings.baseURL;
  const stored = input.stored ?? (credentials?.has?.(id) === true || (id === 'openai-responses' && credentials?.has?.('openai') === true));
  const options = { idempotent: settings.idempotent, headers: settings.headers, credentials, credentialId: id };
  let provider: Provider;
  if (kind === 'anthropic') {
    if (apiKey === undefined && !stored) {
      if (id === 'anthropic') throw new ProviderConfigError('ANTHROPIC_API_KEY is not set: set it (or run `loom auth set anthropic`) to use anthropic/… models', ['ANTHROPIC_API_KEY']);
      throw new ProviderConfigError(`provider "${id}" (kind anthropic) has no key: set ${names.key} or store one with \`loom auth set ${id}\``, [names.key]);
    }
    provider = createAnthropicProvider({ ...options, apiKey, baseURL });
  } else {
    if (apiKey === undefined && baseURL === undefined && !stored) {
      if (id === 'openai' || id === 'openai-responses') {
        const what = kind === 'openai' ? 'an OpenAI-compatible server (Ollama, llama.cpp, vLLM)' : 'a server that speaks the Responses API';
        throw new ProviderConfigError(
          `OPENAI_API_KEY or OPENAI_BASE_URL is not set: set OPENAI_API_KEY (or run \`loom auth set openai\`) for api.openai.com, or OPENAI_BASE_URL for ${what}`,
          ['OPENAI_API_KEY', 'OPENAI_BASE_URL'],
        );
      }
      throw new ProviderConfigError(`provider "${id}" (kind ${kind}) needs providers.${id}.baseURL (an OpenAI-compatible server) or an API key (${names.key}); or run \`loom auth set ${id}\``, [
        `providers.${id}.baseURL`,
        names.key,
      ]);
    }
    provider = kind === 'openai' ? createOpenAIProvider({ ...options, apiKey, baseURL }) : createOpenAIResponsesProvider({ ...options, apiKey, baseURL });
  }
  return { id, idempotent: provider.idempotent, stream: (request) => provider.stream(request) };
}

/** `createAdapter` with the load context's credentials (asked per request by the adapter). */
export async function createProviderAdapter(kind: BuiltinKind, context: Omit<ProviderLoadContext, 'kind'>): Promise<Provider> {
  const stored = context.credentials ? (await context.credentials.get(context.id, context.signal)) !== undefined : false;
  return createAdapter({ id: context.id, kind, settings: context.settings, env: context.env, credentials: context.credentials, stored });
}

function builtinPlugin(kind: BuiltinKind, envVariables: readonly string[], detect: (env: Env) => boolean): ProviderPlugin {
  return {
    kind,
    builtin: true,
    envVariables,
    detect,
    async load(context) {
      const provider = await createProviderAdapter(kind, context);
      // The well-known models belong to the kind's own id; a custom id lists its models in config.
      return { provider, models: context.id === kind ? builtinModels(kind) : {} };
    },
  };
}

const openAIEnv = (env: Env) => nonEmpty(env.OPENAI_API_KEY) !== undefined || nonEmpty(env.OPENAI_BASE_URL) !== undefined;

/** The provider kinds shipped with Loom. */
export function builtinProviderPlugins(): ProviderPlugin[] {
  return [
    builtinPlugin('openai', ['OPENAI_API_KEY', 'OPENAI_BASE_URL'], openAIEnv),
    builtinPlugin('openai-responses', ['OPENAI_API_KEY', 'OPENAI_BASE_URL'], openAIEnv),
    builtinPlugin('anthropic', ['ANTHROPIC_API_KEY'], (env) => nonEmpty(env.ANTHROPIC_API_KEY) !== undefined),
  ];
}

// ---- model refs --------------------------------------------------------------------------------

/** Splits `provider/model`; the model part may itself contain slashes (`openai/meta/llama-3`). */
export function parseModelRef(ref: string): { providerId: string; model: string } {
  const slash = ref.indexOf('/');
  if (slash <= 0 || slash === ref.length - 1) {
    throw new ProviderConfigError(`model "${ref}" must be written provider/model, for example openai/gpt-4o-mini`, []);
  }
  return { providerId: ref.slice(0, slash), model: ref.slice(slash + 1) };
}

// ---- secrets -----------------------------------------------------------------------------------

const SECRET_VARIABLE = /(KEY|TOKEN|SECRET|PASSWORD)/i;

/**
 * A load error as it may be shown and recorded: the secrets the load could have seen (keys from
 * the environment and config, credential values) replaced, URL user info removed, and bounded.
 */
export function scrubSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s !== undefined && s.length >= 4) out = out.split(s).join('[redacted]');
  out = out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s@"']*@/gi, '$1[redacted]@');
  return out.length > PROVIDER_ERROR_CHARS_MAX ? `${out.slice(0, PROVIDER_ERROR_CHARS_MAX)}…` : out;
}

function secretsOf(settings: ProviderSettings, env: Env): string[] {
  const out: string[] = [];
  if (settings.apiKey) out.push(settings.apiKey);
  for (const v of Object.values(settings.headers ?? {})) out.push(v);
  for (const [k, v] of Object.entries(env)) if (v && SECRET_VARIABLE.test(k)) out.push(v.trim(), v);
  return out;
}

// ---- the registry ------------------------------------------------------------------------------

export type ProviderState = 'loading' | 'ready' | 'failed' | 'unconfigured';

/** What `loom models` and `GET /models` show of one provider. Never a secret. */
export interface ProviderStatus {
  id: string;
  /** Null when the config names no kind and the id is not a built-in one. */
  kind: string | null;
  state: ProviderState;
  /** What made it load: a config entry, the environment, a stored credential; null when unconfigured. */
  origin: 'config' | 'env' | 'credentials' | null;
  /** Why it failed or is not configured (secrets scrubbed). */
  error?: string;
  /** Models it registered into the catalog. */
  models: number;
  /** The base URL from config or the environment, without user info; null for the provider's default. */
  baseURL: string | null;
  /** Environment variables that would configure it (for "not configured"). */
  missing: string[];
}

interface Candidate {
  id: string;
  kind: string | undefined;
  origin: 'config' | 'env' | 'credentials';
  settings: ProviderSettings;
}

interface Entry extends Candidate {
  key: string;
  state: ProviderState;
  error?: string;
  provider?: Provider;
  models: number;
  done: Promise<void>;
  abort: AbortController;
}

export interface ProviderRegistryOptions {
  env?: Env;
  credentials?: CredentialProvider;
  /** Where loaded providers register their models (layer `provider:<id>`). */
  catalog?: CatalogService;
  /** Default PROVIDER_LOAD_TIMEOUT_MS. */
  loadTimeoutMs?: number;
  /** The kinds known at start (default: the built-in ones); `addPlugin` adds more. */
  plugins?: readonly ProviderPlugin[];
  /** Told when a load ends, ready or failed (the runtime records `provider.loaded`). */
  onLoaded?(status: ProviderStatus): void;
}

/**
 * Loads providers in the background and resolves `provider/model` to adapters. Nothing loads
 * until `configure` is given the settings (the runtime reads the global config file, which is
 * asynchronous); resolving before then, or while a provider loads, gives an adapter that waits
 * for the load (bounded) when its stream starts, so startup never waits on a provider.
 */
export class ProviderRegistry {
  private readonly env: Env;
  private readonly plugins = new Map<string, ProviderPlugin>();
  private readonly entries = new Map<string, Entry>();
  private readonly timeoutMs: number;
  private configured = false;
  private readonly whenConfigured: Promise<void>;
  private markConfigured!: () => void;
  private closed = false;
  private lastSettings: Record<string, ProviderSettings> = {};
  /** Config entries past PROVIDERS_MAX, not loaded. */
  private overflow: string[] = [];

  constructor(private readonly options: ProviderRegistryOptions = {}) {
    this.env = options.env ?? process.env;
    this.timeoutMs = options.loadTimeoutMs ?? PROVIDER_LOAD_TIMEOUT_MS;
    for (const p of options.plugins ?? builtinProviderPlugins()) this.plugins.set(p.kind, p);
    this.whenConfigured = new Promise((resolve) => (this.markConfigured = resolve));
  }

  /** The kinds this registry can load. */
  kinds(): string[] {
    return [...this.plugins.keys()];
  }

  /**
   * Adds a provider kind (a plugin module's). Entries of that kind that failed as unknown load again.
   * A kind already known is replaced.
   */
  addPlugin(plugin: ProviderPlugin): void {
    this.plugins.set(plugin.kind, plugin);
    if (!this.configured) return;
    for (const e of [...this.entries.values()]) if (e.kind === plugin.kind) this.start(e);
    this.configure(this.lastSettings);
  }

  /**
   * Applies provider settings (from config): providers that appeared or whose settings changed
   * (re)load in the background, providers that went away are dropped with their models, the others
   * are left alone. Returns at once.
   */
  configure(settings: Record<string, ProviderSettings>): void {
    if (this.closed) return;
    this.lastSettings = settings;
    const candidates = this.candidates(settings);
    for (const [id, e] of [...this.entries]) {
      if (candidates.has(id)) continue;
      e.abort.abort();
      this.entries.delete(id);
      this.options.catalog?.setLayer(`provider:${id}`, {});
    }
    for (const c of candidates.values()) {
      const key = canonicalJson({ kind: c.kind, origin: c.origin, settings: c.settings });
      const current = this.entries.get(c.id);
      // Unchanged settings leave a loading or loaded provider alone; a failed one is tried again.
      if (current?.key === key && current.state !== 'failed') continue;
      current?.abort.abort();
      const entry: Entry = { ...c, key, state: 'loading', models: 0, done: Promise.resolve(), abort: new AbortController() };
      this.entries.set(c.id, entry);
      this.start(entry);
    }
    this.configured = true;
    this.markConfigured();
  }

  private candidates(settings: Record<string, ProviderSettings>): Map<string, Candidate> {
    const out = new Map<string, Candidate>();
    this.overflow = [];
    for (const [id, s] of Object.entries(settings)) {
      if (s.enabled === false) continue;
      if (out.size >= PROVIDERS_MAX) {
        this.overflow.push(id); // reported as failed, never silently dropped
        continue;
      }
      out.set(id, { id, kind: s.kind ?? (this.plugins.has(id) ? id : undefined), origin: 'config', settings: s });
    }
    for (const p of this.plugins.values()) {
      if (!p.builtin || out.has(p.kind) || settings[p.kind]?.enabled === false || out.size >= PROVIDERS_MAX) continue;
      if (p.detect?.(this.env)) out.set(p.kind, { id: p.kind, kind: p.kind, origin: 'env', settings: {} });
      else if (this.options.credentials) out.set(p.kind, { id: p.kind, kind: p.kind, origin: 'credentials', settings: {} });
    }
    return out;
  }

  private start(entry: Entry): void {
    entry.abort.abort();
    entry.abort = new AbortController();
    entry.state = 'loading';
    entry.error = undefined;
    entry.provider = undefined;
    const abort = entry.abort;
    entry.done = this.load(entry, abort.signal).then(
      (loaded) => {
        if (this.entries.get(entry.id) !== entry || abort.signal.aborted) return;
        const entries = this.modelEntries(entry, loaded);
        try {
          this.options.catalog?.setLayer(`provider:${entry.id}`, entries);
        } catch (error) {
          return this.fail(entry, error);
        }
        entry.provider = loaded.provider;
        entry.models = Object.keys(entries).length;
        entry.state = 'ready';
        this.options.onLoaded?.(this.statusOf(entry));
      },
      (error: unknown) => {
        if (this.entries.get(entry.id) !== entry || abort.signal.aborted) return;
        this.fail(entry, error);
      },
    );
  }

  private fail(entry: Entry, error: unknown): void {
    // A built-in id tried only because a credential store exists, which holds nothing for it and
    // finds no variable either, is simply not configured (the error names the missing variables).
    const absent = entry.origin === 'credentials' && error instanceof ProviderConfigError && error.variables.length > 0;
    entry.state = absent ? 'unconfigured' : 'failed';
    const variables = absent ? (this.plugins.get(entry.kind ?? entry.id)?.envVariables ?? (error as ProviderConfigError).variables) : [];
    entry.error = absent
      ? `not configured: set ${variables.join(' or ')}, or add providers.${entry.id} to $LOOM_HOME/config.jsonc, or run \`loom auth set ${entry.id}\``
      : scrubSecrets((error as Error)?.message ?? String(error), secretsOf(entry.settings, this.env));
    entry.models = 0;
    this.options.catalog?.setLayer(`provider:${entry.id}`, {});
    // A built-in id found only by looking for a stored credential, with none stored, is not a failure.
    if (!absent) this.options.onLoaded?.(this.statusOf(entry));
  }

  private async load(entry: Entry, signal: AbortSignal): Promise<LoadedProvider> {
    const plugin = entry.kind === undefined ? undefined : this.plugins.get(entry.kind);
    if (!plugin) {
      const known = this.kinds().join(', ');
      throw new ProviderConfigError(
        entry.kind === undefined
          ? `providers.${entry.id}.kind is not set: "${entry.id}" is not a built-in provider, so name its kind (${known})`
          : `providers.${entry.id}.kind "${entry.kind}" is not a known provider kind (${known})`,
        [`providers.${entry.id}.kind`],
      );
    }
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.timeoutMs);
    timer.unref();
    const both = AbortSignal.any([signal, timeout.signal]);
    try {
      const loading = plugin.load({ id: entry.id, kind: plugin.kind, settings: entry.settings, env: this.env, credentials: this.options.credentials, signal: both });
      return await new Promise<LoadedProvider>((resolve, reject) => {
        const onAbort = () => reject(timeout.signal.aborted ? new LoadTimeoutError(entry.id, this.timeoutMs) : new Error('load cancelled'));
        if (both.aborted) return onAbort();
        both.addEventListener('abort', onAbort, { once: true });
        loading.then(resolve, reject).finally(() => both.removeEventListener('abort', onAbort));
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The catalog entries of a loaded provider: the plugin's models, then its config entry's models over them. */
  private modelEntries(entry: Entry, loaded: LoadedProvider): Record<string, LayerEntry> {
    const plugin = this.plugins.get(entry.kind!);
    const out: Record<string, LayerEntry> = {};
    for (const [name, settings] of Object.entries(loaded.models ?? {})) {
      out[`${entry.id}/${name}`] = { source: plugin?.builtin ? 'builtin' : 'provider', settings, full: true };
    }
    for (const [name, settings] of Object.entries(entry.settings.models ?? {})) {
      const id = `${entry.id}/${name}`;
      const below = out[id];
      out[id] = below ? { source: 'config', settings: { ...below.settings, ...settings }, full: true } : { source: 'config', settings, full: true };
    }
    return out;
  }

  private statusOf(e: Entry): ProviderStatus {
    const names = envNames(e.id);
    const baseURL = (names.baseURL ? nonEmpty(this.env[names.baseURL]) : undefined) ?? e.settings.baseURL;
    return {
      id: e.id,
      kind: e.kind ?? null,
      state: e.state,
      origin: e.state === 'unconfigured' ? null : e.origin,
      ...(e.error === undefined ? {} : { error: e.error }),
      models: e.models,
      baseURL: baseURL === undefined ? null : scrubSecrets(baseURL, []),
      missing: e.state === 'unconfigured' ? [...(this.plugins.get(e.kind ?? '')?.envVariables ?? [names.key])] : [],
    };
  }

  /**
   * Every provider this registry loads or knows of: the loaded ones (ready, loading or failed) and
   * the built-in kinds nothing configures (`unconfigured`, with the variables that would).
   */
  statuses(): ProviderStatus[] {
    const out = [...this.entries.values()].map((e) => this.statusOf(e));
    for (const id of this.overflow) {
      out.push({ id, kind: this.lastSettings[id]?.kind ?? null, state: 'failed', origin: 'config', error: `not loaded: more than ${PROVIDERS_MAX} providers are configured (PROVIDERS_MAX)`, models: 0, baseURL: null, missing: [] });
    }
    for (const p of this.plugins.values()) {
      if (!p.builtin || this.entries.has(p.kind)) continue;
      out.push({
        id: p.kind,
        kind: p.kind,
        state: 'unconfigured',
        origin: null,
        error: `not configured: set ${(p.envVariables ?? []).join(' or ')}, or add providers.${p.kind} to $LOOM_HOME/config.jsonc`,
        models: 0,
        baseURL: null,
        missing: [...(p.envVariables ?? [])],
      });
    }
    const order = (id: string) => {
      const i = (BUILTIN_KINDS as readonly string[]).indexOf(id);
      return i === -1 ? BUILTIN_KINDS.length : i;
    };
    return out.sort((a, b) => order(a.id) - order(b.id) || a.id.localeCompare(b.id));
  }

  /** The status of one provider id, or undefined when nothing configures it. */
  status(id: string): ProviderStatus | undefined {
    return this.statuses().find((s) => s.id === id);
  }

  /** Resolves once every load started so far has ended (each is bounded by the load timeout). */
  async settled(): Promise<void> {
    await this.whenConfigured;
    while (!this.closed) {
      const pending = [...this.entries.values()].filter((e) => e.state === 'loading');
      if (pending.length === 0) return;
      await Promise.all(pending.map((e) => e.done));
    }
  }

  /**
   * Resolves `provider/model` now. A ready provider is returned as is; a failed or unknown one
   * throws ProviderConfigError naming it and the problem; one still loading (or a registry not yet
   * configured) gives an adapter whose stream waits for the load first.
   */
  resolve(ref: string): { provider: Provider; model: string } {
    const { providerId, model } = parseModelRef(ref);
    if (!this.configured) return { provider: this.deferred(providerId, false), model };
    const entry = this.entries.get(providerId);
    if (!entry) throw this.unknown(providerId, ref);
    if (entry.state === 'ready') return { provider: entry.provider!, model };
    if (entry.state === 'loading') return { provider: this.deferred(providerId, entry.settings.idempotent ?? false), model };
    throw this.failure(entry);
  }

  /**
   * Waits (bounded by the load timeout) until the provider of `ref` (a `provider/model` or a
   * provider id) has loaded, and returns its adapter; throws ProviderConfigError naming the
   * provider and the problem when it failed or nothing configures it. For commands that should
   * refuse before creating anything.
   */
  async ready(ref: string, signal?: AbortSignal): Promise<Provider> {
    const providerId = ref.includes('/') ? parseModelRef(ref).providerId : ref;
    await this.whenConfigured;
    for (;;) {
      signal?.throwIfAborted();
      if (this.closed) throw new ProviderConfigError(`provider "${providerId}" is not available: Loom is shutting down`, []);
      const entry = this.entries.get(providerId);
      if (!entry) throw this.unknown(providerId, ref.includes('/') ? ref : undefined);
      await untilAborted(entry.done, signal);
      if (this.entries.get(providerId) !== entry || entry.state === 'loading') continue; // reconfigured meanwhile
      if (entry.state === 'ready') return entry.provider!;
      throw this.failure(entry, ref.includes('/') ? ref : undefined);
    }
  }

  /** An adapter for a provider still loading: its stream waits for the load, then streams. */
  private deferred(providerId: string, idempotent: boolean): Provider {
    const ready = (signal: AbortSignal) => this.ready(providerId, signal);
    return {
      id: providerId,
      idempotent,
      async *stream(request: ProviderRequest): AsyncIterable<StreamEvent> {
        const provider = await ready(request.signal);
        yield* provider.stream(request);
      },
    };
  }

  private unknown(providerId: string, ref: string | undefined): ProviderConfigError {
    const plugin = this.plugins.get(providerId);
    const where = ref === undefined ? '' : ` (model "${ref}")`;
    if (plugin?.builtin) {
      const vars = plugin.envVariables ?? [];
      return new ProviderConfigError(`provider "${providerId}"${where} is not configured: set ${vars.join(' or ')}, or add providers.${providerId} to $LOOM_HOME/config.jsonc`, vars);
    }
    const known = [...this.entries.keys()];
    return new ProviderConfigError(
      `unknown provider "${providerId}"${where}; configured: ${known.length > 0 ? known.join(', ') : 'none'}. ` +
        `A custom provider needs a config entry: providers.${providerId} = { "kind": "openai", "baseURL": "…" } (kinds: ${this.kinds().join(', ')})`,
      [`providers.${providerId}`],
    );
  }

  private failure(entry: Entry, ref?: string): ProviderConfigError {
    if (entry.state === 'unconfigured') return this.unknown(entry.id, ref);
    return new ProviderConfigError(`provider "${entry.id}" failed to load: ${entry.error ?? 'unknown error'}`, []);
  }

  /** Stops loads in flight; resolving afterwards still works for providers already loaded. */
  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) e.abort.abort();
  }
}

/** `promise`, or the signal's abort reason if it aborts first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error('aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A load that took longer than the registry's load timeout. */
export class LoadTimeoutError extends Error {
  override name = 'LoadTimeoutError';
  constructor(
    readonly providerId: string,
    readonly timeoutMs: number,
  ) {
    super(`did not load within ${timeoutMs} ms`);
  }
}

// ---- the synchronous resolver ------------------------------------------------------------------

/**
 * Resolves `provider/model` to an adapter built from the environment and config on first use (no
 * background loading, no credential store). For tests and callers that hold one config; the
 * runtime uses a ProviderRegistry. Unknown providers and missing credentials are typed config
 * errors naming what is missing; there is never a fallback to a fake model.
 */
export function createProviderResolver(config: ResolvedConfig, env: Env = process.env, credentials?: CredentialProvider) {
  const settings = providerSettings(config);
  const cache = new Map<string, Provider>();
  return (ref: string): { provider: Provider; model: string } => {
    const { providerId, model } = parseModelRef(ref);
    let provider = cache.get(providerId);
    if (!provider) {
      const s = settings[providerId] ?? {};
      if (s.enabled === false) {
        throw new ProviderConfigError(`provider "${providerId}" is disabled in config (providers.${providerId}.enabled is false)`, []);
      }
      const kind = s.kind ?? providerId;
      if (!isBuiltinKind(kind)) {
        const known = [...new Set([...BUILTIN_KINDS, ...Object.keys(config.providers)])];
        throw new ProviderConfigError(`unknown provider "${providerId}" in model "${ref}"; available: ${known.join(', ')}`, []);
      }
      provider = createAdapter({ id: providerId, kind, settings: s, env, credentials });
      cache.set(providerId, provider);
    }
    return { provider, model };
  };
}

/** A provider whose `idempotent` differs (a project config may mark its endpoint idempotent). */
export function withIdempotent(provider: Provider, idempotent: boolean): Provider {
  if (provider.idempotent === idempotent) return provider;
  return { id: provider.id, idempotent, stream: (request) => provider.stream(request) };
}

