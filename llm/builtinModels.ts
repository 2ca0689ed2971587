/**
 * Well-known models of the three built-in provider kinds, registered into the catalog (source
 * `builtin`) when the provider of that id loads.
 *
 * PRICES ARE A SNAPSHOT: US dollars per million tokens as published by OpenAI and Anthropic in
 * late 2025 (standard tier, no batch discount). Providers change them; Loom does not fetch them.
 * Override any field without waiting for a Loom release: in `$LOOM_HOME/config.jsonc` under
 * `providers.<id>.models.<name>` (for example `{ "cost": { "input": 2, "output": 8 } }`), or with
 * `loom models add <provider/model> --input-cost X --output-cost Y` (or `POST /models`); what you
 * leave out keeps the value below. Context and output limits are in tokens.
 */
import type { ModelSettings } from './catalog.js';

interface WellKnown extends ModelSettings {
  /** The model id the API takes. */
  model: string;
}

const OPENAI: readonly WellKnown[] = [
  { model: 'gpt-5', name: 'GPT-5', toolCalling: true, reasoning: true, context: 400_000, output: 128_000, cost: { input: 1.25, output: 10, cacheRead: 0.125 } },
  { model: 'gpt-5-mini', name: 'GPT-5 mini', toolCalling: true, reasoning: true, context: 400_000, output: 128_000, cost: { input: 0.25, output: 2, cacheRead: 0.025 } },
  { model: 'gpt-5-nano', name: 'GPT-5 nano', toolCalling: true, reasoning: true, context: 400_000, output: 128_000, cost: { input: 0.05, output: 0.4, cacheRead: 0.005 } },
  { model: 'gpt-4.1', name: 'GPT-4.1', toolCalling: true, reasoning: false, context: 1_047_576, output: 32_768, cost: { input: 2, output: 8, cacheRead: 0.5 } },
  { model: 'gpt-4.1-mini', name: 'GPT-4.1 mini', toolCalling: true, reasoning: false, context: 1_047_576, output: 32_768, cost: { input: 0.4, output: 1.6, cacheRead: 0.1 } },
  { model: 'gpt-4.1-nano', name: 'GPT-4.1 nano', toolCalling: true, reasoning: false, context: 1_047_576, output: 32_768, cost: { input: 0.1, output: 0.4, cacheRead: 0.025 } },
  { model: 'gpt-4o', name: 'GPT-4o', toolCalling: true, reasoning: false, context: 128_000, output: 16_384, cost: { input: 2.5, output: 10, cacheRead: 1.25 } },
  { model: 'gpt-4o-mini', name: 'GPT-4o mini', toolCalling: true, reasoning: false, context: 128_000, output: 16_384, cost: { input: 0.15, output: 0.6, cacheRead: 0.075 } },
  { model: 'o3', name: 'o3', toolCalling: true, reasoning: true, context: 200_000, output: 100_000, cost: { input: 2, output: 8, cacheRead: 0.5 } },
  { model: 'o4-mini', name: 'o4-mini', toolCalling: true, reasoning: true, context: 200_000, output: 100_000, cost: { input: 1.1, output: 4.4, cacheRead: 0.275 } },
];

const ANTHROPIC: readonly WellKnown[] = [
  {
    model: 'claude-opus-4-1',
    name: 'Claude Opus 4.1',
    toolCalling: true,
    reasoning: true,
    context: 200_000,
    output: 32_000,
    cost: { input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75 },
  },
  {
    model: 'claude-sonnet-4-5',
    name: 'Claude Sonnet 4.5',
    toolCalling: true,
    reasoning: true,
    context: 200_000,
    output: 64_000,
    cost: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 },
  },
  {
    model: 'claude-sonnet-4-0',
    name: 'Claude Sonnet 4',
    toolCalling: true,
    reasoning: true,
    context: 200_000,
    output: 64_000,
    cost: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 },
  },
  {
    model: 'claude-haiku-4-5',
    name: 'Claude Haiku 4.5',
    toolCalling: true,
    reasoning: true,
    context: 200_000,
    output: 64_000,
    cost: { input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25 },
  },
  {
    model: 'claude-3-5-haiku-latest',
    name: 'Claude Haiku 3.5',
    toolCalling: true,
    reasoning: false,
    context: 200_000,
    output: 8_192,
    cost: { input: 0.8, output: 4, cacheRead: 0.08, cacheWrite: 1 },
  },
];

/**
 * The well-known models of a built-in provider kind, by the model name the API takes. The
 * `openai-responses` kind serves the same OpenAI models as `openai`.
 */
export function builtinModels(kind: string): Record<string, ModelSettings> {
  const list = kind === 'openai' || kind === 'openai-responses' ? OPENAI : kind === 'anthropic' ? ANTHROPIC : [];
  return Object.fromEntries(list.map(({ model, ...settings }) => [model, settings]));
}
