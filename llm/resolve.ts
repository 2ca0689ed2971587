/**
 * Resolving `provider/model` to an adapter. The provider kinds, the registry that loads them as
 * plugins, and the adapter construction live in llm/providers.ts; this module keeps the names
 * callers have always imported.
 */
export { createProviderResolver, parseModelRef, BUILTIN_KINDS as PROVIDER_IDS } from './providers.js';

/** The model when neither --model, config nor $LOOM_MODEL names one. */
export const DEFAULT_MODEL = 'openai/gpt-4o-mini';
