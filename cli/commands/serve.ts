import { DRAIN_TIMEOUT_MS, SERVER_PORT_DEFAULT } from '../../core/limits.js';
import { isLoopbackHost, loadServerToken } from '../../server/auth.js';
import { startConfiguredRetention } from '../../ops/retention.js';
import { openServerRuntime } from '../../server/runtime.js';
import { listen } from '../../server/server.js';
import { resolveLoomHome } from '../../services/config.js';
import { printConfigNote } from '../configNotes.js';
import { EXIT, UsageError } from '../exit.js';
import { mkdirSync } from 'node:fs';

export interface ServeOptions {
  port?: string;
  host?: string;
  tokenFile?: string;
  allowHost?: string[];
}

/**
 * `loom serve`: the HTTP API (DESIGN §7) in a long-lived process. Binds 127.0.0.1 by default; any
 * other host needs an explicit token (LOOM_SERVER_TOKEN or --token-file). Runs startup discovery
 * (every unsettled session no live owner holds is restored and resumed), owns sessions that get
 * work over HTTP, keeps permission asks durable for HTTP replies. SIGTERM or SIGINT drains: no new
 * connections, in-flight provider streams and tools finish, nothing new is dispatched, leases are
 * released (bounded by DRAIN_TIMEOUT_MS), then the process exits 0.
 */
export async function serveCommand(opts: ServeOptions): Promise<number> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port === undefined ? SERVER_PORT_DEFAULT : Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port ${opts.port}: must be a port number (0 picks a free one)`);
  const home = resolveLoomHome();
  mkdirSync(home, { recursive: true });
  let token;
  try {
    token = loadServerToken(home, { tokenFile: opts.tokenFile });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (!isLoopbackHost(host) && !token.explicit) {
    throw new UsageError(`refusing to listen on ${host} with a generated token: set LOOM_SERVER_TOKEN or pass --token-file FILE (only loopback is served without)`);
  }
  const rt = openServerRuntime({
    home,
    token: token.token,
    onSessionError: (sessionId, error) => process.stderr.write(`loom serve: session ${sessionId} stopped: ${(error as Error)?.message ?? String(error)}\n`),
    onConfigNotes: (note) => printConfigNote(note),
  });
  // Providers load in the background: a failure is worth a line for the operator (it blocks nothing).
  rt.models.onProviderLoaded((p) => {
    if (p.state === 'failed') process.stderr.write(`loom serve: provider ${p.id} failed to load: ${p.error ?? 'unknown error'}\n`);
  });
  let running;
  try {
    running = await listen(rt, { host, port, explicitToken: token.explicit, allowHosts: opts.allowHost });
  } catch (error) {
    rt.close();
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UsageError(`--port ${port}: address in use on ${host}`);
    throw error;
  }
  process.stderr.write(`loom serve: listening on ${running.url} (token: ${token.source}; OpenAPI at ${running.url}/doc)\n`);
  // The fragment never leaves the browser: the page trades it for an HttpOnly cookie and drops it from the address bar.
  process.stderr.write(`loom serve: inspector at ${running.url}/inspector#token=${encodeURIComponent(token.token)}\n`);

  const discovery = new AbortController();
  void rt
    .discover(discovery.signal)
    .then((r) => {
      if (r.found > 0) process.stderr.write(`loom serve: discovery: ${r.found} unsettled, ${r.owned.length} restored, ${r.skipped.length} held elsewhere, ${r.failed.length} failed\n`);
      for (const f of r.failed) process.stderr.write(`loom serve: could not restore ${f.sessionId}: ${(f.error as Error)?.message ?? f.error}\n`);
    })
    .catch((error) => process.stderr.write(`loom serve: discovery failed: ${(error as Error)?.message ?? error}\n`));

  // Retention (config `retention`, global file), applied now and every RETENTION_INTERVAL_MS.
  const retention = startConfiguredRetention(rt.store, home, (line) => process.stderr.write(`loom serve: ${line}\n`));

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.stderr.write(`loom serve: ${signal}: draining\n`);
      resolve();
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
  discovery.abort();
  retention.stop();
  running.server.close(); // no new connections
  await rt.runner.drain(DRAIN_TIMEOUT_MS);
  await running.close();
  rt.close();
  process.stderr.write('loom serve: stopped\n');
  return EXIT.ok;
}
