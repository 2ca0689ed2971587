import { afterEach, describe, expect, it } from 'vitest';
import { PROVIDER_ERROR_BODY_BYTES_MAX, TOOL_ARGUMENTS_BYTES_MAX } from '../../core/limits.js';
import {
  ProviderAbortedError,
  ProviderAuthError,
  ProviderBadRequestError,
  ProviderContextOverflowError,
  ProviderConfigError,
  ProviderConnectionError,
  ProviderMalformedChunkError,
  ProviderNotFoundError,
  ProviderRateLimitError,
  ProviderResponseTooLargeError,
  ProviderServerError,
  ProviderStreamTruncatedError,
  ProviderTimeoutError,
} from '../../llm/errors.js';
import { createOpenAIProvider, openAIProviderFromEnv, type OpenAIProviderOptions } from '../../llm/openai.js';
import type { ChatMessage, ProviderRequest, StreamEvent, ToolCallRequest } from '../../llm/types.js';
import {
  startScriptedOpenAIServer,
  type ScriptedOpenAIServer,
  type ScriptedServerOptions,
} from '../fixtures/scripted-openai-server.js';

let server: ScriptedOpenAIServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(options: ScriptedServerOptions = {}): Promise<ScriptedOpenAIServer> {
  server = await startScriptedOpenAIServer(options);
  return server;
}

function providerFor(target: ScriptedOpenAIServer, options: OpenAIProviderOptions = {}) {
  return createOpenAIProvider({ baseURL: target.url, apiKey: 'sk-test', ...options });
}

function turnRequest(overrides: Partial<ProviderRequest> = {}): ProviderRequest {
  return {
    model: 'test-model',
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

function lastEvent(events: StreamEvent[]): StreamEvent | undefined {
  return events[events.length - 1];
}

/** A minimal chunk carrying one choice delta. */
function delta(content: Record<string, unknown>, finishReason: string | null = null) {
  return { choices: [{ index: 0, delta: content, finish_reason: finishReason }] };
}

function toolDelta(index: number, fields: { id?: string; name?: string; arguments?: string }) {
  const fn: Record<string, string> = {};
  if (fields.name !== undefined) fn.name = fields.name;
  if (fields.arguments !== undefined) fn.arguments = fields.arguments;
  return delta({ tool_calls: [{ index, ...(fields.id === undefined ? {} : { id: fields.id, type: 'function' }), function: fn }] });
}

describe('openai adapter', () => {
  it('openai adapter - streams text deltas in order and finishes with stop', async () => {
    const target = await start({ script: [{ text: 'Hello, streaming world!', chunkSize: 4 }] });
    const events = await collect(providerFor(target).stream(turnRequest()));
    const deltas = events.filter((event) => event.type === 'text.delta');
    expect(deltas.length).toBeGreaterThan(3);
    expect(textOf(events, 'text.delta')).toBe('Hello, streaming world!');
    expect(lastEvent(events)).toMatchObject({ type: 'finish', finishReason: 'stop' });
    expect(events.filter((event) => event.type === 'finish')).toHaveLength(1);
  });

  it('openai adapter - streams reasoning from reasoning_content before the text', async () => {
    const target = await start({ script: [{ reasoning: 'Let me think.', text: 'Answer.' }] });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(textOf(events, 'reasoning.delta')).toBe('Let me think.');
    expect(textOf(events, 'text.delta')).toBe('Answer.');
    expect(events.findIndex((event) => event.type === 'reasoning.delta')).toBeLessThan(
      events.findIndex((event) => event.type === 'text.delta'),
    );
    expect(lastEvent(events)).toMatchObject({ providerMetadata: { openai: { reasoningField: 'reasoning_content' } } });
  });

  it('openai adapter - streams reasoning from the reasoning field', async () => {
    const target = await start({ script: [{ reasoning: 'Thinking via reasoning.', reasoningField: 'reasoning', text: 'Done.' }] });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(textOf(events, 'reasoning.delta')).toBe('Thinking via reasoning.');
    expect(lastEvent(events)).toMatchObject({ providerMetadata: { openai: { reasoningField: 'reasoning' } } });
  });

  it('openai adapter - assembles tool calls by index across interleaved deltas', async () => {
    const chunks = [
      delta({ role: 'assistant', content: '' }),
      delta({ content: 'Reading both.' }),
      toolDelta(0, { id: 'call_a', name: 'read', arguments: '{"path":' }),
      toolDelta(1, { id: 'call_b', name: 'glob', arguments: '{"pattern":' }),
      toolDelta(0, { arguments: '"a.txt"}' }),
      toolDelta(1, { arguments: '"*.ts"}' }),
      toolDelta(2, { id: 'call_c', name: 'list', arguments: '{}' }),
      delta({}, 'tool_calls'),
    ];
    const target = await start({ script: [{ chunks }] });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(toolCalls(events)).toEqual([
      { id: 'call_a', name: 'read', arguments: '{"path":"a.txt"}' },
      { id: 'call_b', name: 'glob', arguments: '{"pattern":"*.ts"}' },
      { id: 'call_c', name: 'list', arguments: '{}' },
    ]);
    expect(events.map((event) => event.type)).toEqual(['text.delta', 'tool.call', 'tool.call', 'tool.call', 'finish']);
    expect(lastEvent(events)).toMatchObject({ type: 'finish', finishReason: 'tool_calls' });
  });

  it('openai adapter - assembles tool calls that arrive without an index', async () => {
    const chunks = [
      delta({ tool_calls: [{ id: 'call_a', function: { name: 'read', arguments: '{"path"' } }] }),
      delta({ tool_calls: [{ function: { arguments: ':"a"}' } }] }),
      delta({ tool_calls: [{ id: 'call_b', function: { name: 'list', arguments: '' } }] }),
      delta({}, 'stop'),
    ];
    const target = await start({ script: [{ chunks }] });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(toolCalls(events)).toEqual([
      { id: 'call_a', name: 'read', arguments: '{"path":"a"}' },
      { id: 'call_b', name: 'list', arguments: '{}' },
    ]);
    expect(lastEvent(events)).toMatchObject({ finishReason: 'tool_calls' });
  });

  it('openai adapter - more arguments for a call already emitted is ProviderMalformedChunkError', async () => {
    const chunks = [
      toolDelta(0, { id: 'call_a', name: 'read', arguments: '{"path":"a"}' }),
      toolDelta(1, { id: 'call_b', name: 'read', arguments: '{"path":"b"}' }),
      toolDelta(0, { arguments: '{"again":true}' }),
      delta({}, 'tool_calls'),
    ];
    const target = await start({ script: [{ chunks }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderMalformedChunkError);
  });

  it('openai adapter - tool-call arguments over their byte bound are ProviderResponseTooLargeError', async () => {
    const huge = `{"text":"${'a'.repeat(TOOL_ARGUMENTS_BYTES_MAX)}"}`;
    const target = await start({ script: [{ toolCalls: [{ name: 'write', arguments: huge }], chunkSize: 64 * 1024 }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderResponseTooLargeError);
    expect((error as Error).message).toContain('"write"');
  });

  it('openai adapter - emits a tool call before later calls complete (interleaved order)', async () => {
    // Call 0 is complete when call 1 continues; it must be out before call 1 is.
    const chunks = [
      toolDelta(0, { id: 'call_a', name: 'read', arguments: '{"path":"a"}' }),
      toolDelta(1, { id: 'call_b', name: 'read', arguments: '{"path":' }),
      toolDelta(1, { arguments: '"b"}' }),
      delta({}, 'tool_calls'),
    ];
    const target = await start({ script: [{ chunks, delayMs: 100 }] });
    const arrivals: Array<{ event: StreamEvent; at: number }> = [];
    for await (const event of providerFor(target).stream(turnRequest())) arrivals.push({ event, at: performance.now() });
    const [first, second, finish] = arrivals;
    expect(first.event).toMatchObject({ type: 'tool.call', call: { id: 'call_a' } });
    expect(second.event).toMatchObject({ type: 'tool.call', call: { id: 'call_b' } });
    expect(finish.event.type).toBe('finish');
    // call_a settles when call_b starts (2nd event); call_b only at finish_reason, two pauses later.
    expect(second.at - first.at).toBeGreaterThanOrEqual(150);
  });

  it('openai adapter - settles each tool call eagerly, long before the stream finishes', async () => {
    const target = await start({
      script: [
        {
          toolCalls: [
            { id: 'call_1', name: 'read', arguments: { path: 'src/first-file.ts' } },
            { id: 'call_2', name: 'read', arguments: { path: 'src/second-file.ts' } },
          ],
          chunkSize: 6,
          delayMs: 40,
        },
      ],
    });
    const arrivals: Array<{ event: StreamEvent; at: number }> = [];
    for await (const event of providerFor(target).stream(turnRequest())) arrivals.push({ event, at: performance.now() });
    const types = arrivals.map(({ event }) => event.type);
    expect(types).toEqual(['tool.call', 'tool.call', 'finish']);
    const [first, second, finish] = arrivals;
    expect(first.event).toMatchObject({ call: { id: 'call_1', name: 'read', arguments: '{"path":"src/first-file.ts"}' } });
    expect(second.event).toMatchObject({ call: { id: 'call_2', arguments: '{"path":"src/second-file.ts"}' } });
    // call_2 has five more delta events after call_1 settles, each 40 ms apart.
    expect(second.at - first.at).toBeGreaterThanOrEqual(150);
    expect(finish.at).toBeGreaterThanOrEqual(second.at);
  });

  it('openai adapter - reports usage from the final usage chunk', async () => {
    const target = await start({
      script: [{ text: 'ok', usage: { prompt_tokens: 120, completion_tokens: 45, reasoning_tokens: 30, cached_tokens: 64 } }],
    });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(lastEvent(events)).toEqual({
      type: 'finish',
      finishReason: 'stop',
      usage: { inputTokens: 120, outputTokens: 45, reasoningTokens: 30, cachedInputTokens: 64 },
    });
  });

  it('openai adapter - maps finish reasons', async () => {
    const target = await start({
      script: [
        { text: 'cut', finishReason: 'length' },
        { text: 'filtered', finishReason: 'content_filter' },
        { text: 'odd', finishReason: 'eos_token' },
        { toolCalls: [{ name: 'list', arguments: {} }], finishReason: 'stop' },
      ],
    });
    const provider = providerFor(target);
    const reasons: unknown[] = [];
    for (let turn = 0; turn < 4; turn++) reasons.push(lastEvent(await collect(provider.stream(turnRequest()))));
    expect(reasons.map((event) => (event as { finishReason: string }).finishReason)).toEqual([
      'length',
      'content_filter',
      'other',
      'tool_calls',
    ]);
  });

  it('openai adapter - accepts a stream that finished but ended without [DONE]', async () => {
    const target = await start({ script: [{ text: 'lenient', done: false, usage: { prompt_tokens: 3, completion_tokens: 2 } }] });
    const events = await collect(providerFor(target).stream(turnRequest()));
    expect(textOf(events, 'text.delta')).toBe('lenient');
    expect(lastEvent(events)).toMatchObject({ type: 'finish', finishReason: 'stop', usage: { inputTokens: 3, outputTokens: 2 } });
  });

  it('openai adapter - 401 becomes ProviderAuthError with the body excerpt', async () => {
    const errorBody = JSON.stringify({ error: { message: 'Incorrect API key provided: sk-test', type: 'invalid_request_error' } });
    const target = await start({ script: [{ status: 401, errorBody }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect(error).toMatchObject({ name: 'ProviderAuthError', kind: 'auth', status: 401, retryable: false });
    expect((error as Error).message).toContain('Incorrect API key provided');
  });

  it('openai adapter - 404 becomes ProviderNotFoundError naming the model and URL', async () => {
    const target = await start({ script: [{ status: 404, errorBody: 'model not loaded' }] });
    const error = await failureOf(providerFor(target).stream(turnRequest({ model: 'missing-model' })));
    expect(error).toBeInstanceOf(ProviderNotFoundError);
    expect(error).toMatchObject({ status: 404, retryable: false });
    expect((error as Error).message).toContain('missing-model');
    expect((error as Error).message).toContain(`${target.url}/chat/completions`);
    expect((error as Error).message).toContain('model not loaded');
  });

  it('openai adapter - 429 becomes ProviderRateLimitError with retry-after seconds', async () => {
    const target = await start({ script: [{ status: 429, retryAfter: '7' }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderRateLimitError);
    expect(error).toMatchObject({ kind: 'rate_limit', status: 429, retryable: true, retryAfterMs: 7_000 });
  });

  it('openai adapter - 429 reads retry-after as an HTTP date and retry-after-ms', async () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const clock = { now: () => now, monotonic: () => 0 };
    const target = await start({
      script: [
        { status: 429, retryAfter: new Date(now + 30_000).toUTCString() },
        { status: 429, retryAfter: '60', headers: { 'retry-after-ms': '1500' } },
      ],
    });
    const provider = providerFor(target, { clock });
    expect(await failureOf(provider.stream(turnRequest()))).toMatchObject({ retryAfterMs: 30_000 });
    expect(await failureOf(provider.stream(turnRequest()))).toMatchObject({ retryAfterMs: 1_500 });
  });

  it('openai adapter - 5xx becomes a retryable ProviderServerError', async () => {
    const target = await start({ script: [{ status: 503, errorBody: 'overloaded' }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderServerError);
    expect(error).toMatchObject({ status: 503, retryable: true });
    expect((error as Error).message).toContain('overloaded');
  });

  it('openai adapter - a 503 with retry-after (or retry-after-ms) carries the delay, like a 429', async () => {
    const target = await start({ script: [{ status: 503, retryAfter: '12' }, { status: 502, headers: { 'retry-after-ms': '2500' } }, { status: 500 }] });
    const provider = providerFor(target);
    const first = await failureOf(provider.stream(turnRequest()));
    expect(first).toBeInstanceOf(ProviderServerError);
    expect(first).toMatchObject({ status: 503, retryable: true, retryAfterMs: 12_000 });
    expect((first as Error).message).toContain('(HTTP 503)');
    expect((first as Error).message).toContain('; retry after 12 s');
    expect(await failureOf(provider.stream(turnRequest()))).toMatchObject({ status: 502, retryAfterMs: 2_500 });
    expect(((await failureOf(provider.stream(turnRequest()))) as ProviderServerError).retryAfterMs).toBeUndefined();
  });

  it('openai adapter - other 4xx becomes ProviderBadRequestError', async () => {
    const target = await start({ script: [{ status: 400, errorBody: '{"error":{"message":"Unrecognized request argument supplied: foo"}}' }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderBadRequestError);
    expect(error).toMatchObject({ status: 400, retryable: false });
    expect((error as Error).message).toContain('Unrecognized request argument supplied: foo');
  });

  it('openai adapter - context_length_exceeded (and a 413) becomes ProviderContextOverflowError, in an error response or mid-stream', async () => {
    const body = JSON.stringify({
      error: { message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' },
    });
    const target = await start({
      script: [
        { status: 400, errorBody: body },
        { status: 413, errorBody: 'request entity too large' },
        { chunks: [{ error: { message: 'This model\'s maximum context length is 8192 tokens', code: 'context_length_exceeded' } }] },
      ],
    });
    const provider = providerFor(target);
    for (let i = 0; i < 3; i++) {
      const error = await failureOf(provider.stream(turnRequest()));
      expect(error).toBeInstanceOf(ProviderContextOverflowError);
      expect(error).toMatchObject({ kind: 'context_overflow', retryable: false });
    }
  });

  it('openai adapter - keeps only a bounded excerpt of a large error body', async () => {
    const target = await start({ script: [{ status: 500, errorBody: 'x'.repeat(200_000) }] });
    const error = (await failureOf(providerFor(target).stream(turnRequest()))) as Error;
    expect(error).toBeInstanceOf(ProviderServerError);
    expect(Buffer.byteLength(error.message)).toBeLessThan(PROVIDER_ERROR_BODY_BYTES_MAX + 300);
    expect(error.message.endsWith('…')).toBe(true);
  });

  it('openai adapter - a stream cut off before finish is ProviderStreamTruncatedError', async () => {
    const target = await start({ script: [{ text: 'This stream will stop half way', truncate: true }] });
    const seen: StreamEvent[] = [];
    const error = await failureOf(
      (async function* () {
        for await (const event of providerFor(target).stream(turnRequest())) {
          seen.push(event);
          yield event;
        }
      })(),
    );
    expect(error).toBeInstanceOf(ProviderStreamTruncatedError);
    expect(error).toMatchObject({ retryable: true });
    expect(seen.some((event) => event.type === 'text.delta')).toBe(true);
    expect(seen.some((event) => event.type === 'finish')).toBe(false);
  });

  it('openai adapter - a connection closed mid-stream is ProviderStreamTruncatedError', async () => {
    const target = await start({ script: [{ text: 'This connection will close half way', truncate: 'socket' }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderStreamTruncatedError);
  });

  it('openai adapter - a data line that is not JSON is ProviderMalformedChunkError', async () => {
    const target = await start({ script: [{ text: 'hello', malformed: true }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderMalformedChunkError);
    expect(error).toMatchObject({ retryable: false });
    expect((error as Error).message).toContain('not JSON');
  });

  it('openai adapter - a chunk of the wrong shape is ProviderMalformedChunkError', async () => {
    const target = await start({ script: [{ chunks: [{ choices: 'not a list' }] }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderMalformedChunkError);
  });

  it('openai adapter - a JSON response instead of a stream is ProviderMalformedChunkError', async () => {
    const target = await start({ script: [{ text: 'ignored', headers: { 'content-type': 'application/json' } }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderMalformedChunkError);
    expect((error as Error).message).toContain('stream: true');
  });

  it('openai adapter - an error object mid-stream is ProviderServerError', async () => {
    const target = await start({ script: [{ chunks: [delta({ content: 'partial' }), { error: { message: 'backend crashed' } }] }] });
    const error = await failureOf(providerFor(target).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderServerError);
    expect((error as Error).message).toContain('backend crashed');
  });

  it('openai adapter - aborting mid-stream ends it promptly with ProviderAbortedError', async () => {
    const target = await start({ script: [{ text: 'a slow stream of many words', chunkSize: 2, delayMs: 1_000 }] });
    const controller = new AbortController();
    let abortedAt = Number.NaN;
    let error: unknown;
    try {
      for await (const event of providerFor(target).stream(turnRequest({ signal: controller.signal }))) {
        if (event.type !== 'text.delta') continue;
        abortedAt = performance.now();
        controller.abort();
      }
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ProviderAbortedError);
    expect(error).toMatchObject({ kind: 'aborted', retryable: false });
    // The next chunk is 1 s away; the abort must not wait for it.
    expect(performance.now() - abortedAt).toBeLessThan(400);
  });

  it('openai adapter - aborting while waiting for headers rejects at once', async () => {
    const target = await start({ script: [{ text: 'late', hangMs: 5_000 }] });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = performance.now();
    const error = await failureOf(providerFor(target).stream(turnRequest({ signal: controller.signal })));
    expect(error).toBeInstanceOf(ProviderAbortedError);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('openai adapter - an already aborted signal sends no request', async () => {
    const target = await start({ script: [{ text: 'never' }] });
    const error = await failureOf(providerFor(target).stream(turnRequest({ signal: AbortSignal.abort() })));
    expect(error).toBeInstanceOf(ProviderAbortedError);
    expect(target.requests).toHaveLength(0);
  });

  it('openai adapter - a silent stream fails with an idle ProviderTimeoutError', async () => {
    const target = await start({ script: [{ text: 'slow chunks', delayMs: 1_000 }] });
    const error = await failureOf(providerFor(target, { idleTimeoutMs: 100 }).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderTimeoutError);
    expect(error).toMatchObject({ phase: 'idle', timeoutMs: 100, retryable: true });
  });

  it('openai adapter - missing headers fail with a headers ProviderTimeoutError', async () => {
    const target = await start({ script: [{ text: 'late', hangMs: 1_000 }] });
    const error = await failureOf(providerFor(target, { headersTimeoutMs: 100 }).stream(turnRequest()));
    expect(error).toMatchObject({ name: 'ProviderTimeoutError', phase: 'headers' });
  });

  it('openai adapter - a request longer than its total timeout fails with a total ProviderTimeoutError', async () => {
    const target = await start({ script: [{ text: 'x'.repeat(40), chunkSize: 1, delayMs: 30 }] });
    const error = await failureOf(providerFor(target, { requestTimeoutMs: 300 }).stream(turnRequest()));
    expect(error).toMatchObject({ name: 'ProviderTimeoutError', phase: 'total' });
  });

  it('openai adapter - a response over its byte cap is ProviderResponseTooLargeError', async () => {
    const target = await start({ script: [{ text: 'y'.repeat(20_000), chunkSize: 1_000 }] });
    const error = await failureOf(providerFor(target, { responseBytesMax: 4_096 }).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderResponseTooLargeError);
  });

  it('openai adapter - a refused connection is ProviderConnectionError', async () => {
    const target = await start();
    const url = target.url;
    await target.close();
    server = undefined;
    const error = await failureOf(createOpenAIProvider({ baseURL: url }).stream(turnRequest()));
    expect(error).toBeInstanceOf(ProviderConnectionError);
    expect(error).toMatchObject({ retryable: true });
  });

  it('openai adapter - sends the request body in the Chat Completions shape', async () => {
    const target = await start({ script: [{ text: 'ok' }] });
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Read a.txt' },
      {
        role: 'assistant',
        content: '',
        reasoning: 'I should read it.',
        toolCalls: [{ id: 'call_1', name: 'read', arguments: '{"path":"a.txt"}' }],
      },
      { role: 'tool', toolCallId: 'call_1', name: 'read', content: 'contents of a' },
      { role: 'assistant', content: 'Done.', reasoning: 'kept', providerMetadata: { openai: { echoReasoning: true } } },
    ];
    const tools = [{ name: 'read', description: 'Read a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } }];
    await collect(providerFor(target).stream(turnRequest({ model: 'gpt-test', messages, tools, maxOutputTokens: 256 })));
    const [recorded] = target.requests;
    expect(recorded.headers.authorization).toBe('Bearer sk-test');
    expect(recorded.path).toBe('/v1/chat/completions');
    expect(recorded.body).toEqual({
      model: 'gpt-test',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 256,
      tools: [{ type: 'function', function: tools[0] }],
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Read a.txt' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'read', arguments: '{"path":"a.txt"}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'contents of a' },
        { role: 'assistant', content: 'Done.', reasoning_content: 'kept' },
      ],
    });
  });

  it('openai adapter - leaves out an empty tools list', async () => {
    const target = await start({ script: [{ text: 'ok' }] });
    await collect(providerFor(target).stream(turnRequest()));
    expect(target.requests[0].body).not.toHaveProperty('tools');
  });

  it('openai adapter - env config error names both variables', () => {
    const attempt = () => openAIProviderFromEnv({});
    expect(attempt).toThrow(ProviderConfigError);
    expect(attempt).toThrow(/OPENAI_API_KEY or OPENAI_BASE_URL is not set/);
    expect(() => openAIProviderFromEnv({ OPENAI_API_KEY: '  ', OPENAI_BASE_URL: '' })).toThrow(ProviderConfigError);
  });

  it('openai adapter - env with only OPENAI_BASE_URL talks to a local server without a key', async () => {
    const target = await start({ script: [{ text: 'local' }] });
    const provider = openAIProviderFromEnv({ OPENAI_BASE_URL: target.url });
    expect(provider).toMatchObject({ id: 'openai', idempotent: false });
    const events = await collect(provider.stream(turnRequest()));
    expect(textOf(events, 'text.delta')).toBe('local');
    expect(target.requests[0].headers.authorization).toBeUndefined();
  });

  it('openai adapter - an invalid base URL is ProviderConfigError', () => {
    expect(() => openAIProviderFromEnv({ OPENAI_BASE_URL: 'localhost:11434' })).toThrow(ProviderConfigError);
  });

  it('openai adapter - reuses one server across many attempts', async () => {
    const target = await start({ respond: (_request, index) => ({ text: `turn ${index}` }) });
    const provider = providerFor(target);
    const texts = await Promise.all(
      Array.from({ length: 50 }, async () => textOf(await collect(provider.stream(turnRequest())), 'text.delta')),
    );
    expect(new Set(texts).size).toBe(50);
    expect(target.requests).toHaveLength(50);
  });
});

describe('scripted openai server', () => {
  it('scripted openai server - answers "(script exhausted)" when the script runs out', async () => {
    const target = await start({ script: [{ text: 'first' }] });
    const provider = providerFor(target);
    expect(textOf(await collect(provider.stream(turnRequest())), 'text.delta')).toBe('first');
    expect(textOf(await collect(provider.stream(turnRequest())), 'text.delta')).toBe('(script exhausted)');
    target.push({ text: 'pushed' });
    expect(textOf(await collect(provider.stream(turnRequest())), 'text.delta')).toBe('pushed');
  });

  it('scripted openai server - lists its model', async () => {
    const target = await start({ model: 'local-model' });
    const response = await fetch(`${target.url}/models`);
    expect(await response.json()).toMatchObject({ object: 'list', data: [{ id: 'local-model' }] });
  });
});
