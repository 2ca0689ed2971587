import { existsSync, openSync, closeSync, fstatSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRoute, z } from '@hono/zod-openapi';
import { INSPECTOR_ASSET_BYTES_MAX } from '../../core/limits.js';
import { eventDefinitions } from '../../store/schemas.js';
import type { RouteModule } from '../app.js';
import { ApiError, errorResponse } from '../errors.js';
import { INSPECTOR_HTML } from '../inspector/page/html.js';
import { DRAWABLE_MACHINES, isDrawableMachine, machineGraphOf } from '../inspector/statechart.js';
import { renderStatechartSvg } from '../inspector/svg.js';

/** The files of the page's bundle (scripts/build.mjs writes them to dist/inspector-assets/). */
const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * The page may load only its own script and styles and talk only to this server. Inline styles
 * are allowed for the statechart SVG's own <style>; scripts never run inline.
 */
const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const machineName = z.enum(Object.keys(DRAWABLE_MACHINES) as [keyof typeof DRAWABLE_MACHINES, ...(keyof typeof DRAWABLE_MACHINES)[]]);
const machineParams = z.object({ name: machineName.openapi({ param: { name: 'name', in: 'path' }, example: 'session' }) });
const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }) });
const errorJson = (description: string) => ({ content: { 'application/json': { schema: errorSchema } }, description });

const GraphState = z.object({
  id: z.string(),
  key: z.string(),
  type: z.enum(['atomic', 'compound', 'parallel', 'final', 'history']),
  parent: z.string().nullable(),
  initial: z.string().nullable(),
  children: z.array(z.string()),
  invokes: z.array(z.string()),
  description: z.string().optional(),
});
const GraphTransition = z.object({
  id: z.string(),
  source: z.string(),
  target: z.string().nullable(),
  kind: z.enum(['event', 'always', 'after', 'done', 'error']),
  event: z.string(),
  guard: z.string().nullable(),
  actions: z.array(z.string()),
});
const MachineGraphSchema = z
  .object({ name: z.string(), version: z.string(), states: z.array(GraphState), transitions: z.array(GraphTransition) })
  .openapi('MachineGraph', { description: "a statechart for drawing: states (ids are dotted paths as in a session's `state`; '' is the root) and transitions" });

export const inspectorContract = {
  machine: createRoute({
    method: 'get',
    path: '/machines/{name}',
    request: { params: machineParams },
    responses: {
      200: { content: { 'application/json': { schema: MachineGraphSchema } }, description: 'the statechart of the session, tool-call or job machine, as a graph' },
      400: errorJson('unknown machine (names path.name)'),
      401: errorJson('missing or wrong token'),
    },
  }),
  machineSvg: createRoute({
    method: 'get',
    path: '/machines/{name}/svg',
    request: {
      params: machineParams,
      query: z.object({ state: z.string().max(500).optional().openapi({ param: { name: 'state', in: 'query' }, description: 'highlight this state (a dotted path, e.g. providerTurn.streaming)', example: 'awaitingTools' }) }),
    },
    responses: {
      200: { content: { 'image/svg+xml': { schema: z.string() } }, description: 'the statechart drawn as SVG, the given state highlighted' },
      400: errorJson('unknown machine or state'),
      401: errorJson('missing or wrong token'),
    },
  }),
  eventsInfo: createRoute({
    method: 'get',
    path: '/events/info',
    responses: {
      200: {
        content: {
          'application/json': {
            schema: z.object({
              gseq: z.number().int().openapi({ description: 'the newest event\'s gseq: pass it as `after` to /events/stream to follow only new events' }),
              types: z.array(z.string()).openapi({ description: 'every event type, i.e. every SSE `event:` name a stream may carry' }),
            }),
          },
        },
        description: 'where the global stream is now, and the event types',
      },
      401: errorJson('missing or wrong token'),
    },
  }),
  page: createRoute({
    method: 'get',
    path: '/inspector',
    responses: { 200: { content: { 'text/html': { schema: z.string() } }, description: 'the inspector page (no token needed: it holds no data; it trades the #token=… fragment for the cookie)' } },
  }),
  asset: createRoute({
    method: 'get',
    path: '/inspector/assets/{file}',
    request: { params: z.object({ file: z.enum(Object.keys(ASSETS) as [string, ...string[]]).openapi({ param: { name: 'file', in: 'path' } }) }) },
    responses: {
      200: { content: { 'text/javascript': { schema: z.string() }, 'text/css': { schema: z.string() } }, description: "the page's script and styles, served from this server (no CDN)" },
      404: errorJson('no such asset'),
      503: errorJson('the inspector assets were not built'),
    },
  }),
};

/**
 * The inspector (DESIGN §7): the page and its assets (public: static and non-secret; the page gets
 * the cookie with `POST /auth/cookie`), the statecharts it draws (`GET /machines/:name` as JSON,
 * `GET /machines/:name/svg?state=` drawn), and `GET /events/info` (the global cursor and the event
 * types, so the page's EventSource follows only new events and listens to every type).
 */
export const inspectorRoutes: RouteModule = {
  name: 'inspector',
  publicPaths: ['/inspector'],
  register(app, ctx) {
    app.openapi(inspectorContract.machine, (c) => c.json(machineGraphOf(c.req.valid('param').name), 200));

    // Non-JSON responses: registered plainly and documented from the contract above.
    app.openAPIRegistry.registerPath(inspectorContract.machineSvg);
    app.get('/machines/:name/svg', (c) => {
      const name = c.req.param('name');
      if (!isDrawableMachine(name)) return errorResponse(c, new ApiError(400, 'invalid_request', `path.name: no machine "${name}" (one of ${Object.keys(DRAWABLE_MACHINES).join(', ')})`, 'path.name'));
      const graph = machineGraphOf(name);
      const state = c.req.query('state');
      if (state !== undefined && state !== '' && !graph.states.some((s) => s.id === state)) {
        return errorResponse(c, new ApiError(400, 'invalid_request', `query.state: the ${name} machine has no state "${state.slice(0, 100)}"`, 'query.state'));
      }
      return c.body(renderStatechartSvg(graph, { state: state || null }), 200, { 'Content-Type': 'image/svg+xml; charset=utf-8', 'Cache-Control': 'no-cache' });
    });

    app.openapi(inspectorContract.eventsInfo, (c) => c.json({ gseq: ctx.store.maxGseq(), types: Object.keys(eventDefinitions) }, 200));

    app.openAPIRegistry.registerPath(inspectorContract.page);
    app.get('/inspector', (c) =>
      c.html(INSPECTOR_HTML, 200, {
        'Content-Security-Policy': PAGE_CSP,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
        'Cache-Control': 'no-cache',
      }),
    );

    app.openAPIRegistry.registerPath(inspectorContract.asset);
    app.get('/inspector/assets/:file', (c) => {
      const file = c.req.param('file');
      const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
      if (type === undefined) return errorResponse(c, new ApiError(404, 'not_found', `no inspector asset "${file.slice(0, 100)}"`, 'path.file'));
      const bytes = readAsset(file);
      return c.body(bytes, 200, { 'Content-Type': type, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' });
    });
  },
};

/** The inspector bundle is not where the build puts it. */
export class InspectorAssetsMissingError extends ApiError {
  override name = 'InspectorAssetsMissingError';
  constructor(file: string) {
    super(503, 'unavailable', `the inspector asset ${file} was not built (run npm run build; looked in ${assetDirs().join(', ')})`);
  }
}

/**
 * Where the built page lives: dist/inspector-assets/, found from this module whether it runs from
 * the CLI bundle (dist/bundle/), from tsc's output (dist/server/routes/) or from source (tests).
 */
function assetDirs(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', 'inspector-assets'), join(here, '..', '..', 'inspector-assets'), join(here, '..', '..', 'dist', 'inspector-assets')];
}

function readAsset(file: string): Uint8Array<ArrayBuffer> {
  const dir = assetDirs().find((d) => existsSync(join(d, file)));
  if (dir === undefined) throw new InspectorAssetsMissingError(file);
  const fd = openSync(join(dir, file), 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > INSPECTOR_ASSET_BYTES_MAX) throw new Error(`inspector asset ${file} is ${size} bytes, over INSPECTOR_ASSET_BYTES_MAX`);
    const buffer = new Uint8Array(new ArrayBuffer(size));
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buffer, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}
