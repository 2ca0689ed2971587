import { resolveAgent, UnknownAgentError } from '../../services/agents.js';
import type { AnyEnvelope, SessionRow } from '../../store/index.js';
import type { ServerContext } from '../app.js';
import { ApiError } from '../errors.js';

/** The session named by a path id (the full id or a unique prefix), or 404 naming `path.id`. */
export function requireSession(ctx: ServerContext, id: string): SessionRow {
  const sessionId = ctx.store.queries.resolveSessionId(id);
  const session = sessionId === undefined ? undefined : ctx.store.queries.session(sessionId);
  if (!session) throw new ApiError(404, 'not_found', `no session "${id}"`, 'path.id');
  return session;
}

/** Runs a session that has new work, here or in its live owner; a failure to start is reported, never thrown at the client after the request was recorded. */
export async function kick(ctx: ServerContext, sessionId: string): Promise<'here' | 'elsewhere'> {
  try {
    return await ctx.runner.kick(sessionId);
  } catch (error) {
    process.stderr.write(`loom serve: could not run ${sessionId}: ${(error as Error)?.message ?? String(error)}\n`);
    return 'elsewhere';
  }
}

/** The event of `type` among those an append wrote (an append may first flush the session's buffered deltas). */
export function recorded(events: readonly AnyEnvelope[], type: string): AnyEnvelope {
  const e = events.find((x) => x.type === type);
  if (!e) throw new Error(`append wrote no ${type} event`);
  return e;
}

/** Refuses (400 naming `body.agent` and the defined agents) an agent profile the session directory's config does not define. */
export async function requireAgent(ctx: ServerContext, location: string, agent: string): Promise<void> {
  try {
    resolveAgent(await ctx.configFor(location), agent);
  } catch (error) {
    if (error instanceof UnknownAgentError) throw new ApiError(400, 'invalid_request', `body.agent: ${error.message}`, 'body.agent');
    throw error;
  }
}
