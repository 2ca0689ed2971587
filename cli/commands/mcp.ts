import { McpSupervisor, type McpServerStatus } from '../../actors/mcp.js';
import { MCP_LS_TIMEOUT_MS } from '../../core/limits.js';
import { globalConfigPath, loadConfig, resolveLoomHome } from '../../services/config.js';
import { createToolRegistry } from '../../tools/registry.js';
import { EXIT } from '../exit.js';
import { colorsFor } from '../style.js';

export interface McpLsOptions {
  json?: boolean;
}

/**
 * `loom mcp ls`: connects every MCP server of the global config (as a session's process would),
 * waits for each first attempt (bounded by MCP_LS_TIMEOUT_MS), prints each server with its state
 * and tools, and disconnects. Exit 0 when every enabled server is ready, 1 when one is not (its
 * error is shown), 2 when the config cannot be read. Nothing secret is printed: a server shows as
 * its command, or its URL's origin and path.
 */
export async function mcpLs(opts: McpLsOptions): Promise<number> {
  const home = resolveLoomHome();
  const { config } = await loadConfig({ home });
  const servers = config.mcp.servers;
  if (Object.keys(servers).length === 0) {
    if (!opts.json) process.stderr.write(`loom: no MCP servers configured (mcp.servers in ${globalConfigPath(home)}; see README "MCP servers")\n`);
    return EXIT.ok;
  }
  const supervisor = new McpSupervisor({ registry: createToolRegistry(), loadServers: async () => servers });
  let status: McpServerStatus[];
  try {
    await supervisor.ready(MCP_LS_TIMEOUT_MS);
    status = supervisor.status();
  } finally {
    await supervisor.close();
  }
  if (opts.json) for (const s of status) process.stdout.write(`${JSON.stringify(s)}\n`);
  else process.stdout.write(render(status));
  return status.every((s) => s.state === 'ready' || s.state === 'disabled') ? EXIT.ok : EXIT.failed;
}

function render(status: McpServerStatus[]): string {
  const c = colorsFor(process.stdout);
  const lines: string[] = [];
  for (const s of status) {
    const state = s.state === 'ready' ? c.green(s.state) : s.state === 'disabled' ? c.dim(s.state) : c.red(s.state);
    const info = s.serverInfo ? `  ${s.serverInfo.name} ${s.serverInfo.version}` : '';
    const tools = s.state === 'ready' ? `  ${s.tools.length} tool${s.tools.length === 1 ? '' : 's'}` : '';
    lines.push(`${c.bold(s.name)}  ${s.type}  ${state}  ${s.target}${info}${tools}`);
    if (s.lastError && s.state !== 'ready') lines.push(`  ${c.red('error:')} ${s.lastError}${s.gaveUp ? ' (gave up)' : ''}`);
    const width = Math.max(0, ...s.tools.map((t) => t.name.length));
    for (const t of s.tools) lines.push(`  ${t.name.padEnd(width)}  ${oneLine(t.description, 100)}${t.idempotent ? c.dim(' (idempotent)') : ''}`);
    for (const k of s.skipped) lines.push(`  ${c.yellow('skipped')} ${k.tool}: ${k.reason}`);
  }
  return `${lines.join('\n')}\n`;
}

function oneLine(s: string, max: number): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}
