import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { getCookie } from 'hono/cookie';
import type { Coordinator } from '../actors/coordinator.js';
import { HTTP_BODY_BYTES_MAX, SSE_CONNECTION_BUFFER_BYTES_MAX, SSE_CONNECTION_BUFFER_EVENTS_MAX, SSE_HEARTBEAT_INTERVAL_MS } from '../core/limits.js';
import type { ModelInfo } from '../llm/modelInfo.js';
import type { ResolvedConfig } from '../services/config.js';
import type { CredentialProvider } from '../services/credentials.js';
import type { Hooks } from '../services/hooks.js';
import type { ModelService } from '../services/models.js';
import type { Store } from '../store/index.js';
import { AUTH_COOKIE, bearerOf, tokenMatches } from './auth.js';
import { ApiError, errorResponse, fromZodError, toApiError } from './errors.js';
import type { EventHub } from './hub.js';
import type { SessionRunner } from './runner.js';
import { checkpointRoutes } from './routes/checkpoints.js';
import { controlRoutes } from './routes/control.js';
import { eventRoutes } from './routes/events.js';
import { inspectorRoutes } from './routes/inspector.js';
import { modelRoutes } from './routes/models.js';
import { opsRoutes } from './routes/ops.js';
import { sessionRoutes } from './routes/sessions.js';
import { systemRoutes } from './routes/system.js';

/** Hono variables every handler can read with `c.get(...)`. */
export type AppEnv = { Variables: { requestId: string } };

/** The app type route modules register on: `app.openapi(routes.x, handler)` validates from the contract. */
export type LoomApp = OpenAPIHono<AppEnv>;

/**
 * What route handlers work with: one per server. `loom serve` builds it (server/runtime.ts);
 * tests build it over a temp $LOOM_HOME the same way.
 */
export interface ServerContext {
  home: string;
  store: Store;
  coordinator: Coordinator;
  /** Owns and runs sessions that have work (admitted input, run, decisions, replies). */
  runner: SessionRunner;
  /** Fans committed events out to SSE connections. */
  hub: EventHub;
  configFor(location: string): Promise<ResolvedConfig>;
  /** The model catalog, the providers and model registrations (services/models.ts). */
  models: ModelService;
  /** The model catalog's entry for a `provider/model` reference: a cost budget needs its price. */
  modelInfo?: (ref: string) => ModelInfo | undefined;
  /** The bearer token (also the cookie's value). */
  token: string;
  /** Host header values accepted (`host:port`, lower case); filled in once the port is known. */
  allowedHosts: Set<string>;
  version: string;
  /** The environment providers are configured from (OPENAI_BASE_URL, OPENAI_API_KEY, LOOM_MODEL). */
  env: NodeJS.ProcessEnv;
  /** Credentials for providers (the runtime's auth service); unset = the environment only. */
  credentials?: CredentialProvider;
  /** SSE bounds; tests shrink them. */
  sse: { heartbeatMs: number; bufferEventsMax: number; bufferBytesMax: number };
  /** Plugins' hooks: admissions over HTTP run `input.admitted` (none when absent). */
  hooks?: Hooks;
}

export const defaultSseLimits = (): ServerContext['sse'] => ({
  heartbeatMs: SSE_HEARTBEAT_INTERVAL_MS,
  bufferEventsMax: SSE_CONNECTION_BUFFER_EVENTS_MAX,
  bufferBytesMax: SSE_CONNECTION_BUFFER_BYTES_MAX,
});

/**
 * A group of endpoints. Each module registers its routes on the app (with `app.openapi(route,
 * handler)` for routes of server/contract.ts, so they are validated and documented at /doc).
 * `publicPaths` are path prefixes served without the token (static, non-secret pages such as
 * the inspector's HTML and assets); everything else needs it.
 */
export interface RouteModule {
  name: string;
  publicPaths?: readonly string[];
  register(app: LoomApp, ctx: ServerContext): void;
}

/**
 * Every route module of the server, registered in this order. To add endpoints, write
 * server/routes/NAME.ts exporting a RouteModule and add it here (one line).
 */
export const ROUTE_MODULES: readonly RouteModule[] = [systemRoutes, sessionRoutes, controlRoutes, eventRoutes, inspectorRoutes, opsRoutes, modelRoutes, checkpointRoutes];

/**
 * Builds the HTTP app: Host check (DNS rebinding), bearer-token or cookie auth, a body size cap,
 * the contract's validation with errors that name the field, the route modules, and `/doc`
 * (OpenAPI 3.1 generated from the contract).
 */
export function createApp(ctx: ServerContext, modules: readonly RouteModule[] = ROUTE_MODULES): LoomApp {
  const app: LoomApp = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return errorResponse(c, fromZodError(result.error as never, (result as { target?: string }).target ?? 'body'));
    },
  });
  const publicPaths = modules.flatMap((m) => m.publicPaths ?? []);

  app.onError((error, c) => {
    const api = toApiError(error);
    if (api) return errorResponse(c, api);
    // An unexpected failure is a bug: say so without leaking internals, and keep the server up.
    process.stderr.write(`loom serve: ${c.req.method} ${c.req.path}: ${(error as Error)?.stack ?? String(error)}\n`);
    return c.json({ error: { code: 'internal', message: 'internal error (see the server log)' } }, 500);
  });
  app.notFound((c) => errorResponse(c, new ApiError(404, 'not_found', `no route ${c.req.method} ${c.req.path}`, 'path')));

  app.use('*', hostCheck(ctx));
  app.use('*', authCheck(ctx, publicPaths));
  app.use(
    '*',
    bodyLimit({
      maxSize: HTTP_BODY_BYTES_MAX,
      onError: () => {
        throw new ApiError(413, 'too_large', `body is larger than ${HTTP_BODY_BYTES_MAX} bytes (HTTP_BODY_BYTES_MAX)`, 'body');
      },
    }),
  );

  for (const m of modules) m.register(app, ctx);

  app.doc31('/doc', {
    openapi: '3.1.0',
    info: { title: 'Loom HTTP API', version: ctx.version, description: 'Sessions, inputs, permissions, jobs and replayable event streams of a Loom runtime.' },
    security: [{ bearer: [] }, { cookie: [] }],
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'cookie', { type: 'apiKey', in: 'cookie', name: AUTH_COOKIE });
  return app;
}

/** 421 for a Host header this server was not bound as (DNS rebinding), before anything else runs. */
function hostCheck(ctx: ServerContext): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const host = c.req.header('host')?.toLowerCase();
    if (host === undefined || !ctx.allowedHosts.has(host)) {
      return errorResponse(c, new ApiError(421, 'misdirected', `Host ${JSON.stringify(host ?? '')} is not this server (DNS rebinding protection)`, 'header.host'));
    }
    await next();
  };
}

function authCheck(ctx: ServerContext, publicPaths: readonly string[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const path = c.req.path;
    if (path === '/auth/cookie' && c.req.method === 'POST') return next(); // checks the token itself
    if (publicPaths.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`))) return next();
    if (!authorized(c, ctx.token)) {
      c.header('WWW-Authenticate', 'Bearer realm="loom"');
      return errorResponse(c, new ApiError(401, 'unauthorized', 'missing or wrong token: send Authorization: Bearer TOKEN (see $LOOM_HOME/server-token) or the loom_session cookie', 'header.authorization'));
    }
    await next();
  };
}

/** A request carries the token in `Authorization: Bearer T` or in the `loom_session` cookie. */
export function authorized(c: Context, token: string): boolean {
  const bearer = bearerOf(c.req.header('authorization'));
  if (bearer !== undefined) return tokenMatches(bearer, token);
  let cookie: string | undefined;
  try {
    cookie = getCookie(c, AUTH_COOKIE);
  } catch {
    cookie = undefined; // a malformed Cookie header authorises nothing
  }
  return tokenMatches(cookie, token);
}
