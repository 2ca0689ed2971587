import { CheckpointTargetError, diffSession } from '../../ops/checkpoints.js';
import { BlobStore } from '../../tools/checkpoints/blobs.js';
import type { RouteModule } from '../app.js';
import { routes } from '../contract.js';
import { ApiError } from '../errors.js';
import { requireSession } from './util.js';

/** File checkpoints: `GET /sessions/:id/diff` (ops/checkpoints.ts `diffSession`, as `loom diff --json`). */
export const checkpointRoutes: RouteModule = {
  name: 'checkpoints',
  register(app, ctx) {
    const blobs = new BlobStore(ctx.home);
    app.openapi(routes.getDiff, async (c) => {
      const session = requireSession(ctx, c.req.valid('param').id);
      const query = c.req.valid('query');
      if (query.all === 'true' && query.activity !== undefined) throw new ApiError(400, 'invalid_request', 'query.all: goes without query.activity', 'query.all');
      try {
        return c.json(await diffSession(ctx.store, blobs, session.sessionId, { activity: query.activity, all: query.all === 'true' }), 200);
      } catch (error) {
        if (error instanceof CheckpointTargetError) throw new ApiError(404, 'not_found', `query.activity: ${error.message}`, 'query.activity');
        throw error;
      }
    });
  },
};
