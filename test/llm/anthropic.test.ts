import { afterEach, describe, expect, it } from 'vitest';
import { anthropicProviderFromEnv, buildMessagesBody, createAnthropicProvider } from '../../llm/anthropic.js';
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
import { createProviderResolver } from '../../llm/resolve.js';
import type { ChatMessage, ProviderRequest, StreamEvent } from '../../llm/types.js';
import { resolveConfig } from '../../services/config.js';
import {
  startScriptedAnthropicServer,
  type ScriptedAnthropicServer,
  type ScriptedAnthropicTurn,
} from '../fixtures/scripted-anthropic-server.js';

let server: ScriptedAnthropicServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(turns: ScriptedAnthropicTurn[]): Promise<ScriptedAnthropicServer> {
  server = await startScriptedAnthropicServer(turns);
  return server;
}

function request(messages: ChatMessage[], extra: Partial<ProviderRequest> = {}): ProviderRequest {
  return { model: 'claude-test', messages, tools: [], signal: new AbortController().signal, ...extra };
}

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

async function failure(stream: AsyncIterable<StreamEvent>): Promise<unknown> {
  try {
    await collect(stream);
  } catch (error) {
    return error;
  }
  throw new Error('the stream did not fail');
}

const tools = [{ name: 'read', description: 'Reads a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } }];

describe('anthropic provider - stream normalisation', () => {
  it('anthropic - text, thinking with its signature and usage become Loom stream events', async () => {
    const target = await start([{ thinking: { text: 'let me think', signature: 'sig-abc==' }, text: 'Hello there', inputTokens: 12, outputTokens: 34 }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'sk-ant-test' });
    const events = await collect(provider.stream(request([{ role: 'user', content: 'hi' }])));
    const text = events.flatMap((e) => (e.type === 'text.delta' ? [e.delta] : [])).join('');
    const reasoning = events.flatMap((e) => (e.type === 'reasoning.delta' ? [e.delta] : [])).join('');
    expect(text).toBe('Hello there');
    expect(reasoning).toBe('let me think');
    expect(events.at(-1)).toEqual({
      type: 'finish',
      finishReason: 'stop',
      usage: { inputTokens: 12, outputTokens: 34 },
      providerMetadata: { anthropic: { thinking: [{ thinking: 'let me think', signature: 'sig-abc==' }] } },
    });
  });

  it('anthropic - a tool_use block streamed in several input_json_delta chunks yields one tool.call', async () => {
    const input = { path: 'src/some/long/file/name.ts', lines: [1, 2, 3] };
    const target = await start([{ text: 'Reading.', toolUses: [{ id: 'toolu_1', name: 'read', input }], chunkSize: 3 }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const events = await collect(provider.stream(request([{ role: 'user', content: 'read it' }], { tools })));
    const calls = events.filter((e) => e.type === 'tool.call');
    expect(calls).toEqual([{ type: 'tool.call', call: { id: 'toolu_1', name: 'read', arguments: JSON.stringify(input) } }]);
    expect(events.at(-1)).toMatchObject({ type: 'finish', finishReason: 'tool_calls' });
  });

  it('anthropic - stop reasons map to Loom finish reasons', async () => {
    const target = await start([{ text: 'a', stopReason: 'max_tokens' }, { text: 'b', stopReason: 'stop_sequence' }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const first = await collect(provider.stream(request([{ role: 'user', content: 'x' }])));
    const second = await collect(provider.stream(request([{ role: 'user', content: 'x' }])));
    expect(first.at(-1)).toMatchObject({ finishReason: 'length' });
    expect(second.at(-1)).toMatchObject({ finishReason: 'stop' });
  });

  it('anthropic - redacted thinking travels in providerMetadata', async () => {
    const target = await start([{ redactedThinking: 'opaque-data', text: 'ok' }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const events = await collect(provider.stream(request([{ role: 'user', content: 'x' }])));
    expect(events.at(-1)).toMatchObject({ providerMetadata: { anthropic: { thinking: [{ redacted: 'opaque-data' }] } } });
  });
});

describe('anthropic provider - request building', () => {
  it('anthropic - sends headers, model, max_tokens, top-level system and tools', async () => {
    const target = await start([{ text: 'ok' }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'sk-ant-secret' });
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are Loom.' },
      { role: 'user', content: 'hi' },
    ];
    await collect(provider.stream(request(messages, { tools, maxOutputTokens: 100 })));
    const recorded = target.requests[0]!;
    expect(recorded.path).toBe('/v1/messages');
    expect(recorded.headers['x-api-key']).toBe('sk-ant-secret');
    expect(recorded.headers['anthropic-version']).toBe('2023-06-01');
    expect(recorded.body).toEqual({
      model: 'claude-test',
      max_tokens: 100,
      system: 'You are Loom.',
      messages: [{ role: 'user', content: 'hi' }],
      tools: [{ name: 'read', description: 'Reads a file', input_schema: tools[0]!.parameters }],
      stream: true,
    });
  });

  it('anthropic - a tool round trip replays thinking (signature unchanged), tool_use and merged tool_result blocks', async () => {
    const signature = 'EqQBCgIYAhIM+/sig==';
    const target = await start([
      { thinking: { text: 'I should read both', signature }, toolUses: [{ id: 'toolu_a', name: 'read', input: { path: 'a' } }, { id: 'toolu_b', name: 'read', input: { path: 'b' } }] },
      { text: 'done' },
    ]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const first = await collect(provider.stream(request([{ role: 'user', content: 'read a and b' }], { tools })));
    const calls = first.flatMap((e) => (e.type === 'tool.call' ? [e.call] : []));
    const finish = first.at(-1);
    if (finish?.type !== 'finish') throw new Error('no finish');
    const history: ChatMessage[] = [
      { role: 'user', content: 'read a and b' },
      { role: 'assistant', content: '', reasoning: 'I should read both', toolCalls: calls, providerMetadata: finish.providerMetadata },
      { role: 'tool', toolCallId: 'toolu_a', name: 'read', content: 'A' },
      { role: 'tool', toolCallId: 'toolu_b', name: 'read', content: 'no such file', isError: true },
    ];
    await collect(provider.stream(request(history, { tools })));
    expect(target.requests[1]!.body.messages).toEqual([
      { role: 'user', content: 'read a and b' },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'I should read both', signature },
          { type: 'tool_use', id: 'toolu_a', name: 'read', input: { path: 'a' } },
          { type: 'tool_use', id: 'toolu_b', name: 'read', input: { path: 'b' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_a', content: 'A' },
          { type: 'tool_result', tool_use_id: 'toolu_b', content: 'no such file', is_error: true },
        ],
      },
    ]);
  });

  it('anthropic - invalid tool arguments are sent as an empty input object; redacted thinking goes back as it came', () => {
    const body = buildMessagesBody({
      model: 'm',
      tools: [],
      messages: [
        { role: 'user', content: 'x' },
        {
          role: 'assistant',
          content: 'text',
          toolCalls: [{ id: 't1', name: 'read', arguments: '{not json' }],
          providerMetadata: { anthropic: { thinking: [{ redacted: 'blob' }] } },
        },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: 'x' },
      {
        role: 'assistant',
        content: [
          { type: 'redacted_thinking', data: 'blob' },
          { type: 'text', text: 'text' },
          { type: 'tool_use', id: 't1', name: 'read', input: {} },
        ],
      },
    ]);
    expect(body.max_tokens).toBeGreaterThan(0);
    expect(body).not.toHaveProperty('system');
  });
});

describe('anthropic provider - errors', () => {
  it('anthropic - an overloaded error event mid-stream is a retryable server error', async () => {
    const target = await start([{ text: 'partial', errorEvent: 'overloaded_error' }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const error = await failure(provider.stream(request([{ role: 'user', content: 'x' }])));
    expect(error).toBeInstanceOf(ProviderServerError);
    expect((error as ProviderServerError).retryable).toBe(true);
    expect((error as Error).message).toMatch(/overloaded_error/);
  });

  it('anthropic - HTTP 529 and 429 are retryable and honour retry-after', async () => {
    const target = await start([{ status: 529, retryAfter: '3' }, { status: 429, retryAfter: '7' }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const overloaded = await failure(provider.stream(request([{ role: 'user', content: 'x' }])));
    expect(overloaded).toBeInstanceOf(ProviderServerError);
    expect(overloaded).toMatchObject({ retryable: true, status: 529, retryAfterMs: 3000 });
    const limited = await failure(provider.stream(request([{ role: 'user', content: 'x' }])));
    expect(limited).toBeInstanceOf(ProviderRateLimitError);
    expect(limited).toMatchObject({ retryable: true, status: 429, retryAfterMs: 7000 });
    expect((overloaded as Error).message).toMatch(/^The provider failed \(HTTP 529, overloaded\) for POST .*; retry after 3 s/);
  });

  it('anthropic - HTTP 401 is a non-retryable auth error naming the body message', async () => {
    const target = await start([{ status: 401 }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'bad' });
    const error = await failure(provider.stream(request([{ role: 'user', content: 'x' }])));
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect(error).toMatchObject({ retryable: false, status: 401 });
    expect((error as Error).message).toMatch(/scripted authentication_error/);
  });

  it('anthropic - HTTP 400, 403 and 404 are not retryable; 500 is', async () => {
    const target = await start([{ status: 400 }, { status: 403 }, { status: 404 }, { status: 500 }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const errors = [];
    for (let i = 0; i < 4; i += 1) errors.push(await failure(provider.stream(request([{ role: 'user', content: 'x' }]))));
    expect(errors.map((e) => [(e as ProviderServerError).status, (e as ProviderServerError).retryable])).toEqual([
      [400, false],
      [403, false],
      [404, false],
      [500, true],
    ]);
    expect(errors[0]).toBeInstanceOf(ProviderBadRequestError);
  });

  it('anthropic - "prompt is too long" (an invalid_request_error, as a response or an error event) and request_too_large are context overflows', async () => {
    const target = await start([
      { status: 400, errorMessage: 'prompt is too long: 215000 tokens > 200000 maximum' },
      { status: 413, errorType: 'request_too_large', errorMessage: 'Request exceeds the maximum allowed number of bytes.' },
      { text: 'x', errorEvent: 'invalid_request_error', errorMessage: 'prompt is too long: 201000 tokens > 200000 maximum' },
      { status: 400, errorMessage: 'messages: text content blocks must be non-empty' },
    ]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const errors = [];
    for (let i = 0; i < 4; i += 1) errors.push(await failure(provider.stream(request([{ role: 'user', content: 'x' }]))));
    expect(errors.slice(0, 3).every((e) => e instanceof ProviderContextOverflowError)).toBe(true);
    expect((errors[0] as Error).message).toContain('prompt is too long: 215000 tokens > 200000 maximum');
    expect(errors[3]).toBeInstanceOf(ProviderBadRequestError);
  });

  it('anthropic - a stream that ends without message_stop is truncated', async () => {
    const target = await start([{ truncate: true }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    expect(await failure(provider.stream(request([{ role: 'user', content: 'x' }])))).toBeInstanceOf(ProviderStreamTruncatedError);
  });

  it('anthropic - aborting the signal ends the attempt with ProviderAbortedError', async () => {
    const target = await start([{ text: 'late', hangMs: 10_000 }]);
    const provider = createAnthropicProvider({ baseURL: target.url, apiKey: 'k' });
    const controller = new AbortController();
    const pending = failure(provider.stream(request([{ role: 'user', content: 'x' }], { signal: controller.signal })));
    setTimeout(() => controller.abort(), 50);
    const error = await pending;
    expect(error).toBeInstanceOf(ProviderAbortedError);
    expect((error as ProviderAbortedError).retryable).toBe(false);
  });
});

describe('anthropic provider - resolution', () => {
  it('anthropic - without ANTHROPIC_API_KEY the resolver throws a config error naming it', () => {
    const resolve = createProviderResolver(resolveConfig({ version: 2 }), {});
    expect(() => resolve('anthropic/claude-test')).toThrow(ProviderConfigError);
    expect(() => resolve('anthropic/claude-test')).toThrow(/ANTHROPIC_API_KEY/);
    expect(() => anthropicProviderFromEnv({ ANTHROPIC_API_KEY: ' ' })).toThrow(/ANTHROPIC_API_KEY/);
  });

  it('anthropic - the resolver builds the anthropic provider from the environment and config', async () => {
    const target = await start([{ text: 'from env' }, { text: 'from config' }]);
    const fromEnv = createProviderResolver(resolveConfig({ version: 2 }), { ANTHROPIC_API_KEY: 'env-key', ANTHROPIC_BASE_URL: target.url });
    const { provider, model } = fromEnv('anthropic/claude-sonnet-4-5');
    expect(provider.id).toBe('anthropic');
    expect(model).toBe('claude-sonnet-4-5');
    await collect(provider.stream(request([{ role: 'user', content: 'x' }], { model })));
    // A version 1 file's key (carried in memory by the migration) still works.
    const config = resolveConfig({ version: 2, providers: { anthropic: { baseURL: target.url } } }, { legacyApiKeys: { anthropic: 'cfg-key' } });
    const fromConfig = createProviderResolver(config, {}).call(null, 'anthropic/claude-x');
    await collect(fromConfig.provider.stream(request([{ role: 'user', content: 'x' }], { model: fromConfig.model })));
    expect(target.requests.map((r) => [r.headers['x-api-key'], r.body.model])).toEqual([
      ['env-key', 'claude-sonnet-4-5'],
      ['cfg-key', 'claude-x'],
    ]);
  });
});
