import { afterEach, describe, expect, it } from 'vitest';
import {
  ProviderAbortedError,
  ProviderAuthError,
  ProviderBadRequestError,
  ProviderContextOverflowError,
  ProviderConfigError,
  ProviderRateLimitError,
  ProviderServerError,
  ProviderStreamTruncatedError,
} from '../../llm/errors.js';
import {
  buildResponsesBody,
  createOpenAIResponsesProvider,
  openAIResponsesProviderFromEnv,
} from '../../llm/openai-responses.js';
import { createProviderResolver } from '../../llm/resolve.js';
import type { ChatMessage, ProviderRequest, StreamEvent, ToolCallRequest } from '../../llm/types.js';
import { resolveConfig } from '../../services/config.js';
import {
  startScriptedResponsesServer,
  type ScriptedResponsesServer,
  type ScriptedResponsesTurn,
} from '../fixtures/scripted-responses-server.js';

let server: ScriptedResponsesServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(...script: ScriptedResponsesTurn[]): Promise<ScriptedResponsesServer> {
  server = await startScriptedResponsesServer(script);
  return server;
}

function providerFor(target: ScriptedResponsesServer) {
  return createOpenAIResponsesProvider({ baseURL: target.url, apiKey: 'sk-test' });
}

function turnRequest(overrides: Partial<ProviderRequest> = {}): ProviderRequest {
  return {
    model: 'gpt-test',
    messages: [{ role: 'user', content: 'hello' }],
    tools: [],
    signal: new AbortController().signal,
    ...overrides,
  };
}

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

async function failureOf(stream: AsyncIterable<StreamEvent>): Promise<unknown> {
  try {
    await collect(stream);
  } catch (error) {
    return error;
  }
  throw new Error('expected the stream to fail');
}

function textOf(events: StreamEvent[], type: 'text.delta' | 'reasoning.delta'): string {
  return events.map((event) => (event.type === type ? event.delta : '')).join('');
}

function toolCalls(events: StreamEvent[]): ToolCallRequest[] {
  return events.flatMap((event) => (event.type === 'tool.call' ? [event.call] : []));
}

function finishOf(events: StreamEvent[]) {
  const last = events[events.length - 1];
  if (last?.type !== 'finish') throw new Error(`expected finish last, got ${JSON.stringify(last)}`);
  return last;
}

describe('openai-responses - stream normalisation', () => {
  it('openai-responses - text deltas become text.delta and response.completed becomes finish with usage', async () => {
    const target = await start({ text: 'Hello from Responses', chunkSize: 3, usage: { input_tokens: 12, output_tokens: 7, reasoning_tokens: 2, cached_tokens: 4 } });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(events.filter((event) => event.type === 'text.delta').length).toBeGreaterThan(1);
    expect(textOf(events, 'text.delta')).toBe('Hello from Responses');
    const finish = finishOf(events);
    expect(finish.finishReason).toBe('stop');
    expect(finish.usage).toEqual({ inputTokens: 12, outputTokens: 7, reasoningTokens: 2, cachedInputTokens: 4 });
    expect(finish.providerMetadata).toBeUndefined();
  });

  it('openai-responses - function call argument deltas in several chunks become one tool.call with the call_id', async () => {
    const args = { path: 'notes/today.md', content: 'a fairly long argument string' };
    const target = await start({ toolCalls: [{ callId: 'call_abc', name: 'write', arguments: args }], chunkSize: 5 });
    const events = await collect(providerFor(target).stream(turnRequest()));
    const calls = toolCalls(events);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ id: 'call_abc', name: 'write' });
    expect(JSON.parse(calls[0]!.arguments)).toEqual(args);
    expect(finishOf(events).finishReason).toBe('tool_calls');
  });

  it('openai-responses - reasoning summaries become reasoning.delta and the encrypted item travels in providerMetadata', async () => {
    const reasoning = { id: 'rs_1', summary: 'Thinking about the file', encryptedContent: 'gAAAA-opaque-blob==' };
    const target = await start({ reasoning, toolCalls: [{ callId: 'call_1', name: 'read', arguments: { path: 'a' } }] });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(textOf(events, 'reasoning.delta')).toBe('Thinking about the file');
    const item = { id: 'rs_1', type: 'reasoning', summary: [{ type: 'summary_text', text: 'Thinking about the file' }], encrypted_content: 'gAAAA-opaque-blob==' };
    expect(finishOf(events).providerMetadata).toEqual({ openaiResponses: { reasoning: [item] } });
    // The call carries the reasoning before it too, so it survives a history without reasoning text.
    expect(toolCalls(events)[0]!.providerMetadata).toEqual({ openaiResponses: { reasoning: [item] } });
  });

  it('openai-responses - summary parts are separated by a blank line and unknown events are ignored', async () => {
    const event = (type: string, fields: Record<string, unknown>) => ({ type, ...fields });
    const target = await start();
    const chunks = [
      event('response.created', { response: { status: 'in_progress' } }),
      event('response.reasoning_summary_text.delta', { item_id: 'rs_1', summary_index: 0, delta: 'First.' }),
      event('response.reasoning_summary_part.added', { item_id: 'rs_1', summary_index: 1 }),
      event('response.reasoning_summary_text.delta', { item_id: 'rs_1', summary_index: 1, delta: 'Second.' }),
      event('response.some_future_event', { anything: true }),
      event('response.completed', { response: { status: 'completed', usage: { input_tokens: 1, output_tokens: 2 } } }),
    ];
    target.push({ raw: chunks });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(textOf(events, 'reasoning.delta')).toBe('First.\n\nSecond.');
    expect(finishOf(events).usage).toEqual({ inputTokens: 1, outputTokens: 2 });
  });

  it('openai-responses - response.incomplete for the output limit finishes with length', async () => {
    const target = await start({ text: 'cut', incomplete: 'max_output_tokens' });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(finishOf(events).finishReason).toBe('length');
  });

  it('openai-responses - a stream that ends before response.completed is truncated and retryable', async () => {
    const target = await start({ text: 'half', truncate: true });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderStreamTruncatedError);
    expect((error as ProviderStreamTruncatedError).retryable).toBe(true);
  });
});

describe('openai-responses - request building', () => {
  it('openai-responses - sends model, input, tools, stream, store:false and asks for encrypted reasoning', async () => {
    const target = await start({ text: 'ok' });
    const tools = [{ name: 'read', description: 'Read a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } }];
    await collect(
      providerFor(target).stream(
        turnRequest({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }], tools, maxOutputTokens: 100 }),
      ),
    );
    const recorded = target.requests[0]!;
    expect(recorded.path).toBe('/v1/responses');
    expect(recorded.headers.authorization).toBe('Bearer sk-test');
    expect(recorded.body).toEqual({
      model: 'gpt-test',
      instructions: 'Be brief.',
      input: [{ role: 'user', content: 'hi' }],
      tools: [{ type: 'function', ...tools[0] }],
      stream: true,
      store: false,
      include: ['reasoning.encrypted_content'],
      max_output_tokens: 100,
    });
  });

  it('openai-responses - a tool call round trip sends reasoning unchanged, then function_call, then function_call_output', async () => {
    const reasoning = { id: 'rs_7', summary: 'Need the file', encryptedContent: 'enc-Zm9vYmFy/+==' };
    const target = await start({ reasoning, toolCalls: [{ callId: 'call_7', name: 'read', arguments: { path: 'a.txt' } }] }, { text: 'The file says hi.' });
    const provider = providerFor(target);
    const first = await collect(provider.stream(turnRequest()));
    const call = toolCalls(first)[0]!;
    const finish = finishOf(first);
    // Replay the way actors/history.ts builds it: metadata on the message and on the call.
    const messages: ChatMessage[] = [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: '', reasoning: textOf(first, 'reasoning.delta'), toolCalls: [call], ...(finish.providerMetadata ? { providerMetadata: finish.providerMetadata } : {}) },
      { role: 'tool', toolCallId: call.id, name: call.name, content: 'hi' },
    ];
    const second = await collect(provider.stream(turnRequest({ messages })));
    expect(textOf(second, 'text.delta')).toBe('The file says hi.');
    const body = target.requests[1]!.body as { input: unknown[]; store: boolean };
    expect(body.store).toBe(false);
    expect(body.input).toEqual([
      { role: 'user', content: 'hello' },
      { id: 'rs_7', type: 'reasoning', summary: [{ type: 'summary_text', text: 'Need the file' }], encrypted_content: 'enc-Zm9vYmFy/+==' },
      { type: 'function_call', call_id: 'call_7', name: 'read', arguments: '{"path":"a.txt"}' },
      { type: 'function_call_output', call_id: 'call_7', output: 'hi' },
    ]);
  });

  it('openai-responses - reasoning kept only on a tool call is still sent back once', () => {
    const item = { type: 'reasoning', id: 'rs_2', summary: [], encrypted_content: 'blob' };
    const body = buildResponsesBody({
      model: 'm',
      tools: [],
      messages: [
        { role: 'user', content: 'q' },
        {
          role: 'assistant',
          content: 'Let me look.',
          toolCalls: [
            { id: 'c1', name: 'ls', arguments: '{}', providerMetadata: { openaiResponses: { reasoning: [item] } } },
            { id: 'c2', name: 'ls', arguments: '{}' },
          ],
          providerMetadata: { openaiResponses: { reasoning: [item] } },
        },
        { role: 'tool', toolCallId: 'c1', name: 'ls', content: 'x' },
        { role: 'tool', toolCallId: 'c2', name: 'ls', content: 'y', isError: true },
        { role: 'system', content: 'late note' },
      ],
    });
    expect(body.instructions).toBeUndefined();
    expect(body.input).toEqual([
      { role: 'user', content: 'q' },
      item,
      { role: 'assistant', content: 'Let me look.' },
      { type: 'function_call', call_id: 'c1', name: 'ls', arguments: '{}' },
      { type: 'function_call', call_id: 'c2', name: 'ls', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c1', output: 'x' },
      { type: 'function_call_output', call_id: 'c2', output: 'y' },
      { role: 'developer', content: 'late note' },
    ]);
    expect(body).not.toHaveProperty('tools');
  });
});

describe('openai-responses - errors', () => {
  it('openai-responses - HTTP 429 is a retryable rate limit that honours retry-after', async () => {
    const target = await start({ status: 429, retryAfter: '3' });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderRateLimitError);
    expect((error as ProviderRateLimitError).retryable).toBe(true);
    expect((error as ProviderRateLimitError).retryAfterMs).toBe(3000);
  });

  it('openai-responses - HTTP 503 with retry-after is a retryable server error carrying the delay', async () => {
    const target = await start({ status: 503, retryAfter: '4' });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderServerError);
    expect(error).toMatchObject({ retryable: true, status: 503, retryAfterMs: 4_000 });
  });

  it('openai-responses - HTTP 401 is an auth error that is not retryable', async () => {
    const target = await start({ status: 401 });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect((error as ProviderAuthError).retryable).toBe(false);
  });

  it('openai-responses - response.failed with a server error is retryable, with an invalid prompt is not', async () => {
    const target = await start(
      { text: 'partial', failed: { code: 'server_error', message: 'The server had an error' } },
      { failed: { code: 'invalid_prompt', message: 'Your prompt was flagged' } },
    );
    const provider = providerFor(target);
    const retryable = await failureOf(provider.stream(turnRequest()));
    expect(retryable).toBeInstanceOf(ProviderServerError);
    expect((retryable as ProviderServerError).retryable).toBe(true);
    expect((retryable as Error).message).toContain('server_error');
    const fatal = await failureOf(provider.stream(turnRequest()));
    expect(fatal).toBeInstanceOf(ProviderBadRequestError);
    expect((fatal as ProviderBadRequestError).retryable).toBe(false);
  });

  it('openai-responses - context_length_exceeded is a context overflow, as an error response or a response.failed', async () => {
    const target = await start(
      { status: 400, errorJson: { code: 'context_length_exceeded', message: 'Your input exceeds the context window of this model.', type: 'invalid_request_error' } },
      { failed: { code: 'context_length_exceeded', message: 'Your input exceeds the context window of this model.' } },
    );
    const provider = providerFor(target);
    for (let i = 0; i < 2; i++) {
      const error = await failureOf(provider.stream(turnRequest()));
      expect(error).toBeInstanceOf(ProviderContextOverflowError);
      expect((error as ProviderContextOverflowError).retryable).toBe(false);
    }
  });

  it('openai-responses - an error event saying rate limit is a retryable rate limit', async () => {
    const target = await start({ error: { code: 'rate_limit_exceeded', message: 'Rate limit reached' } });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderRateLimitError);
    expect((error as ProviderRateLimitError).retryable).toBe(true);
  });

  it('openai-responses - aborting the signal mid-stream ends it with ProviderAbortedError', async () => {
    const target = await start({ text: 'a long slow answer that keeps coming', chunkSize: 2, delayMs: 20 });
    const controller = new AbortController();
    const events: StreamEvent[] = [];
    let error: unknown;
    try {
      for await (const event of providerFor(target).stream(turnRequest({ signal: controller.signal }))) {
        events.push(event);
        if (event.type === 'text.delta') controller.abort();
      }
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ProviderAbortedError);
    expect(events.some((event) => event.type === 'finish')).toBe(false);
  });
});

describe('openai-responses - resolution', () => {
  it('openai-responses - without OPENAI_API_KEY or OPENAI_BASE_URL the error names both', () => {
    expect(() => openAIResponsesProviderFromEnv({})).toThrow(ProviderConfigError);
    expect(() => openAIResponsesProviderFromEnv({})).toThrow(/OPENAI_API_KEY.*OPENAI_BASE_URL/);
  });

  it('openai-responses - the resolver maps openai-responses/<model> to this adapter over the openai environment', async () => {
    const target = await start({ text: 'resolved' });
    const resolve = createProviderResolver(resolveConfig({ version: 2 }), { OPENAI_BASE_URL: target.url });
    const { provider, model } = resolve('openai-responses/gpt-5');
    expect(provider.id).toBe('openai-responses');
    expect(model).toBe('gpt-5');
    const events = await collect(provider.stream(turnRequest({ model })));
    expect(textOf(events, 'text.delta')).toBe('resolved');
    expect((target.requests[0]!.body as { model: string }).model).toBe('gpt-5');
  });
});
