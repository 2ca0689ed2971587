import { SPINNER_DELAY_MS, SPINNER_INTERVAL_MS } from '../core/limits.js';

/**
 * Terminal styling for the CLI: colour and progress lines only where a person is looking.
 *
 * Colour is on only when the stream is a TTY, `NO_COLOR` is unset or empty (https://no-color.org)
 * and `TERM` is not `dumb`. Output that is piped, redirected or read by a program (`--json`) never
 * carries an escape sequence.
 */
export interface Colors {
  enabled: boolean;
  dim(s: string): string;
  bold(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

type Stream = NodeJS.WritableStream & { isTTY?: boolean };

/** Whether styling may be written to `stream` (see the module comment). */
export function isStyledTerminal(stream: Stream, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}

export function colorsFor(stream: Stream, env: NodeJS.ProcessEnv = process.env): Colors {
  const enabled = isStyledTerminal(stream, env);
  const sgr = (open: number, close: number) => (s: string) => (enabled ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return { enabled, dim: sgr(2, 22), bold: sgr(1, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), cyan: sgr(36, 39) };
}

/**
 * A progress line for long waits (the provider's first chunk, background jobs): a spinner with the
 * elapsed seconds on `stream`, drawn only when both stdout and `stream` are terminals and styling
 * is allowed (so never in a pipe, a file, CI logs or `--json` runs), and only after
 * SPINNER_DELAY_MS so short waits print nothing. `clear()` erases it before other output;
 * `set(null)` stops it.
 */
export class ProgressLine {
  private text: string | null = null;
  private since = 0;
  private timer: NodeJS.Timeout | undefined;
  private drawn = false;
  private frame = 0;
  readonly enabled: boolean;

  constructor(private readonly stream: Stream = process.stderr, options: { enabled?: boolean; env?: NodeJS.ProcessEnv } = {}) {
    this.enabled = options.enabled ?? (isStyledTerminal(stream, options.env) && (process.stdout as Stream).isTTY === true);
  }

  /** Shows `text` (after the delay) until the next `set`; null hides it. */
  set(text: string | null): void {
    if (!this.enabled) return;
    if (text === this.text) return;
    this.clear();
    this.text = text;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (text === null) return;
    this.since = performance.now();
    this.timer = setInterval(() => this.draw(), SPINNER_INTERVAL_MS);
    this.timer.unref();
  }

  /** Erases the line if it is drawn (call before writing anything else). */
  clear(): void {
    if (!this.drawn) return;
    this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  stop(): void {
    this.set(null);
  }

  private draw(): void {
    const elapsed = performance.now() - this.since;
    if (this.text === null || elapsed < SPINNER_DELAY_MS) return;
    const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
    const f = frames[this.frame++ % frames.length];
    this.stream.write(`\r\x1b[2K\x1b[2m${f} ${this.text} (${Math.floor(elapsed / 1000)}s)\x1b[22m`);
    this.drawn = true;
  }
}
