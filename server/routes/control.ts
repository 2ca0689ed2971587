import { JOBS_LIST_MAX } from '../../core/limits.js';
import { PermissionNotPendingError, replyToPermission } from '../../store/index.js';
import type { RouteModule } from '../app.js';
import { admitWithHooks, NO_HOOKS } from '../../services/hooks.js';
import { admitWithPolicy, requestBudget } from '../admission.js';
import { routes } from '../contract.js';
import { ApiError } from '../errors.js';
import { kick, recorded, requireAgent, requireSession } from './util.js';

/**
 * Requests into a session (DESIGN §4: request events any process may record): inputs, run, wake,
 * cancel, recovery decisions, permission replies and revocations, job cancels. Each records its
 * event, then makes sure the session runs (here, or in the live process that owns it).
 */
export const controlRoutes: RouteModule = {
  name: 'control',
  register(app, ctx) {
    app.openapi(routes.postInput, async (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const body = c.req.valid('json');
      const budget = await requestBudget(ctx, s.location, s.model, body.budget);
      if (body.agent !== undefined) await requireAgent(ctx, s.location, body.agent);
      const result = await admitWithHooks(ctx.store, ctx.hooks ?? NO_HOOKS, s.sessionId, {
        text: body.text,
        mode: body.mode,
        clientId: body.clientId,
        source: 'http',
        ...(budget ? { budget } : {}),
        ...(body.agent === undefined ? {} : { agent: body.agent }),
      });
      await kick(ctx, s.sessionId);
      return c.json(result, 202);
    });

    app.openapi(routes.run, async (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const { budget: asked, agent } = c.req.valid('json') ?? {};
      const budget = await requestBudget(ctx, s.location, s.model, asked);
      if (agent !== undefined) await requireAgent(ctx, s.location, agent);
      const runId = ctx.store.ids.next('run');
      const e = recorded(ctx.store.append({ sessionId: s.sessionId, type: 'run.requested', data: { runId, ...(budget ? { budget } : {}), ...(agent === undefined ? {} : { agent }) } }), 'run.requested');
      await kick(ctx, s.sessionId);
      return c.json({ sessionId: s.sessionId, seq: e.seq, runId }, 202);
    });

    app.openapi(routes.compact, async (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const body = c.req.valid('json') ?? {};
      const e = recorded(ctx.store.append({ sessionId: s.sessionId, type: 'compaction.requested', data: { reason: body.reason ?? 'requested over HTTP' } }), 'compaction.requested');
      await kick(ctx, s.sessionId);
      return c.json({ sessionId: s.sessionId, seq: e.seq }, 202);
    });

    app.openapi(routes.wake, async (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      // Advisory: the provider is called only when the inbox holds eligible input.
      if ((await kick(ctx, s.sessionId)) === 'here') ctx.coordinator.wake(s.sessionId);
      else void ctx.coordinator.transport.wake(s.sessionId);
      return c.json({ sessionId: s.sessionId, seq: ctx.store.queries.session(s.sessionId)!.lastSeq }, 202);
    });

    app.openapi(routes.cancel, async (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const body = c.req.valid('json') ?? {};
      if (!s.activityId) throw new ApiError(409, 'no_activity', `session ${s.sessionId} has no activity to cancel`, 'path.id');
      const e = recorded(ctx.store.append({ sessionId: s.sessionId, type: 'cancel.requested', data: { activityId: s.activityId, reason: body.reason ?? 'cancelled over HTTP' } }), 'cancel.requested');
      await kick(ctx, s.sessionId);
      return c.json({ sessionId: s.sessionId, seq: e.seq }, 202);
    });

    app.openapi(routes.recovery, async (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const body = c.req.valid('json');
      if (!s.activityId) throw new ApiError(409, 'no_activity', `session ${s.sessionId} has no unsettled activity to recover`, 'path.id');
      const e = recorded(ctx.store.append({
        sessionId: s.sessionId,
        type: 'recovery.decided',
        data: { activityId: s.activityId, decision: body.decision, ...(body.reason === undefined ? {} : { reason: body.reason }) },
      }), 'recovery.decided');
      await kick(ctx, s.sessionId);
      return c.json({ sessionId: s.sessionId, seq: e.seq }, 202);
    });

    app.openapi(routes.listPermissions, (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const permissions = ctx.store.queries.permissions;
      return c.json({ sessionId: s.sessionId, pending: permissions.pending(s.sessionId), grants: permissions.grants(s.sessionId) }, 200);
    });

    // Registered before `/permissions/{requestId}` so `revoke` is never taken for a request id.
    app.openapi(routes.revokePermission, (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const { tool, pattern } = c.req.valid('json');
      const grants = ctx.store.queries.permissions.grants(s.sessionId, tool).filter((g) => pattern === undefined || g.pattern === pattern);
      if (grants.length === 0) {
        throw new ApiError(404, 'not_found', `session ${s.sessionId} holds no always grant for ${tool}${pattern === undefined ? '' : ` with pattern ${JSON.stringify(pattern)}`}`, pattern === undefined ? 'body.tool' : 'body.pattern');
      }
      const e = recorded(ctx.store.append({ sessionId: s.sessionId, type: 'permission.revoked', data: { tool, ...(pattern === undefined ? {} : { pattern }) } }), 'permission.revoked');
      return c.json({ sessionId: s.sessionId, revoked: grants, seq: e.seq }, 200);
    });

    app.openapi(routes.replyPermission, async (c) => {
      const { id, requestId: requestArg } = c.req.valid('param');
      const s = requireSession(ctx, id);
      const body = c.req.valid('json');
      const request = ctx.store.queries.permissions.resolveRequest(s.sessionId, requestArg);
      if (!request) throw new ApiError(404, 'not_found', `session ${s.sessionId} has no permission request "${requestArg}"`, 'path.requestId');
      if (request.status !== 'pending') {
        const why = request.status === 'closed' ? 'is closed: its tool call settled without a reply' : `was already answered (${request.status})`;
        throw new ApiError(409, 'not_pending', `permission request ${request.requestId} ${why}`, 'path.requestId');
      }
      let seq: number;
      try {
        const events = replyToPermission(ctx.store, { sessionId: s.sessionId, requestId: request.requestId, reply: body.reply, ...(body.message === undefined ? {} : { message: body.message }) });
        seq = recorded(events, 'permission.replied').seq;
      } catch (error) {
        if (error instanceof PermissionNotPendingError) throw new ApiError(409, 'not_pending', error.message, 'path.requestId');
        throw error;
      }
      await kick(ctx, s.sessionId);
      return c.json({ sessionId: s.sessionId, seq }, 202);
    });

    app.openapi(routes.listJobs, (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      return c.json({ jobs: ctx.store.queries.jobs(s.sessionId, { limit: JOBS_LIST_MAX }) }, 200);
    });

    app.openapi(routes.cancelJob, async (c) => {
      const { jobId: jobArg } = c.req.valid('param');
      const jobId = ctx.store.queries.resolveJobId(jobArg);
      const job = jobId === undefined ? undefined : ctx.store.queries.job(jobId);
      if (!job) throw new ApiError(404, 'not_found', `no job "${jobArg}"`, 'path.jobId');
      if (job.status !== 'running') throw new ApiError(409, 'settled', `job ${job.jobId} has already settled (${job.status})`, 'path.jobId');
      const e = recorded(ctx.store.append({ sessionId: job.sessionId, type: 'cancel.requested', data: { jobId: job.jobId, reason: 'cancelled over HTTP' } }), 'cancel.requested');
      await kick(ctx, job.sessionId);
      return c.json({ sessionId: job.sessionId, seq: e.seq }, 202);
    });
  },
};
