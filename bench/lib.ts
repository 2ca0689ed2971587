/**
 * Shared pieces of the benchmark suites: the suite contract that `bench/run.ts` loads, timing and
 * statistics helpers, memory sampling, and table rendering (console and Markdown).
 *
 * A suite is a module in `bench/suites/` that exports `suite: Suite`. Its report becomes one section
 * of `bench/RESULTS.md`, between `<!-- <name>:begin -->` and `<!-- <name>:end -->`, so each suite
 * rewrites only its own section.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Table {
  title?: string;
  columns: string[];
  rows: string[][];
}

export interface TargetResult {
  name: string;
  measured: string;
  target: string;
  pass: boolean;
}

export interface SuiteReport {
  tables: Table[];
  targets: TargetResult[];
  notes: string[];
}

export interface Suite {
  /** Section id in RESULTS.md and the argv name that selects the suite (file name by convention). */
  name: string;
  /** Section heading, e.g. "Store". */
  title: string;
  run(log: (line: string) => void): Promise<SuiteReport>;
}

// ---- files ---------------------------------------------------------------------------------------

/** A fresh temp directory; `cleanup()` removes it. */
export function tempDir(prefix = 'loom-bench-'): { dir: string; file: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, file: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---- time and statistics -------------------------------------------------------------------------

export const now = (): number => performance.now();

/** Lets timers and I/O run (a `setImmediate` turn of the event loop). */
export const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function median(values: number[]): number {
  return quantile(values, 0.5);
}

/** Quantile by nearest rank on a copy (q in [0, 1]). */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

// ---- memory --------------------------------------------------------------------------------------

export const gcAvailable = (): boolean => typeof (globalThis as { gc?: unknown }).gc === 'function';

/** Full GC when node runs with --expose-gc (bench/run.ts re-spawns itself with it); no-op otherwise. */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

/** Tracks peak heapUsed / rss above a baseline taken (after a GC) when it is created. */
export class MemoryPeak {
  readonly baseHeap: number;
  readonly baseRss: number;
  peakHeap = 0;
  peakRss = 0;
  samples = 0;

  constructor() {
    gc();
    const m = process.memoryUsage();
    this.baseHeap = m.heapUsed;
    this.baseRss = m.rss;
  }

  sample(): void {
    const m = process.memoryUsage();
    this.samples++;
    if (m.heapUsed - this.baseHeap > this.peakHeap) this.peakHeap = m.heapUsed - this.baseHeap;
    if (m.rss - this.baseRss > this.peakRss) this.peakRss = m.rss - this.baseRss;
  }
}

/** Live (retained) heap above the baseline: forces a GC before each sample, so it is slow. */
export class LiveHeap {
  readonly base: number;
  peak = 0;

  constructor() {
    gc();
    this.base = process.memoryUsage().heapUsed;
  }

  sample(): void {
    gc();
    const d = process.memoryUsage().heapUsed - this.base;
    if (d > this.peak) this.peak = d;
  }
}

// ---- formatting ----------------------------------------------------------------------------------

/** 12,345 / 1.23 M style, for rates and counts. */
export function fmtNum(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 10_000_000) return `${(n / 1_000_000).toFixed(1)} M`;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtBytes(n: number): string {
  const sign = n < 0 ? '-' : '';
  const a = Math.abs(n);
  if (a >= 1024 * 1024) return `${sign}${(a / (1024 * 1024)).toFixed(1)} MiB`;
  if (a >= 1024) return `${sign}${(a / 1024).toFixed(1)} KiB`;
  return `${sign}${a.toFixed(0)} B`;
}

export function fmtRate(n: number, unit: string): string {
  return `${fmtNum(n)} ${unit}`;
}

export function fmtBytesRate(bytesPerSecond: number): string {
  return `${fmtBytes(bytesPerSecond)}/s`;
}

export function fmtMs(ms: number): string {
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${(ms * 1000).toFixed(0)} µs`;
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return '—';
  return `${r.toFixed(2)}×`;
}

export function machine(): string {
  const c = cpus();
  return `${c.length} cores (${c[0]?.model.trim() ?? 'unknown cpu'}), node ${process.version}, ${process.platform}/${process.arch}`;
}

export function renderConsole(table: Table): string {
  const all = [table.columns, ...table.rows];
  const widths = table.columns.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [table.title ? `${table.title}` : '', line(table.columns), rule, ...table.rows.map(line)].filter((l) => l !== '').join('\n');
}

export function renderMarkdown(table: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const head = `| ${table.columns.map(esc).join(' | ')} |`;
  const align = `|${table.columns.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`;
  const rows = table.rows.map((r) => `| ${r.map(esc).join(' | ')} |`);
  return [table.title ? `**${table.title}**\n` : '', head, align, ...rows].filter((l) => l !== '').join('\n');
}
