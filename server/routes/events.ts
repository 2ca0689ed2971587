import { HTTP_EVENTS_PAGE_MAX, HTTP_SYSTEM_EVENTS_PAGE_MAX } from '../../core/limits.js';
import { systemLogHead } from '../../store/index.js';
import type { RouteModule } from '../app.js';
import { routes } from '../contract.js';
import { sseResponse, resumeCursor } from '../sse.js';
import { requireSession } from './util.js';

/** Paged events (per session, and the system log) and the SSE streams (per session: cursor = seq; global: cursor = gseq, system events included). */
export const eventRoutes: RouteModule = {
  name: 'events',
  register(app, ctx) {
    app.openapi(routes.listEvents, (c) => {
      const s = requireSession(ctx, c.req.valid('param').id);
      const { after = 0, limit = HTTP_EVENTS_PAGE_MAX } = c.req.valid('query');
      const events = ctx.store.read(s.sessionId, { after, limit });
      return c.json({ events, next: events.length > 0 ? events[events.length - 1]!.seq : after, more: events.length === limit }, 200);
    });

    app.openapi(routes.systemEvents, (c) => {
      const { after: given = 0, limit = HTTP_SYSTEM_EVENTS_PAGE_MAX, last } = c.req.valid('query');
      // System seqs are contiguous from 1, so the newest N start after head - N.
      const after = last === undefined ? given : Math.max(0, systemLogHead(ctx.store) - last);
      const size = last ?? limit;
      const events = ctx.store.readSystem({ after, limit: size });
      return c.json({ events, next: events.length > 0 ? events[events.length - 1]!.seq : after, more: events.length === size }, 200);
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
