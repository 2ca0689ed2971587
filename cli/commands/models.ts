import type { ModelSettings } from '../../llm/catalog.js';
import type { ProviderStatus } from '../../llm/providers.js';
import type { ModelView } from '../../services/models.js';
import { EXIT, UsageError } from '../exit.js';
import { openRuntime } from '../runtime.js';
import { colorsFor } from '../style.js';

export interface ModelsListOptions {
  json?: boolean;
  provider?: string;
}

/**
 * `loom models`: the model catalog (id, capabilities, limits, price, source) and every provider
 * with its state in this process. Waits for the providers to load (each bounded by
 * PROVIDER_LOAD_TIMEOUT_MS), since their state is what it reports.
 */
export async function modelsList(opts: ModelsListOptions): Promise<number> {
  const rt = await openRuntime({ durableAsks: true });
  try {
    await rt.models.settled();
    const view = rt.models.view({ provider: opts.provider });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(view)}\n`);
      return EXIT.ok;
    }
    const c = colorsFor(process.stdout);
    if (view.configError) process.stderr.write(`${c.yellow('warning:')} ${view.configError} (providers come from the environment only)\n`);
    if (view.models.length === 0) process.stdout.write(`no models${opts.provider ? ` of provider ${opts.provider}` : ''} in the catalog\n`);
    else process.stdout.write(`${modelTable(view.models)}\n`);
    process.stdout.write(`\n${providerTable(view.providers)}\n`);
    return EXIT.ok;
  } finally {
    rt.close();
  }
}

export interface ModelsAddOptions {
  name?: string;
  context?: string;
  output?: string;
  inputCost?: string;
  outputCost?: string;
  cacheReadCost?: string;
  cacheWriteCost?: string;
  reasoning?: boolean;
  /** commander's `--no-tools`: false when given. */
  tools?: boolean;
  json?: boolean;
}

/**
 * `loom models add ID`: registers a model for every process sharing $LOOM_HOME (a running
 * `loom serve` sees it without a restart). What is not given keeps the value of the entry below
 * (a provider's built-in entry, config) or the default (tool calling, no reasoning).
 */
export async function modelsAdd(id: string, opts: ModelsAddOptions): Promise<number> {
  const settings = settingsFrom(opts);
  const rt = await openRuntime({ durableAsks: true });
  try {
    // The entries below this one (a provider's built-in entry, config) are there once providers loaded.
    await rt.models.settled();
    const before = rt.catalog.get(id);
    const model = rt.models.register(id, settings, 'cli');
    if (opts.json) process.stdout.write(`${JSON.stringify(model)}\n`);
    else process.stdout.write(`${before === undefined ? 'added' : 'updated'} ${model.id}: ${describe(model)}\n`);
    // The provider's state is worth a note: the model is stored, but sessions cannot use it yet.
    const provider = rt.providers.status(model.provider);
    if (provider === undefined) process.stderr.write(`note: no provider "${model.provider}" is configured; sessions using ${model.id} fail until one is (see loom models)\n`);
    else if (provider.state !== 'ready') process.stderr.write(`note: provider "${model.provider}" is ${provider.state}${provider.error ? `: ${provider.error}` : ''}\n`);
    return EXIT.ok;
  } finally {
    rt.close();
  }
}

/** `loom models rm ID`: removes a registration made by `loom models add` or `POST /models`. */
export async function modelsRm(id: string, opts: { json?: boolean }): Promise<number> {
  const rt = await openRuntime({ durableAsks: true });
  try {
    await rt.models.settled(); // what the removal uncovers (and what an error names) needs the providers loaded
    const { removed, now } = rt.models.unregister(id);
    if (opts.json) process.stdout.write(`${JSON.stringify({ removed, now: now ?? null })}\n`);
    else process.stdout.write(`removed ${removed.id}${now ? `; the ${now.source} entry is in force again: ${describe(now)}` : ''}\n`);
    return EXIT.ok;
  } finally {
    rt.close();
  }
}

// ---- parsing ---------------------------------------------------------------------------------------

/** The settings the flags give; a malformed number is a usage error naming its flag. */
export function settingsFrom(opts: ModelsAddOptions): ModelSettings {
  const settings: ModelSettings = {};
  if (opts.name !== undefined) settings.name = opts.name;
  if (opts.context !== undefined) settings.context = tokens('--context', opts.context);
  if (opts.output !== undefined) settings.output = tokens('--output', opts.output);
  if (opts.reasoning) settings.reasoning = true;
  if (opts.tools === false) settings.toolCalling = false;
  const input = opts.inputCost === undefined ? undefined : dollars('--input-cost', opts.inputCost);
  const output = opts.outputCost === undefined ? undefined : dollars('--output-cost', opts.outputCost);
  const cacheRead = opts.cacheReadCost === undefined ? undefined : dollars('--cache-read-cost', opts.cacheReadCost);
  const cacheWrite = opts.cacheWriteCost === undefined ? undefined : dollars('--cache-write-cost', opts.cacheWriteCost);
  if (input !== undefined || output !== undefined || cacheRead !== undefined || cacheWrite !== undefined) {
    if (input === undefined || output === undefined) throw new UsageError('a price needs both --input-cost and --output-cost (US dollars per million tokens)');
    settings.cost = { input, output, ...(cacheRead === undefined ? {} : { cacheRead }), ...(cacheWrite === undefined ? {} : { cacheWrite }) };
  }
  return settings;
}

/** A token count: digits, optionally with a k (thousand) or m (million) suffix: 128000, 128k, 1m. */
function tokens(flag: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(text);
  const value = m ? Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2]!) ? 1_000 : 1_000_000) : NaN;
  if (!Number.isInteger(value) || value <= 0) throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a positive whole number of tokens (e.g. 128000 or 128k)`);
  return value;
}

function dollars(flag: string, text: string): number {
  const value = /^\s*\d+(?:\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(value)) throw new UsageError(`${flag} ${JSON.stringify(text)}: expected US dollars per million tokens, e.g. 2.5`);
  return value;
}

// ---- output ----------------------------------------------------------------------------------------

/** Tokens: round thousands as `128k`, anything else exactly. */
const k = (n: number | undefined) => (n === undefined ? '-' : n >= 1_000 && n % 1_000 === 0 ? `${n / 1_000}k` : String(n));
const usd = (n: number | undefined) => (n === undefined ? '-' : `$${n.toFixed(n < 0.1 && n > 0 ? 3 : 2)}`);

function describe(m: ModelView | Omit<ModelView, 'providerState'>): string {
  const caps = [m.capabilities.toolCalling ? 'tools' : 'no tools', m.capabilities.reasoning ? 'reasoning' : null].filter(Boolean).join(', ');
  const price = m.cost ? `${usd(m.cost.input)}/${usd(m.cost.output)} per M tokens` : 'price unknown';
  return `${caps}; context ${k(m.limits.context)}, output ${k(m.limits.output)}; ${price} (${m.source})`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

function modelTable(models: ModelView[]): string {
  const rows = [['MODEL', 'TOOLS', 'REASONING', 'CONTEXT', 'OUTPUT', 'INPUT $/M', 'OUTPUT $/M', 'SOURCE', 'PROVIDER']];
  for (const m of models) {
    rows.push([
      m.id,
      m.capabilities.toolCalling ? 'yes' : 'no',
      m.capabilities.reasoning ? 'yes' : 'no',
      k(m.limits.context),
      k(m.limits.output),
      usd(m.cost?.input),
      usd(m.cost?.output),
      m.source,
      m.providerState,
    ]);
  }
  return table(rows);
}

function providerTable(providers: ProviderStatus[]): string {
  const rows = [['PROVIDER', 'KIND', 'STATE', 'MODELS', 'DETAIL']];
  for (const p of providers) {
    const detail = p.error ?? [p.origin ? `from ${p.origin}` : '', p.baseURL ? `at ${p.baseURL}` : ''].filter(Boolean).join(' ');
    rows.push([p.id, p.kind ?? '?', p.state, String(p.models), detail]);
  }
  return table(rows);
}
