import type { ResolvedConfig } from '../services/config.js';
import { anthropicProviderFromEnv } from './anthropic.js';
import { ProviderConfigError } from './errors.js';
import { openAIProviderFromEnv } from './openai.js';
import { openAIResponsesProviderFromEnv } from './openai-responses.js';
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
 * environment and config. Unknown providers and missing credentials are typed config errors
 * that name what is missing; there is never a fallback to a fake model.
 */
export function createProviderResolver(config: ResolvedConfig, env: NodeJS.ProcessEnv = process.env) {
  const cache = new Map<string, Provider>();
  return (ref: string): { provider: Provider; model: string } => {
    const { providerId, model } = parseModelRef(ref);
    let provider = cache.get(providerId);
    if (!provider) {
      provider = buildProvider(providerId, ref, config, env);
      cache.set(providerId, provider);
    }
    return { provider, model };
  };
}

/** The providers Loom knows, by the prefix of `provider/model`. */
export const PROVIDER_IDS = ['openai', 'openai-responses', 'anthropic'] as const;

function buildProvider(providerId: string, ref: string, config: ResolvedConfig, env: NodeJS.ProcessEnv): Provider {
  if (providerId === 'openai' || providerId === 'openai-responses') {
    const o = config.providers.openai ?? {};
    const merged = { ...env };
    if (o.baseURL && !env.OPENAI_BASE_URL) merged.OPENAI_BASE_URL = o.baseURL;
    if (o.apiKey && !env.OPENAI_API_KEY) merged.OPENAI_API_KEY = o.apiKey;
    // openai-responses is configured exactly like openai (same key, base URL and config entry).
    const fromEnv = providerId === 'openai' ? openAIProviderFromEnv : openAIResponsesProviderFromEnv;
    return fromEnv(merged, { idempotent: o.idempotent });
  }
  if (providerId === 'anthropic') {
    const a = config.providers.anthropic ?? {};
    const merged = { ...env };
    if (a.baseURL && !env.ANTHROPIC_BASE_URL) merged.ANTHROPIC_BASE_URL = a.baseURL;
    if (a.apiKey && !env.ANTHROPIC_API_KEY) merged.ANTHROPIC_API_KEY = a.apiKey;
    return anthropicProviderFromEnv(merged, { idempotent: a.idempotent });
  }
  throw new ProviderConfigError(`unknown provider "${providerId}" in model "${ref}"; available: ${PROVIDER_IDS.join(', ')}`, []);
}
