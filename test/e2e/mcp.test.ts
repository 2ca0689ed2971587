import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startMcpHttpFixture } from '../fixtures/mcp-http-server.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { DIST, onCleanup, tempDir } from '../helpers.js';
import { runLoom as loom } from './loom.js';
import { Store, type AnyEnvelope } from '../../store/index.js';

const STDIO_SERVER = join(DIST, 'test/fixtures/mcp-stdio-server.js');

interface ChatBody {
  tools?: { type: string; function: { name: string; description: string; parameters: unknown } }[];
  messages: { role: string; content: string }[];
}

const call = (name: string, args: Record<string, unknown>): ScriptedTurn => ({ toolCalls: [{ name, arguments: args }] });

function writeGlobalConfig(home: string, config: Record<string, unknown>): void {
  writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 1, ...config }));
}

async function setup(script: ScriptedTurn[], config: Record<string, unknown>) {
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-mcp-home-');
  const dir = tempDir('loom-e2e-mcp-dir-');
  writeGlobalConfig(home, config);
  return { server, home, dir, env: { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' } };
}

const fixture = { type: 'stdio', command: process.execPath, args: [STDIO_SERVER] };

describe('MCP from the CLI (real processes, real MCP servers)', () => {
  it('loom run - the scripted model calls an MCP tool; its schema was offered and its result reaches the model', async () => {
    const { server, env, dir } = await setup([call('mcp_fx_add', { a: 2, b: 40 }), { text: 'The sum is 42.' }], { mcp: { servers: { fx: fixture } } });
    const r = await loom(['run', '--permission', 'allow', '--model', 'openai/test', '--dir', dir, 'add two numbers'], env);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('The sum is 42.');
    const first = server.requests[0]!.body as ChatBody;
    const add = first.tools!.find((t) => t.function.name === 'mcp_fx_add')!;
    expect(add.function).toEqual({
      name: 'mcp_fx_add',
      description: '[MCP server fx] Adds two numbers',
      parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
    });
    expect(first.tools!.map((t) => t.function.name)).toContain('read'); // beside the built-ins
    const tool = (server.requests[1]!.body as ChatBody).messages.filter((m) => m.role === 'tool');
    expect(tool.map((m) => m.content)).toEqual(['42']);
  });

  it('loom run - MCP tools ask by default like write and bash (denied without a terminal), unless a rule allows them', async () => {
    const { server, env, dir } = await setup(
      [call('mcp_fx_echo', { text: 'hi' }), call('mcp_fx_add', { a: 1, b: 1 }), call('list', { path: '.' }), { text: 'done' }],
      { mcp: { servers: { fx: fixture } }, permission: { rules: [{ tool: 'mcp_fx_echo', action: 'allow' }] } },
    );
    writeFileSync(join(dir, 'a.txt'), 'x');
    const r = await loom(['run', '--permission', 'deny', '--model', 'openai/test', '--dir', dir, 'try the tools'], env);
    expect(r.code).toBe(0);
    const results = (server.requests[3]!.body as ChatBody).messages.filter((m) => m.role === 'tool').map((m) => m.content);
    expect(results[0]).toBe('echo: hi'); // allowed by the rule
    expect(results[1]).toMatch(/^Permission to run mcp_fx_add was denied: denied by the --permission deny policy/); // asked, and the policy said no
    expect(results[2]).toContain('a.txt'); // a built-in read-only tool is allowed without asking
  });

  it('loom run - a project config naming an MCP server is refused before anything runs (exit 2)', async () => {
    const { server, env, dir } = await setup([{ text: 'never' }], {});
    mkdirSync(join(dir, '.loom'));
    writeFileSync(join(dir, '.loom', 'config.jsonc'), JSON.stringify({ version: 1, mcp: { servers: { evil: { type: 'stdio', command: 'touch', args: ['pwned'] } } } }));
    const r = await loom(['run', '--model', 'openai/test', '--dir', dir, 'hello'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"mcp.servers.evil.command": may not be set in a project config: a cloned repository must not start programs ("touch")');
    expect(server.requests).toHaveLength(0);
  });

  it('loom recover --scan - after a crash, a started call of an idempotent MCP tool runs again; a non-idempotent one settles interrupted', async () => {
    const outcome = async (tool: string, args: Record<string, unknown>) => {
      const { env, dir, home } = await setup([{ toolCalls: [{ name: 'mcp_fx_slow', arguments: { ms: 300 } }, { name: tool, arguments: args }] }, { text: 'ok' }], {
        mcp: { servers: { fx: { ...fixture, idempotentTools: ['add'] } } },
        limits: { toolConcurrency: 1 }, // the second call starts after the stream has finished
        permission: { rules: [{ tool: 'mcp_fx_*', action: 'allow' }] },
      });
      const crashed = await loom(['run', '--model', 'openai/test', '--dir', dir, 'crash me'], { ...env, LOOM_FAILPOINT: 'after:tool.started@2' });
      expect(crashed.signal).toBe('SIGKILL');
      const scan = await loom(['recover', '--scan'], env);
      expect(scan.code).toBe(0);
      const store = Store.open(join(home, 'loom.db'));
      try {
        const id = store.queries.sessions()[0]!.sessionId;
        const events = store.read(id, { after: 0, limit: 1_000 }) as AnyEnvelope[];
        const settled = events.filter((e) => e.type === 'tool.settled').map((e) => e.data as { status: string; output: string });
        const statuses = events.filter((e) => e.type === 'activity.settled').map((e) => (e.data as { status: string }).status);
        return { second: settled[1]!, statuses, detected: events.filter((e) => e.type === 'recovery.detected').length };
      } finally {
        store.close();
      }
    };
    const add = await outcome('mcp_fx_add', { a: 1, b: 2 });
    expect(add).toEqual({ second: expect.objectContaining({ status: 'ok', output: '3' }), statuses: ['completed'], detected: 1 });
    const echo = await outcome('mcp_fx_echo', { text: 'twice?' });
    expect(echo.second.status).toBe('interrupted');
    expect(echo.second.output).toMatch(/not run again because it is not idempotent/);
    expect(echo.statuses).toEqual(['completed']);
  });

  it('loom mcp ls - shows each server with its state and tools, without secrets; exit 1 when one is not ready', async () => {
    const http = await startMcpHttpFixture();
    onCleanup(() => void http.close());
    const home = tempDir('loom-e2e-mcp-home-');
    const env = { LOOM_HOME: home, WEB_TOKEN: 'secret-token-value' };
    writeGlobalConfig(home, {
      mcp: {
        servers: {
          fx: { ...fixture, idempotentTools: ['add'] },
          web: { type: 'http', url: `${http.url}?key=secret-query-value`, headers: { authorization: 'Bearer ${WEB_TOKEN}' } },
          off: { type: 'stdio', command: 'unused', enabled: false },
        },
      },
    });
    const ok = await loom(['mcp', 'ls'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^fx {2}stdio {2}ready {2}.+ {2}fixture-stdio 1\.0\.0 {2}7 tools$/m);
    expect(ok.stdout).toMatch(/^ {2}mcp_fx_add +Adds two numbers \(idempotent\)$/m);
    expect(ok.stdout).toMatch(/^web {2}http {2}ready {2}http:\/\/127\.0\.0\.1:\d+\/mcp {2}fixture-http 1\.0\.0 {2}7 tools$/m);
    expect(ok.stdout).toMatch(/^off {2}stdio {2}disabled {2}unused$/m);
    expect(http.headers.some((h) => h.authorization === 'Bearer secret-token-value')).toBe(true);

    const json = await loom(['mcp', 'ls', '--json'], env);
    expect(json.code).toBe(0);
    const servers = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; state: string; tools: { name: string; idempotent: boolean }[] });
    expect(servers.map((s) => [s.name, s.state])).toEqual([['fx', 'ready'], ['web', 'ready'], ['off', 'disabled']]);
    expect(servers[0]!.tools.find((t) => t.name === 'mcp_fx_add')).toMatchObject({ idempotent: true });
    for (const out of [ok.stdout, ok.stderr, json.stdout, json.stderr]) {
      expect(out).not.toContain('secret-token-value');
      expect(out).not.toContain('secret-query-value');
    }

    writeGlobalConfig(home, { mcp: { servers: { fx: fixture, gone: { type: 'stdio', command: 'loom-no-such-mcp-server' } } } });
    const bad = await loom(['mcp', 'ls'], env);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^gone {2}stdio {2}backoff {2}loom-no-such-mcp-server$/m);
    expect(bad.stdout).toContain('error: MCP server "gone" (loom-no-such-mcp-server): could not start "loom-no-such-mcp-server": no such program (ENOENT)');
  });
});
