/**
 * What Loom knows about a model (the model catalog's entry, DESIGN §8). The catalog
 * (llm/catalog.ts) holds these in an @xstate/store registry; sessions read them for budgets
 * (cost), compaction (context window) and requests (output limit, capabilities).
 */
export interface ModelInfo {
  /** `provider/model`, the same reference sessions and config use. */
  id: string;
  /** The provider id (the part before the first slash). */
  provider: string;
  /** A display name. */
  name?: string;
  capabilities: {
    toolCalling: boolean;
    reasoning: boolean;
  };
  limits: {
    /** The context window in tokens (input + output). */
    context?: number;
    /** The most output tokens one response may have. */
    output?: number;
  };
  /** Price in US dollars per million tokens; absent when unknown (a cost budget then cannot be checked). */
  cost?: {
    input: number;
    output: number;
    cacheRead?: number;
    cacheWrite?: number;
  };
  /** Who registered it: shipped with Loom, config, a plugin, `loom models add`, the HTTP API. */
  source: 'builtin' | 'config' | 'plugin' | 'cli' | 'http' | 'provider';
}

/** The catalog as sessions and plugins see it. */
export interface ModelCatalog {
  get(id: string): ModelInfo | undefined;
  list(): ModelInfo[];
  /** Adds or replaces an entry; emits `model.added` or `model.updated` (nothing when unchanged). */
  register(info: ModelInfo): void;
  /** Removes an entry; emits `model.removed`; returns whether it was there. */
  remove(id: string): boolean;
}
