import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { turnCostUsd } from '../../llm/cost.js';
import type { ModelInfo } from '../../llm/modelInfo.js';
import { assertBudgetPriced, BudgetPriceUnknownError, requestBudgetFor } from '../../services/budget.js';
import { ConfigError, globalConfigPath, loadConfig, projectConfigPath } from '../../services/config.js';
import { tempDir } from '../helpers.js';

/** The config key `budget`, the budget an admission records, and turn pricing. */

const info = (cost?: ModelInfo['cost']): ModelInfo => ({ id: 'p/m', provider: 'p', capabilities: { toolCalling: true, reasoning: true }, limits: {}, ...(cost ? { cost } : {}), source: 'builtin' });

function dirs() {
  const home = tempDir('loom-budget-home-');
  const location = tempDir('loom-budget-project-');
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  };
  return { home, location, global: (t: string) => write(globalConfigPath(home), t), project: (t: string) => write(projectConfigPath(location), t) };
}

describe('config - budget', () => {
  it('loadConfig - reads budget from the global and project files, merged limit by limit; absent when unset', async () => {
    const d = dirs();
    expect((await loadConfig({ home: d.home, location: d.location })).config.budget).toBeUndefined();
    d.global('{ "version": 1, "budget": { "activity": { "tokens": 50000, "costUsd": 1 }, "session": { "costUsd": 10 } } }');
    d.project('{ "version": 1, "budget": { "activity": { "tokens": 2000 } } }');
    expect((await loadConfig({ home: d.home, location: d.location })).config.budget).toEqual({ activity: { tokens: 2_000, costUsd: 1 }, session: { costUsd: 10 } });
  });

  it('loadConfig - refuses a budget that sets nothing, a negative or fractional limit, or an unknown key, naming the field', async () => {
    const cases: [string, string][] = [
      ['{ "version": 1, "budget": { "activity": {} } }', 'budget.activity'],
      ['{ "version": 1, "budget": { "session": { "tokens": 1.5 } } }', 'budget.session.tokens'],
      ['{ "version": 1, "budget": { "activity": { "costUsd": -1 } } }', 'budget.activity.costUsd'],
      ['{ "version": 1, "budget": { "daily": { "tokens": 1 } } }', 'budget.daily'],
      ['{ "version": 1, "budget": { "activity": { "dollars": 1 } } }', 'budget.activity.dollars'],
    ];
    for (const [text, field] of cases) {
      const d = dirs();
      d.global(text);
      const error = await loadConfig({ home: d.home }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe(field);
    }
  });
});

describe('services/budget', () => {
  it('requestBudgetFor - lays the request\'s limits over the config one dimension at a time; nothing set gives undefined', () => {
    expect(requestBudgetFor(undefined)).toBeUndefined();
    expect(requestBudgetFor(undefined, { activity: {} })).toBeUndefined();
    expect(requestBudgetFor({ activity: { tokens: 100, costUsd: 2 }, session: { tokens: 1_000 } }, { activity: { costUsd: 0.5 } })).toEqual({
      activity: { tokens: 100, costUsd: 0.5 },
      session: { tokens: 1_000 },
    });
    expect(requestBudgetFor(undefined, { activity: { tokens: 5 } })).toEqual({ activity: { tokens: 5 } });
  });

  it('assertBudgetPriced - a cost limit needs the model\'s price; a token budget never does', () => {
    const catalog = (ref: string) => (ref === 'p/priced' ? info({ input: 1, output: 2 }) : ref === 'p/free' ? info() : undefined);
    expect(() => assertBudgetPriced({ activity: { tokens: 5 } }, 'p/unknown', catalog)).not.toThrow();
    expect(() => assertBudgetPriced({ activity: { costUsd: 1 } }, 'p/priced', catalog)).not.toThrow();
    expect(() => assertBudgetPriced(undefined, 'p/unknown', undefined)).not.toThrow();
    const error = (() => {
      try {
        assertBudgetPriced({ session: { costUsd: 1 } }, 'p/free', catalog, { session: '--session-usd' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(BudgetPriceUnknownError);
    expect(error).toMatchObject({ model: 'p/free', field: '--session-usd' });
    expect((error as Error).message).toMatch(/^--session-usd: a cost budget needs the price of model p\/free/);
    expect(() => assertBudgetPriced({ activity: { costUsd: 1 } }, 'p/unknown', undefined)).toThrow(/budget\.activity\.costUsd: .* model p\/unknown/);
  });
});

describe('llm/cost', () => {
  it('turnCostUsd - input, cached input at the cache-read price, and output, per million tokens', () => {
    const price = info({ input: 3, output: 15, cacheRead: 0.3 });
    expect(turnCostUsd(price, { inputTokens: 1_000_000, outputTokens: 0 })).toBeCloseTo(3, 10);
    expect(turnCostUsd(price, { inputTokens: 10_000, outputTokens: 2_000, cachedInputTokens: 4_000 })).toBeCloseTo((6_000 * 3 + 4_000 * 0.3 + 2_000 * 15) / 1e6, 12);
    // Without a cache-read price cached input costs the input price; reasoning is inside the output already.
    expect(turnCostUsd(info({ input: 1, output: 2 }), { inputTokens: 100, outputTokens: 50, cachedInputTokens: 40, reasoningTokens: 30 })).toBeCloseTo((100 + 100) / 1e6, 12);
  });

  it('turnCostUsd - undefined without a price (unknown, not free)', () => {
    expect(turnCostUsd(undefined, { inputTokens: 1, outputTokens: 1 })).toBeUndefined();
    expect(turnCostUsd(info(), { inputTokens: 1, outputTokens: 1 })).toBeUndefined();
  });
});
