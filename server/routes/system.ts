import { setCookie } from 'hono/cookie';
import { loadConfig, publicConfig } from '../../services/config.js';
import type { RouteModule } from '../app.js';
import { AUTH_COOKIE, tokenMatches } from '../auth.js';
import { routes } from '../contract.js';
import { ApiError } from '../errors.js';

/** Health, the cookie exchange and the resolved config (models: routes/models.ts; (the statecharts are served by the inspector's routes). */
export const systemRoutes: RouteModule = {
  name: 'system',
  register(app, ctx) {
    app.openapi(routes.health, (c) =>
      c.json({ ok: true, version: ctx.version, ownerId: ctx.coordinator.ownerId, liveSessions: ctx.runner.sessions.length }, 200),
    );

    // The inspector trades the token for a cookie once: a browser's EventSource cannot send headers.
    app.openapi(routes.authCookie, (c) => {
      const { token } = c.req.valid('json');
      if (!tokenMatches(token, ctx.token)) throw new ApiError(401, 'unauthorized', 'wrong token', 'body.token');
      setCookie(c, AUTH_COOKIE, ctx.token, { httpOnly: true, sameSite: 'Strict', path: '/' });
      return c.body(null, 204);
    });

    app.openapi(routes.config, async (c) => {
      const { config } = await loadConfig({ home: ctx.home });
      // publicConfig leaves out version 1 keys carried in memory; redact catches secret-looking names.
      return c.json({ home: ctx.home, config: redact(publicConfig(config)) }, 200);
    });
  },
};

const SECRET_KEY = /(key|token|secret|password|authorization)/i;

/** A copy of a config with every secret-looking value replaced (API keys, tokens, passwords). */
export function redact(value: unknown, key = ''): unknown {
  if (SECRET_KEY.test(key) && value !== undefined && value !== null && typeof value !== 'object') return '[redacted]';
  if (Array.isArray(value)) return value.map((v) => redact(v));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)]));
  return value;
}
