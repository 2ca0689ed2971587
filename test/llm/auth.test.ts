import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { PROVIDER_ERROR_BODY_BYTES_MAX } from '../../core/limits.js';
import { createAnthropicProvider } from '../../llm/anthropic.js';
import { ProviderAuthError, ProviderConfigError, ProviderServerError } from '../../llm/errors.js';
import { createOpenAIProvider } from '../../llm/openai.js';
import { createOpenAIResponsesProvider } from '../../llm/openai-responses.js';
import { createProviderResolver } from '../../llm/resolve.js';
import type { ProviderRequest, StreamEvent } from '../../llm/types.js';
import { createAuthService } from '../../services/auth.js';
import { resolveConfig } from '../../services/config.js';
import type { Credential, CredentialProvider } from '../../services/credentials.js';
import { startScriptedAnthropicServer } from '../fixtures/scripted-anthropic-server.js';
import { startScriptedOpenAIServer, type ScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { startScriptedResponsesServer } from '../fixtures/scripted-responses-server.js';
import { onCleanup, tempDir } from '../helpers.js';

const SECRET = 'sk-loom-planted-ADAPTER-5e81d0';

const request = (extra: Partial<ProviderRequest> = {}): ProviderRequest => ({
  model: 'test-model',
  messages: [{ role: 'user', content: 'hi' }],
  tools: [],
  signal: new AbortController().signal,
  ...extra,
});

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

async function failure(stream: AsyncIterable<StreamEvent>): Promise<Error> {
  try {
    await collect(stream);
  } catch (error) {
    return error as Error;
  }
  throw new Error('the stream did not fail');
}

async function openai(script: ScriptedTurn[], respond?: (req: { headers: Record<string, unknown> }) => ScriptedTurn): Promise<ScriptedOpenAIServer> {
  const server = await startScriptedOpenAIServer({ script, respond: respond as never });
  onCleanup(() => void server.close());
  return server;
}

/** A credential provider that always answers `credential` (or nothing). */
const fixed = (credential: Credential | undefined): CredentialProvider => ({
  get: async () => (credential === undefined ? undefined : { credential, source: 'file' }),
  has: () => credential !== undefined,
});

/** No prefix of the secret of AUTH_REDACT_PARTIAL_CHARS_MIN characters or more is anywhere in `text`. */
function expectNoPartOf(secret: string, text: string): void {
  for (let k = 6; k <= secret.length; k++) expect(text).not.toContain(secret.slice(0, k));
}

describe('adapters - credentials asked per request', () => {
  it('openai - a key rotated in the credentials file is used by the next request of the same provider', async () => {
    const server = await openai([{ text: 'one' }, { text: 'two' }]);
    const home = tempDir();
    const auth = createAuthService({ home, env: {} });
    const other = createAuthService({ home, env: {} }); // another process (`loom auth set`)
    await other.set('openai', { type: 'api', key: 'sk-first-key-0001' });
    const provider = createOpenAIProvider({ baseURL: server.url, credentials: auth });
    await collect(provider.stream(request()));
    await other.set('openai', { type: 'api', key: 'sk-rotated-key-0002' });
    await collect(provider.stream(request()));
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(['Bearer sk-first-key-0001', 'Bearer sk-rotated-key-0002']);
  });

  it('openai kinds - api and oauth go as Bearer, basic as Basic, headers as given', async () => {
    const server = await openai([{ text: 'a' }, { text: 'b' }, { text: 'c' }, { text: 'd' }]);
    const send = (credential: Credential) => collect(createOpenAIProvider({ baseURL: server.url, credentials: fixed(credential) }).stream(request()));
    await send({ type: 'api', key: 'sk-api-key-1234' });
    await send({ type: 'oauth', access: 'oauth-access-1234' });
    await send({ type: 'basic', username: 'me', password: 'hunter22' });
    await send({ type: 'headers', headers: { 'X-Gateway-Key': 'gw-key-1234', 'X-Org': '7' } });
    const [api, oauth, basic, headers] = server.requests.map((r) => r.headers);
    expect(api!.authorization).toBe('Bearer sk-api-key-1234');
    expect(oauth!.authorization).toBe('Bearer oauth-access-1234');
    expect(basic!.authorization).toBe(`Basic ${Buffer.from('me:hunter22').toString('base64')}`);
    expect(headers).toMatchObject({ 'x-gateway-key': 'gw-key-1234', 'x-org': '7' });
    expect(headers!.authorization).toBeUndefined();
  });

  it('anthropic - an api key goes as x-api-key, an oauth token as Bearer', async () => {
    const server = await startScriptedAnthropicServer([{ text: 'a' }, { text: 'b' }]);
    onCleanup(() => void server.close());
    await collect(createAnthropicProvider({ baseURL: server.url, credentials: fixed({ type: 'api', key: 'sk-ant-key-1234' }) }).stream(request()));
    await collect(createAnthropicProvider({ baseURL: server.url, credentials: fixed({ type: 'oauth', access: 'ant-oauth-1234' }) }).stream(request()));
    expect(server.requests[0]!.headers['x-api-key']).toBe('sk-ant-key-1234');
    expect(server.requests[0]!.headers.authorization).toBeUndefined();
    expect(server.requests[1]!.headers.authorization).toBe('Bearer ant-oauth-1234');
    expect(server.requests[1]!.headers['x-api-key']).toBeUndefined();
  });

  it('openai-responses - uses the openai credential of the file when it has none of its own', async () => {
    const server = await startScriptedResponsesServer([{ text: 'ok' }]);
    onCleanup(() => void server.close());
    const auth = createAuthService({ home: tempDir(), env: {} });
    await auth.set('openai', { type: 'api', key: 'sk-openai-shared-1' });
    await collect(createOpenAIResponsesProvider({ baseURL: server.url, credentials: auth }).stream(request()));
    expect(server.requests[0]!.headers.authorization).toBe('Bearer sk-openai-shared-1');
  });

  it('a credential required but gone by request time fails as a config error naming the variable and loom auth set', async () => {
    const provider = createAnthropicProvider({ baseURL: 'http://127.0.0.1:9', credentials: fixed(undefined) });
    const error = await failure(provider.stream(request()));
    expect(error).toBeInstanceOf(ProviderConfigError);
    expect(error.message).toMatch(/ANTHROPIC_API_KEY.*loom auth set anthropic/);
  });

  it('a refresh that fails makes the request fail as an auth error naming the provider, not the token', async () => {
    const auth = createAuthService({ home: tempDir(), env: {} });
    await auth.set('openai', { type: 'oauth', access: 'expired-access-0001', refresh: 'refresh-0001', expiresAt: Date.now() - 1 });
    auth.registerRefresher('openai', async (current) => {
      throw new Error(`invalid_grant: ${current.refresh}`);
    });
    const error = await failure(createOpenAIProvider({ baseURL: 'http://127.0.0.1:9', credentials: auth }).stream(request()));
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect(error.message).toContain('provider "openai"');
    expect(error.message).not.toContain('refresh-0001');
  });
});

describe('adapters - secrets never come back in a failure', () => {
  it('openai - a 401 body that echoes the Authorization header is redacted in the message and the stack', async () => {
    const server = await openai([], (req) => ({
      status: 401,
      errorBody: JSON.stringify({ error: { message: `Incorrect API key provided: ${String(req.headers.authorization)}`, type: 'invalid_request_error' } }),
    }));
    const error = await failure(createOpenAIProvider({ baseURL: server.url, credentials: fixed({ type: 'api', key: SECRET }) }).stream(request()));
    expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect(error.message).toContain('Incorrect API key provided: Bearer [redacted]');
    expect(error.message).toContain('(credential: api key …81d0 from the credentials file)');
    expectNoPartOf(SECRET, error.message);
    expectNoPartOf(SECRET, error.stack ?? '');
  });

  it('openai - an echo cut off by the error-excerpt bound leaves no part of the key', async () => {
    const pad = 'x'.repeat(PROVIDER_ERROR_BODY_BYTES_MAX - 20); // the excerpt's cut falls inside the echoed key
    const server = await openai([], (req) => ({ status: 401, errorBody: `${pad}${String(req.headers.authorization)} was refused` }));
    const error = await failure(createOpenAIProvider({ baseURL: server.url, credentials: fixed({ type: 'api', key: SECRET }) }).stream(request()));
    expectNoPartOf(SECRET, error.message);
  });

  it('openai - an error event mid-stream that echoes the key is redacted', async () => {
    const server = await openai([{ chunks: [{ error: { message: `key ${SECRET} is over quota` } }] }]);
    const error = await failure(createOpenAIProvider({ baseURL: server.url, credentials: fixed({ type: 'api', key: SECRET }) }).stream(request()));
    expect(error).toBeInstanceOf(ProviderServerError);
    expect(error.message).toContain('[redacted]');
    expectNoPartOf(SECRET, error.message);
  });

  it('basic and headers credentials - the password, its Basic encoding and header values are redacted from an echo', async () => {
    const server = await openai([], (req) => ({ status: 403, errorBody: `refused: ${JSON.stringify(req.headers)}` }));
    const basic = await failure(createOpenAIProvider({ baseURL: server.url, credentials: fixed({ type: 'basic', username: 'me', password: SECRET }) }).stream(request()));
    const encoded = Buffer.from(`me:${SECRET}`).toString('base64');
    expect(basic.message).not.toContain(encoded);
    expectNoPartOf(SECRET, basic.message);
    const headers = await failure(createOpenAIProvider({ baseURL: server.url, credentials: fixed({ type: 'headers', headers: { 'X-Gateway-Key': SECRET } }) }).stream(request()));
    expect(headers.message).toContain('x-gateway-key');
    expectNoPartOf(SECRET, headers.message);
  });

  it('anthropic - a 401 body that echoes x-api-key is redacted', async () => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: `invalid x-api-key: ${String(req.headers['x-api-key'])}` } }));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onCleanup(() => void server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const error = await failure(createAnthropicProvider({ baseURL: url, credentials: fixed({ type: 'api', key: SECRET }) }).stream(request()));
    expect(error).toBeInstanceOf(ProviderAuthError);
    expect(error.message).toContain('invalid x-api-key: [redacted]');
    expectNoPartOf(SECRET, error.message);
  });
});

describe('resolver - with the auth service', () => {
  it('a provider whose only credential is in the file resolves and sends it; with none the error names loom auth set', async () => {
    const server = await startScriptedAnthropicServer([{ text: 'from the file' }]);
    onCleanup(() => void server.close());
    const auth = createAuthService({ home: tempDir(), env: {} });
    const config = resolveConfig({ version: 1, providers: { anthropic: { baseURL: server.url } } });
    expect(() => createProviderResolver(config, {}, auth)('anthropic/claude-test')).toThrow(/ANTHROPIC_API_KEY.*loom auth set anthropic/);
    await auth.set('anthropic', { type: 'api', key: 'sk-ant-in-file-1' });
    const { provider, model } = createProviderResolver(config, {}, auth)('anthropic/claude-test');
    await collect(provider.stream(request({ model })));
    expect(server.requests[0]!.headers['x-api-key']).toBe('sk-ant-in-file-1');
  });

  it('an environment key wins over the file, which wins over the config key', async () => {
    const server = await openai([{ text: 'a' }, { text: 'b' }, { text: 'c' }]);
    const home = tempDir();
    const config = resolveConfig({ version: 2, providers: { openai: { baseURL: server.url } } }, { legacyApiKeys: { openai: 'sk-from-config-1' } });
    const send = async (env: NodeJS.ProcessEnv) => {
      const { provider, model } = createProviderResolver(config, env, createAuthService({ home, env }))('openai/m');
      await collect(provider.stream(request({ model })));
    };
    await send({});
    await createAuthService({ home, env: {} }).set('openai', { type: 'api', key: 'sk-from-file-1' });
    await send({});
    await send({ OPENAI_API_KEY: 'sk-from-env-1' });
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(['Bearer sk-from-config-1', 'Bearer sk-from-file-1', 'Bearer sk-from-env-1']);
  });
});
