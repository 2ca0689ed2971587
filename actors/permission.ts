import { PERMISSION_MESSAGE_CHARS_MAX, PERMISSION_SUMMARY_CHARS_MAX } from '../core/limits.js';
import type { PermissionVerdict } from '../machines/toolCall.machine.js';
import {
  PermissionNotPendingError,
  replyToPermission,
  type EventData,
  type PermissionReply,
  type PermissionRequestRow,
} from '../store/index.js';
import { permissionRulesFor, toolEnabled, type AgentProfile } from '../services/agents.js';
import { askScope, evaluatePermission, grantCovers, summarizeInput } from '../tools/permission.js';
import type { SessionActor } from './session.js';

/** A question for whoever may answer a permission ask here (a TTY user, a policy). */
export interface PermissionAsk {
  sessionId: string;
  requestId: string;
  callId: string;
  tool: string;
  /** The scope an `always` reply grants; undefined: every call of the tool. */
  pattern?: string;
  /** The call's input, bounded. */
  summary: string;
  /** The parsed input (or its text when it is not JSON). */
  input: unknown;
  /** The ask was recorded by an earlier owner and survived a restart. */
  resumed: boolean;
  /** Aborted when the ask no longer needs an answer (replied from elsewhere, call cancelled, owner stopping). */
  signal: AbortSignal;
}

export interface PermissionAnswer {
  reply: PermissionReply;
  message?: string;
}

/**
 * Answers asks in the owner's process. Its answer is recorded as `permission.replied` like any
 * other reply. Resolving `undefined` leaves the ask pending in the log (durable): a reply from any
 * process (`loom permit`, later HTTP) continues the call. Without an asker every ask is durable.
 */
export type PermissionAsker = (ask: PermissionAsk) => Promise<PermissionAnswer | undefined>;

interface Wait {
  requestId: string;
  callId: string;
  /** No one in this process is answering: only a reply recorded in the log moves the call. */
  durable: boolean;
  /** Aborted when the wait ends, so an asker still asking stops. */
  controller: AbortController;
  resolve(data: EventData<'permission.replied'>): void;
}

/**
 * One session's calls waiting in awaitingPermission, by request id. Fed by the session actor with
 * every committed `permission.replied` it delivers, whoever appended it; so a reply from another
 * process, from an asker here, or the rejections a reject cascades to, all take the same path.
 */
export class PermissionWaits {
  private readonly waits = new Map<string, Wait>();

  /** `onChange` is told when a wait starts, ends or becomes durable (the session may have become quiet). */
  constructor(private readonly onChange: () => void) {}

  add(requestId: string, callId: string, resolve: Wait['resolve']): Wait {
    const wait: Wait = { requestId, callId, durable: false, controller: new AbortController(), resolve };
    this.waits.set(requestId, wait);
    this.onChange();
    return wait;
  }

  /** Marks a wait as left to the log (no asker here, or the asker passed). */
  makeDurable(wait: Wait): void {
    if (this.waits.get(wait.requestId) !== wait || wait.durable) return;
    wait.durable = true;
    this.onChange();
  }

  /** Ends a wait without a reply (the call was cancelled or the owner stops). */
  cancel(wait: Wait): void {
    this.end(wait);
  }

  /** A `permission.replied` was committed: the call waiting for it continues. */
  delivered(data: EventData<'permission.replied'>): void {
    const wait = this.waits.get(data.requestId);
    if (!wait) return;
    this.end(wait);
    wait.resolve(data);
  }

  /** True when the call waits for a reply that only the log can bring (or, `includeAsking`, any reply). */
  isWaiting(callId: string, includeAsking = false): boolean {
    for (const w of this.waits.values()) if (w.callId === callId && (w.durable || includeAsking)) return true;
    return false;
  }

  private end(wait: Wait): void {
    if (this.waits.get(wait.requestId) !== wait) return;
    this.waits.delete(wait.requestId);
    wait.controller.abort();
    this.onChange();
  }
}

/**
 * The tool-call child's permission decision (its awaitingPermission state):
 * 1. a call resumed after a restart whose ask is in the log waits for that same request (a reply
 *    that arrived while no owner ran is honoured at once); no second ask is recorded;
 * 2. a tool the activity's agent profile switches off is denied; otherwise the rules decide
 *    (built-in defaults, then config rules, then the profile's, last match wins);
 * 3. `ask` is allowed at once when one of the session's `always` grants covers the call;
 * 4. plugins' `permission.ask` hooks may decide instead (`allow` runs the call, `deny` refuses it
 *    with their message) or change the ask's pattern and summary;
 * 5. else the owner records `permission.asked` and the call waits for `permission.replied` with its
 *    request id, from the log. An asker here may answer (its answer is recorded the same way).
 * Never rejects: a failure to ask leaves the ask pending.
 */
export async function decidePermission(
  session: SessionActor,
  call: { callId: string; tool: string },
  input: unknown,
  text: string,
  signal: AbortSignal,
): Promise<PermissionVerdict> {
  const { store, config } = session.deps;
  const permissions = store.queries.permissions;
  const earlier = permissions.requestForCall(call.callId);
  if (earlier && earlier.status !== 'closed') return awaitReply(session, earlier, input, signal, true);
  // A tool that does not exist runs nothing: no one is asked, and the call settles with an error naming the tools that exist.
  if (!session.deps.tools.get(call.tool)) return { allow: true };
  // The activity's agent profile: a tool it hides is denied if called anyway, and its rules come last.
  let profile: AgentProfile;
  try {
    profile = session.profileFor(session.context().activity);
  } catch (error) {
    return { allow: false, message: (error as Error).message };
  }
  if (!toolEnabled(profile, call.tool)) return { allow: false, message: `the agent profile "${profile.name}" does not allow the ${call.tool} tool (${profile.description})` };
  const rules = permissionRulesFor(profile, config.permission.rules);
  const action = evaluatePermission(rules, call.tool, input, { action: config.permission.default, location: session.location });
  if (action === 'allow') return { allow: true };
  if (action === 'deny') return { allow: false, message: 'denied by a permission rule' };
  if (permissions.grants(session.sessionId, call.tool).some((g) => grantCovers(g, call.tool, input, session.location))) return { allow: true };
  let pattern = input === undefined ? undefined : askScope(input, session.location);
  let summary = summarizeInput(input ?? text, PERMISSION_SUMMARY_CHARS_MAX);
  const hooks = session.deps.hooks;
  if (hooks?.has('permission.ask')) {
    const ctx = { sessionId: session.sessionId, location: session.location, model: session.model, callId: call.callId, input: structuredClone(input ?? text) };
    const hooked = await hooks.run('permission.ask', { tool: call.tool, ...(pattern === undefined ? {} : { pattern }), summary, decision: 'ask' }, ctx);
    if (signal.aborted) return { allow: false, message: 'cancelled' };
    if (hooked.decision === 'allow') return { allow: true };
    if (hooked.decision === 'deny') return { allow: false, message: hooked.message ?? 'denied by a plugin (permission.ask hook)' };
    pattern = hooked.pattern;
    summary = hooked.summary;
  }
  const requestId = store.ids.next('perm');
  session.observe([
    {
      sessionId: session.sessionId,
      epoch: session.lease.epoch,
      type: 'permission.asked',
      data: { requestId, callId: call.callId, tool: call.tool, ...(pattern === undefined ? {} : { pattern }), summary },
    },
  ]);
  return awaitReply(session, permissions.request(requestId)!, input ?? text, signal, false);
}

function awaitReply(session: SessionActor, request: PermissionRequestRow, input: unknown, signal: AbortSignal, resumed: boolean): Promise<PermissionVerdict> {
  if (request.status !== 'pending') return Promise.resolve(verdictOf(request.status, request.message ?? undefined));
  if (signal.aborted) return Promise.resolve({ allow: false, message: 'cancelled' });
  return new Promise((resolve) => {
    const waits = session.permissionWaits;
    const wait = waits.add(request.requestId, request.callId, (data) => {
      signal.removeEventListener('abort', onAbort);
      resolve(verdictOf(data.reply, data.message));
    });
    const onAbort = () => {
      waits.cancel(wait);
      resolve({ allow: false, message: 'cancelled' });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const asker = session.deps.askPermission;
    if (!asker) return waits.makeDurable(wait);
    const ask: PermissionAsk = {
      sessionId: session.sessionId,
      requestId: request.requestId,
      callId: request.callId,
      tool: request.tool,
      ...(request.pattern === null ? {} : { pattern: request.pattern }),
      summary: request.summary ?? '',
      input,
      resumed,
      signal: wait.controller.signal,
    };
    asker(ask).then(
      (answer) => {
        if (wait.controller.signal.aborted) return;
        if (!answer) return waits.makeDurable(wait);
        recordAnswer(session, request.requestId, answer, () => waits.makeDurable(wait));
      },
      () => waits.makeDurable(wait),
    );
  });
}

/** Records an asker's answer; the committed reply, delivered to the session, resolves the wait. */
function recordAnswer(session: SessionActor, requestId: string, answer: PermissionAnswer, onFailure: () => void): void {
  const message = answer.message === undefined ? undefined : answer.message.slice(0, PERMISSION_MESSAGE_CHARS_MAX);
  try {
    replyToPermission(session.deps.store, { sessionId: session.sessionId, requestId, reply: answer.reply, ...(message === undefined ? {} : { message }) });
    session.catchUp();
  } catch (error) {
    // Someone else answered first: their reply is (or will be) delivered like any other.
    if (error instanceof PermissionNotPendingError) session.catchUp();
    else onFailure();
  }
}

function verdictOf(reply: string, message: string | undefined): PermissionVerdict {
  if (reply === 'once' || reply === 'always') return { allow: true };
  if (reply === 'closed') return { allow: false, message: 'the permission ask was closed' };
  return { allow: false, message: message ?? 'rejected' };
}
