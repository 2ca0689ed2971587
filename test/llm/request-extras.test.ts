import { afterEach, describe, expect, it } from 'vitest';
import { createAnthropicProvider } from '../../llm/anthropic.js';
import { withExtraHeaders } from '../../llm/headers.js';
import { createOpenAIResponsesProvider } from '../../llm/openai-responses.js';
import { createOpenAIProvider } from '../../llm/openai.js';
import type { Provider, ProviderRequest, StreamEvent } from '../../llm/types.js';
import { startScriptedAnthropicServer } from '../fixtures/scripted-anthropic-server.js';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { startScriptedResponsesServer } from '../fixtures/scripted-responses-server.js';

/**
 * ProviderRequest.headers, temperature and topP (set by plugins' chat.headers / chat.params hooks)
 * reach the wire in all three adapters; the adapter's own headers (credentials) always win.
 */
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function drain(stream: AsyncIterable<StreamEvent>): Promise<void> {
  for await (const _ of stream) {
    // consume
  }
}

const extras: Partial<ProviderRequest> = {
  temperature: 0.25,
  topP: 0.5,
  // `Authorization` and `X-Api-Key` try to replace the adapter's credential: they must be dropped.
  headers: { 'X-Plugin': 'from-a-hook', Authorization: 'Bearer hijacked', 'X-Api-Key': 'hijacked', 'Content-Type': 'text/plain' },
};

function request(): ProviderRequest {
  return { model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal, ...extras };
}

interface Seen {
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

const cases: [string, () => Promise<{ provider: Provider; seen: () => Seen }>, string, string][] = [
  [
    'openai',
    async () => {
      const s = await startScriptedOpenAIServer({ script: [{ text: 'ok' }] });
      closers.push(() => s.close());
      return { provider: createOpenAIProvider({ baseURL: s.url, apiKey: 'sk-own-key-123' }), seen: () => s.requests[0] as Seen };
    },
    'authorization',
    'Bearer sk-own-key-123',
  ],
  [
    'openai-responses',
    async () => {
      const s = await startScriptedResponsesServer([{ text: 'ok' }]);
      closers.push(() => s.close());
      return { provider: createOpenAIResponsesProvider({ baseURL: s.url, apiKey: 'sk-own-key-123' }), seen: () => s.requests[0] as unknown as Seen };
    },
    'authorization',
    'Bearer sk-own-key-123',
  ],
  [
    'anthropic',
    async () => {
      const s = await startScriptedAnthropicServer([{ text: 'ok' }]);
      closers.push(() => s.close());
      return { provider: createAnthropicProvider({ baseURL: s.url, apiKey: 'sk-ant-own' }), seen: () => s.requests[0] as unknown as Seen };
    },
    'x-api-key',
    'sk-ant-own',
  ],
];

describe('provider requests - extra headers and sampling parameters', () => {
  for (const [name, start, credentialHeader, credential] of cases) {
    it(`${name} - sends a request's extra headers, temperature and top_p, and keeps its own credential and content type`, async () => {
      const { provider, seen } = await start();
      await drain(provider.stream(request()));
      const { headers, body } = seen();
      expect(headers['x-plugin']).toBe('from-a-hook');
      expect(headers[credentialHeader]).toBe(credential);
      expect(headers['content-type']).toBe('application/json');
      expect(JSON.stringify(headers)).not.toContain('hijacked');
      expect(body).toMatchObject({ temperature: 0.25, top_p: 0.5 });
    });
  }

  it('withExtraHeaders - own headers win whatever the case, credential headers are never taken, no extras leave them as they are', () => {
    const own = { authorization: 'Bearer k', 'content-type': 'application/json' };
    expect(withExtraHeaders(own, undefined)).toBe(own);
    expect(withExtraHeaders(own, { AUTHORIZATION: 'x', 'X-A': '1', Cookie: 'c', 'x-api-key': 'k2' })).toEqual({ 'X-A': '1', authorization: 'Bearer k', 'content-type': 'application/json' });
  });
});
