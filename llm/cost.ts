import type { ModelInfo } from './modelInfo.js';
import type { Usage } from './types.js';

/** Catalog prices are per million tokens. */
const TOKENS_PER_PRICE_UNIT = 1_000_000;

/**
 * What one response cost in US dollars at the catalog's price, or undefined when the model has
 * no price (a cost budget then cannot be checked). Every adapter counts cached input inside
 * `inputTokens` (llm/types.ts), so cached tokens are taken out and charged at the cache-read price
 * when the catalog has one, at the input price otherwise. Reasoning tokens are part of
 * `outputTokens` for every provider Loom speaks, so they are not charged twice.
 */
export function turnCostUsd(info: Pick<ModelInfo, 'cost'> | undefined, usage: Usage): number | undefined {
  const price = info?.cost;
  if (price === undefined) return undefined;
  const cached = Math.min(usage.cachedInputTokens ?? 0, usage.inputTokens);
  const uncached = usage.inputTokens - cached;
  const dollars = uncached * price.input + cached * (price.cacheRead ?? price.input) + usage.outputTokens * price.output;
  return dollars / TOKENS_PER_PRICE_UNIT;
}
