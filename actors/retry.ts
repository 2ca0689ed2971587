/**
 * The backoff before a retry of a provider attempt (DESIGN §5): exponential, capped, with "equal
 * jitter", and never shorter than the delay the provider asked for. The random draw comes from the
 * session's injected source and the result is recorded (`attempt.retrying`), so the machine, and
 * any replay of the log, waits exactly what was drawn.
 */
export interface RetryDelayInput {
  /** Which retry this is: 1 after the initial attempt failed. */
  retry: number;
  /** The base delay of retry 1; it doubles for each further retry. */
  baseMs: number;
  /** The cap of the exponential part (before jitter). */
  maxMs: number;
  /** The share of the exponential delay taken away at random, from 0 (none) to 1 (full jitter). */
  jitterRatio: number;
  /** The provider's `retry-after`, when it gave one: the delay is at least this. */
  retryAfterMs?: number;
  /** A uniform draw in [0, 1). */
  random: () => number;
}

/** The bounds of the jittered exponential delay of `retry` (before retry-after is applied). */
export function retryDelayBounds(input: Omit<RetryDelayInput, 'random' | 'retryAfterMs'>): { min: number; max: number } {
  const exponent = Math.max(0, input.retry - 1);
  const max = Math.min(input.baseMs * 2 ** exponent, input.maxMs);
  return { min: Math.round(max * (1 - input.jitterRatio)), max };
}

/** The delay in whole milliseconds before `retry`: uniform in its bounds, raised to the provider's retry-after. */
export function retryDelayMs(input: RetryDelayInput): number {
  const { min, max } = retryDelayBounds(input);
  const draw = Math.min(Math.max(input.random(), 0), 1);
  const jittered = Math.round(max - (max - min) * draw);
  return Math.max(jittered, Math.ceil(input.retryAfterMs ?? 0));
}
