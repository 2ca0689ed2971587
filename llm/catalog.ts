/**
 * The model catalog (DESIGN §8, issue 8 item 3): what Loom knows about each `provider/model`
 * (capabilities, context and output limits, prices), held in an @xstate/store store whose
 * transitions emit granular `model.added`, `model.updated` and `model.removed` events.
 *
 * Entries come from several sources, kept apart as layers so that taking one away uncovers what
 * lies beneath instead of losing the model:
 *
 * | layer            | filled by                                                         | rank |
 * |------------------|-------------------------------------------------------------------|------|
 * | `provider:<id>`  | a provider when it loads: its kind's well-known models (builtin)  | 0    |
 * |                  | and the models its config entry lists (config)                    |      |
 * | `plugin`         | `register()` from plugins (source `plugin`)                       | 1    |
 * | `registered`     | `loom models add` / `POST /models` (sources `cli`, `http`)        | 2    |
 *
 * A layer entry is either a full entry (it replaces whatever ranks below it) or a patch (the
 * fields it names override the entry below; a patch with nothing below starts from "tool calling,
 * no reasoning, limits and price unknown"). The entry in force is the fold of the layers by rank;
 * its `source` is the highest layer that contributed.
 *
 * The store is pure data and transitions; it does no I/O. The runtime (services/models.ts) fills
 * it, persists registrations and records the emitted events as system events.
 */
import { createStore } from '@xstate/store';
import { z } from 'zod';
import { CATALOG_MODELS_MAX, MODEL_COST_PER_MTOK_MAX, MODEL_ID_CHARS_MAX, MODEL_NAME_CHARS_MAX, MODEL_TOKENS_MAX } from '../core/limits.js';
import type { ModelCatalog, ModelInfo } from './modelInfo.js';

// ---- schemas -----------------------------------------------------------------------------------

const tokens = z.number().int().positive().max(MODEL_TOKENS_MAX);
const price = z.number().nonnegative().max(MODEL_COST_PER_MTOK_MAX);

/** A price in US dollars per million tokens. */
export const modelCostSchema = z.strictObject({
  input: price,
  output: price,
  cacheRead: price.optional(),
  cacheWrite: price.optional(),
});

/**
 * What config (`providers.<id>.models.<name>`), `loom models add` and `POST /models` may say about a
 * model. Every field is optional: what is left out comes from the entry below (or the defaults).
 */
export const modelSettingsSchema = z.strictObject({
  name: z.string().min(1).max(MODEL_NAME_CHARS_MAX).optional(),
  toolCalling: z.boolean().optional(),
  reasoning: z.boolean().optional(),
  /** The context window in tokens (input + output). */
  context: tokens.optional(),
  /** The most output tokens one response may have. */
  output: tokens.optional(),
  cost: modelCostSchema.optional(),
});
export type ModelSettings = z.infer<typeof modelSettingsSchema>;

/** `provider/model`: a provider id (lower case, digits, `-`, `_`, `.`) and a model name without spaces. */
export const modelIdSchema = z
  .string()
  .max(MODEL_ID_CHARS_MAX)
  .regex(/^[a-z0-9][a-z0-9._-]*\/\S+$/, 'expected "provider/model", for example "openai/gpt-4o" (provider ids are lower case)');

const sources = ['builtin', 'config', 'plugin', 'cli', 'http', 'provider'] as const;

/** A full catalog entry, as `register()` takes it. */
export const modelInfoSchema = z.strictObject({
  id: modelIdSchema,
  provider: z.string().min(1),
  name: z.string().min(1).max(MODEL_NAME_CHARS_MAX).optional(),
  capabilities: z.strictObject({ toolCalling: z.boolean(), reasoning: z.boolean() }),
  limits: z.strictObject({ context: tokens.optional(), output: tokens.optional() }),
  cost: modelCostSchema.optional(),
  source: z.enum(sources),
});

/** A catalog entry that cannot be taken: it names the field that is wrong. */
export class CatalogEntryError extends Error {
  override name = 'CatalogEntryError';
  constructor(
    readonly modelId: string,
    readonly field: string,
    detail: string,
  ) {
    super(`model ${modelId}: ${field === '' ? '' : `${field}: `}${detail}`);
  }
}

/** The catalog already holds CATALOG_MODELS_MAX entries. */
export class CatalogFullError extends Error {
  override name = 'CatalogFullError';
  constructor(readonly modelId: string) {
    super(`the model catalog holds ${CATALOG_MODELS_MAX} models (CATALOG_MODELS_MAX); ${modelId} was not added`);
  }
}

// ---- layers ------------------------------------------------------------------------------------

export type CatalogLayer = `provider:${string}` | 'plugin' | 'registered';

/** One source's word on one model: a full entry, or a patch over what ranks below. */
export interface LayerEntry {
  source: ModelInfo['source'];
  settings: ModelSettings;
  /** True: replaces everything below (a full entry); false: a patch. */
  full: boolean;
}

function rank(layer: string): number {
  if (layer === 'registered') return 2;
  if (layer === 'plugin') return 1;
  return 0;
}

/** The layer a registration of `source` belongs in. */
export function layerFor(source: ModelInfo['source'], provider: string): CatalogLayer {
  if (source === 'cli' || source === 'http') return 'registered';
  if (source === 'plugin') return 'plugin';
  return `provider:${provider}`;
}

/** `provider/model` → its provider id (the part before the first slash). */
export function providerOf(id: string): string {
  const slash = id.indexOf('/');
  return slash <= 0 ? id : id.slice(0, slash);
}

/** A full entry as a layer entry. */
export function entryOf(info: ModelInfo): LayerEntry {
  const settings: ModelSettings = {
    toolCalling: info.capabilities.toolCalling,
    reasoning: info.capabilities.reasoning,
    ...(info.name === undefined ? {} : { name: info.name }),
    ...(info.limits.context === undefined ? {} : { context: info.limits.context }),
    ...(info.limits.output === undefined ? {} : { output: info.limits.output }),
    ...(info.cost === undefined ? {} : { cost: { ...info.cost } }),
  };
  return { source: info.source, settings, full: true };
}

/** Folds one model's layer entries (lowest rank first) into the entry in force, or undefined. */
export function foldEntries(id: string, entries: readonly LayerEntry[]): ModelInfo | undefined {
  let info: ModelInfo | undefined;
  for (const e of entries) {
    const s = e.settings;
    // A full entry starts afresh; a patch keeps what it does not name from the entry below.
    const below = e.full ? undefined : info;
    const name = s.name ?? below?.name;
    const context = s.context ?? below?.limits.context;
    const output = s.output ?? below?.limits.output;
    const cost = s.cost ?? below?.cost;
    info = {
      id,
      provider: providerOf(id),
      ...(name === undefined ? {} : { name }),
      capabilities: {
        toolCalling: s.toolCalling ?? below?.capabilities.toolCalling ?? true,
        reasoning: s.reasoning ?? below?.capabilities.reasoning ?? false,
      },
      limits: { ...(context === undefined ? {} : { context }), ...(output === undefined ? {} : { output }) },
      ...(cost === undefined ? {} : { cost: { ...cost } }),
      source: e.source,
    };
  }
  return info;
}

// ---- the store ---------------------------------------------------------------------------------

interface CatalogContext {
  /** layer → model id → that layer's entry. */
  layers: Record<string, Record<string, LayerEntry>>;
  /** The entries in force. */
  models: Record<string, ModelInfo>;
}

/** A change of the catalog, as emitted by the store (and recorded by the runtime as a system event). */
export type CatalogChange =
  | { type: 'model.added'; model: ModelInfo }
  | { type: 'model.updated'; model: ModelInfo; previous: ModelInfo }
  | { type: 'model.removed'; model: ModelInfo };

const modelPayload = z.object({ model: modelInfoSchema });

/** Layers in rank order, lowest first. */
function orderedLayers(layers: CatalogContext['layers']): string[] {
  return Object.keys(layers).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function effective(layers: CatalogContext['layers'], id: string): ModelInfo | undefined {
  const entries: LayerEntry[] = [];
  for (const layer of orderedLayers(layers)) {
    const e = layers[layer]![id];
    if (e) entries.push(e);
  }
  return foldEntries(id, entries);
}

function sameInfo(a: ModelInfo, b: ModelInfo): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** JSON with object keys sorted, so equal values give equal text whatever order they were built in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

type Emit = {
  'model.added': (payload: { model: ModelInfo }) => void;
  'model.updated': (payload: { model: ModelInfo; previous: ModelInfo }) => void;
  'model.removed': (payload: { model: ModelInfo }) => void;
};

/** Recomputes the entries of `ids` after `layers` changed; emits one event per entry that changed. */
function recompute(context: CatalogContext, layers: CatalogContext['layers'], ids: Iterable<string>, emit: Emit): CatalogContext {
  const models = { ...context.models };
  for (const id of new Set(ids)) {
    const before = models[id];
    const after = effective(layers, id);
    if (after === undefined) {
      if (before === undefined) continue;
      delete models[id];
      emit['model.removed']({ model: before });
    } else if (before === undefined) {
      models[id] = after;
      emit['model.added']({ model: after });
    } else if (!sameInfo(before, after)) {
      models[id] = after;
      emit['model.updated']({ model: after, previous: before });
    }
  }
  return { layers, models };
}

/**
 * The @xstate/store store behind the catalog. Events:
 * - `setLayer {layer, entries}`: the layer holds exactly `entries` from now on (a provider that
 *   (re)loaded, the registered models re-read from the database);
 * - `putEntry {layer, id, entry}`: one entry of one layer (a plugin's registration);
 * - `removeEverywhere {id}`: the model leaves every layer (`ModelCatalog.remove`).
 */
export function createCatalogStore() {
  return createStore({
    schemas: {
      emitted: {
        'model.added': modelPayload,
        'model.updated': z.object({ model: modelInfoSchema, previous: modelInfoSchema }),
        'model.removed': modelPayload,
      },
    },
    context: { layers: {}, models: {} } as CatalogContext,
    on: {
      setLayer: (context, event: { layer: string; entries: Record<string, LayerEntry> }, enqueue) => {
        const old = context.layers[event.layer] ?? {};
        const layers = { ...context.layers };
        if (Object.keys(event.entries).length === 0) delete layers[event.layer];
        else layers[event.layer] = { ...event.entries };
        return recompute(context, layers, [...Object.keys(old), ...Object.keys(event.entries)], enqueue.emit as Emit);
      },
      putEntry: (context, event: { layer: string; id: string; entry: LayerEntry }, enqueue) => {
        const layers = { ...context.layers, [event.layer]: { ...context.layers[event.layer], [event.id]: event.entry } };
        return recompute(context, layers, [event.id], enqueue.emit as Emit);
      },
      removeEverywhere: (context, event: { id: string }, enqueue) => {
        const layers: CatalogContext['layers'] = {};
        for (const [name, entries] of Object.entries(context.layers)) {
          if (!(event.id in entries)) layers[name] = entries;
          else {
            const { [event.id]: _gone, ...rest } = entries;
            if (Object.keys(rest).length > 0) layers[name] = rest;
          }
        }
        return recompute(context, layers, [event.id], enqueue.emit as Emit);
      },
    },
  });
}

export type CatalogStore = ReturnType<typeof createCatalogStore>;

/** The catalog as the runtime holds it: the `ModelCatalog` contract plus layers and change listeners. */
export interface CatalogService extends ModelCatalog {
  /** The underlying @xstate/store store (its `on('model.added', …)` and `subscribe` work too). */
  readonly store: CatalogStore;
  /** Calls `listener` with every change (added, updated, removed), after the store has taken it. */
  onChange(listener: (change: CatalogChange) => void): () => void;
  /** Replaces one layer's entries (see the module comment); emits what changed in force. */
  setLayer(layer: CatalogLayer, entries: Record<string, LayerEntry>): void;
  /** The layers that hold an entry for `id`, lowest rank first. */
  layersOf(id: string): { layer: CatalogLayer; entry: LayerEntry }[];
  size(): number;
}

/**
 * Makes an empty catalog. `register(info)` puts a full entry into the layer of `info.source`
 * (`plugin` → plugin layer, `cli`/`http` → registered, anything else → the provider's layer);
 * `remove(id)` takes the model out of every layer. Both validate first and throw
 * CatalogEntryError naming the field, or CatalogFullError past CATALOG_MODELS_MAX entries.
 */
export function createModelCatalog(): CatalogService {
  const store = createCatalogStore();
  const listeners = new Set<(change: CatalogChange) => void>();
  const tell = (change: CatalogChange) => {
    for (const l of [...listeners]) l(change);
  };
  store.on('model.added', (e) => tell({ type: 'model.added', model: e.model }));
  store.on('model.updated', (e) => tell({ type: 'model.updated', model: e.model, previous: e.previous }));
  store.on('model.removed', (e) => tell({ type: 'model.removed', model: e.model }));
  const context = () => store.getSnapshot().context;
  const checkRoom = (ids: Iterable<string>) => {
    const models = context().models;
    let added = 0;
    for (const id of ids) if (!(id in models)) added++;
    if (added > 0 && Object.keys(models).length + added > CATALOG_MODELS_MAX) throw new CatalogFullError([...ids][0] ?? '');
  };

  return {
    store,
    get: (id) => context().models[id],
    list: () => Object.values(context().models).sort((a, b) => a.id.localeCompare(b.id)),
    size: () => Object.keys(context().models).length,
    register(info) {
      const parsed = modelInfoSchema.safeParse(info);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new CatalogEntryError(String(info?.id ?? '?'), issue.path.join('.'), issue.message);
      }
      if (parsed.data.provider !== providerOf(parsed.data.id)) {
        throw new CatalogEntryError(parsed.data.id, 'provider', `must be "${providerOf(parsed.data.id)}", the part of the id before the slash`);
      }
      checkRoom([parsed.data.id]);
      store.trigger.putEntry({ layer: layerFor(parsed.data.source, parsed.data.provider), id: parsed.data.id, entry: entryOf(parsed.data as ModelInfo) });
    },
    remove(id) {
      const had = id in context().models;
      store.trigger.removeEverywhere({ id });
      return had;
    },
    setLayer(layer, entries) {
      for (const [id, e] of Object.entries(entries)) {
        const parsed = modelSettingsSchema.safeParse(e.settings);
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          throw new CatalogEntryError(id, issue.path.join('.'), issue.message);
        }
        const idOk = modelIdSchema.safeParse(id);
        if (!idOk.success) throw new CatalogEntryError(id, 'id', idOk.error.issues[0]!.message);
      }
      checkRoom(Object.keys(entries));
      store.trigger.setLayer({ layer, entries });
    },
    layersOf(id) {
      const layers = context().layers;
      return orderedLayers(layers)
        .filter((l) => layers[l]![id] !== undefined)
        .map((l) => ({ layer: l as CatalogLayer, entry: layers[l]![id]! }));
    },
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
}
