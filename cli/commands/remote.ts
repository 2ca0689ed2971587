import { resolveLoomHome } from '../../services/config.js';
import { createLoomClient, LoomApiError, type Envelope, type LoomClient } from '../../sdk/index.js';
import { clientToken } from '../../server/auth.js';
import type { AnyEnvelope } from '../../store/index.js';
import { parseBudgetFlags, type BudgetFlags } from '../budget.js';
import { EXIT, exitCodeForStatus, UsageError } from '../exit.js';
import { createHumanRenderer, createJsonRenderer, formatEventLine } from '../render.js';

/**
 * The commands that work against a running `loom serve` when given `--server URL`: they go
 * through the SDK (sdk/) instead of opening the database. The token comes from LOOM_SERVER_TOKEN,
 * else $LOOM_HOME/server-token. A 4xx from the server is a usage error (exit 2) with its message.
 */
function connect(url: string): LoomClient {
  const token = clientToken(resolveLoomHome());
  if (!token) throw new UsageError(`--server ${url}: no token: set LOOM_SERVER_TOKEN (or run on the server's machine, where $LOOM_HOME/server-token holds it)`);
  return createLoomClient({ baseUrl: url, token });
}

async function remote<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof LoomApiError && error.status < 500) throw new UsageError(error.message);
    throw error;
  }
}

const asEnvelope = (e: Envelope) => e as unknown as AnyEnvelope;

export async function remoteSessionLs(url: string, opts: { json?: boolean }): Promise<number> {
  const { sessions } = await remote(() => connect(url).listSessions());
  if (opts.json) {
    for (const s of sessions) process.stdout.write(`${JSON.stringify(s)}\n`);
    return EXIT.ok;
  }
  if (sessions.length === 0) process.stdout.write('no sessions yet\n');
  for (const r of sessions) {
    const status = r.status === 'idle' ? `idle${r.lastActivityStatus ? ` (last: ${r.lastActivityStatus})` : ''}` : r.status;
    process.stdout.write(`${r.sessionId}  ${r.updatedAt}  ${r.model}  ${status}  ${r.location}${r.title ? `  "${r.title}"` : ''}\n`);
  }
  return EXIT.ok;
}

/**
 * `loom prompt --server URL`: admits the input over HTTP (the server runs the session) and follows
 * the session's events until the activity that took the input settles; exits like a local prompt
 * (5 when a permission ask waits for a reply: answer it with `loom permit --server URL`).
 */
export async function remotePrompt(url: string, id: string, text: string, opts: BudgetFlags & { steer?: boolean; queue?: boolean; json?: boolean; clientId?: string; agent?: string }): Promise<number> {
  if (opts.steer && opts.queue) throw new UsageError('choose one of --steer and --queue');
  if (text.trim() === '') throw new UsageError('prompt needs some text to send');
  // The server lays the limits over its config and refuses a cost budget it cannot price (a 400: exit 2).
  const activity = parseBudgetFlags(opts);
  const budget = Object.keys(activity).length > 0 ? { budget: { activity } } : {};
  const client = connect(url);
  const session = await remote(() => client.getSession(id));
  const mode = opts.steer ? 'steer' : opts.queue ? 'queue' : undefined;
  const r = await remote(() =>
    client.prompt(session.sessionId, { text, ...(mode ? { mode } : {}), ...(opts.clientId ? { clientId: opts.clientId } : {}), ...(opts.agent ? { agent: opts.agent } : {}), ...budget }),
  );
  process.stderr.write(`${r.admitted ? 'admitted' : 'already admitted'} ${r.input.mode} ${r.input.inputId} into ${session.sessionId} (${url})\n`);
  const render = opts.json ? createJsonRenderer(process.stdout) : createHumanRenderer(process.stdout, process.stderr);
  const ac = new AbortController();
  const onInt = () => ac.abort();
  process.once('SIGINT', onInt);
  let activityId: string | null = null;
  try {
    for await (const e of client.events({ sessionId: session.sessionId, after: session.lastSeq, signal: ac.signal })) {
      render.event(asEnvelope(e));
      if (e.type === 'input.assigned' && e.data.inputId === r.input.inputId) activityId = e.data.activityId;
      if (e.type === 'input.cancelled' && e.data.inputId === r.input.inputId) return EXIT.cancelled;
      if (e.type === 'permission.asked' && activityId !== null) {
        render.end();
        process.stderr.write(`loom: session ${session.sessionId} waits for a permission decision: loom permit --server ${url} ${session.sessionId} ${e.data.requestId} once|always|reject\n`);
        return EXIT.waiting;
      }
      if (e.type === 'activity.settled' && e.data.activityId === activityId) {
        render.end();
        return exitCodeForStatus(e.data.status);
      }
    }
  } finally {
    process.off('SIGINT', onInt);
  }
  render.end();
  return EXIT.cancelled;
}

/** `loom tail --server URL [--follow]`: pages the events, or follows the SSE stream (resuming by cursor). */
export async function remoteTail(url: string, id: string, opts: { after: string; follow?: boolean; json?: boolean }): Promise<number> {
  const after = Number(opts.after);
  if (!Number.isInteger(after) || after < 0) throw new UsageError(`--after must be a non-negative integer, got "${opts.after}"`);
  const client = connect(url);
  const sessionId = (await remote(() => client.getSession(id))).sessionId;
  const print = (e: Envelope) => process.stdout.write(`${opts.json ? JSON.stringify(e) : formatEventLine(asEnvelope(e))}\n`);
  if (!opts.follow) {
    let cursor = after;
    for (;;) {
      const page = await remote(() => client.eventsPage(sessionId, { after: cursor }));
      page.events.forEach(print);
      cursor = page.next;
      if (!page.more) return EXIT.ok;
    }
  }
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  process.once('SIGTERM', () => ac.abort());
  for await (const e of client.events({ sessionId, after, signal: ac.signal })) print(e);
  return EXIT.ok;
}

export async function remoteCancel(url: string, id: string): Promise<number> {
  const client = connect(url);
  const r = await remote(() => client.cancel(id, { reason: 'loom cancel' }));
  process.stderr.write(`recorded cancel.requested (seq ${r.seq}) in ${r.sessionId}; the server acts on it\n`);
  return EXIT.ok;
}

export async function remotePermit(
  url: string,
  id: string,
  request: string | undefined,
  reply: string | undefined,
  opts: { message?: string; revoke?: string; pattern?: string; json?: boolean },
): Promise<number> {
  const client = connect(url);
  if (opts.revoke !== undefined) {
    if (request !== undefined) throw new UsageError('permit --revoke takes no request id');
    const r = await remote(() => client.revokePermission(id, { tool: opts.revoke!, ...(opts.pattern === undefined ? {} : { pattern: opts.pattern }) }));
    for (const g of r.revoked) process.stderr.write(`revoked always ${g.tool} ${g.pattern ?? '(any call)'} in ${r.sessionId}\n`);
    return EXIT.ok;
  }
  if (opts.pattern !== undefined) throw new UsageError('--pattern goes with --revoke');
  if (request === undefined) {
    const p = await remote(() => client.permissions(id));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(p)}\n`);
      return EXIT.ok;
    }
    process.stdout.write(`pending asks  ${p.pending.length === 0 ? 'none' : ''}\n`);
    for (const a of p.pending) process.stdout.write(`  ${a.requestId}  ${a.tool}  ${a.summary ?? ''}\n`);
    process.stdout.write(`always grants ${p.grants.length === 0 ? 'none' : ''}\n`);
    for (const g of p.grants) process.stdout.write(`  ${g.tool}  ${g.pattern ?? '(any call)'}  from ${g.requestId}\n`);
    return EXIT.ok;
  }
  if (reply === undefined) throw new UsageError(`permit ${id} ${request} needs a reply: once, always or reject`);
  const r = await remote(() =>
    client.replyPermission(id, request, { reply: reply as 'once' | 'always' | 'reject', ...(opts.message === undefined ? {} : { message: opts.message }) }),
  );
  process.stderr.write(`recorded ${reply} for ${request} in ${r.sessionId} (seq ${r.seq}); the server runs the session\n`);
  return EXIT.ok;
}
