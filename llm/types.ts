/**
 * The provider-neutral shapes every adapter speaks. The session loop builds `ProviderRequest`s
 * from the projected history and consumes `StreamEvent`s; adapters translate to and from each
 * provider's wire format. `providerMetadata` is opaque: kept and sent back unchanged.
 */

export type ProviderMetadata = Record<string, unknown>;

export interface ToolCallRequest {
  /** The provider's id for the call (sent back with the result). */
  id: string;
  name: string;
  /** Arguments as the JSON text the model produced (may be invalid JSON; the tool layer says so). */
  arguments: string;
  providerMetadata?: ProviderMetadata;
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | {
      role: 'assistant';
      content: string;
      reasoning?: string;
      toolCalls?: ToolCallRequest[];
      providerMetadata?: ProviderMetadata;
    }
  | { role: 'tool'; toolCallId: string; name: string; content: string; isError?: boolean };

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the input object (from zod via z.toJSONSchema). */
  parameters: Record<string, unknown>;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  reasoningTokens?: number;
  cachedInputTokens?: number;
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter' | 'other';

export interface ProviderRequest {
  /** The model id without the provider prefix (`gpt-4o-mini`, not `openai/gpt-4o-mini`). */
  model: string;
  messages: ChatMessage[];
  tools: ToolSpec[];
  signal: AbortSignal;
  maxOutputTokens?: number;
  /** Sampling temperature, sent as the API's `temperature` when set (plugins set it with a `chat.params` hook). */
  temperature?: number;
  /** Nucleus sampling, sent as the API's `top_p` when set. */
  topP?: number;
  /**
   * Extra HTTP headers for this request (from plugins' `chat.headers` hooks). The adapter's own
   * headers (content type, credentials, API version) win over these on a name clash, whatever the
   * case, and credential headers are never taken from here (llm/headers.ts).
   */
  headers?: Record<string, string>;
}

/** What a provider stream yields, in order. Text and reasoning deltas never drive transitions. */
export type StreamEvent =
  | { type: 'text.delta'; delta: string }
  | { type: 'reasoning.delta'; delta: string }
  /** A tool call the stream has completed (all its argument deltas arrived). */
  | { type: 'tool.call'; call: ToolCallRequest }
  /** The last event of a successful stream. */
  | { type: 'finish'; finishReason: FinishReason; usage: Usage; providerMetadata?: ProviderMetadata };

export interface Provider {
  /** `openai`, `anthropic`, … — the prefix of `provider/model`. */
  readonly id: string;
  /** True when repeating a request is known to be harmless (enables automatic recovery retries). */
  readonly idempotent: boolean;
  /**
   * Streams one attempt. Failures are thrown as `ProviderError` subclasses (llm/errors.ts) before
   * or during iteration; aborting `request.signal` ends the stream with `ProviderAbortedError`.
   */
  stream(request: ProviderRequest): AsyncIterable<StreamEvent>;
}
