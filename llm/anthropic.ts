/**
 * The Anthropic Messages adapter. One `stream()` call is one attempt: a POST to
 * `{baseURL}/v1/messages` with `stream: true`, read as server-sent events (message_start,
 * content_block_start/delta/stop, message_delta, message_stop, ping, error) and normalised into
 * `StreamEvent`s. Thinking blocks (with their signatures) and redacted thinking travel in the
 * finish event's `providerMetadata.anthropic.thinking` and are sent back unchanged when the
 * assistant message is replayed. Every failure reaches the caller as a typed `ProviderError`.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { request as undiciRequest, type Dispatcher } from 'undici';
import { z } from 'zod';
import { systemClock, type Clock } from '../core/clock.js';
import {
  ANTHROPIC_MAX_TOKENS_DEFAULT,
  PROVIDER_ERROR_BODY_BYTES_MAX,
  PROVIDER_ERROR_BODY_READ_BYTES_MAX,
  PROVIDER_HEADERS_TIMEOUT_MS,
  PROVIDER_IDLE_TIMEOUT_MS,
  PROVIDER_REQUEST_TIMEOUT_MS,
  PROVIDER_RESPONSE_BYTES_MAX,
  SSE_EVENT_BYTES_MAX,
  TOOL_ARGUMENTS_BYTES_MAX,
} from '../core/limits.js';
import { withExtraHeaders } from './headers.js';
import {
  excerptErrorBody,
  ProviderAuthError,
  ProviderBadRequestError,
  ProviderConfigError,
  providerErrorFromResponse,
  ProviderContextOverflowError,
  isContextOverflow,
  ProviderMalformedChunkError,
  ProviderNotFoundError,
  ProviderRateLimitError,
  ProviderResponseTooLargeError,
  ProviderServerError,
  ProviderStreamTruncatedError,
  truncateUtf8,
  type AnyProviderError,
  type HttpFailure,
  type ProviderTimeoutPhase,
} from './errors.js';
import { redactSecrets, type CredentialProvider } from '../services/credentials.js';
import { createRequestAuth, redactFailure, type RequestAuth, type RequestAuthHeaders } from './auth.js';
import { abortedError, AttemptGuard, positive, readBody, readText, release, type BodyProgress } from './http.js';
import { lowerCaseHeaders } from './openai.js';
import type {
  ChatMessage,
  FinishReason,
  Provider,
  ProviderMetadata,
  ProviderRequest,
  StreamEvent,
  ToolSpec,
  Usage,
} from './types.js';

/** Where requests go when no base URL is given. */
export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
/** The API version header every request carries. */
export const ANTHROPIC_VERSION = '2023-06-01';

export interface AnthropicProviderOptions {
  /** Base URL without `/v1`, e.g. `https://api.anthropic.com`. Default: Anthropic. */
  baseURL?: string;
  /** Sent as `x-api-key` when `credentials` has nothing for this provider. */
  apiKey?: string;
  /**
   * Asked before every request for this provider's credential (environment over the credentials
   * file, tokens refreshed): an API key goes as `x-api-key`, a token as `Authorization: Bearer`,
   * basic as Basic, custom headers as given. Either this or `apiKey` is required.
   */
  credentials?: CredentialProvider;
  /** The id `credentials` is asked for. Default `anthropic`. */
  credentialId?: string;
  /** Mark repeated requests harmless (enables automatic recovery retries). Default false. */
  idempotent?: boolean;
  /** Extra request headers (config `providers.<id>.headers`); the adapter's own headers win. */
  headers?: Record<string, string>;
  /** `max_tokens` when the request names none. Default ANTHROPIC_MAX_TOKENS_DEFAULT. */
  maxTokens?: number;
  /** Time to the response headers. Default PROVIDER_HEADERS_TIMEOUT_MS. */
  headersTimeoutMs?: number;
  /** Longest silence between two chunks. Default PROVIDER_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Whole-attempt timeout. Default PROVIDER_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
  /** Bytes of one response read before it is cut off. Default PROVIDER_RESPONSE_BYTES_MAX. */
  responseBytesMax?: number;
  /** An undici dispatcher. Default: undici's global dispatcher. */
  dispatcher?: Dispatcher;
  /** Wall time for HTTP-date `retry-after` values. */
  clock?: Clock;
}

interface ResolvedConfig {
  url: string;
  target: string;
  /** The auth headers of each request (asked per request; see llm/auth.ts). */
  auth: RequestAuth;
  /** Extra headers (config), lower-cased; the auth and the adapter's own headers win. */
  headers: Record<string, string>;
  maxTokens: number;
  timeouts: Record<ProviderTimeoutPhase, number>;
  responseBytesMax: number;
  dispatcher: Dispatcher | undefined;
  clock: Clock;
}

/**
 * Creates the `anthropic` provider. Each `stream()` call makes one HTTP request; retries are the
 * caller's decision. Throws ProviderConfigError for a missing key or a base URL that is not
 * http(s), RangeError for a timeout or bound that is not a positive number.
 */
export function createAnthropicProvider(options: AnthropicProviderOptions): Provider {
  const config = resolveConfig(options);
  return {
    id: 'anthropic',
    idempotent: options.idempotent ?? false,
    stream: (request) => streamAttempt(config, request),
  };
}

/**
 * The provider configured from the environment: `ANTHROPIC_API_KEY` (required) and
 * `ANTHROPIC_BASE_URL` (optional). Without a key it throws ProviderConfigError naming it.
 */
export function anthropicProviderFromEnv(
  env: Record<string, string | undefined> = process.env,
  options: Omit<AnthropicProviderOptions, 'baseURL' | 'apiKey'> = {},
): Provider {
  const apiKey = nonEmpty(env.ANTHROPIC_API_KEY);
  if (apiKey === undefined && options.credentials?.has?.(options.credentialId ?? 'anthropic') !== true) {
    throw new ProviderConfigError('ANTHROPIC_API_KEY is not set: set it (or run `loom auth set anthropic`) to use anthropic/… models', ['ANTHROPIC_API_KEY']);
  }
  return createAnthropicProvider({ ...options, apiKey, baseURL: nonEmpty(env.ANTHROPIC_BASE_URL) });
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

// ---- configuration -----------------------------------------------------------------------------

function resolveConfig(options: AnthropicProviderOptions): ResolvedConfig {
  if (options.apiKey === '') throw new ProviderConfigError('The Anthropic API key is empty', ['ANTHROPIC_API_KEY']);
  if (options.apiKey === undefined && options.credentials === undefined) {
    throw new ProviderConfigError('The Anthropic provider needs an API key or a credential provider', ['ANTHROPIC_API_KEY']);
  }
  const base = parseBaseURL(options.baseURL ?? ANTHROPIC_DEFAULT_BASE_URL);
  base.pathname = `${base.pathname.replace(/\/+$/, '')}/v1/messages`;
  return {
    url: base.href,
    target: `POST ${base.href}`,
    auth: createRequestAuth({
      providerId: options.credentialId ?? 'anthropic',
      credentials: options.credentials,
      apiKey: options.apiKey,
      apiKeyHeader: 'x-api-key',
      required: true,
      variables: ['ANTHROPIC_API_KEY'],
    }),
    headers: lowerCaseHeaders(options.headers),
    maxTokens: positive('maxTokens', options.maxTokens ?? ANTHROPIC_MAX_TOKENS_DEFAULT),
    timeouts: {
      headers: positive('headersTimeoutMs', options.headersTimeoutMs ?? PROVIDER_HEADERS_TIMEOUT_MS),
      idle: positive('idleTimeoutMs', options.idleTimeoutMs ?? PROVIDER_IDLE_TIMEOUT_MS),
      total: positive('requestTimeoutMs', options.requestTimeoutMs ?? PROVIDER_REQUEST_TIMEOUT_MS),
    },
    responseBytesMax: positive('responseBytesMax', options.responseBytesMax ?? PROVIDER_RESPONSE_BYTES_MAX),
    dispatcher: options.dispatcher,
    clock: options.clock ?? systemClock,
  };
}

function parseBaseURL(baseURL: string): URL {
  let url: URL;
  try {
    url = new URL(baseURL);
  } catch (error) {
    throw new ProviderConfigError(`The Anthropic base URL "${baseURL}" is not a valid URL`, ['ANTHROPIC_BASE_URL'], { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ProviderConfigError(`The Anthropic base URL "${baseURL}" must start with http:// or https://`, ['ANTHROPIC_BASE_URL']);
  }
  return url;
}


// ---- request body ------------------------------------------------------------------------------

/** A thinking block as streamed, kept to be sent back unchanged. */
export type AnthropicThinking = { thinking: string; signature: string } | { redacted: string };

type WireBlock = Record<string, unknown>;
interface WireMessage {
  role: 'user' | 'assistant';
  content: string | WireBlock[];
}

/**
 * The Messages request body for one attempt. System messages become the top-level `system`;
 * an assistant message's thinking blocks (from `providerMetadata.anthropic.thinking`) come first,
 * then its text and `tool_use` blocks; tool results become `tool_result` blocks of one user
 * message (consecutive results are merged, as the API requires).
 */
export function buildMessagesBody(
  request: Pick<ProviderRequest, 'model' | 'messages' | 'tools' | 'maxOutputTokens' | 'temperature' | 'topP'>,
  maxTokens: number = ANTHROPIC_MAX_TOKENS_DEFAULT,
): Record<string, unknown> {
  const system = request.messages.filter((m) => m.role === 'system').map((m) => m.content);
  const messages: WireMessage[] = [];
  for (const message of request.messages) appendWireMessage(messages, message);
  const body: Record<string, unknown> = {
    model: request.model,
    max_tokens: request.maxOutputTokens ?? maxTokens,
    messages,
    stream: true,
  };
  if (system.length > 0) body.system = system.join('\n\n');
  if (request.tools.length > 0) body.tools = request.tools.map(toWireTool);
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.topP !== undefined) body.top_p = request.topP;
  return body;
}

function toWireTool(tool: ToolSpec): Record<string, unknown> {
  return { name: tool.name, description: tool.description, input_schema: tool.parameters };
}

function appendWireMessage(messages: WireMessage[], message: ChatMessage): void {
  switch (message.role) {
    case 'system':
      return;
    case 'user':
      messages.push({ role: 'user', content: message.content });
      return;
    case 'assistant': {
      const content = assistantBlocks(message);
      // The API rejects an assistant message without content; an empty one carries nothing.
      if (content.length > 0) messages.push({ role: 'assistant', content });
      return;
    }
    case 'tool': {
      const block: WireBlock = { type: 'tool_result', tool_use_id: message.toolCallId, content: message.content };
      if (message.isError === true) block.is_error = true;
      const last = messages.at(-1);
      if (last?.role === 'user' && Array.isArray(last.content) && last.content.every((b) => b.type === 'tool_result')) {
        last.content.push(block);
      } else {
        messages.push({ role: 'user', content: [block] });
      }
      return;
    }
  }
}

function assistantBlocks(message: Extract<ChatMessage, { role: 'assistant' }>): WireBlock[] {
  const blocks: WireBlock[] = thinkingOf(message.providerMetadata).map((t) =>
    'redacted' in t ? { type: 'redacted_thinking', data: t.redacted } : { type: 'thinking', thinking: t.thinking, signature: t.signature },
  );
  if (message.content !== '') blocks.push({ type: 'text', text: message.content });
  for (const call of message.toolCalls ?? []) {
    blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: parseInput(call.arguments) });
  }
  return blocks;
}

/** The thinking blocks kept in the metadata; anything of another shape is left out. */
function thinkingOf(metadata: ProviderMetadata | undefined): AnthropicThinking[] {
  const list = (metadata?.anthropic as { thinking?: unknown } | undefined)?.thinking;
  if (!Array.isArray(list)) return [];
  return list.filter((t): t is AnthropicThinking => {
    if (typeof t !== 'object' || t === null) return false;
    const r = t as Record<string, unknown>;
    return typeof r.redacted === 'string' || (typeof r.thinking === 'string' && typeof r.signature === 'string');
  });
}

/** `tool_use.input` must be an object; invalid arguments (already reported to the model) become `{}`. */
function parseInput(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

// ---- one attempt -------------------------------------------------------------------------------



async function* streamAttempt(config: ResolvedConfig, request: ProviderRequest): AsyncGenerator<StreamEvent> {
  if (request.signal.aborted) throw abortedError(request.signal);
  const guard = new AttemptGuard(request.signal, config);
  const progress: BodyProgress = { bytes: 0, complete: false };
  let response: Dispatcher.ResponseData | undefined;
  let auth: RequestAuthHeaders | undefined;
  try {
    auth = await config.auth.headers(guard.signal);
    response = await send(config, request, auth, guard.signal);
    guard.disarm('headers');
    const chunks = readBody(response.body, guard, progress, config);
    await rejectUnlessEventStream(config, request, response, chunks, auth.secrets);
    for await (const event of decodeEvents(chunks, new MessagesTurn())) {
      yield event;
      guard.check();
    }
    progress.complete = true;
  } catch (error) {
    throw redactFailure(guard.toProviderError(error, response !== undefined), auth);
  } finally {
    guard.dispose();
    if (response !== undefined) release(response.body, progress);
  }
}

function send(config: ResolvedConfig, request: ProviderRequest, auth: RequestAuthHeaders, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
  return undiciRequest(config.url, {
    method: 'POST',
    headers: withExtraHeaders(
      {
        ...config.headers,
        ...lowerCaseHeaders(auth.headers),
        'content-type': 'application/json',
        accept: 'text/event-stream',
        'anthropic-version': ANTHROPIC_VERSION,
      },
      request.headers,
    ),
    body: JSON.stringify(buildMessagesBody(request, config.maxTokens)),
    signal,
    dispatcher: config.dispatcher,
    // The attempt guard owns every timer, so undici's own header and body timeouts are off.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
}

/** As llm/openai.ts's: the body is redacted with what the request sent before anything is cut from it. */
async function rejectUnlessEventStream(
  config: ResolvedConfig,
  request: ProviderRequest,
  response: Dispatcher.ResponseData,
  chunks: AsyncIterable<Buffer>,
  secrets: readonly string[],
): Promise<void> {
  const { statusCode: status, headers } = response;
  if (status < 200 || status >= 300) {
    const body = redactSecrets(await readText(chunks, PROVIDER_ERROR_BODY_READ_BYTES_MAX), secrets);
    throw anthropicHttpError({ status, headers, body, target: config.target, model: request.model, nowMs: config.clock.now() });
  }
  const contentType = String(headers['content-type'] ?? '');
  if (contentType.includes('application/json')) {
    const body = redactSecrets(await readText(chunks, PROVIDER_ERROR_BODY_READ_BYTES_MAX), secrets);
    throw new ProviderMalformedChunkError(`Expected an event stream from ${config.target} but got JSON: ${excerptErrorBody(body)}`, { status });
  }
}

/**
 * The shared HTTP mapping (which honours `retry-after` on 429 and 5xx alike), plus what Anthropic
 * adds: 529 means the API is overloaded, and the message says so.
 */
export function anthropicHttpError(failure: HttpFailure): AnyProviderError {
  const error = providerErrorFromResponse(failure);
  if (failure.status !== 529 || !(error instanceof ProviderServerError)) return error;
  return new ProviderServerError(error.message.replace('(HTTP 529)', '(HTTP 529, overloaded)'), { status: failure.status, retryAfterMs: error.retryAfterMs });
}




// ---- server-sent events ------------------------------------------------------------------------

async function* decodeEvents(chunks: AsyncIterable<Buffer>, turn: MessagesTurn): AsyncGenerator<StreamEvent> {
  const messages: EventSourceMessage[] = [];
  let overflow = false;
  const parser = createParser({
    maxBufferSize: SSE_EVENT_BYTES_MAX,
    onEvent: (message) => messages.push(message),
    onError: (error) => {
      if (error.type === 'max-buffer-size-exceeded') overflow = true;
    },
  });
  const feed = (text: string): EventSourceMessage[] => {
    try {
      parser.feed(text);
    } catch (error) {
      if (!overflow) throw error;
    }
    if (overflow) throw new ProviderMalformedChunkError(`A stream event passed ${SSE_EVENT_BYTES_MAX} bytes`);
    return messages.splice(0);
  };
  const decoder = new TextDecoder();
  for await (const bytes of chunks) {
    for (const message of feed(decoder.decode(bytes, { stream: true }))) {
      yield* turn.accept(message);
      if (turn.done) return;
    }
  }
  for (const message of feed('\n\n')) {
    yield* turn.accept(message);
    if (turn.done) return;
  }
  throw new ProviderStreamTruncatedError('The stream ended before the model finished (no message_stop)');
}

// ---- events ------------------------------------------------------------------------------------

const count = z.number().nullish();
const UsageSchema = z.looseObject({
  input_tokens: count,
  output_tokens: count,
  cache_read_input_tokens: count,
  cache_creation_input_tokens: count,
});

/** Permissive: unknown event types and fields pass, the fields used are checked. */
const EventSchema = z.looseObject({
  type: z.string(),
  index: z.number().int().nonnegative().optional(),
  message: z.looseObject({ usage: UsageSchema.nullish() }).optional(),
  content_block: z
    .looseObject({
      type: z.string(),
      text: z.string().optional(),
      thinking: z.string().optional(),
      signature: z.string().optional(),
      data: z.string().optional(),
      id: z.string().optional(),
      name: z.string().optional(),
    })
    .optional(),
  delta: z
    .looseObject({
      type: z.string().optional(),
      text: z.string().optional(),
      thinking: z.string().optional(),
      signature: z.string().optional(),
      partial_json: z.string().optional(),
      stop_reason: z.string().nullish(),
    })
    .optional(),
  usage: UsageSchema.nullish(),
  error: z.looseObject({ type: z.string().optional(), message: z.string().optional() }).optional(),
});

type AnthropicEvent = z.infer<typeof EventSchema>;

function parseEvent(data: string): AnthropicEvent {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (error) {
    throw new ProviderMalformedChunkError(`The provider sent a stream event that is not JSON: ${excerpt(data)}`, { cause: error });
  }
  const result = EventSchema.safeParse(json);
  if (!result.success) {
    const problem = z.prettifyError(result.error).replace(/\s+/g, ' ');
    throw new ProviderMalformedChunkError(`The provider sent an event of the wrong shape (${problem}): ${excerpt(data)}`);
  }
  return result.data;
}

function excerpt(text: string): string {
  return truncateUtf8(text, PROVIDER_ERROR_BODY_BYTES_MAX);
}

/** An `error` event: its `error.type` decides the class (overloaded and api errors are retryable). */
function streamError(event: AnthropicEvent): AnyProviderError {
  const kind = event.error?.type ?? 'error';
  const message = `The provider reported ${kind} mid-stream: ${excerpt(event.error?.message ?? '')}`;
  switch (kind) {
    case 'rate_limit_error':
      return new ProviderRateLimitError(message);
    case 'authentication_error':
    case 'permission_error':
      return new ProviderAuthError(message);
    case 'not_found_error':
      return new ProviderNotFoundError(message);
    case 'request_too_large':
      return new ProviderContextOverflowError(message);
    case 'invalid_request_error':
      return isContextOverflow({ type: kind, message: event.error?.message }) ? new ProviderContextOverflowError(message) : new ProviderBadRequestError(message);
    default:
      return new ProviderServerError(message);
  }
}

const STOP_REASONS = new Map<string, FinishReason>([
  ['end_turn', 'stop'],
  ['stop_sequence', 'stop'],
  ['tool_use', 'tool_calls'],
  ['max_tokens', 'length'],
  ['refusal', 'content_filter'],
]);

// ---- one turn's state --------------------------------------------------------------------------

type OpenBlock =
  | { kind: 'text' }
  | { kind: 'thinking'; thinking: string; signature: string }
  | { kind: 'redacted'; data: string }
  | { kind: 'tool_use'; id: string; name: string; json: string; bytes: number }
  | { kind: 'other' };

/** Assembles one streamed message; a tool call is emitted when its block stops. */
class MessagesTurn {
  done = false;
  private readonly blocks = new Map<number, OpenBlock>();
  private readonly thinking: AnthropicThinking[] = [];
  private stopReason: string | undefined;
  private calledTools = false;
  private readonly usage: Usage = { inputTokens: 0, outputTokens: 0 };
  private readonly counts: Partial<Record<'input_tokens' | 'output_tokens' | 'cache_read_input_tokens' | 'cache_creation_input_tokens', number>> = {};

  accept(message: EventSourceMessage): StreamEvent[] {
    if (this.done || message.data.trim() === '') return [];
    const event = parseEvent(message.data);
    switch (event.type) {
      case 'message_start':
        this.addUsage(event.message?.usage);
        return [];
      case 'content_block_start':
        return this.start(event);
      case 'content_block_delta':
        return this.delta(event);
      case 'content_block_stop':
        return this.stop(event);
      case 'message_delta':
        if (event.delta?.stop_reason) this.stopReason = event.delta.stop_reason;
        this.addUsage(event.usage);
        return [];
      case 'message_stop':
        return this.finish();
      case 'error':
        throw streamError(event);
      default:
        // `ping` and event types added later carry nothing Loom uses.
        return [];
    }
  }

  private addUsage(usage: AnthropicEvent['usage']): void {
    if (!usage) return;
    // message_delta may repeat some counts of message_start; a count it leaves out keeps its value.
    for (const key of ['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens'] as const) {
      const value = usage[key];
      if (value !== undefined && value !== null) this.counts[key] = value;
    }
    const { input_tokens: input = 0, output_tokens: output = 0, cache_read_input_tokens: cached = 0, cache_creation_input_tokens: written = 0 } = this.counts;
    // `input_tokens` leaves out cached and cache-written tokens; Loom counts every input token.
    this.usage.inputTokens = input + cached + written;
    if (cached > 0) this.usage.cachedInputTokens = cached;
    // Output counts are cumulative: the last one is the total.
    this.usage.outputTokens = output;
  }

  private indexOf(event: AnthropicEvent): number {
    if (event.index === undefined) throw new ProviderMalformedChunkError(`A ${event.type} event has no index`);
    return event.index;
  }

  private start(event: AnthropicEvent): StreamEvent[] {
    const index = this.indexOf(event);
    const block = event.content_block;
    if (block === undefined) throw new ProviderMalformedChunkError(`content_block_start ${index} has no content_block`);
    if (this.blocks.has(index)) throw new ProviderMalformedChunkError(`Content block ${index} started twice`);
    switch (block.type) {
      case 'text':
        this.blocks.set(index, { kind: 'text' });
        return block.text ? [{ type: 'text.delta', delta: block.text }] : [];
      case 'thinking':
        this.blocks.set(index, { kind: 'thinking', thinking: block.thinking ?? '', signature: block.signature ?? '' });
        return block.thinking ? [{ type: 'reasoning.delta', delta: block.thinking }] : [];
      case 'redacted_thinking':
        this.blocks.set(index, { kind: 'redacted', data: block.data ?? '' });
        return [];
      case 'tool_use':
        if (!block.id || !block.name) throw new ProviderMalformedChunkError(`tool_use block ${index} has no id or name`);
        this.blocks.set(index, { kind: 'tool_use', id: block.id, name: block.name, json: '', bytes: 0 });
        return [];
      default:
        this.blocks.set(index, { kind: 'other' });
        return [];
    }
  }

  private delta(event: AnthropicEvent): StreamEvent[] {
    const index = this.indexOf(event);
    const block = this.blocks.get(index);
    if (block === undefined) throw new ProviderMalformedChunkError(`content_block_delta for block ${index}, which never started`);
    const delta = event.delta ?? {};
    switch (delta.type) {
      case 'text_delta':
        return delta.text ? [{ type: 'text.delta', delta: delta.text }] : [];
      case 'thinking_delta':
        if (block.kind !== 'thinking' || !delta.thinking) return [];
        block.thinking += delta.thinking;
        return [{ type: 'reasoning.delta', delta: delta.thinking }];
      case 'signature_delta':
        if (block.kind === 'thinking') block.signature += delta.signature ?? '';
        return [];
      case 'input_json_delta': {
        if (block.kind !== 'tool_use') throw new ProviderMalformedChunkError(`input_json_delta for block ${index}, which is not tool_use`);
        const piece = delta.partial_json ?? '';
        block.bytes += Buffer.byteLength(piece);
        if (block.bytes > TOOL_ARGUMENTS_BYTES_MAX) {
          throw new ProviderResponseTooLargeError(`The arguments of tool call "${block.name}" passed ${TOOL_ARGUMENTS_BYTES_MAX} bytes`);
        }
        block.json += piece;
        return [];
      }
      default:
        return [];
    }
  }

  private stop(event: AnthropicEvent): StreamEvent[] {
    const index = this.indexOf(event);
    const block = this.blocks.get(index);
    if (block === undefined) throw new ProviderMalformedChunkError(`content_block_stop for block ${index}, which never started`);
    this.blocks.delete(index);
    if (block.kind === 'thinking') this.thinking.push({ thinking: block.thinking, signature: block.signature });
    if (block.kind === 'redacted') this.thinking.push({ redacted: block.data });
    if (block.kind !== 'tool_use') return [];
    this.calledTools = true;
    // An empty input means "no arguments"; `{}` is what the model would be shown.
    return [{ type: 'tool.call', call: { id: block.id, name: block.name, arguments: block.json === '' ? '{}' : block.json } }];
  }

  private finish(): StreamEvent[] {
    if (this.blocks.size > 0) throw new ProviderMalformedChunkError(`message_stop arrived with ${this.blocks.size} content block(s) still open`);
    this.done = true;
    const mapped = this.stopReason === undefined ? undefined : STOP_REASONS.get(this.stopReason);
    const finishReason: FinishReason = this.calledTools && (mapped === undefined || mapped === 'stop') ? 'tool_calls' : mapped ?? 'other';
    const finish: StreamEvent = { type: 'finish', finishReason, usage: { ...this.usage } };
    if (this.thinking.length > 0) finish.providerMetadata = { anthropic: { thinking: this.thinking } };
    return [finish];
  }
}
