import { HTTP_EVENTS_PAGE_MAX } from '../../core/limits.js';
import type { RouteModule } from '../app.js';
import { routes } from '../contract.js';
import { sseResponse, resumeCursor } from '../sse.js';
import { requireSession } from './util.js';

/** Paged events and the SSE streams (per session: cursor = seq; global: cursor = gseq). */
export const eventRoutes: RouteModule = {
  name: 'events',
  register(app, ctx) {
    app.openapi(routes.listEvents, (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const { after = 0, limit = HTTP_EVENTS_PAGE_MAX } = c.req.valid('query');
      const events = ctx.store.read(s.sessionId, { after, limit });
      return c.json({ events, next: events.length > 0 ? events[events.length - 1]!.seq : after, more: events.length === limit }, 200);
    });

    app.openapi(routes.sessionStream, ((c: any) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const after = resumeCursor(c.req.header('last-event-id'), c.req.valid('query').after);
      return sseResponse(ctx, { sessionId: s.sessionId }, after, c.req.raw.signal);
    }) as never);

    app.openapi(routes.globalStream, ((c: any) => {
      const after = resumeCursor(c.req.header('last-event-id'), c.req.valid('query').after);
      return sseResponse(ctx, { all: true }, after, c.req.raw.signal);
    }) as never);
  },
};
