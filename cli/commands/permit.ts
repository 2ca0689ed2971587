import { PERMISSION_MESSAGE_CHARS_MAX } from '../../core/limits.js';
import { PermissionNotPendingError, replyToPermission, type PermissionReply, type PermissionRequestRow, type Store } from '../../store/index.js';
import { driveSession } from '../drive.js';
import { EXIT, UsageError } from '../exit.js';
import { openRuntime, openStore, type PermissionMode } from '../runtime.js';
import { requireSession } from './session.js';

export interface PermitOptions {
  message?: string;
  revoke?: string;
  pattern?: string;
  json?: boolean;
  permission?: PermissionMode;
}

/**
 * `loom permit`: the durable side of permission asks (DESIGN §3, §7), from any process.
 * - `permit ID REQUEST once|always|reject [--message TEXT]` records the reply; if no live owner
 *   holds the session, this process then takes the lease and runs the session until it is quiet
 *   (further asks are asked on a terminal, else left pending: exit 5 again).
 * - `permit ID --revoke TOOL [--pattern P]` records `permission.revoked`.
 * - `permit ID` lists the pending asks and the `always` grants.
 */
export async function permitCommand(idArg: string, requestArg: string | undefined, replyArg: string | undefined, opts: PermitOptions): Promise<number> {
  if (opts.revoke !== undefined) {
    if (requestArg !== undefined) throw new UsageError('permit --revoke takes no request id');
    return revoke(idArg, opts.revoke, opts.pattern);
  }
  if (opts.pattern !== undefined) throw new UsageError('--pattern goes with --revoke');
  if (requestArg === undefined) {
    if (opts.message !== undefined) throw new UsageError('--message goes with a reply: loom permit ID REQUEST once|always|reject --message TEXT');
    return list(idArg, opts.json === true);
  }
  if (replyArg === undefined) throw new UsageError(`permit ${idArg} ${requestArg} needs a reply: once, always or reject`);
  if (opts.message !== undefined && opts.message.length > PERMISSION_MESSAGE_CHARS_MAX) {
    throw new UsageError(`--message is ${opts.message.length} characters; at most ${PERMISSION_MESSAGE_CHARS_MAX}`);
  }
  return reply(idArg, requestArg, replyArg as PermissionReply, opts);
}

async function reply(idArg: string, requestArg: string, answer: PermissionReply, opts: PermitOptions): Promise<number> {
  // Without a terminal, asks after this one stay pending (the run stops again with exit 5).
  const rt = await openRuntime({ permission: opts.permission ?? 'ask' });
  try {
    const session = requireSession(rt.store, idArg);
    const sessionId = session.sessionId;
    const request = requirePending(rt.store, sessionId, requestArg);
    await rt.configFor(session.location);
    const after = session.lastSeq;
    try {
      replyToPermission(rt.store, { sessionId, requestId: request.requestId, reply: answer, ...(opts.message === undefined ? {} : { message: opts.message }) });
    } catch (error) {
      if (error instanceof PermissionNotPendingError) throw new UsageError(error.message);
      throw error;
    }
    process.stderr.write(`recorded ${answer} for ${request.requestId} (${request.tool}) in ${sessionId}\n`);
    await rt.signal('wake', sessionId);
    const code = await driveSession(rt, sessionId, { after, json: opts.json });
    if (code === null) process.stderr.write(`the live owner of ${sessionId} will act on it\n`);
    return code ?? EXIT.ok;
  } finally {
    rt.close();
  }
}

function requirePending(store: Store, sessionId: string, requestArg: string): PermissionRequestRow {
  const request = store.queries.permissions.resolveRequest(sessionId, requestArg);
  if (!request) {
    const pending = store.queries.permissions.pending(sessionId).map((p) => p.requestId);
    throw new UsageError(
      `session ${sessionId} has no permission request "${requestArg}" (${pending.length === 0 ? 'no ask is pending' : `pending: ${pending.join(', ')}`})`,
    );
  }
  if (request.status === 'closed') throw new UsageError(`permission request ${request.requestId} is closed: its tool call settled without a reply`);
  if (request.status !== 'pending') throw new UsageError(`permission request ${request.requestId} was already answered (${request.status})`);
  return request;
}

async function revoke(idArg: string, tool: string, pattern: string | undefined): Promise<number> {
  const { store } = openStore();
  try {
    const session = requireSession(store, idArg);
    const grants = store.queries.permissions.grants(session.sessionId, tool).filter((g) => pattern === undefined || g.pattern === pattern);
    if (grants.length === 0) {
      throw new UsageError(`session ${session.sessionId} holds no always grant for ${tool}${pattern === undefined ? '' : ` with pattern ${JSON.stringify(pattern)}`} (see loom permit ${session.sessionId})`);
    }
    store.append({ sessionId: session.sessionId, type: 'permission.revoked', data: { tool, ...(pattern === undefined ? {} : { pattern }) } });
    for (const g of grants) process.stderr.write(`revoked always ${g.tool} ${g.pattern ?? '(any call)'} in ${session.sessionId}\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}

async function list(idArg: string, json: boolean): Promise<number> {
  const { store } = openStore();
  try {
    const session = requireSession(store, idArg);
    const pending = store.queries.permissions.pending(session.sessionId);
    const grants = store.queries.permissions.grants(session.sessionId);
    if (json) {
      process.stdout.write(`${JSON.stringify({ sessionId: session.sessionId, pending, grants })}\n`);
      return EXIT.ok;
    }
    const w = (line: string) => process.stdout.write(`${line}\n`);
    w(`pending asks  ${pending.length === 0 ? 'none' : ''}`);
    for (const p of pending) w(`  ${p.requestId}  ${p.tool}  ${p.summary ?? ''}${p.pattern ? `  (always: ${p.tool} ${p.pattern})` : '  (always: any call)'}`);
    w(`always grants ${grants.length === 0 ? 'none' : ''}`);
    for (const g of grants) w(`  ${g.tool}  ${g.pattern ?? '(any call)'}  from ${g.requestId}`);
    if (pending.length > 0) w(`answer: loom permit ${session.sessionId} REQUEST once|always|reject [--message TEXT]`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}
