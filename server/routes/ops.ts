import { createRoute, z } from '@hono/zod-openapi';
import { removeSession } from '../../ops/remove.js';
import { SessionHasRunningJobsError, SessionOwnedError } from '../../store/index.js';
import type { RouteModule } from '../app.js';
import { ErrorBody } from '../contract.js';
import { ApiError } from '../errors.js';
import { createMetricsRecorder, renderMetrics } from '../metrics.js';
import { requireSession } from './util.js';

/** Prometheus text exposition format 0.0.4. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const errorJson = (description: string) => ({ content: { 'application/json': { schema: ErrorBody } }, description });

export const Removed = z
  .object({
    sessionId: z.string(),
    events: z.number().int(),
    forced: z.boolean(),
    stoppedJobs: z.array(z.string()),
    removedPaths: z.array(z.string()),
  })
  .openapi('Removed');

/** The operations endpoints' contract (added to /doc like server/contract.ts's routes). */
export const opsContract = {
  metrics: createRoute({
    method: 'get',
    path: '/metrics',
    responses: {
      200: { content: { 'text/plain': { schema: z.string() } }, description: 'metrics in the Prometheus text format 0.0.4' },
      401: errorJson('missing or wrong token'),
    },
  }),
  deleteSession: createRoute({
    method: 'delete',
    path: '/sessions/{id}',
    request: {
      params: z.object({ id: z.string().min(1).max(200).openapi({ param: { name: 'id', in: 'path' } }) }),
      query: z.object({
        force: z.enum(['true', 'false']).optional().openapi({ description: 'remove even while a live owner holds it or its jobs run (their process groups are stopped)' }),
      }),
    },
    responses: {
      200: { content: { 'application/json': { schema: Removed } }, description: 'removed: its log, projections, snapshot, owner, jobs, permission rows and files' },
      400: errorJson('invalid request (the error names the field)'),
      401: errorJson('missing or wrong token'),
      404: errorJson('no such session'),
      409: errorJson('a live owner holds it or its jobs run; force=true removes it anyway'),
    },
  }),
};

/**
 * Operations over HTTP: `GET /metrics` (server/metrics.ts: database gauges, this server's event
 * counters and latency histograms, owned sessions, SSE connections) and `DELETE /sessions/:id`
 * (ops/remove.ts, the same removal as `loom session rm`). `GET /health` is in the system routes.
 */
export const opsRoutes: RouteModule = {
  name: 'ops',
  register(app, ctx) {
    const recorder = createMetricsRecorder(ctx.store);

    app.openapi(opsContract.metrics, (c) => {
      const body = renderMetrics(ctx.store, recorder, { ownedSessions: ctx.runner.sessions.length, sseConnections: ctx.hub.size, version: ctx.version });
      return c.text(body, 200, { 'content-type': METRICS_CONTENT_TYPE });
    });

    app.openapi(opsContract.deleteSession, async (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const force = c.req.valid('query').force === 'true';
      if (ctx.coordinator.get(s.sessionId)) {
        // This server runs it: that is a live owner like any other, and force stops it here first.
        if (!force) throw new ApiError(409, 'owned', `session ${s.sessionId} is running in this server (activity, permission ask or job); pass force=true to remove it anyway`, 'query.force');
        ctx.coordinator.release(s.sessionId);
      }
      let removed;
      try {
        removed = await removeSession(ctx.store, ctx.home, s.sessionId, { force, reason: 'rm' });
      } catch (error) {
        if (error instanceof SessionOwnedError || error instanceof SessionHasRunningJobsError) throw new ApiError(409, 'owned', error.message, 'query.force');
        throw error;
      }
      if (!removed) throw new ApiError(409, 'conflict', `session ${s.sessionId} changed while it was being removed; try again`, 'path.id');
      return c.json(removed, 200);
    });
  },
};
