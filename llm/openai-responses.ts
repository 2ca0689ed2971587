/**
 * The OpenAI Responses adapter (`openai-responses/<model>`). One `stream()` call is one attempt: a
 * POST to `{baseURL}/responses` with `stream: true` and `store: false`, read as server-sent events
 * and normalised into `StreamEvent`s. The transport (timers, byte caps, abort, HTTP errors) is the
 * Chat Completions adapter's (llm/openai.ts); only the wire format differs.
 *
 * With `store: false` the server keeps nothing, so reasoning items come back encrypted
 * (`include: ['reasoning.encrypted_content']`). They travel in `providerMetadata`
 * (`{ openaiResponses: { reasoning: [...] } }`, on `finish` and on each tool call they precede)
 * and are sent back unchanged, before the assistant's message and function calls, on replay.
 */
import type { EventSourceMessage } from 'eventsource-parser';
import { request as undiciRequest, type Dispatcher } from 'undici';
import { z } from 'zod';
import { systemClock } from '../core/clock.js';
import { randomIds } from '../core/ids.js';
import {
  PROVIDER_ERROR_BODY_BYTES_MAX,
  PROVIDER_HEADERS_TIMEOUT_MS,
  PROVIDER_IDLE_TIMEOUT_MS,
  PROVIDER_REQUEST_TIMEOUT_MS,
  PROVIDER_RESPONSE_BYTES_MAX,
  TOOL_ARGUMENTS_BYTES_MAX,
} from '../core/limits.js';
import { withExtraHeaders } from './headers.js';
import {
  excerptErrorBody,
  ProviderConfigError,
  ProviderMalformedChunkError,
  ProviderRateLimitError,
  ProviderResponseTooLargeError,
  ProviderServerError,
  ProviderStreamTruncatedError,
  ProviderBadRequestError,
  ProviderContextOverflowError,
  isContextOverflow,
  truncateUtf8,
  type AnyProviderError,
} from './errors.js';
import { abortedError, AttemptGuard, positive, readBody, release, type BodyProgress } from './http.js';
import {
  openAIRequestAuth,
  createEventReader,
  lowerCaseHeaders,
  OPENAI_DEFAULT_BASE_URL,
  parseBaseURL,
  rejectUnlessEventStream,
  type OpenAIProviderOptions,
  type ResolvedConfig,
} from './openai.js';
import { redactFailure, type RequestAuthHeaders } from './auth.js';
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

/** The key of this adapter's data inside `providerMetadata`. */
export const RESPONSES_METADATA_KEY = 'openaiResponses';

export type OpenAIResponsesProviderOptions = Omit<OpenAIProviderOptions, 'maxTokensParameter'>;

/** A reasoning output item as the server sent it (`type: 'reasoning'`, id, summary, encrypted_content, …). */
export type ReasoningItem = Record<string, unknown> & { type: 'reasoning' };

/**
 * Creates the `openai-responses` provider. Throws ProviderConfigError for a base URL that is not
 * http(s) and RangeError for a timeout or bound that is not a positive number.
 */
export function createOpenAIResponsesProvider(options: OpenAIResponsesProviderOptions = {}): Provider {
  const config = resolveConfig(options);
  return {
    id: 'openai-responses',
    idempotent: options.idempotent ?? false,
    stream: (request) => streamAttempt(config, request),
  };
}

/**
 * The provider configured from the same environment as `openai`: `OPENAI_API_KEY` and
 * `OPENAI_BASE_URL`. With neither set it throws ProviderConfigError naming both.
 */
export function openAIResponsesProviderFromEnv(
  env: Record<string, string | undefined> = process.env,
  options: Omit<OpenAIResponsesProviderOptions, 'baseURL' | 'apiKey'> = {},
): Provider {
  const baseURL = env.OPENAI_BASE_URL?.trim() || undefined;
  const apiKey = env.OPENAI_API_KEY?.trim() || undefined;
  if (baseURL === undefined && apiKey === undefined && options.credentials?.has?.(options.credentialId ?? 'openai-responses') !== true) {
    throw new ProviderConfigError(
      'OPENAI_API_KEY or OPENAI_BASE_URL is not set: the openai-responses provider needs OPENAI_API_KEY (or `loom auth set openai`) ' +
        'for api.openai.com, or OPENAI_BASE_URL for a server that speaks the Responses API',
      ['OPENAI_API_KEY', 'OPENAI_BASE_URL'],
    );
  }
  return createOpenAIResponsesProvider({ ...options, baseURL, apiKey });
}

function resolveConfig(options: OpenAIResponsesProviderOptions): ResolvedConfig {
  const base = parseBaseURL(options.baseURL ?? OPENAI_DEFAULT_BASE_URL);
  base.pathname = `${base.pathname.replace(/\/+$/, '')}/responses`;
  return {
    url: base.href,
    target: `POST ${base.href}`,
    auth: openAIRequestAuth(options, 'openai-responses'),
    headers: lowerCaseHeaders(options.headers),
    timeouts: {
      headers: positive('headersTimeoutMs', options.headersTimeoutMs ?? PROVIDER_HEADERS_TIMEOUT_MS),
      idle: positive('idleTimeoutMs', options.idleTimeoutMs ?? PROVIDER_IDLE_TIMEOUT_MS),
      total: positive('requestTimeoutMs', options.requestTimeoutMs ?? PROVIDER_REQUEST_TIMEOUT_MS),
    },
    responseBytesMax: positive('responseBytesMax', options.responseBytesMax ?? PROVIDER_RESPONSE_BYTES_MAX),
    // Unused here: the Responses API always calls it `max_output_tokens`.
    maxTokensParameter: 'max_tokens',
    dispatcher: options.dispatcher,
    ids: options.ids ?? randomIds,
    clock: options.clock ?? systemClock,
  };
}

// ---- request body ------------------------------------------------------------------------------

/**
 * The Responses request body for one attempt. Leading system messages become `instructions`, later
 * ones developer messages; each assistant message is replayed as its reasoning items (unchanged,
 * from `providerMetadata`), its text, then its function calls; tool results are
 * `function_call_output` items.
 */
export function buildResponsesBody(
  request: Pick<ProviderRequest, 'model' | 'messages' | 'tools' | 'maxOutputTokens' | 'temperature' | 'topP'>,
): Record<string, unknown> {
  const instructions: string[] = [];
  const input: Record<string, unknown>[] = [];
  for (const message of request.messages) {
    if (message.role === 'system' && input.length === 0) instructions.push(message.content);
    else input.push(...toInputItems(message));
  }
  const body: Record<string, unknown> = {
    model: request.model,
    input,
    stream: true,
    store: false,
    include: ['reasoning.encrypted_content'],
  };
  if (instructions.length > 0) body.instructions = instructions.join('\n\n');
  if (request.tools.length > 0) body.tools = request.tools.map(toWireTool);
  if (request.maxOutputTokens !== undefined) body.max_output_tokens = request.maxOutputTokens;
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.topP !== undefined) body.top_p = request.topP;
  return body;
}

function toWireTool(tool: ToolSpec): Record<string, unknown> {
  return { type: 'function', name: tool.name, description: tool.description, parameters: tool.parameters };
}

function toInputItems(message: ChatMessage): Record<string, unknown>[] {
  switch (message.role) {
    case 'system':
      return [{ role: 'developer', content: message.content }];
    case 'user':
      return [{ role: 'user', content: message.content }];
    case 'assistant':
      return assistantItems(message);
    case 'tool':
      // The Responses API has no error flag on tool output; the content says what went wrong.
      return [{ type: 'function_call_output', call_id: message.toolCallId, output: message.content }];
  }
}

function assistantItems(message: Extract<ChatMessage, { role: 'assistant' }>): Record<string, unknown>[] {
  const calls = message.toolCalls ?? [];
  const items: Record<string, unknown>[] = [...replayedReasoning(message)];
  if (message.content !== '') items.push({ role: 'assistant', content: message.content });
  for (const call of calls) items.push({ type: 'function_call', call_id: call.id, name: call.name, arguments: call.arguments });
  return items;
}

/** The reasoning items of a turn, from the message's and its calls' metadata, each once, in order. */
function replayedReasoning(message: Extract<ChatMessage, { role: 'assistant' }>): ReasoningItem[] {
  const sources = [message.providerMetadata, ...(message.toolCalls ?? []).map((call) => call.providerMetadata)];
  const seen = new Set<string>();
  const items: ReasoningItem[] = [];
  for (const metadata of sources) {
    for (const item of reasoningOf(metadata)) {
      const key = typeof item.id === 'string' ? item.id : JSON.stringify(item);
      if (seen.has(key)) continue;
      seen.add(key);
      items.push(item);
    }
  }
  return items;
}

function reasoningOf(metadata: ProviderMetadata | undefined): ReasoningItem[] {
  const own = metadata?.[RESPONSES_METADATA_KEY] as { reasoning?: unknown } | undefined;
  if (!Array.isArray(own?.reasoning)) return [];
  return own.reasoning.filter(
    (item): item is ReasoningItem => typeof item === 'object' && item !== null && (item as { type?: unknown }).type === 'reasoning',
  );
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
    for await (const event of decodeEvents(chunks, new ResponsesTurn(config))) {
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
  const headers: Record<string, string> = { ...config.headers, ...lowerCaseHeaders(auth.headers), 'content-type': 'application/json', accept: 'text/event-stream' };
  return undiciRequest(config.url, {
    method: 'POST',
    headers: withExtraHeaders(headers, request.headers),
    body: JSON.stringify(buildResponsesBody(request)),
    signal,
    dispatcher: config.dispatcher,
    // The attempt guard owns every timer, as in llm/openai.ts.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
}

async function* decodeEvents(chunks: AsyncIterable<Buffer>, turn: ResponsesTurn): AsyncGenerator<StreamEvent> {
  const sse = createEventReader();
  const decoder = new TextDecoder();
  for await (const bytes of chunks) {
    for (const message of sse.feed(decoder.decode(bytes, { stream: true }))) {
      yield* turn.accept(message);
      if (turn.done) return;
    }
  }
  for (const message of sse.flush()) {
    yield* turn.accept(message);
    if (turn.done) return;
  }
  throw new ProviderStreamTruncatedError('The stream ended before the response completed (no response.completed event)');
}

// ---- events ------------------------------------------------------------------------------------

const count = z.number().nullish();

/** Permissive: unknown fields and event types pass, the fields used are checked. */
const EventSchema = z.looseObject({
  type: z.string(),
  delta: z.string().nullish(),
  item_id: z.string().nullish(),
  output_index: z.number().nullish(),
  summary_index: z.number().nullish(),
  arguments: z.string().nullish(),
  item: z
    .looseObject({
      type: z.string(),
      id: z.string().nullish(),
      call_id: z.string().nullish(),
      name: z.string().nullish(),
      arguments: z.string().nullish(),
    })
    .nullish(),
  response: z
    .looseObject({
      status: z.string().nullish(),
      error: z.unknown().optional(),
      incomplete_details: z.looseObject({ reason: z.string().nullish() }).nullish(),
      usage: z
        .looseObject({
          input_tokens: count,
          output_tokens: count,
          output_tokens_details: z.looseObject({ reasoning_tokens: count }).nullish(),
          input_tokens_details: z.looseObject({ cached_tokens: count }).nullish(),
        })
        .nullish(),
    })
    .nullish(),
  code: z.string().nullish(),
  message: z.string().nullish(),
});

type ResponsesEvent = z.infer<typeof EventSchema>;
type OutputItem = NonNullable<ResponsesEvent['item']>;

function parseEvent(data: string): ResponsesEvent {
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

const RETRYABLE_ERROR = /rate.?limit|overload|server.?error|internal|unavailable|timeout|capacity/i;

/**
 * The typed failure for `response.failed` and `error` events: rate limits and overload are
 * retryable as ProviderRateLimitError, server errors as ProviderServerError, the rest are not.
 */
export function streamError(kind: string, error: unknown): AnyProviderError {
  const fields = (typeof error === 'object' && error !== null ? error : {}) as { code?: unknown; message?: unknown; type?: unknown };
  const said = [fields.code, fields.type, fields.message].filter((part) => typeof part === 'string').join(' ');
  const detail = excerptErrorBody(typeof error === 'string' ? error : JSON.stringify(error ?? null));
  const code = typeof fields.code === 'string' && fields.code !== '' ? ` (${fields.code})` : '';
  const message = `The provider reported ${kind} mid-stream${code}: ${detail}`;
  if (isContextOverflow({ code: fields.code as string | undefined, type: fields.type as string | undefined, message: fields.message as string | undefined })) {
    return new ProviderContextOverflowError(message);
  }
  if (/rate.?limit|overload|capacity/i.test(said)) return new ProviderRateLimitError(message);
  if (RETRYABLE_ERROR.test(said)) return new ProviderServerError(message);
  return new ProviderBadRequestError(message);
}

function toUsage(usage: NonNullable<NonNullable<ResponsesEvent['response']>['usage']>): Usage {
  const result: Usage = { inputTokens: usage.input_tokens ?? 0, outputTokens: usage.output_tokens ?? 0 };
  const reasoning = usage.output_tokens_details?.reasoning_tokens;
  const cached = usage.input_tokens_details?.cached_tokens;
  if (reasoning !== undefined && reasoning !== null) result.reasoningTokens = reasoning;
  if (cached !== undefined && cached !== null) result.cachedInputTokens = cached;
  return result;
}

// ---- one turn's state --------------------------------------------------------------------------

interface PendingCall {
  callId: string;
  name: string;
  arguments: string;
  bytes: number;
}

/**
 * Assembles one streamed response. A function call is emitted when its output item is done (with
 * the reasoning items since the previous call in its metadata, so they survive even when the
 * history keeps no reasoning text); reasoning items are kept whole as the server sent them.
 */
class ResponsesTurn {
  done = false;
  private readonly calls = new Map<string, PendingCall>();
  private readonly reasoning: ReasoningItem[] = [];
  private unattached: ReasoningItem[] = [];
  private calledTools = false;
  private summaryPart: string | undefined;

  constructor(private readonly config: ResolvedConfig) {}

  accept(message: EventSourceMessage): StreamEvent[] {
    if (this.done || message.data.trim() === '' || message.data === '[DONE]') return [];
    const event = parseEvent(message.data);
    switch (event.type) {
      case 'response.output_text.delta':
        return event.delta ? [{ type: 'text.delta', delta: event.delta }] : [];
      case 'response.reasoning_summary_text.delta':
        return this.summaryDelta(event);
      case 'response.output_item.added':
        if (event.item?.type === 'function_call') this.open(event.item);
        return [];
      case 'response.function_call_arguments.delta':
        this.extend(event.item_id, event.delta ?? '');
        return [];
      case 'response.output_item.done':
        return event.item ? this.itemDone(event.item) : [];
      case 'response.completed':
        return this.finish(event, 'completed');
      case 'response.incomplete':
        return this.finish(event, 'incomplete');
      case 'response.failed':
        throw streamError('a failed response', event.response?.error ?? event.response);
      case 'error':
        throw streamError('an error', { code: event.code, message: event.message });
      default:
        return [];
    }
  }

  /** Summary parts (per item and `summary_index`) are separated by a blank line in the reasoning text. */
  private summaryDelta(event: ResponsesEvent): StreamEvent[] {
    if (!event.delta) return [];
    const part = `${event.item_id ?? ''}#${event.summary_index ?? 0}`;
    const separator = this.summaryPart !== undefined && this.summaryPart !== part ? '\n\n' : '';
    this.summaryPart = part;
    return [{ type: 'reasoning.delta', delta: separator + event.delta }];
  }

  private open(item: OutputItem): void {
    const key = item.id ?? item.call_id;
    if (!key) throw new ProviderMalformedChunkError('A function_call output item has neither id nor call_id');
    this.calls.set(key, { callId: item.call_id ?? '', name: item.name ?? '', arguments: '', bytes: 0 });
  }

  private extend(itemId: string | null | undefined, delta: string): void {
    const call = itemId ? this.calls.get(itemId) : undefined;
    if (call === undefined) throw new ProviderMalformedChunkError(`Function call arguments arrived for unknown item "${itemId}"`);
    call.bytes += Buffer.byteLength(delta);
    if (call.bytes > TOOL_ARGUMENTS_BYTES_MAX) {
      throw new ProviderResponseTooLargeError(`The arguments of tool call "${call.name}" passed ${TOOL_ARGUMENTS_BYTES_MAX} bytes`);
    }
    call.arguments += delta;
  }

  private itemDone(item: OutputItem): StreamEvent[] {
    if (item.type === 'reasoning') {
      const whole = { ...item } as ReasoningItem;
      this.reasoning.push(whole);
      this.unattached.push(whole);
      return [];
    }
    if (item.type !== 'function_call') return [];
    const key = item.id ?? item.call_id ?? '';
    const pending = this.calls.get(key);
    this.calls.delete(key);
    const name = item.name || pending?.name || '';
    if (name === '') throw new ProviderMalformedChunkError(`Function call "${key}" has no name`);
    const args = item.arguments ?? pending?.arguments ?? '';
    if (Buffer.byteLength(args) > TOOL_ARGUMENTS_BYTES_MAX) {
      throw new ProviderResponseTooLargeError(`The arguments of tool call "${name}" passed ${TOOL_ARGUMENTS_BYTES_MAX} bytes`);
    }
    const call: ToolCallRequest = {
      id: item.call_id || pending?.callId || this.config.ids.next('call'),
      name,
      arguments: args === '' ? '{}' : args,
    };
    if (this.unattached.length > 0) {
      call.providerMetadata = { [RESPONSES_METADATA_KEY]: { reasoning: this.unattached } };
      this.unattached = [];
    }
    this.calledTools = true;
    return [{ type: 'tool.call', call }];
  }

  private finish(event: ResponsesEvent, status: 'completed' | 'incomplete'): StreamEvent[] {
    this.done = true;
    const finish: StreamEvent = {
      type: 'finish',
      finishReason: finishReasonOf(status, event.response?.incomplete_details?.reason ?? undefined, this.calledTools),
      usage: event.response?.usage ? toUsage(event.response.usage) : { inputTokens: 0, outputTokens: 0 },
    };
    if (this.reasoning.length > 0) finish.providerMetadata = { [RESPONSES_METADATA_KEY]: { reasoning: this.reasoning } };
    return [finish];
  }
}

/**
 * `response.incomplete` is a normal end with a cause: the output limit (`length`) or the content
 * filter; anything else is `other`.
 */
function finishReasonOf(status: 'completed' | 'incomplete', reason: string | undefined, calledTools: boolean): FinishReason {
  if (status === 'incomplete') {
    if (reason === 'max_output_tokens') return 'length';
    if (reason === 'content_filter') return 'content_filter';
    return 'other';
  }
  return calledTools ? 'tool_calls' : 'stop';
}
