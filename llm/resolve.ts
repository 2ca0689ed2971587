import { PROVIDER_KINDS, providerKind, type ProviderKind, type ProviderSettings, type ResolvedConfig } from '../services/config.js';
import type { CredentialProvider } from '../services/credentials.js';
import { createAnthropicProvider } from './anthropic.js';
import { ProviderConfigError } from './errors.js';
import { createOpenAIProvider } from './openai.js';
import { createOpenAIResponsesProvider } from './openai-responses.js';
import type { Provider } from './types.js';

/** The model when neither --model, config nor $LOOM_MODEL names one. */
export const DEFAULT_MODEL = 'openai/gpt-4o-mini';

/** Splits `provider/model`; the model part may itself contain slashes (`openai/meta/llama-3`). */
export function parseModelRef(ref: string): { providerId: string; model: string } {
  const slash = ref.indexOf('/');
  if (slash <= 0 || slash === ref.length - 1) {
    throw new ProviderConfigError(`model "${ref}" must be written provider/model, for example openai/gpt-4o-mini`, []);
  }
  return { providerId: ref.slice(0, slash), model: ref.slice(slash + 1) };
}

/**
 * Resolves `provider/model` to a provider adapter, built once per provider id from the
 * environment and config (`providers.<id>`: its kind, base URL, headers). Unknown providers and
 * missing credentials are typed config errors that name what is missing; there is never a
 * fallback to a fake model.
 *
 * With `credentials` (the auth service), adapters ask it for their credential before every
 * request (environment over `$LOOM_HOME/auth.json`, then a version 1 config's `apiKey`), so a key
 * set or rotated with `loom auth set` is used by the next request of a provider already built.
 */
export function createProviderResolver(config: ResolvedConfig, env: NodeJS.ProcessEnv = process.env, credentials?: CredentialProvider) {
  const cache = new Map<string, Provider>();
  return (ref: string): { provider: Provider; model: string } => {
    const { providerId, model } = parseModelRef(ref);
    let provider = cache.get(providerId);
    if (!provider) {
      provider = buildProvider(providerId, ref, config, env, credentials);
      cache.set(providerId, provider);
    }
    return { provider, model };
  };
}

/** The providers Loom knows without config, by the prefix of `provider/model`. */
export const PROVIDER_IDS = PROVIDER_KINDS;

/** What one provider is built from once config and environment are combined. */
interface ProviderSource {
  kind: ProviderKind;
  baseURL?: string;
  apiKey?: string;
  idempotent?: boolean;
  headers?: Record<string, string>;
}

function buildProvider(providerId: string, ref: string, config: ResolvedConfig, env: NodeJS.ProcessEnv, credentials: CredentialProvider | undefined): Provider {
  const settings = settingsOf(providerId, config);
  if (settings?.enabled === false) {
    throw new ProviderConfigError(`provider "${providerId}" is disabled in config (providers.${providerId}.enabled is false)`, []);
  }
  const kind = providerKind(providerId, settings);
  if (kind === undefined) {
    const known = [...new Set([...PROVIDER_KINDS, ...Object.keys(config.providers)])];
    throw new ProviderConfigError(`unknown provider "${providerId}" in model "${ref}"; available: ${known.join(', ')}`, []);
  }
  const builtin = (PROVIDER_KINDS as readonly string[]).includes(providerId);
  const source = builtin ? builtinSource(providerId as ProviderKind, settings, config, env) : customSource(providerId, kind, settings, config);
  return create(providerId, source, credentials);
}

/**
 * A provider's config entry. `openai-responses` without an entry of its own uses `openai`'s
 * (the same endpoint and key, as in version 1).
 */
function settingsOf(providerId: string, config: ResolvedConfig): ProviderSettings | undefined {
  return config.providers[providerId] ?? (providerId === 'openai-responses' ? config.providers.openai : undefined);
}

/** openai, openai-responses, anthropic: the environment (OPENAI_*, ANTHROPIC_*) wins over config. */
function builtinSource(id: ProviderKind, settings: ProviderSettings | undefined, config: ResolvedConfig, env: NodeJS.ProcessEnv): ProviderSource {
  const family = id === 'anthropic' ? 'ANTHROPIC' : 'OPENAI';
  const legacy = config.legacyApiKeys?.[id] ?? (id === 'openai-responses' ? config.legacyApiKeys?.openai : undefined);
  return {
    kind: settings?.kind ?? id,
    baseURL: nonEmpty(env[`${family}_BASE_URL`]) ?? settings?.baseURL,
    apiKey: nonEmpty(env[`${family}_API_KEY`]) ?? legacy,
    idempotent: settings?.idempotent,
    headers: settings?.headers,
  };
}

/** A provider id of the user's own (`providers.local = { kind: "openai", baseURL }`). */
function customSource(id: string, kind: ProviderKind, settings: ProviderSettings | undefined, config: ResolvedConfig): ProviderSource {
  return { kind, baseURL: settings?.baseURL, apiKey: config.legacyApiKeys?.[id], idempotent: settings?.idempotent, headers: settings?.headers };
}

function create(id: string, s: ProviderSource, credentials: CredentialProvider | undefined): Provider {
  // The credential is asked for before every request (environment, then the credentials file);
  // a key from the environment variable or a version 1 config is the fallback.
  const common = { idempotent: s.idempotent, headers: s.headers, credentials, credentialId: id };
  const stored = credentials?.has?.(id) === true || (id === 'openai-responses' && credentials?.has?.('openai') === true);
  if (s.kind === 'anthropic') {
    if (s.apiKey === undefined && !stored) {
      if (id === 'anthropic') throw new ProviderConfigError('ANTHROPIC_API_KEY is not set: set it (or run `loom auth set anthropic`) to use anthropic/… models', ['ANTHROPIC_API_KEY']);
      throw new ProviderConfigError(`provider "${id}" (kind anthropic) has no key: store one with \`loom auth set ${id}\``, []);
    }
    return createAnthropicProvider({ ...common, baseURL: s.baseURL, apiKey: s.apiKey });
  }
  if (s.baseURL === undefined && s.apiKey === undefined && !stored) {
    const what = s.kind === 'openai' ? 'an OpenAI-compatible server (Ollama, llama.cpp, vLLM)' : 'a server that speaks the Responses API';
    throw new ProviderConfigError(
      id === 'openai' || id === 'openai-responses'
        ? `OPENAI_API_KEY or OPENAI_BASE_URL is not set: set OPENAI_API_KEY (or run \`loom auth set openai\`) for api.openai.com, or OPENAI_BASE_URL for ${what}`
        : `provider "${id}" has neither a baseURL in config nor a key: set providers.${id}.baseURL for ${what}, or store a key with \`loom auth set ${id}\``,
      id === 'openai' || id === 'openai-responses' ? ['OPENAI_API_KEY', 'OPENAI_BASE_URL'] : [],
    );
  }
  const options = { ...common, baseURL: s.baseURL, apiKey: s.apiKey };
  return s.kind === 'openai' ? createOpenAIProvider(options) : createOpenAIResponsesProvider(options);
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}
