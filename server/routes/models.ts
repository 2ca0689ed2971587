import { DEFAULT_MODEL } from '../../cli/commands/run.js';
import { loadConfig } from '../../services/config.js';
import { ModelNotRegisteredError, ModelRegistrationError, type ModelsView } from '../../services/models.js';
import type { RouteModule, ServerContext } from '../app.js';
import { routes } from '../contract.js';
import { ApiError } from '../errors.js';

/**
 * The model catalog over HTTP: `GET /models` (the catalog and the providers with their state in
 * this server), `POST /models` (register a model for every process; recorded as `model.added` or
 * `model.updated`) and `DELETE /models/:id` (remove a registration).
 */
export const modelRoutes: RouteModule = {
  name: 'models',
  register(app, ctx) {
    app.openapi(routes.models, async (c) => {
      const { provider } = c.req.valid('query');
      // The state of a provider still loading is about to change: answer once loads in progress end (each bounded).
      await ctx.models.settled();
      const view = ctx.models.view({ provider });
      return c.json({ default: await defaultModel(ctx), ...present(view) }, 200);
    });

    app.openapi(routes.registerModel, (c) => {
      const { id, ...settings } = c.req.valid('json');
      try {
        const model = ctx.models.register(id, settings, 'http');
        const state = ctx.models.providers.status(model.provider)?.state ?? ('unknown' as const);
        return c.json({ model: { ...model, providerState: state } }, 201);
      } catch (error) {
        if (error instanceof ModelRegistrationError) throw new ApiError(400, 'invalid_request', `body.${error.field}: ${error.message}`, `body.${error.field}`);
        throw error;
      }
    });

    app.openapi(routes.removeModel, (c) => {
      const { id } = c.req.valid('param');
      try {
        const { removed, now } = ctx.models.unregister(id);
        return c.json({ removed, now: now ?? null }, 200);
      } catch (error) {
        if (error instanceof ModelNotRegisteredError) {
          if (error.source === undefined) throw new ApiError(404, 'not_found', error.message, 'path.id');
          throw new ApiError(409, 'not_registered', error.message, 'path.id');
        }
        throw error;
      }
    });
  },
};

/** The model a session gets when it names none (config `model`, $LOOM_MODEL, or Loom's default). */
async function defaultModel(ctx: ServerContext): Promise<string> {
  let configured: string | undefined;
  try {
    configured = (await loadConfig({ home: ctx.home })).config.model;
  } catch {
    // a broken global config is reported by GET /config and GET /models' configError
  }
  return configured ?? ctx.env.LOOM_MODEL ?? DEFAULT_MODEL;
}

/** The view with each provider's `configured` (ready), as the contract shows it. */
export function present(view: ModelsView) {
  return {
    models: view.models,
    providers: view.providers.map((p) => ({ ...p, configured: p.state === 'ready' })),
    ...(view.configError === undefined ? {} : { configError: view.configError }),
  };
}
