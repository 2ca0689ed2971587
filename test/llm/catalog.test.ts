import { describe, expect, it } from 'vitest';
import { CATALOG_MODELS_MAX } from '../../core/limits.js';
import { builtinModels } from '../../llm/builtinModels.js';
import { CatalogEntryError, CatalogFullError, createModelCatalog, foldEntries, type CatalogChange, type LayerEntry } from '../../llm/catalog.js';
import type { ModelInfo } from '../../llm/modelInfo.js';

const gpt4o: ModelInfo = {
  id: 'openai/gpt-4o',
  provider: 'openai',
  name: 'GPT-4o',
  capabilities: { toolCalling: true, reasoning: false },
  limits: { context: 128_000, output: 16_384 },
  cost: { input: 2.5, output: 10 },
  source: 'builtin',
};

function recorded() {
  const catalog = createModelCatalog();
  const changes: CatalogChange[] = [];
  catalog.onChange((c) => changes.push(c));
  return { catalog, changes, types: () => changes.map((c) => `${c.type} ${c.model.id}`) };
}

describe('llm/catalog - the @xstate/store registry', () => {
  it('catalog - register emits model.added, a different entry model.updated, the same entry nothing', () => {
    const { catalog, changes, types } = recorded();
    catalog.register(gpt4o);
    catalog.register(gpt4o);
    catalog.register({ ...gpt4o, limits: { context: 64_000, output: 16_384 } });
    expect(types()).toEqual(['model.added openai/gpt-4o', 'model.updated openai/gpt-4o']);
    expect(changes[1]).toMatchObject({ model: { limits: { context: 64_000 } }, previous: { limits: { context: 128_000 } } });
    expect(catalog.get('openai/gpt-4o')?.limits.context).toBe(64_000);
  });

  it('catalog - remove emits model.removed and answers whether the entry was there', () => {
    const { catalog, types } = recorded();
    catalog.register(gpt4o);
    expect(catalog.remove('openai/gpt-4o')).toBe(true);
    expect(catalog.remove('openai/gpt-4o')).toBe(false);
    expect(catalog.get('openai/gpt-4o')).toBeUndefined();
    expect(types()).toEqual(['model.added openai/gpt-4o', 'model.removed openai/gpt-4o']);
  });

  it('catalog - the store emits the granular events itself (store.on), typed by schemas.emitted', () => {
    const catalog = createModelCatalog();
    const seen: string[] = [];
    catalog.store.on('model.added', (e) => seen.push(`added ${e.model.id}`));
    catalog.store.on('model.removed', (e) => seen.push(`removed ${e.model.id}`));
    catalog.register(gpt4o);
    catalog.remove(gpt4o.id);
    expect(seen).toEqual(['added openai/gpt-4o', 'removed openai/gpt-4o']);
  });

  it('catalog - a registration patch overrides only the fields it names; removing it uncovers the entry below (model.updated)', () => {
    const { catalog, types } = recorded();
    catalog.setLayer('provider:openai', { 'openai/gpt-4o': { source: 'builtin', settings: { toolCalling: true, reasoning: false, context: 128_000, output: 16_384, cost: { input: 2.5, output: 10 } }, full: true } });
    catalog.setLayer('registered', { 'openai/gpt-4o': { source: 'cli', settings: { cost: { input: 2, output: 8 } }, full: false } });
    expect(catalog.get('openai/gpt-4o')).toMatchObject({ limits: { context: 128_000, output: 16_384 }, cost: { input: 2, output: 8 }, source: 'cli' });
    catalog.setLayer('registered', {});
    expect(catalog.get('openai/gpt-4o')).toMatchObject({ cost: { input: 2.5, output: 10 }, source: 'builtin' });
    expect(types()).toEqual(['model.added openai/gpt-4o', 'model.updated openai/gpt-4o', 'model.updated openai/gpt-4o']);
  });

  it('catalog - a plugin entry ranks above the provider layer, a registration above both', () => {
    const { catalog } = recorded();
    catalog.setLayer('provider:openai', { 'openai/x': { source: 'builtin', settings: { context: 1_000 }, full: true } });
    catalog.register({ ...gpt4o, id: 'openai/x', source: 'plugin', limits: { context: 2_000 } });
    expect(catalog.get('openai/x')).toMatchObject({ limits: { context: 2_000 }, source: 'plugin' });
    catalog.setLayer('registered', { 'openai/x': { source: 'http', settings: { context: 3_000 }, full: false } });
    expect(catalog.get('openai/x')).toMatchObject({ limits: { context: 3_000 }, source: 'http', cost: gpt4o.cost });
    expect(catalog.layersOf('openai/x').map((l) => l.layer)).toEqual(['provider:openai', 'plugin', 'registered']);
  });

  it('catalog - replacing a layer removes the entries it no longer holds', () => {
    const { catalog, types } = recorded();
    catalog.setLayer('provider:groq', {
      'groq/a': { source: 'config', settings: {}, full: true },
      'groq/b': { source: 'config', settings: {}, full: true },
    });
    catalog.setLayer('provider:groq', { 'groq/b': { source: 'config', settings: {}, full: true } });
    expect(catalog.list().map((m) => m.id)).toEqual(['groq/b']);
    expect(types()).toEqual(['model.added groq/a', 'model.added groq/b', 'model.removed groq/a']);
  });

  it('catalog - a patch with nothing below starts from tool calling, no reasoning, unknown limits and price', () => {
    const entries: LayerEntry[] = [{ source: 'cli', settings: { context: 8_192 }, full: false }];
    expect(foldEntries('local/llama', entries)).toEqual({
      id: 'local/llama',
      provider: 'local',
      capabilities: { toolCalling: true, reasoning: false },
      limits: { context: 8_192 },
      source: 'cli',
    });
  });

  it('catalog - rejects an entry with a bad field, naming it, and keeps what it had', () => {
    const { catalog, changes } = recorded();
    catalog.register(gpt4o);
    expect(() => catalog.register({ ...gpt4o, limits: { context: -5 } })).toThrow(CatalogEntryError);
    expect(() => catalog.register({ ...gpt4o, limits: { context: -5 } })).toThrow(/limits\.context/);
    expect(() => catalog.register({ ...gpt4o, cost: { input: 1e9, output: 1 } })).toThrow(/cost\.input/);
    expect(() => catalog.register({ ...gpt4o, id: 'no-slash' })).toThrow(/id/);
    expect(() => catalog.register({ ...gpt4o, provider: 'anthropic' })).toThrow(/provider: must be "openai"/);
    expect(catalog.get(gpt4o.id)).toEqual(gpt4o);
    expect(changes).toHaveLength(1);
  });

  it('catalog - refuses past CATALOG_MODELS_MAX entries (CatalogFullError), changing nothing', () => {
    const { catalog } = recorded();
    const many: Record<string, LayerEntry> = {};
    for (let i = 0; i < CATALOG_MODELS_MAX; i++) many[`bulk/m${i}`] = { source: 'provider', settings: {}, full: true };
    catalog.setLayer('provider:bulk', many);
    expect(catalog.size()).toBe(CATALOG_MODELS_MAX);
    expect(() => catalog.register({ ...gpt4o, id: 'openai/one-more' })).toThrow(CatalogFullError);
    expect(catalog.size()).toBe(CATALOG_MODELS_MAX);
    catalog.register({ ...gpt4o, id: 'bulk/m1', provider: 'bulk', source: 'plugin' }); // replacing an entry takes no room
  });

  it('builtin models - every entry has capabilities, limits and a price for the three kinds', () => {
    for (const kind of ['openai', 'openai-responses', 'anthropic']) {
      const models = builtinModels(kind);
      expect(Object.keys(models).length).toBeGreaterThan(3);
      for (const [name, m] of Object.entries(models)) {
        expect(name).toMatch(/^\S+$/);
        expect(m.context).toBeGreaterThan(m.output!);
        expect(m.cost!.output).toBeGreaterThanOrEqual(m.cost!.input);
        expect(typeof m.toolCalling).toBe('boolean');
      }
    }
    expect(builtinModels('openai')['gpt-4o-mini']).toBeDefined(); // the default model has a price
    expect(builtinModels('groq')).toEqual({});
  });
});
