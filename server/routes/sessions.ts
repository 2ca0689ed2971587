import { realpathSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { DEFAULT_MODEL } from '../../cli/commands/run.js';
import type { RouteModule, ServerContext } from '../app.js';
import { hookFailedEvent, NO_HOOKS, runInputHooks, type HookFailure } from '../../services/hooks.js';
import { admitWithPolicy, requestBudget } from '../admission.js';
import { routes, SESSIONS_LIST_LIMIT } from '../contract.js';
import { ApiError } from '../errors.js';
import { sessionState } from '../state.js';
import { kick, requireAgent, requireSession } from './util.js';

/** Sessions: list, create (with a first input), show, and the inspect view. */
export const sessionRoutes: RouteModule = {
  name: 'sessions',
  register(app, ctx) {
    app.openapi(routes.listSessions, (c) => c.json({ sessions: ctx.store.queries.sessions({ limit: SESSIONS_LIST_LIMIT }) }, 200));

    app.openapi(routes.createSession, async (c) => {
      const body = c.req.valid('json');
      if (body.mode !== undefined && body.text === undefined) throw new ApiError(400, 'invalid_request', 'body.mode: goes with body.text', 'body.mode');
      if (body.clientId !== undefined && body.text === undefined) throw new ApiError(400, 'invalid_request', 'body.clientId: goes with body.text', 'body.clientId');
      if (body.budget !== undefined && body.text === undefined) throw new ApiError(400, 'invalid_request', 'body.budget: goes with body.text (or POST /sessions/{id}/run with a budget)', 'body.budget');
      const location = resolveLocation(body.location);
      const config = await ctx.configFor(location);
      if (body.agent !== undefined) await requireAgent(ctx, location, body.agent);
      const model = body.model ?? config.model ?? ctx.env.LOOM_MODEL ?? DEFAULT_MODEL;
      try {
        await ctx.models.providers.ready(model); // refuse before creating anything when the provider is not configured or failed to load
      } catch (error) {
        throw new ApiError(400, 'configuration', `body.model: ${(error as Error).message}`, 'body.model');
      }
      const budget = body.text === undefined ? undefined : await requestBudget(ctx, location, model, body.budget);
      const sessionId = ctx.store.ids.next('ses');
      // Plugins' input.admitted hooks see the text before anything is stored; their failures are recorded with the session.
      const failures: HookFailure[] = [];
      const request =
        body.text === undefined
          ? undefined
          : await runInputHooks(ctx.hooks ?? NO_HOOKS, { sessionId, location, model, source: 'http' }, { text: body.text, mode: body.mode, clientId: body.clientId, source: 'http', ...(budget ? { budget } : {}) }, (f) => failures.push(f));
      const input = ctx.store.transaction(() => {
        ctx.store.append({
          sessionId,
          type: 'session.created',
          data: {
            location,
            model,
            ...(body.title === undefined ? {} : { title: body.title }),
            ...(body.doubleTexting === undefined ? {} : { doubleTexting: body.doubleTexting }),
            ...(body.agent === undefined ? {} : { agent: body.agent }),
          },
        });
        if (failures.length > 0) ctx.store.append(failures.map((f) => hookFailedEvent(sessionId, f)));
        if (request === undefined) return null;
        return admitWithPolicy(ctx.store, sessionId, request).input;
      });
      if (input) await kick(ctx, sessionId);
      return c.json({ session: ctx.store.queries.session(sessionId)!, input }, 201);
    });

    app.openapi(routes.getSession, (c) => c.json(requireSession(ctx, c.req.valid('param').id), 200));

    app.openapi(routes.getSessionState, (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      return c.json(sessionState(ctx.store, s.sessionId), 200);
    });
  },
};

/** The real path of an existing directory on the server, or 400 naming `body.location`. */
function resolveLocation(dir: string): string {
  if (!isAbsolute(dir)) throw new ApiError(400, 'invalid_request', `body.location: must be an absolute path (got ${JSON.stringify(dir)})`, 'body.location');
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    throw new ApiError(400, 'invalid_request', `body.location: no such directory ${JSON.stringify(dir)}`, 'body.location');
  }
  if (!statSync(real).isDirectory()) throw new ApiError(400, 'invalid_request', `body.location: not a directory ${JSON.stringify(dir)}`, 'body.location');
  return real;
}

export type { ServerContext };
