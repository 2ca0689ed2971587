import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { HTTP_REQUEST_TIMEOUT_MS } from '../core/limits.js';
import { createApp, type RouteModule, ROUTE_MODULES, type ServerContext } from './app.js';
import { allowedHosts, BindRefusedError, isLoopbackHost } from './auth.js';

export interface ListenOptions {
  host: string;
  port: number;
  /** The token was set by the user (LOOM_SERVER_TOKEN, --token-file): required for a non-loopback host. */
  explicitToken: boolean;
  /** More Host header names to accept (a DNS name the server is reached by). */
  allowHosts?: readonly string[];
  modules?: readonly RouteModule[];
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  server: Server;
  /** Stops accepting connections and ends open ones (SSE streams included). */
  close(): Promise<void>;
}

/**
 * Binds the app to `host:port` (port 0: any free port). Refuses a non-loopback host unless the
 * token was chosen explicitly (a generated token sits in a file others on the machine might
 * read through a shared home; binding wider needs a deliberate choice). Fills in the Host names
 * the DNS-rebinding check accepts once the port is known.
 */
export async function listen(ctx: ServerContext, options: ListenOptions): Promise<RunningServer> {
  if (!isLoopbackHost(options.host) && !options.explicitToken) throw new BindRefusedError(options.host);
  const app = createApp(ctx, options.modules ?? ROUTE_MODULES);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: options.host, port: options.port }, () => resolve(s as Server)) as Server;
    s.once('error', reject);
  });
  server.requestTimeout = HTTP_REQUEST_TIMEOUT_MS;
  server.headersTimeout = Math.min(HTTP_REQUEST_TIMEOUT_MS, 20_000);
  const port = (server.address() as AddressInfo).port;
  for (const h of allowedHosts(options.host, port, options.allowHosts)) ctx.allowedHosts.add(h);
  const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}`,
    host: options.host,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
