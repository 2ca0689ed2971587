import { describe, expect, it } from 'vitest';
import { ProviderConfigError } from '../../llm/errors.js';
import { createProviderResolver } from '../../llm/resolve.js';
import type { ProviderRequest, StreamEvent } from '../../llm/types.js';
import { resolveConfig } from '../../services/config.js';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { onCleanup } from '../helpers.js';

function request(model: string): ProviderRequest {
  return { model, messages: [{ role: 'user', content: 'hello' }], tools: [], signal: new AbortController().signal };
}

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

async function server(text = 'hi') {
  const s = await startScriptedOpenAIServer({ respond: () => ({ text }) });
  onCleanup(() => void s.close());
  return s;
}

describe('provider resolution from config version 2', () => {
  it('resolve - a custom provider id with kind openai reaches its baseURL with its headers (the adapter\'s own headers win)', async () => {
    const target = await server('custom');
    const config = resolveConfig({
      version: 2,
      providers: { local: { kind: 'openai', baseURL: target.url, headers: { 'X-Team': 'loom', 'Content-Type': 'text/plain' }, idempotent: true } },
    });
    const { provider, model } = createProviderResolver(config, {})('local/qwen2.5-coder');
    expect(model).toBe('qwen2.5-coder');
    expect(provider.idempotent).toBe(true);
    const events = await collect(provider.stream(request(model)));
    expect(events.filter((e) => e.type === 'text.delta').map((e) => (e as { delta: string }).delta).join('')).toBe('custom');
    const sent = target.requests[0]!;
    expect(sent.path).toBe('/v1/chat/completions');
    expect(sent.headers['x-team']).toBe('loom');
    expect(sent.headers['content-type']).toBe('application/json');
    expect(sent.headers.authorization).toBeUndefined();
    expect((sent.body as { model: string }).model).toBe('qwen2.5-coder');
  });

  it('resolve - the environment wins over config for a built-in provider, and a version 1 key is used after it', async () => {
    const target = await server();
    const config = resolveConfig({ version: 2, providers: { openai: { baseURL: 'http://127.0.0.1:9/v1' } } }, { legacyApiKeys: { openai: 'sk-legacy-0001' } });
    const { provider } = createProviderResolver(config, { OPENAI_BASE_URL: target.url })('openai/m');
    await collect(provider.stream(request('m')));
    expect(target.requests[0]!.headers.authorization).toBe('Bearer sk-legacy-0001');
    const fromEnv = createProviderResolver(config, { OPENAI_BASE_URL: target.url, OPENAI_API_KEY: 'sk-env' })('openai/m');
    await collect(fromEnv.provider.stream(request('m')));
    expect(target.requests[1]!.headers.authorization).toBe('Bearer sk-env');
  });

  it('resolve - openai-responses without an entry of its own uses the openai entry', async () => {
    const config = resolveConfig({ version: 2, providers: { openai: { baseURL: 'http://127.0.0.1:9/v1', idempotent: true } } });
    const { provider } = createProviderResolver(config, {})('openai-responses/gpt-5');
    expect(provider.id).toBe('openai-responses');
    expect(provider.idempotent).toBe(true);
  });

  it('resolve - refuses a disabled provider, an unknown id (listing the configured ones) and a custom anthropic provider with no key', () => {
    const config = resolveConfig({
      version: 2,
      providers: { off: { kind: 'openai', baseURL: 'http://127.0.0.1:9/v1', enabled: false }, gw: { kind: 'anthropic', baseURL: 'http://127.0.0.1:9/' } },
    });
    const resolve = createProviderResolver(config, {});
    expect(() => resolve('off/m')).toThrow(/provider "off" is disabled in config \(providers\.off\.enabled is false\)/);
    expect(() => resolve('nope/m')).toThrow(/unknown provider "nope" in model "nope\/m"; available: openai, openai-responses, anthropic, off, gw/);
    expect(() => resolve('gw/claude')).toThrow(ProviderConfigError);
    expect(() => resolve('gw/claude')).toThrow(/provider "gw" \(kind anthropic\) has no key: .*store one with `loom auth set gw`/);
  });
});
