/**
 * The HTTP contract of `loom serve` (DESIGN §7), defined once: each route's method, path,
 * parameters, body and responses as zod schemas. The server registers its handlers against these
 * route objects (validation comes from them), `/doc` is generated from them (OpenAPI 3.1), and the
 * SDK (sdk/) infers its request and response types from them with `import type`, so the three can
 * never disagree.
 *
 * Conventions: bodies are JSON; every error is `{ error: { code, message, field? } }` where a 4xx
 * about the request names the invalid field (`body.text`, `query.after`, `path.id`, `header.last-event-id`).
 */
import { createRoute, z } from '@hono/zod-openapi';
import {
  AGENT_NAME_CHARS_MAX,
  BUDGET_COST_USD_MAX,
  BUDGET_TOKENS_MAX,
  HTTP_EVENTS_PAGE_MAX,
  HTTP_SESSIONS_LIST_MAX,
  HTTP_SYSTEM_EVENTS_PAGE_MAX,
  INPUT_TEXT_BYTES_MAX,
  MODEL_ID_CHARS_MAX,
  PERMISSION_MESSAGE_CHARS_MAX,
} from '../core/limits.js';

// ---- shared schemas ----------------------------------------------------------------------------

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_request' }),
      message: z.string(),
      field: z.string().optional().openapi({ description: 'the invalid field, as `body.text`, `query.after`, `path.id` or `header.NAME`' }),
    }),
  })
  .openapi('Error');
export type ErrorBody = z.infer<typeof ErrorBody>;

/** The event envelope (DESIGN §4), the same in the store, CLI `--json`, SSE and NATS. */
export const Envelope = z
  .object({
    sessionId: z.string().nullable(),
    seq: z.number().int(),
    gseq: z.number().int(),
    type: z.string().openapi({ example: 'tool.called' }),
    version: z.number().int(),
    at: z.string(),
    data: z.any(),
  })
  .openapi('Envelope');
export type Envelope = z.infer<typeof Envelope>;

const idText = z.string().min(1).max(200);
const sessionIdParam = z.object({
  id: idText.openapi({ param: { name: 'id', in: 'path' }, example: 'ses_01J...' }),
});
const Mode = z.enum(['steer', 'queue']);
const AgentName = z
  .string()
  .min(1)
  .max(AGENT_NAME_CHARS_MAX)
  .openapi({ description: 'agent profile: build (default), plan (read-only) or one defined under "agents" in config; an unknown name is refused (400)', example: 'plan' });
const DoubleTexting = z.enum(['steer', 'queue', 'interrupt', 'reject']);

export const Session = z
  .object({
    sessionId: z.string(),
    location: z.string(),
    model: z.string(),
    title: z.string().nullable(),
    parentId: z.string().nullable(),
    doubleTexting: DoubleTexting,
    createdAt: z.string(),
    updatedAt: z.string(),
    lastSeq: z.number().int(),
    status: z.enum(['idle', 'active', 'recovering']),
    activityId: z.string().nullable(),
    activities: z.number().int(),
    lastActivityStatus: z.string().nullable(),
    turns: z.number().int(),
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    costUsd: z.number().nullable().openapi({ description: 'US dollars of the priced turns (model catalog prices); null when no turn had a price' }),
    agent: z.string().nullable().optional().openapi({ description: 'the agent profile the session was created with (null: build)' }),
  })
  .openapi('Session');
export type Session = z.infer<typeof Session>;

export const SessionList = z.object({ sessions: z.array(Session) }).openapi('SessionList');

export const Input = z
  .object({
    inputId: z.string(),
    sessionId: z.string(),
    mode: Mode,
    status: z.string(),
    text: z.string(),
    clientId: z.string().nullable().optional(),
    activityId: z.string().nullable().optional(),
  })
  .openapi('Input');

export const InputResult = z
  .object({
    input: Input,
    admitted: z.boolean().openapi({ description: 'false when an input with the same clientId was admitted before (nothing new was written)' }),
    policy: z
      .enum(['steer', 'queue', 'interrupt', 'reject'])
      .nullable()
      .openapi({ description: 'the double-texting policy applied (no mode was given and the session was busy), else null' }),
  })
  .openapi('InputResult');
export type InputResult = z.infer<typeof InputResult>;

const BudgetLimitBody = z
  .object({
    tokens: z.number().int().min(1).max(BUDGET_TOKENS_MAX).optional().openapi({ description: 'input + output tokens of every turn' }),
    costUsd: z.number().positive().max(BUDGET_COST_USD_MAX).optional().openapi({ description: 'US dollars at the model catalog\'s price (refused when the model has none)' }),
  })
  .strict()
  .refine((b) => b.tokens !== undefined || b.costUsd !== undefined, { message: 'sets neither tokens nor costUsd' });

/** Budgets recorded with the request; they lay over the config's `budget` one limit at a time. */
export const BudgetBody = z
  .object({
    activity: BudgetLimitBody.optional().openapi({ description: 'caps the activity this request opens or joins (the tightest of its requests wins)' }),
    session: BudgetLimitBody.optional().openapi({ description: 'caps the session\'s totals from now on (the last one recorded is in force)' }),
  })
  .strict()
  .openapi('Budget', { description: 'reaching a budget after a turn settles the activity budget_exceeded' });

export const CreateSessionBody = z
  .object({
    location: z.string().min(1).max(4096).openapi({ description: 'the directory the session works in (must exist on the server)' }),
    model: z.string().min(3).max(200).optional().openapi({ example: 'openai/gpt-4o-mini' }),
    title: z.string().max(500).optional(),
    doubleTexting: DoubleTexting.optional(),
    text: z.string().min(1).max(INPUT_TEXT_BYTES_MAX).optional().openapi({ description: 'a first input, admitted with the session' }),
    mode: Mode.optional(),
    clientId: z.string().min(1).max(200).optional(),
    budget: BudgetBody.optional().openapi({ description: 'budgets recorded with the first input (needs text)' }),
    agent: AgentName.optional().openapi({ description: "the session's agent profile (later inputs use it unless they name another)" }),
  })
  .strict()
  .openapi('CreateSession');

export const CreatedSession = z.object({ session: Session, input: Input.nullable() }).openapi('CreatedSession');

export const InputBody = z
  .object({
    text: z.string().min(1).max(INPUT_TEXT_BYTES_MAX),
    mode: Mode.optional().openapi({ description: 'steer or queue; without it a busy session applies its double-texting policy' }),
    clientId: z.string().min(1).max(200).optional().openapi({ description: 'idempotency key: a second admission with the same id is ignored' }),
    budget: BudgetBody.optional(),
    agent: AgentName.optional().openapi({ description: "the agent profile of the activity this input opens (default: the session's)" }),
  })
  .strict()
  .openapi('InputBody');

export const RunBody = z
  .object({
    budget: BudgetBody.optional(),
    agent: AgentName.optional().openapi({ description: "the agent profile of the activity the run opens (default: the session's)" }),
  })
  .strict()
  .openapi('RunBody');
export const CompactBody = z.object({ reason: z.string().max(1000).optional() }).strict().openapi('CompactBody');

export const Accepted = z
  .object({
    sessionId: z.string(),
    seq: z.number().int().openapi({ description: 'the seq of the recorded request event (resume SSE after seq - 1 to see it)' }),
    runId: z.string().optional(),
  })
  .openapi('Accepted');

export const CancelBody = z.object({ reason: z.string().max(1000).optional(), jobId: idText.optional() }).strict().openapi('CancelBody');
export const RecoveryBody = z.object({ decision: z.enum(['retry', 'abandon']), reason: z.string().max(1000).optional() }).strict().openapi('RecoveryBody');

export const PermissionRequest = z
  .object({
    requestId: z.string(),
    sessionId: z.string(),
    callId: z.string(),
    tool: z.string(),
    pattern: z.string().nullable(),
    summary: z.string().nullable(),
    status: z.string(),
    askedAt: z.string().optional(),
  })
  .passthrough()
  .openapi('PermissionRequest');
export const PermissionGrant = z.object({ tool: z.string(), pattern: z.string().nullable(), requestId: z.string() }).passthrough().openapi('PermissionGrant');
export const Permissions = z.object({ sessionId: z.string(), pending: z.array(PermissionRequest), grants: z.array(PermissionGrant) }).openapi('Permissions');
export const PermissionReplyBody = z
  .object({ reply: z.enum(['once', 'always', 'reject']), message: z.string().max(PERMISSION_MESSAGE_CHARS_MAX).optional() })
  .strict()
  .openapi('PermissionReplyBody');
export const RevokeBody = z.object({ tool: idText, pattern: z.string().max(4096).optional() }).strict().openapi('RevokeBody');
export const Revoked = z.object({ sessionId: z.string(), revoked: z.array(PermissionGrant), seq: z.number().int() }).openapi('Revoked');

export const Job = z
  .object({
    jobId: z.string(),
    sessionId: z.string(),
    kind: z.enum(['bash', 'task']),
    status: z.string(),
    summary: z.string(),
    description: z.string().nullable(),
    startedAt: z.string(),
    settledAt: z.string().nullable(),
    cancelRequested: z.boolean(),
    exitCode: z.number().int().nullable(),
    outputPath: z.string(),
  })
  .passthrough()
  .openapi('Job');
export const JobList = z.object({ jobs: z.array(Job) }).openapi('JobList');

export const SessionState = z
  .object({
    sessionId: z.string(),
    model: z.string(),
    location: z.string(),
    state: z.string().openapi({ description: 'the machine state as a dotted path, e.g. providerTurn.streaming' }),
    stateValue: z.any().openapi({ description: 'the XState state value' }),
    status: z.string(),
    snapshotSeq: z.number().int(),
    lastSeq: z.number().int(),
    machineVersion: z.string().nullable(),
    owner: z.object({ ownerId: z.string().nullable(), epoch: z.number().int(), live: z.boolean(), expiresAt: z.string().nullable() }).nullable(),
    activity: z.any().nullable(),
    children: z.array(z.object({ id: z.string(), kind: z.string(), tool: z.string(), state: z.string() })),
    inbox: z.array(z.object({ inputId: z.string(), mode: z.string(), status: z.string(), text: z.string() })),
    permissions: z.object({ pending: z.array(z.any()), grants: z.array(z.any()) }),
    jobs: z.array(z.any()),
    parked: z.boolean(),
    lastActivityStatus: z.string().nullable(),
    usage: z.object({
      activities: z.number().int(),
      turns: z.number().int(),
      inputTokens: z.number().int(),
      outputTokens: z.number().int(),
      costUsd: z.number().nullable(),
      /** The session budget in force (the last one recorded), or null. */
      budget: z.object({ tokens: z.number().optional(), costUsd: z.number().optional() }).nullable(),
    }),
    agent: z.string().nullable().optional().openapi({ description: 'the agent profile of the open activity, else the session\'s (null: build)' }),
    compaction: z
      .object({
        estimatedTokens: z.number().int(),
        windowTokens: z.number().int().nullable(),
        running: z.string().nullable().openapi({ description: 'the reason of the compaction running now (auto, requested, overflow)' }),
        requested: z.boolean(),
        summarySeq: z.number().int().nullable().openapi({ description: 'the seq of the compaction.finished requests are built from' }),
      })
      .nullable()
      .optional(),
  })
  .openapi('SessionState');
export type SessionState = z.infer<typeof SessionState>;

export const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().openapi({ param: { name: 'after', in: 'query' }, description: 'return events with seq greater than this' }),
  limit: z.coerce.number().int().min(1).max(HTTP_EVENTS_PAGE_MAX).optional().openapi({ param: { name: 'limit', in: 'query' } }),
});
export const EventsPage = z
  .object({
    events: z.array(Envelope),
    next: z.number().int().openapi({ description: 'the cursor to pass as `after` for the next page' }),
    more: z.boolean().openapi({ description: 'true when the page was full (more events may follow)' }),
  })
  .openapi('EventsPage');
export type EventsPage = z.infer<typeof EventsPage>;

export const StreamQuery = z.object({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().openapi({ param: { name: 'after', in: 'query' }, description: 'resume after this cursor (seq per session, gseq global); Last-Event-ID wins' }),
});

export const Health = z.object({ ok: z.boolean(), version: z.string(), ownerId: z.string(), liveSessions: z.number().int() }).passthrough().openapi('Health');
const Cost = z
  .object({ input: z.number(), output: z.number(), cacheRead: z.number().optional(), cacheWrite: z.number().optional() })
  .openapi('ModelCost', { description: 'US dollars per million tokens' });
export const Model = z
  .object({
    id: z.string().openapi({ example: 'openai/gpt-4o' }),
    provider: z.string(),
    name: z.string().optional(),
    capabilities: z.object({ toolCalling: z.boolean(), reasoning: z.boolean() }),
    limits: z.object({ context: z.number().int().optional(), output: z.number().int().optional() }).openapi({ description: 'tokens' }),
    cost: Cost.optional(),
    source: z.enum(['builtin', 'config', 'plugin', 'cli', 'http', 'provider']),
    providerState: z.enum(['loading', 'ready', 'failed', 'unconfigured', 'unknown']).optional().openapi({ description: "the provider's state in the server (unknown: nothing configures it)" }),
  })
  .openapi('Model');
export type Model = z.infer<typeof Model>;
export const ProviderView = z
  .object({
    id: z.string(),
    kind: z.string().nullable(),
    state: z.enum(['loading', 'ready', 'failed', 'unconfigured']),
    origin: z.enum(['config', 'env', 'credentials']).nullable().openapi({ description: 'what made it load' }),
    error: z.string().optional().openapi({ description: 'why it failed or is not configured (no secrets)' }),
    models: z.number().int().openapi({ description: 'models it registered into the catalog' }),
    configured: z.boolean().openapi({ description: 'true when it loaded (state ready)' }),
    missing: z.array(z.string()).openapi({ description: 'environment variables that would configure it' }),
    baseURL: z.string().nullable(),
  })
  .openapi('Provider');
export const Models = z
  .object({
    default: z.string(),
    models: z.array(Model),
    providers: z.array(ProviderView),
    configError: z.string().optional().openapi({ description: 'the global config could not be read; providers come from the environment only' }),
  })
  .openapi('Models');
export const ModelsQuery = z.object({
  provider: z.string().min(1).max(100).optional().openapi({ param: { name: 'provider', in: 'query' }, description: 'only this provider\'s models and status' }),
});
export const RegisterModelBody = z
  .object({
    id: z.string().min(3).max(MODEL_ID_CHARS_MAX).openapi({ example: 'groq/llama-3.3-70b-versatile', description: 'provider/model' }),
    name: z.string().min(1).max(200).optional(),
    toolCalling: z.boolean().optional(),
    reasoning: z.boolean().optional(),
    context: z.number().int().positive().optional().openapi({ description: 'context window, tokens' }),
    output: z.number().int().positive().optional().openapi({ description: 'output limit, tokens' }),
    cost: z.object({ input: z.number().nonnegative(), output: z.number().nonnegative(), cacheRead: z.number().nonnegative().optional(), cacheWrite: z.number().nonnegative().optional() }).strict().optional(),
  })
  .strict()
  .openapi('RegisterModel', { description: 'fields left out keep the value of the entry below (provider, config) or the default' });
export const RegisteredModel = z.object({ model: Model }).openapi('RegisteredModel');
export const RemovedModel = z
  .object({ removed: Model, now: Model.nullable().openapi({ description: 'the entry in force after the removal (a provider or config entry it covered), or null' }) })
  .openapi('RemovedModel');
export const SystemEventsQuery = z.object({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().openapi({ param: { name: 'after', in: 'query' }, description: 'return system events with seq greater than this' }),
  limit: z.coerce.number().int().min(1).max(HTTP_SYSTEM_EVENTS_PAGE_MAX).optional().openapi({ param: { name: 'limit', in: 'query' } }),
  last: z.coerce.number().int().min(1).max(HTTP_SYSTEM_EVENTS_PAGE_MAX).optional().openapi({ param: { name: 'last', in: 'query' }, description: 'the newest N system events instead of a page after `after`' }),
});
export const Config = z.object({ home: z.string(), config: z.any() }).openapi('Config');
export const MachineDefinition = z.any().openapi('MachineDefinition');
export const CookieBody = z.object({ token: z.string().min(1).max(1000) }).strict().openapi('CookieBody');

/** A file state in a checkpoint: a content hash, null (no file), or `{ uncaptured }` (content not kept). */
const CheckpointFileState = z.union([z.string(), z.null(), z.object({ uncaptured: z.string() })]);
export const DiffQuery = z.object({
  activity: z.string().min(1).max(200).optional().openapi({ param: { name: 'activity', in: 'query' }, description: 'an activity id or unique prefix (default: the last activity with changes not undone)' }),
  all: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ param: { name: 'all', in: 'query' }, description: '`true`: the whole session, from its first checkpoint to its last' }),
});
export const DiffReport = z
  .object({
    sessionId: z.string(),
    scope: z.enum(['activity', 'session']),
    activityId: z.string().nullable(),
    undoneSeq: z.number().int().nullable(),
    files: z.array(
      z.object({
        path: z.string(),
        status: z.enum(['created', 'deleted', 'modified']),
        before: CheckpointFileState,
        after: CheckpointFileState,
        beforeBytes: z.number().int().optional(),
        afterBytes: z.number().int().optional(),
        binary: z.boolean().optional(),
        patch: z.string().optional().openapi({ description: 'unified diff (`--- a/path`, `+++ b/path`)' }),
        note: z.string().optional().openapi({ description: 'why there is no patch (content not captured, no longer kept)' }),
      }),
    ),
    notes: z.array(z.string()).openapi({ description: 'what the checkpoints did not capture (bash scans past their bounds, background jobs)' }),
  })
  .openapi('DiffReport');

// ---- routes ------------------------------------------------------------------------------------

const json = <T extends z.ZodType>(schema: T, description: string) => ({ content: { 'application/json': { schema } }, description });
const body = <T extends z.ZodType>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });
const errors = {
  400: json(ErrorBody, 'invalid request (the error names the field)'),
  401: json(ErrorBody, 'missing or wrong token'),
  404: json(ErrorBody, 'not found'),
};
const conflict = { 409: json(ErrorBody, 'the request does not fit the session\'s state') };
const sse = { content: { 'text/event-stream': { schema: z.string() } }, description: 'SSE frames: `id: <cursor>`, `event: <type>`, `data: <envelope JSON>`' };

export const routes = {
  health: createRoute({ method: 'get', path: '/health', responses: { 200: json(Health, 'the server is up'), 401: errors[401] } }),
  authCookie: createRoute({
    method: 'post',
    path: '/auth/cookie',
    request: body(CookieBody),
    responses: { 204: { description: 'Set-Cookie: loom_session (HttpOnly, SameSite=Strict)' }, 400: errors[400], 401: errors[401] },
  }),
  listSessions: createRoute({ method: 'get', path: '/sessions', responses: { 200: json(SessionList, 'sessions, newest first'), 401: errors[401] } }),
  createSession: createRoute({
    method: 'post',
    path: '/sessions',
    request: body(CreateSessionBody),
    responses: { 201: json(CreatedSession, 'created (and running when text was given)'), ...errors },
  }),
  getSession: createRoute({ method: 'get', path: '/sessions/{id}', request: { params: sessionIdParam }, responses: { 200: json(Session, 'the session'), ...errors } }),
  getSessionState: createRoute({
    method: 'get',
    path: '/sessions/{id}/state',
    request: { params: sessionIdParam },
    responses: { 200: json(SessionState, 'machine state, children, inbox, asks, grants, jobs, owner, usage'), ...errors },
  }),
  postInput: createRoute({
    method: 'post',
    path: '/sessions/{id}/inputs',
    request: { params: sessionIdParam, ...body(InputBody) },
    responses: { 202: json(InputResult, 'admitted; the session runs'), ...errors, ...conflict },
  }),
  run: createRoute({
    method: 'post',
    path: '/sessions/{id}/run',
    request: { params: sessionIdParam, body: { content: { 'application/json': { schema: RunBody } }, required: false } },
    responses: { 202: json(Accepted, 'run.requested recorded'), ...errors },
  }),
  compact: createRoute({
    method: 'post',
    path: '/sessions/{id}/compact',
    request: { params: sessionIdParam, body: { content: { 'application/json': { schema: CompactBody } }, required: false } },
    responses: { 202: json(Accepted, 'compaction.requested recorded: the owner compacts at its next safe point'), ...errors },
  }),
  wake: createRoute({ method: 'post', path: '/sessions/{id}/wake', request: { params: sessionIdParam }, responses: { 202: json(Accepted, 'woken (advisory)'), ...errors } }),
  cancel: createRoute({
    method: 'post',
    path: '/sessions/{id}/cancel',
    request: { params: sessionIdParam, body: { content: { 'application/json': { schema: CancelBody } }, required: false } },
    responses: { 202: json(Accepted, 'cancel.requested recorded'), ...errors, ...conflict },
  }),
  recovery: createRoute({
    method: 'post',
    path: '/sessions/{id}/recovery',
    request: { params: sessionIdParam, ...body(RecoveryBody) },
    responses: { 202: json(Accepted, 'recovery.decided recorded'), ...errors, ...conflict },
  }),
  listPermissions: createRoute({
    method: 'get',
    path: '/sessions/{id}/permissions',
    request: { params: sessionIdParam },
    responses: { 200: json(Permissions, 'pending asks and always grants'), ...errors },
  }),
  revokePermission: createRoute({
    method: 'post',
    path: '/sessions/{id}/permissions/revoke',
    request: { params: sessionIdParam, ...body(RevokeBody) },
    responses: { 200: json(Revoked, 'permission.revoked recorded'), ...errors },
  }),
  replyPermission: createRoute({
    method: 'post',
    path: '/sessions/{id}/permissions/{requestId}',
    request: { params: sessionIdParam.extend({ requestId: idText.openapi({ param: { name: 'requestId', in: 'path' } }) }), ...body(PermissionReplyBody) },
    responses: { 202: json(Accepted, 'permission.replied recorded'), ...errors, ...conflict },
  }),
  listJobs: createRoute({ method: 'get', path: '/sessions/{id}/jobs', request: { params: sessionIdParam }, responses: { 200: json(JobList, 'background jobs, oldest first'), ...errors } }),
  cancelJob: createRoute({
    method: 'post',
    path: '/jobs/{jobId}/cancel',
    request: { params: z.object({ jobId: idText.openapi({ param: { name: 'jobId', in: 'path' } }) }) },
    responses: { 202: json(Accepted, 'cancel.requested recorded for the job'), ...errors, ...conflict },
  }),
  getDiff: createRoute({
    method: 'get',
    path: '/sessions/{id}/diff',
    request: { params: sessionIdParam, query: DiffQuery },
    responses: { 200: json(DiffReport, 'what an activity (or the whole session) changed in files, from its checkpoints'), ...errors },
  }),
  listEvents: createRoute({
    method: 'get',
    path: '/sessions/{id}/events',
    request: { params: sessionIdParam, query: EventsQuery },
    responses: { 200: json(EventsPage, 'one page of events after `after`'), ...errors },
  }),
  sessionStream: createRoute({
    method: 'get',
    path: '/sessions/{id}/events/stream',
    request: { params: sessionIdParam, query: StreamQuery },
    responses: { 200: sse, ...errors, 503: json(ErrorBody, 'too many SSE connections') },
  }),
  globalStream: createRoute({
    method: 'get',
    path: '/events/stream',
    request: { query: StreamQuery },
    responses: { 200: sse, 400: errors[400], 401: errors[401], 503: json(ErrorBody, 'too many SSE connections') },
  }),
  sessionMachine: createRoute({ method: 'get', path: '/machines/session', responses: { 200: json(MachineDefinition, 'the session statechart definition'), 401: errors[401] } }),
  models: createRoute({
    method: 'get',
    path: '/models',
    request: { query: ModelsQuery },
    responses: { 200: json(Models, 'the default model, the model catalog and the providers with their state (answered once provider loads in progress have ended, each bounded by PROVIDER_LOAD_TIMEOUT_MS)'), 400: errors[400], 401: errors[401] },
  }),
  registerModel: createRoute({
    method: 'post',
    path: '/models',
    request: body(RegisterModelBody),
    responses: { 201: json(RegisteredModel, 'registered for every process (recorded as model.added or model.updated)'), 400: errors[400], 401: errors[401] },
  }),
  removeModel: createRoute({
    method: 'delete',
    path: '/models/{id}',
    request: { params: z.object({ id: z.string().min(3).max(MODEL_ID_CHARS_MAX).openapi({ param: { name: 'id', in: 'path' }, description: 'provider/model, URL-encoded (openai%2Fgpt-4o)' }) }) },
    responses: {
      200: json(RemovedModel, 'the registration is removed (recorded as model.removed, or model.updated when an entry below it remains)'),
      ...errors,
      409: json(ErrorBody, 'the model is in the catalog but was not registered with POST /models or loom models add'),
    },
  }),
  systemEvents: createRoute({
    method: 'get',
    path: '/events/system',
    request: { query: SystemEventsQuery },
    responses: { 200: json(EventsPage, 'one page of the system log (config.updated, provider.loaded, model.*, registry.tool.*, session.removed)'), 400: errors[400], 401: errors[401] },
  }),
  config: createRoute({ method: 'get', path: '/config', responses: { 200: json(Config, 'the resolved global config, secrets redacted'), 401: errors[401] } }),
};

export type Routes = typeof routes;

/** The sessions list is capped here (newest first). */
export const SESSIONS_LIST_LIMIT = HTTP_SESSIONS_LIST_MAX;
