/**
 * The HTTP mechanics every provider adapter shares (llm/openai.ts, llm/openai-responses.ts,
 * llm/anthropic.ts): one attempt's timers and cancellation folded into one signal, the bounded
 * body reader, the bounded error-body read, connection release, and the typed transport failures.
 * Each adapter keeps only what its API does differently (request body, error mapping, events).
 */
import type { Dispatcher } from 'undici';
import { PROVIDER_DRAIN_BYTES_MAX, PROVIDER_DRAIN_TIMEOUT_MS } from '../core/limits.js';
import {
  ProviderAbortedError,
  ProviderConnectionError,
  ProviderError,
  ProviderResponseTooLargeError,
  ProviderStreamTruncatedError,
  ProviderTimeoutError,
  type ProviderTimeoutPhase,
} from './errors.js';

type ResponseBody = Dispatcher.ResponseData['body'];

/** What the attempt mechanics need of an adapter's resolved configuration. */
export interface AttemptConfig {
  /** `POST <url>`, for messages. */
  target: string;
  timeouts: Record<ProviderTimeoutPhase, number>;
  responseBytesMax: number;
}

/** Largest delay setTimeout honours; longer ones fire at once. */
const TIMER_MS_MAX = 2 ** 31 - 1;

export function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0 || value > TIMER_MS_MAX) {
    throw new RangeError(`${name} must be a positive number no larger than ${TIMER_MS_MAX}, got ${value}`);
  }
  return value;
}

export interface BodyProgress {
  bytes: number;
  /** The stream reached `[DONE]` or its end normally, so the connection may be reused. */
  complete: boolean;
}

export async function readText(chunks: AsyncIterable<Buffer>, bytesMax: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    parts.push(chunk);
    size += chunk.length;
    if (size >= bytesMax) break;
  }
  return Buffer.concat(parts).subarray(0, bytesMax).toString('utf8');
}

/** The body's chunks, with the idle timer armed only while waiting for the server and the byte cap applied. */
export async function* readBody(
  body: ResponseBody,
  guard: AttemptGuard,
  progress: BodyProgress,
  config: AttemptConfig,
): AsyncGenerator<Buffer> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    guard.arm('idle');
    const next = await chunks.next();
    guard.disarm('idle');
    if (next.done === true) return;
    progress.bytes += next.value.length;
    if (progress.bytes > config.responseBytesMax) {
      throw new ProviderResponseTooLargeError(
        `The response from ${config.target} passed ${config.responseBytesMax} bytes and was cut off`,
      );
    }
    yield next.value;
  }
}

/** Lets a finished connection go back to the pool; anything else is closed at once. */
export function release(body: ResponseBody, progress: BodyProgress): void {
  body.on('error', () => {});
  if (!progress.complete) {
    body.destroy();
    return;
  }
  // `dump` counts every byte the body has read, so the limit is what we read plus the drain bound.
  const limit = progress.bytes + PROVIDER_DRAIN_BYTES_MAX;
  body.dump({ limit, signal: AbortSignal.timeout(PROVIDER_DRAIN_TIMEOUT_MS) }).catch(() => {});
}

// ---- cancellation and timers -------------------------------------------------------------------

/**
 * Folds the caller's AbortSignal and the three timers (headers, idle, total) into one signal for
 * undici, and remembers which of them fired so a failure is reported as what it was.
 */
export class AttemptGuard {
  private readonly controller = new AbortController();
  private readonly timers = new Map<ProviderTimeoutPhase, NodeJS.Timeout>();
  private timedOut: ProviderTimeoutPhase | undefined;

  constructor(
    private readonly caller: AbortSignal,
    private readonly config: AttemptConfig,
  ) {
    caller.addEventListener('abort', this.onCallerAbort, { once: true });
    this.arm('total');
    this.arm('headers');
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(phase: ProviderTimeoutPhase): void {
    this.disarm(phase);
    const timer = setTimeout(() => this.expire(phase), this.config.timeouts[phase]);
    timer.unref();
    this.timers.set(phase, timer);
  }

  disarm(phase: ProviderTimeoutPhase): void {
    clearTimeout(this.timers.get(phase));
    this.timers.delete(phase);
  }

  /** Throws when the attempt was stopped; called after each yield so buffered events stop too. */
  check(): void {
    if (this.controller.signal.aborted) throw this.controller.signal.reason;
  }

  /** The typed failure for anything thrown during the attempt. Unknown non-transport errors pass through. */
  toProviderError(error: unknown, responseStarted: boolean): unknown {
    if (this.caller.aborted) return abortedError(this.caller, error);
    if (this.timedOut !== undefined) {
      return new ProviderTimeoutError(this.timedOut, this.config.timeouts[this.timedOut], this.config.target, { cause: error });
    }
    if (error instanceof ProviderError) return error;
    return transportError(error, this.config.target, responseStarted);
  }

  dispose(): void {
    for (const phase of [...this.timers.keys()]) this.disarm(phase);
    this.caller.removeEventListener('abort', this.onCallerAbort);
  }

  private readonly onCallerAbort = (): void => {
    this.controller.abort(this.caller.reason);
  };

  private expire(phase: ProviderTimeoutPhase): void {
    this.timedOut ??= phase;
    const error = new ProviderTimeoutError(phase, this.config.timeouts[phase], this.config.target);
    this.controller.abort(error);
  }
}

export function abortedError(signal: AbortSignal, cause: unknown = signal.reason): ProviderAbortedError {
  return new ProviderAbortedError('The provider request was aborted', { cause });
}

/** Parses a socket or undici failure; anything without an error code is a bug and passes through. */
export function transportError(error: unknown, target: string, responseStarted: boolean): unknown {
  const code = errorCode(error);
  if (code === undefined || code.startsWith('UND_ERR_INVALID')) return error;
  const detail = error instanceof Error && error.message !== '' ? `${code}: ${error.message}` : code;
  if (responseStarted) {
    return new ProviderStreamTruncatedError(`The connection to ${target} broke mid-response (${detail})`, { cause: error });
  }
  return new ProviderConnectionError(`Could not connect to ${target} (${detail}); is the server running?`, { cause: error });
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Node reports a refused connection to a name with several addresses as an AggregateError.
  return error instanceof AggregateError ? errorCode(error.errors[0]) : undefined;
}
