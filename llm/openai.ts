/**
 * The OpenAI Chat Completions adapter: api.openai.com and every server that speaks the same
 * streaming protocol (Ollama, llama.cpp, vLLM, LM Studio, OpenRouter, …). One `stream()` call is
 * one attempt: a POST to `{baseURL}/chat/completions` with `stream: true`, read as server-sent
 * events, validated chunk by chunk and normalised into `StreamEvent`s. Every failure reaches the
 * caller as a typed `ProviderError` (llm/errors.ts).
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { request as undiciRequest, type Dispatcher } from 'undici';
import { z } from 'zod';
import { systemClock, type Clock } from '../core/clock.js';
import { randomIds, type IdGenerator } from '../core/ids.js';
import {
  PROVIDER_ERROR_BODY_BYTES_MAX,
  PROVIDER_ERROR_BODY_READ_BYTES_MAX,
  PROVIDER_HEADERS_TIMEOUT_MS,
  PROVIDER_IDLE_TIMEOUT_MS,
  PROVIDER_REQUEST_TIMEOUT_MS,
  PROVIDER_RESPONSE_BYTES_MAX,
  SSE_EVENT_BYTES_MAX,
  TOOL_ARGUMENTS_BYTES_MAX,
} from '../core/limits.js';
import { redactSecrets, type CredentialProvider } from '../services/credentials.js';
import { createRequestAuth, redactFailure, type RequestAuth, type RequestAuthHeaders } from './auth.js';
import { withExtraHeaders } from './headers.js';
import { abortedError, AttemptGuard, positive, readBody, readText, release, type BodyProgress } from './http.js';
import {
  excerptErrorBody,
  ProviderConfigError,
  providerErrorFromResponse,
  ProviderContextOverflowError,
  isContextOverflow,
  errorFields,
  ProviderMalformedChunkError,
  ProviderResponseTooLargeError,
  ProviderServerError,
  ProviderStreamTruncatedError,
  truncateUtf8,
  type ProviderTimeoutPhase,
} from './errors.js';
import type {
  ChatMessage,
  FinishReason,
  Provider,
  ProviderMetadata,
  ProviderRequest,
  StreamEvent,
  ToolCallRequest,
  ToolSpec,
  Usage,
} from './types.js';

/** Where requests go when no base URL is given. */
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/**
 * The request field that carries `maxOutputTokens`. api.openai.com wants `max_completion_tokens`
 * (reasoning models reject `max_tokens`); most compatible servers only know `max_tokens`.
 */
export type MaxTokensParameter = 'max_tokens' | 'max_completion_tokens';

export interface OpenAIProviderOptions {
  /** Base URL ending in the API version, e.g. `http://127.0.0.1:11434/v1`. Default: OpenAI. */
  baseURL?: string;
  /**
   * Sent as `Authorization: Bearer …` when set and `credentials` has nothing for this provider.
   * Local servers usually need none.
   */
  apiKey?: string;
  /**
   * Asked before every request for this provider's credential (environment over the credentials
   * file, tokens refreshed), so a rotated key is used by the next request. An API key goes as
   * `Authorization: Bearer`, a token as Bearer, basic as Basic, custom headers as given.
   */
  credentials?: CredentialProvider;
  /** The id `credentials` is asked for. Default: the provider's id (`openai`, `openai-responses`). */
  credentialId?: string;
  /** Mark repeated requests harmless (enables automatic recovery retries). Default false. */
  idempotent?: boolean;
  /** Extra request headers (config `providers.<id>.headers`); the adapter's own headers win. */
  headers?: Record<string, string>;
  /** Time to the response headers. Default PROVIDER_HEADERS_TIMEOUT_MS. */
  headersTimeoutMs?: number;
  /** Longest silence between two chunks. Default PROVIDER_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Whole-attempt timeout. Default PROVIDER_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
  /** Bytes of one response read before it is cut off. Default PROVIDER_RESPONSE_BYTES_MAX. */
  responseBytesMax?: number;
  /** Default: `max_completion_tokens` for api.openai.com, `max_tokens` elsewhere. */
  maxTokensParameter?: MaxTokensParameter;
  /** An undici dispatcher (Agent, Pool, MockAgent…). Default: undici's global dispatcher. */
  dispatcher?: Dispatcher;
  /** Ids for tool calls a server sent without one. */
  ids?: IdGenerator;
  /** Wall time for HTTP-date `retry-after` values. */
  clock?: Clock;
}

export interface ResolvedConfig {
  url: string;
  target: string;
  /** The auth headers of each request (asked per request; see llm/auth.ts). */
  auth: RequestAuth;
  /** Extra headers (config), lower-cased; the auth and the adapter's own headers win. */
  headers: Record<string, string>;
  timeouts: Record<ProviderTimeoutPhase, number>;
  responseBytesMax: number;
  maxTokensParameter: MaxTokensParameter;
  dispatcher: Dispatcher | undefined;
  ids: IdGenerator;
  clock: Clock;
}

/**
 * Creates the `openai` provider. Each `stream()` call makes one HTTP request; retries are the
 * caller's decision (see `ProviderError.retryable`). Throws ProviderConfigError for a base URL
 * that is not http(s) and RangeError for a timeout or bound that is not a positive number.
 */
export function createOpenAIProvider(options: OpenAIProviderOptions = {}): Provider {
  const config = resolveConfig(options);
  return {
    id: 'openai',
    idempotent: options.idempotent ?? false,
    stream: (request) => streamAttempt(config, request),
  };
}

/**
 * The provider configured from the environment: `OPENAI_BASE_URL` (a local OpenAI-compatible
 * server needs only this) and `OPENAI_API_KEY`. With neither set it throws ProviderConfigError
 * naming both, so a run never falls back to anything implicit.
 */
export function openAIProviderFromEnv(
  env: Record<string, string | undefined> = process.env,
  options: Omit<OpenAIProviderOptions, 'baseURL' | 'apiKey'> = {},
): Provider {
  const baseURL = nonEmpty(env.OPENAI_BASE_URL);
  const apiKey = nonEmpty(env.OPENAI_API_KEY);
  if (baseURL === undefined && apiKey === undefined && options.credentials?.has?.(options.credentialId ?? 'openai') !== true) {
    throw new ProviderConfigError(
      'OPENAI_API_KEY or OPENAI_BASE_URL is not set: set OPENAI_API_KEY (or run `loom auth set openai`) for api.openai.com, ' +
        'or OPENAI_BASE_URL for an OpenAI-compatible server (Ollama, llama.cpp, vLLM)',
      ['OPENAI_API_KEY', 'OPENAI_BASE_URL'],
    );
  }
  return createOpenAIProvider({ ...options, baseURL, apiKey });
}

/** The environment variables that name an OpenAI key, for messages about a missing one. */
export const OPENAI_KEY_VARIABLES = ['OPENAI_API_KEY'] as const;

/**
 * The auth of an OpenAI-kind adapter: a credential is required only for api.openai.com (the
 * default base URL); a local server usually needs none.
 */
export function openAIRequestAuth(options: OpenAIProviderOptions, providerId: string): RequestAuth {
  return createRequestAuth({
    providerId: options.credentialId ?? providerId,
    credentials: options.credentials,
    apiKey: options.apiKey,
    apiKeyHeader: 'authorization',
    required: options.baseURL === undefined,
    variables: OPENAI_KEY_VARIABLES,
  });
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

// ---- configuration -----------------------------------------------------------------------------

function resolveConfig(options: OpenAIProviderOptions): ResolvedConfig {
  const base = parseBaseURL(options.baseURL ?? OPENAI_DEFAULT_BASE_URL);
  base.pathname = `${base.pathname.replace(/\/+$/, '')}/chat/completions`;
  return {
    url: base.href,
    target: `POST ${base.href}`,
    auth: openAIRequestAuth(options, 'openai'),
    headers: lowerCaseHeaders(options.headers),
    timeouts: {
      headers: positive('headersTimeoutMs', options.headersTimeoutMs ?? PROVIDER_HEADERS_TIMEOUT_MS),
      idle: positive('idleTimeoutMs', options.idleTimeoutMs ?? PROVIDER_IDLE_TIMEOUT_MS),
      total: positive('requestTimeoutMs', options.requestTimeoutMs ?? PROVIDER_REQUEST_TIMEOUT_MS),
    },
    responseBytesMax: positive('responseBytesMax', options.responseBytesMax ?? PROVIDER_RESPONSE_BYTES_MAX),
    maxTokensParameter: options.maxTokensParameter ?? defaultMaxTokensParameter(base),
    dispatcher: options.dispatcher,
    ids: options.ids ?? randomIds,
    clock: options.clock ?? systemClock,
  };
}

export function parseBaseURL(baseURL: string): URL {
  let url: URL;
  try {
    url = new URL(baseURL);
  } catch (error) {
    throw new ProviderConfigError(`The OpenAI base URL "${baseURL}" is not a valid URL`, ['OPENAI_BASE_URL'], { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ProviderConfigError(`The OpenAI base URL "${baseURL}" must start with http:// or https://`, ['OPENAI_BASE_URL']);
  }
  return url;
}

function defaultMaxTokensParameter(base: URL): MaxTokensParameter {
  return base.hostname === 'api.openai.com' ? 'max_completion_tokens' : 'max_tokens';
}


// ---- request body ------------------------------------------------------------------------------

/**
 * The Chat Completions request body for one attempt. Assistant reasoning is not sent back unless
 * the message's `providerMetadata.openai.echoReasoning` is true (some servers reject it, a few
 * want it); it then goes in the field the server streamed it in.
 */
export function buildChatCompletionsBody(
  request: Pick<ProviderRequest, 'model' | 'messages' | 'tools' | 'maxOutputTokens' | 'temperature' | 'topP'>,
  maxTokensParameter: MaxTokensParameter = 'max_completion_tokens',
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: request.model,
    messages: request.messages.map(toWireMessage),
    stream: true,
    stream_options: { include_usage: true },
  };
  // An empty `tools` array is rejected by api.openai.com, so it is left out.
  if (request.tools.length > 0) body.tools = request.tools.map(toWireTool);
  if (request.maxOutputTokens !== undefined) body[maxTokensParameter] = request.maxOutputTokens;
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.topP !== undefined) body.top_p = request.topP;
  return body;
}

function toWireTool(tool: ToolSpec): Record<string, unknown> {
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.parameters } };
}

function toWireMessage(message: ChatMessage): Record<string, unknown> {
  switch (message.role) {
    case 'system':
    case 'user':
      return { role: message.role, content: message.content };
    case 'assistant':
      return toWireAssistant(message);
    case 'tool':
      // Chat Completions has no error flag on tool results; the content says what went wrong.
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
  }
}

function toWireAssistant(message: Extract<ChatMessage, { role: 'assistant' }>): Record<string, unknown> {
  const calls = message.toolCalls ?? [];
  const wire: Record<string, unknown> = { role: 'assistant', content: message.content };
  if (calls.length > 0) {
    if (message.content === '') wire.content = null;
    wire.tool_calls = calls.map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: call.arguments },
    }));
  }
  const field = echoedReasoningField(message.providerMetadata);
  if (field !== undefined && message.reasoning) wire[field] = message.reasoning;
  return wire;
}

function echoedReasoningField(metadata: ProviderMetadata | undefined): ReasoningField | undefined {
  const openai = metadata?.openai as { echoReasoning?: unknown; reasoningField?: unknown } | undefined;
  if (openai?.echoReasoning !== true) return undefined;
  return openai.reasoningField === 'reasoning' ? 'reasoning' : 'reasoning_content';
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
    for await (const event of decodeEvents(chunks, new ChatCompletionTurn(config.ids))) {
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

/** Header names lower-cased (so the adapter's own headers replace a configured one of the same name). */
export function lowerCaseHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]));
}

function send(config: ResolvedConfig, request: ProviderRequest, auth: RequestAuthHeaders, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
  const headers: Record<string, string> = { ...config.headers, ...lowerCaseHeaders(auth.headers), 'content-type': 'application/json', accept: 'text/event-stream' };
  return undiciRequest(config.url, {
    method: 'POST',
    headers: withExtraHeaders(headers, request.headers),
    body: JSON.stringify(buildChatCompletionsBody(request, config.maxTokensParameter)),
    signal,
    dispatcher: config.dispatcher,
    // The attempt guard owns every timer (undici's are coarse and cannot tell a slow reader
    // from a silent server), so undici's own header and body timeouts are off.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
}

/**
 * Throws the typed failure for an HTTP error or a response that is not an event stream. The body
 * is redacted with `secrets` (what the request sent) before anything is cut from it, so an echoed
 * key never reaches the message, not even in part.
 */
export async function rejectUnlessEventStream(
  config: ResolvedConfig,
  request: ProviderRequest,
  response: Dispatcher.ResponseData,
  chunks: AsyncIterable<Buffer>,
  secrets: readonly string[] = [],
): Promise<void> {
  const { statusCode: status, headers } = response;
  if (status < 200 || status >= 300) {
    const body = redactSecrets(await readText(chunks, PROVIDER_ERROR_BODY_READ_BYTES_MAX), secrets);
    const nowMs = config.clock.now();
    throw providerErrorFromResponse({ status, headers, body, target: config.target, model: request.model, nowMs });
  }
  const contentType = String(headers['content-type'] ?? '');
  if (contentType.includes('application/json')) {
    const body = redactSecrets(await readText(chunks, PROVIDER_ERROR_BODY_READ_BYTES_MAX), secrets);
    throw new ProviderMalformedChunkError(
      `Expected an event stream from ${config.target} but got JSON (does the server support stream: true?): ${excerptErrorBody(body)}`,
      { status },
    );
  }
}




// ---- server-sent events ------------------------------------------------------------------------

/** The Chat Completions events of a byte stream, ending with `finish` or a typed failure. */
async function* decodeEvents(chunks: AsyncIterable<Buffer>, turn: ChatCompletionTurn): AsyncGenerator<StreamEvent> {
  const sse = createEventReader();
  const decoder = new TextDecoder();
  for await (const bytes of chunks) {
    for (const message of sse.feed(decoder.decode(bytes, { stream: true }))) {
      yield* turn.accept(message);
      if (turn.done) return;
    }
  }
  // A final `data: [DONE]` without its blank line still counts; other unfinished events are cut-off data.
  if (sse.flush().some((message) => message.data === '[DONE]')) {
    yield* turn.accept({ data: '[DONE]' });
    return;
  }
  yield* turn.end();
}

interface EventReader {
  feed(text: string): EventSourceMessage[];
  flush(): EventSourceMessage[];
}

export function createEventReader(): EventReader {
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
  return { feed, flush: () => feed('\n\n') };
}

// ---- chunks ------------------------------------------------------------------------------------

const nullableString = z.string().nullish();
const nullableCount = z.number().nullish();

const ToolCallDeltaSchema = z.looseObject({
  index: z.number().int().nonnegative().nullish(),
  id: nullableString,
  function: z
    .looseObject({
      name: nullableString,
      // A few servers send arguments as an object instead of JSON text.
      arguments: z.union([z.string(), z.record(z.string(), z.unknown())]).nullish(),
    })
    .nullish(),
});

/** Permissive: unknown fields pass, known fields are checked. */
const ChunkSchema = z.looseObject({
  choices: z
    .array(
      z.looseObject({
        index: z.number().nullish(),
        delta: z
          .looseObject({
            content: nullableString,
            reasoning_content: nullableString,
            reasoning: nullableString,
            tool_calls: z.array(ToolCallDeltaSchema).nullish(),
          })
          .nullish(),
        finish_reason: nullableString,
      }),
    )
    .nullish(),
  usage: z
    .looseObject({
      prompt_tokens: nullableCount,
      completion_tokens: nullableCount,
      completion_tokens_details: z.looseObject({ reasoning_tokens: nullableCount }).nullish(),
      prompt_tokens_details: z.looseObject({ cached_tokens: nullableCount }).nullish(),
    })
    .nullish(),
  error: z.unknown().optional(),
});

type Chunk = z.infer<typeof ChunkSchema>;
type ChunkDelta = NonNullable<NonNullable<Chunk['choices']>[number]['delta']>;
type ToolCallDelta = z.infer<typeof ToolCallDeltaSchema>;
type ReasoningField = 'reasoning_content' | 'reasoning';

function parseChunk(data: string): Chunk {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (error) {
    throw new ProviderMalformedChunkError(`The provider sent a stream event that is not JSON: ${excerpt(data)}`, { cause: error });
  }
  const result = ChunkSchema.safeParse(json);
  if (!result.success) {
    const problem = z.prettifyError(result.error).replace(/\s+/g, ' ');
    throw new ProviderMalformedChunkError(`The provider sent a chunk of the wrong shape (${problem}): ${excerpt(data)}`);
  }
  return result.data;
}

function excerpt(text: string): string {
  return truncateUtf8(text, PROVIDER_ERROR_BODY_BYTES_MAX);
}

function midStreamError(error: unknown): ProviderServerError | ProviderContextOverflowError {
  const detail = excerptErrorBody(typeof error === 'string' ? error : JSON.stringify({ error }));
  if (isContextOverflow(errorFields(typeof error === 'string' ? error : { error }))) {
    return new ProviderContextOverflowError(`The request is too long for the model's context window: ${detail}`);
  }
  return new ProviderServerError(`The provider reported an error mid-stream: ${detail}`);
}

const FINISH_REASONS = new Map<string, FinishReason>([
  ['stop', 'stop'],
  ['tool_calls', 'tool_calls'],
  ['function_call', 'tool_calls'],
  ['length', 'length'],
  ['content_filter', 'content_filter'],
]);

/** Some servers say `stop` (or nothing) after tool calls; the calls are what matters. */
function toFinishReason(raw: string | undefined, calledTools: boolean): FinishReason {
  const mapped = raw === undefined ? undefined : FINISH_REASONS.get(raw);
  if (calledTools && (mapped === undefined || mapped === 'stop')) return 'tool_calls';
  return mapped ?? 'other';
}

function toUsage(usage: NonNullable<Chunk['usage']>): Usage {
  const result: Usage = { inputTokens: usage.prompt_tokens ?? 0, outputTokens: usage.completion_tokens ?? 0 };
  const reasoning = usage.completion_tokens_details?.reasoning_tokens;
  const cached = usage.prompt_tokens_details?.cached_tokens;
  if (reasoning !== undefined && reasoning !== null) result.reasoningTokens = reasoning;
  if (cached !== undefined && cached !== null) result.cachedInputTokens = cached;
  return result;
}

// ---- one turn's state --------------------------------------------------------------------------

interface PendingCall {
  index: number;
  id: string | undefined;
  name: string;
  arguments: string;
  bytes: number;
}

/**
 * Assembles one streamed turn. Tool-call deltas are gathered by `index`; a call is emitted the
 * moment it is complete (eager tool settlement): when a delta for another index arrives and the
 * call's arguments already form a whole JSON object, or when `finish_reason` arrives. Calls whose
 * deltas interleave therefore stay open until they parse, and a delta adding to a call already
 * emitted is a protocol error.
 */
class ChatCompletionTurn {
  done = false;
  private finishReason: string | undefined;
  private usage: Usage | undefined;
  private reasoningField: ReasoningField | undefined;
  private readonly open = new Map<number, PendingCall>();
  private readonly emitted = new Set<number>();
  private lastIndex: number | undefined;
  private nextIndex = 0;

  constructor(private readonly ids: IdGenerator) {}

  accept(message: EventSourceMessage): StreamEvent[] {
    if (this.done) return [];
    if (message.data === '[DONE]') return this.finish();
    if (message.event === 'error') throw midStreamError(message.data);
    if (message.data.trim() === '') return [];
    return this.acceptChunk(parseChunk(message.data));
  }

  /** The stream ended without `[DONE]`: accepted when the model had finished, else truncated. */
  end(): StreamEvent[] {
    if (this.finishReason === undefined) {
      throw new ProviderStreamTruncatedError('The stream ended before the model finished (no finish_reason and no [DONE])');
    }
    return this.finish();
  }

  private acceptChunk(chunk: Chunk): StreamEvent[] {
    if (chunk.error !== undefined && chunk.error !== null) throw midStreamError(chunk.error);
    if (chunk.usage) this.usage = toUsage(chunk.usage);
    const choice = chunk.choices?.find((candidate) => (candidate.index ?? 0) === 0);
    if (choice === undefined) return [];
    const events = this.deltaEvents(choice.delta ?? {});
    if (choice.finish_reason) {
      this.finishReason = choice.finish_reason;
      events.push(...this.emitOpen(() => true));
    }
    return events;
  }

  private deltaEvents(delta: ChunkDelta): StreamEvent[] {
    const events: StreamEvent[] = [];
    const reasoning = this.reasoningOf(delta);
    if (reasoning) events.push({ type: 'reasoning.delta', delta: reasoning });
    if (delta.content) events.push({ type: 'text.delta', delta: delta.content });
    for (const call of delta.tool_calls ?? []) events.push(...this.acceptToolDelta(call));
    return events;
  }

  /** Servers differ: `reasoning_content` (DeepSeek, llama.cpp, older vLLM) or `reasoning` (Ollama, OpenRouter, newer vLLM). */
  private reasoningOf(delta: ChunkDelta): string | undefined {
    if (delta.reasoning_content) this.reasoningField ??= 'reasoning_content';
    else if (delta.reasoning) this.reasoningField ??= 'reasoning';
    return delta.reasoning_content || delta.reasoning || undefined;
  }

  private acceptToolDelta(delta: ToolCallDelta): StreamEvent[] {
    const index = this.indexOf(delta);
    if (this.emitted.has(index)) {
      if (carriesContent(delta)) throw new ProviderMalformedChunkError(`Tool call ${index} received more data after it was complete`);
      return [];
    }
    const events = index === this.lastIndex ? [] : this.emitOpen((call) => call.index !== index && argumentsComplete(call));
    this.lastIndex = index;
    this.extend(index, delta);
    return events;
  }

  /** Some servers leave out `index`: a delta with a new id starts a call, others continue the last. */
  private indexOf(delta: ToolCallDelta): number {
    if (delta.index !== undefined && delta.index !== null) return delta.index;
    const last = this.lastIndex === undefined ? undefined : this.open.get(this.lastIndex);
    if (last !== undefined && (!delta.id || delta.id === last.id)) return last.index;
    return this.nextIndex;
  }

  private extend(index: number, delta: ToolCallDelta): void {
    const call = this.open.get(index) ?? { index, id: undefined, name: '', arguments: '', bytes: 0 };
    this.open.set(index, call);
    this.nextIndex = Math.max(this.nextIndex, index + 1);
    if (delta.id) call.id ??= delta.id;
    if (delta.function?.name && call.name === '') call.name = delta.function.name;
    const piece = delta.function?.arguments;
    if (piece === undefined || piece === null) return;
    const text = typeof piece === 'string' ? piece : JSON.stringify(piece);
    call.bytes += Buffer.byteLength(text);
    if (call.bytes > TOOL_ARGUMENTS_BYTES_MAX) {
      throw new ProviderResponseTooLargeError(`The arguments of tool call "${call.name}" passed ${TOOL_ARGUMENTS_BYTES_MAX} bytes`);
    }
    call.arguments += text;
  }

  /** Emits the open calls that pass `ready`, in index order. */
  private emitOpen(ready: (call: PendingCall) => boolean): StreamEvent[] {
    const calls = [...this.open.values()].filter(ready).sort((a, b) => a.index - b.index);
    return calls.map((call) => ({ type: 'tool.call', call: this.settle(call) }));
  }

  private settle(call: PendingCall): ToolCallRequest {
    if (call.name === '') throw new ProviderMalformedChunkError(`Tool call ${call.index} has no function name`);
    this.open.delete(call.index);
    this.emitted.add(call.index);
    // An empty argument string means "no arguments"; `{}` is what the model would be shown.
    return { id: call.id ?? this.ids.next('call'), name: call.name, arguments: call.arguments === '' ? '{}' : call.arguments };
  }

  private finish(): StreamEvent[] {
    const events = this.emitOpen(() => true);
    this.done = true;
    const finish: StreamEvent = {
      type: 'finish',
      finishReason: toFinishReason(this.finishReason, this.emitted.size > 0),
      usage: this.usage ?? { inputTokens: 0, outputTokens: 0 },
    };
    if (this.reasoningField !== undefined) finish.providerMetadata = { openai: { reasoningField: this.reasoningField } };
    events.push(finish);
    return events;
  }
}

function carriesContent(delta: ToolCallDelta): boolean {
  const args = delta.function?.arguments;
  return Boolean(delta.function?.name) || (args !== undefined && args !== null && args !== '');
}

/**
 * True when the arguments so far are one whole JSON object. A whole object cannot be extended
 * into another valid one, so such a call is done; the `}` test keeps parsing rare.
 */
function argumentsComplete(call: PendingCall): boolean {
  if (!call.arguments.trimEnd().endsWith('}')) return false;
  try {
    JSON.parse(call.arguments);
    return true;
  } catch {
    return false;
  }
}
