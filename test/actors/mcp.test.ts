import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { McpConnectionLostError, McpSupervisor, McpToolError, mcpToolName, type McpServerStatus, type McpTiming } from '../../actors/mcp.js';
import type { McpServerConfig } from '../../services/config.js';
import { openLoomRuntime } from '../../services/runtime.js';
import { ToolInputError, ToolTimeoutError } from '../../tools/errors.js';
import { createToolRegistry, type ToolRegistryChange } from '../../tools/registry.js';
import type { ToolContext } from '../../tools/types.js';
import { startMcpHttpFixture } from '../fixtures/mcp-http-server.js';
import { DIST, onCleanup, tempDir } from '../helpers.js';

const STDIO_SERVER = join(DIST, 'test/fixtures/mcp-stdio-server.js');

/** Fast backoff and probes so reconnects happen within a test. */
const FAST = { backoffMinMs: 50, backoffMaxMs: 200, pingTimeoutMs: 1_000, connectTimeoutMs: 10_000 };

function stdioServer(extra: Partial<Extract<McpServerConfig, { type: 'stdio' }>> = {}): McpServerConfig {
  return { type: 'stdio', command: process.execPath, args: [STDIO_SERVER], ...extra };
}

function context(home: string, signal = new AbortController().signal): ToolContext {
  return { sessionId: 'ses_mcp', activityId: 'act_1', callId: `call_${Math.random().toString(36).slice(2)}`, location: home, home, signal, services: {} };
}

function supervisor(servers: Record<string, McpServerConfig>, env: NodeJS.ProcessEnv = process.env, timing: Partial<McpTiming> = {}) {
  const registry = createToolRegistry();
  const changes: ToolRegistryChange[] = [];
  registry.subscribe((c) => changes.push(c));
  const sup = new McpSupervisor({ registry, env, loadServers: async () => servers, timing: { ...FAST, ...timing } });
  onCleanup(() => void sup.close());
  return { registry, changes, sup };
}

/** Resolves once `check` holds after a supervisor change (or now), failing after `ms`. */
function until(sup: McpSupervisor, check: () => boolean, what: string, ms = 15_000): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(sup.status())}`));
    }, ms);
    const stop = sup.subscribe(() => {
      if (!check()) return;
      clearTimeout(timer);
      stop();
      resolve();
    });
  });
}

const server = (sup: McpSupervisor, name: string): McpServerStatus => sup.status().find((s) => s.name === name)!;

describe('MCP supervisor (real MCP servers)', () => {
  it('mcp - a stdio server\'s tools join the registry as mcp_<server>_<tool> with their JSON schema, and calls reach it', async () => {
    const home = tempDir();
    const { registry, sup } = supervisor({ fx: stdioServer({ idempotentTools: ['add'] }) });
    await sup.ready(15_000);
    const status = server(sup, 'fx');
    expect(status).toMatchObject({ state: 'ready', type: 'stdio', target: process.execPath, serverInfo: { name: 'fixture-stdio', version: '1.0.0' } });
    expect(status.tools.map((t) => t.name)).toEqual(['mcp_fx_echo', 'mcp_fx_add', 'mcp_fx_slow', 'mcp_fx_crash', 'mcp_fx_fail', 'mcp_fx_big', 'mcp_fx_toggle']);
    expect(registry.get('mcp_fx_add')).toMatchObject({ idempotent: true, source: 'mcp:fx' });
    expect(registry.get('mcp_fx_echo')).toMatchObject({ idempotent: false });
    const spec = registry.specs().find((s) => s.name === 'mcp_fx_echo')!;
    expect(spec.parameters).toEqual({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] });
    expect(spec.description).toBe('[MCP server fx] Echoes the text back');

    expect((await registry.execute('mcp_fx_echo', { text: 'hello' }, context(home))).output).toBe('echo: hello');
    expect((await registry.execute('mcp_fx_add', { a: 2, b: 40 }, context(home))).output).toBe('42');
  });

  it('mcp - calls obey the registry\'s input check, the server\'s timeout, output truncation and error results', async () => {
    const home = tempDir();
    const { registry, sup } = supervisor({ fx: stdioServer({ timeoutMs: 300 }) });
    await sup.ready(15_000);
    await expect(registry.execute('mcp_fx_echo', { text: 5 }, context(home))).rejects.toThrow(ToolInputError);
    await expect(registry.execute('mcp_fx_echo', {}, context(home))).rejects.toThrow(/"text": required/);
    await expect(registry.execute('mcp_fx_slow', { ms: 5_000 }, context(home))).rejects.toThrow(ToolTimeoutError);
    await expect(registry.execute('mcp_fx_fail', {}, context(home))).rejects.toThrow(McpToolError);
    await expect(registry.execute('mcp_fx_fail', {}, context(home))).rejects.toThrow('MCP server "fx" reported an error from fail: the fixture failed on purpose');
    const big = await registry.execute('mcp_fx_big', { lines: 5_000 }, context(home));
    expect(big.truncated).toBe(true);
    expect(big.output).toContain('line 1\n');
    expect(big.output).toContain('line 5000');
    expect(readFileSync(big.fullOutputPath!, 'utf8').split('\n')).toHaveLength(5_000);
    // The server still answers after the timeout cut a call short.
    expect((await registry.execute('mcp_fx_echo', { text: 'still here' }, context(home))).output).toBe('echo: still here');
  });

  it('mcp - a tool-list change on the server is picked up live: the tool joins, then leaves', async () => {
    const home = tempDir();
    const { registry, changes, sup } = supervisor({ fx: stdioServer() });
    await sup.ready(15_000);
    changes.length = 0;
    await registry.execute('mcp_fx_toggle', {}, context(home));
    await until(sup, () => registry.get('mcp_fx_extra') !== undefined, 'mcp_fx_extra to join');
    expect((await registry.execute('mcp_fx_extra', {}, context(home))).output).toBe('extra here');
    await registry.execute('mcp_fx_toggle', {}, context(home));
    await until(sup, () => registry.get('mcp_fx_extra') === undefined, 'mcp_fx_extra to leave');
    expect(changes).toEqual([
      { kind: 'added', name: 'mcp_fx_extra', source: 'mcp:fx' },
      { kind: 'removed', name: 'mcp_fx_extra', source: 'mcp:fx', reason: 'MCP server "fx" no longer lists it' },
    ]);
  });

  it('mcp - a stdio server that crashes mid-call: the call errors naming the server, its tools leave and come back when it restarts', async () => {
    const home = tempDir();
    const starts = join(tempDir(), 'starts');
    writeFileSync(starts, '');
    const { registry, changes, sup } = supervisor({ fx: stdioServer({ env: { MCP_FIXTURE_STARTS: starts } }) });
    await sup.ready(15_000);
    changes.length = 0;
    const failed = await registry.execute('mcp_fx_crash', {}, context(home)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(McpConnectionLostError);
    expect((failed as Error).message).toMatch(/^MCP server "fx" went away while mcp_fx_crash was running \(its process exited; stderr: fixture: crashing on purpose\); the call may or may not have taken effect$/);
    await until(sup, () => server(sup, 'fx').state === 'ready' && server(sup, 'fx').restarts === 1, 'the server to come back');
    expect(readFileSync(starts, 'utf8').trim().split('\n')).toHaveLength(2);
    const removed = changes.filter((c) => c.kind === 'removed');
    const added = changes.filter((c) => c.kind === 'added');
    expect(removed.map((c) => c.name).sort()).toEqual(added.map((c) => c.name).sort());
    expect(removed).toHaveLength(7);
    expect(removed[0]!.reason).toMatch(/^MCP server "fx": its process exited/);
    const lastRemoved = changes.map((c) => c.kind).lastIndexOf('removed');
    expect(changes.findIndex((c) => c.kind === 'added')).toBeGreaterThan(lastRemoved); // every tool left before any came back
    expect((await registry.execute('mcp_fx_echo', { text: 'back' }, context(home))).output).toBe('echo: back');
  });

  it('mcp - a Streamable HTTP server: configured headers arrive (with ${VAR} from the environment), calls work', async () => {
    const home = tempDir();
    const http = await startMcpHttpFixture();
    onCleanup(() => void http.close());
    const { registry, sup } = supervisor(
      { web: { type: 'http', url: http.url, headers: { authorization: 'Bearer ${FIXTURE_TOKEN}', 'x-team': 'loom' } } },
      { ...process.env, FIXTURE_TOKEN: 'tok-12345' },
    );
    await sup.ready(15_000);
    expect(server(sup, 'web')).toMatchObject({ state: 'ready', type: 'http', target: http.url, serverInfo: { name: 'fixture-http' } });
    expect((await registry.execute('mcp_web_echo', { text: 'over http' }, context(home))).output).toBe('echo: over http');
    expect(http.headers.every((h) => h.authorization === 'Bearer tok-12345' && h['x-team'] === 'loom')).toBe(true);
  });

  it('mcp - an HTTP server that goes away mid-call: the call errors at once, its tools leave and come back after it restarts', async () => {
    const home = tempDir();
    const http = await startMcpHttpFixture();
    onCleanup(() => void http.close());
    const { registry, changes, sup } = supervisor({ web: { type: 'http', url: http.url } });
    await sup.ready(15_000);
    changes.length = 0;
    const call = registry.execute('mcp_web_slow', { ms: 20_000 }, context(home)).then(
      () => undefined,
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await http.crash();
    const failed = await call;
    expect(failed).toBeInstanceOf(McpConnectionLostError);
    expect((failed as Error).message).toMatch(/^MCP server "web" went away while mcp_web_slow was running \(.+\); the call may or may not have taken effect$/);
    await until(sup, () => registry.get('mcp_web_echo') === undefined, 'the tools to leave');
    expect(server(sup, 'web').state).not.toBe('ready');
    await http.restart();
    await until(sup, () => server(sup, 'web').state === 'ready', 'the server to come back');
    expect(http.initializations()).toBe(2);
    expect((await registry.execute('mcp_web_echo', { text: 'again' }, context(home))).output).toBe('echo: again');
    expect(changes.filter((c) => c.kind === 'removed')).toHaveLength(7);
    expect(changes.filter((c) => c.kind === 'added')).toHaveLength(7);
  });

  it('mcp - a server that cannot start is retried with backoff, then given up, with a clear error', async () => {
    const { registry, sup } = supervisor({ nope: { type: 'stdio', command: 'loom-no-such-mcp-server' } }, process.env, { connectAttemptsMax: 3 });
    await sup.ready(15_000);
    expect(server(sup, 'nope').lastError).toBe('MCP server "nope" (loom-no-such-mcp-server): could not start "loom-no-such-mcp-server": no such program (ENOENT)');
    await until(sup, () => server(sup, 'nope').state === 'stopped', 'giving up');
    expect(server(sup, 'nope')).toMatchObject({ failures: 3, gaveUp: true, tools: [] });
    expect(registry.list()).toEqual([]);
  });

  it('mcp - secrets from env and headers never reach a status or an error', async () => {
    const { sup } = supervisor(
      {
        leaky: {
          type: 'stdio',
          command: process.execPath,
          args: ['-e', 'console.error("token is " + process.env.API_TOKEN); process.exit(1)'],
          env: { API_TOKEN: '${LEAKY_TOKEN}' },
        },
        missing: { type: 'stdio', command: process.execPath, env: { KEY: '${LOOM_TEST_UNSET_VAR}' } },
      },
      { ...process.env, LEAKY_TOKEN: 'sk-very-secret-value' },
    );
    await sup.ready(15_000);
    const all = JSON.stringify(sup.status());
    expect(all).not.toContain('sk-very-secret-value');
    expect(server(sup, 'leaky').lastError).toContain('token is [redacted]');
    expect(server(sup, 'missing').lastError).toContain('the environment variable LOOM_TEST_UNSET_VAR (named in mcp.servers.missing.env.KEY) is not set');
  });

  it('mcp - tool names are sanitised to the registry\'s rules and stay unique', () => {
    expect(mcpToolName('fx', 'echo')).toBe('mcp_fx_echo');
    const dotted = mcpToolName('fx', 'files.read');
    expect(dotted).toMatch(/^mcp_fx_files_read_[0-9a-f]{8}$/);
    expect(mcpToolName('fx', 'files_read')).toBe('mcp_fx_files_read');
    const long = mcpToolName('server', 'x'.repeat(100));
    expect(long).toHaveLength(64);
    expect(long).not.toBe(mcpToolName('server', 'x'.repeat(99)));
  });

  it('mcp - the runtime records registry.tool.* system events as the server comes, crashes and comes back', async () => {
    const home = tempDir();
    writeFileSync(join(home, 'config.jsonc'), JSON.stringify({ version: 1, mcp: { servers: { fx: stdioServer() } } }));
    const rt = openLoomRuntime({ home, processName: 'test', mcp: 'eager' });
    onCleanup(() => rt.close());
    await rt.mcp.ready(15_000);
    expect(rt.tools.get('mcp_fx_echo')).toBeDefined();
    await rt.tools.execute('mcp_fx_crash', {}, context(home)).catch(() => undefined);
    await until(rt.mcp, () => rt.mcp.status()[0]!.state === 'ready' && rt.mcp.status()[0]!.restarts === 1, 'the server to come back');
    const events = rt.store.readSystem({ after: 0 }).filter((e) => e.type.startsWith('registry.tool.') && (e.data as { tool: string }).tool === 'mcp_fx_echo');
    expect(events.map((e) => e.type)).toEqual(['registry.tool.added', 'registry.tool.removed', 'registry.tool.added']);
    expect(events[0]!.data).toEqual({ tool: 'mcp_fx_echo', source: 'mcp:fx' });
    expect(events[1]!.data).toMatchObject({ tool: 'mcp_fx_echo', source: 'mcp:fx', reason: expect.stringMatching(/^MCP server "fx": its process exited/) });
  });
});
