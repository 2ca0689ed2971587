/**
 * Subagents: the `task` tool runs a prompt in a child session, as a child actor of the parent's
 * tool call, on the same coordinator. The child is an ordinary durable session (its own log, lease
 * and recovery) with `parentId` = the parent session and `parentCallId` = the call, so `loom session
 * show CHILD` works on it and, if the process dies while it runs, it is recovered like any other
 * unsettled session by whoever owns it next.
 */
import { OWNER_LEASE_TTL_MS, SUBAGENT_DEPTH_MAX, SUBAGENT_SETTLE_TIMEOUT_MS } from '../core/limits.js';
import { LimitExceededError, type EventData, type Lease, type Store } from '../store/index.js';
import { SubagentDepthError, SubagentStartError } from '../tools/errors.js';
import { subagentSessionId } from '../tools/subagents.js';
import type { SubagentRequest, SubagentResult, SubagentRunner, ToolContext } from '../tools/types.js';
import { disabledTools, resolveAgent, toolEnabled, type AgentProfile } from '../services/agents.js';
import type { Coordinator } from './coordinator.js';
import type { SessionActor } from './session.js';

export interface SubagentRunnerOptions {
  /** How long a cancelled child is waited for to settle (SUBAGENT_SETTLE_TIMEOUT_MS). */
  settleTimeoutMs?: number;
}

/**
 * Makes the subagent service of one coordinator: children are owned by that coordinator, run until
 * quiet, and released when the call ends.
 *
 * Cancellation: when `request.signal` aborts (the parent was cancelled, or the call timed out), the
 * child's activity gets a `cancel.requested` and is waited for, at most `settleTimeoutMs`; a child
 * that does not settle by then is stopped with its activity unsettled (its next owner recovers it).
 */
export function createSubagentRunner(coordinator: Coordinator, options: SubagentRunnerOptions = {}): SubagentRunner {
  const settleTimeoutMs = options.settleTimeoutMs ?? SUBAGENT_SETTLE_TIMEOUT_MS;
  return {
    async run(request, ctx) {
      const store = coordinator.store;
      const agent = childAgent(coordinator, request, ctx);
      const { childId, inputId, lease } = startChild(store, { ...request, agent }, ctx, coordinator.ownerId);
      const actor = ownChild(coordinator, childId, inputId, lease);
      try {
        const aborted = await quietOrAborted(coordinator.runUntilQuiet(childId), request.signal);
        if (aborted) await cancelChild(store, actor, request.signal, settleTimeoutMs);
        store.flushSession(childId);
        return { ...resultOf(store, actor), ...(agent === undefined ? {} : { agent }) };
      } finally {
        coordinator.release(childId);
      }
    },
  };
}

/**
 * The agent profile of the child: the one the call asked for, else the parent activity's own. A
 * subagent never gets a tool its parent's profile switches off (a `plan` session cannot start a
 * `build` subagent to edit for it): such a call is refused, naming the tools. An unknown name is
 * refused with the defined ones listed. Null when the parent is not live here (nothing to check
 * against; the name is recorded as asked).
 */
function childAgent(coordinator: Coordinator, request: SubagentRequest, ctx: ToolContext): string | undefined {
  const parent = coordinator.get(ctx.sessionId);
  if (!parent) return request.agent;
  const childId = subagentSessionId(ctx.callId);
  let parentProfile: AgentProfile;
  let child: AgentProfile;
  try {
    parentProfile = parent.profileFor(parent.context().activity);
    child = resolveAgent(parent.deps.config, request.agent ?? parentProfile.name);
  } catch (error) {
    throw new SubagentStartError(childId, (error as Error).message);
  }
  const gained = disabledTools(parentProfile).filter((tool) => toolEnabled(child, tool));
  if (gained.length > 0) {
    throw new SubagentStartError(
      childId,
      `agent "${parentProfile.name}" may not start a subagent with agent "${child.name}": it would allow ${gained.join(', ')}, which "${parentProfile.name}" does not`,
    );
  }
  return child.name;
}

/**
 * Records the child session and admits the prompt as its input, in one transaction (a refused
 * admission, e.g. a prompt over INPUT_TEXT_BYTES_MAX, leaves nothing behind). Returns its id.
 */
function startChild(store: Store, request: SubagentRequest, ctx: ToolContext, ownerId: string): { childId: string; inputId: string; lease: Lease | null } {
  const parent = store.queries.session(ctx.sessionId);
  if (!parent) throw new SubagentStartError(ctx.sessionId, 'its parent session does not exist');
  if (ctx.callId === '') throw new SubagentStartError(ctx.sessionId, 'a subagent is started by a tool call, and this context has none');
  const depth = subagentDepth(store, parent.sessionId);
  if (depth >= SUBAGENT_DEPTH_MAX) throw new SubagentDepthError(parent.sessionId, depth, SUBAGENT_DEPTH_MAX);
  const childId = subagentSessionId(ctx.callId);
  if (request.signal.aborted) throw new SubagentStartError(childId, 'the call was cancelled before the subagent started');
  const started = store.transaction(() => {
    if (store.queries.session(childId)) {
      throw new SubagentStartError(childId, `call ${ctx.callId} started it already; a task call is never run twice`);
    }
    store.append({
      sessionId: childId,
      type: 'session.created',
      data: {
        location: parent.location,
        model: request.model ?? parent.model,
        title: request.description ? `task: ${request.description}` : 'task',
        parentId: parent.sessionId,
        parentCallId: ctx.callId,
        agent: request.agent,
        doubleTexting: parent.doubleTexting,
      },
    });
    let inputId: string;
    try {
      inputId = store.admitInput(childId, { mode: 'steer', text: request.prompt, source: 'task' }).input.inputId;
    } catch (error) {
      if (error instanceof LimitExceededError) throw new SubagentStartError(childId, `its prompt was refused: ${error.message}`);
      throw error;
    }
    // The lease is taken in the same commit: a `loom worker` polling for sessions with pending
    // input must not take the child between its creation and this coordinator owning it.
    return { inputId, lease: store.owners.acquire(childId, ownerId, OWNER_LEASE_TTL_MS, store.clock.now()) };
  });
  return { childId, ...started };
}

/**
 * Owns the new child on this coordinator. When that fails (too many live sessions, a broken
 * store) the prompt is withdrawn (`input.cancelled`), so no input waits in a session nobody runs.
 */
function ownChild(coordinator: Coordinator, childId: string, inputId: string, lease: Lease | null): SessionActor {
  let actor: SessionActor | null;
  let failure: unknown;
  try {
    actor = coordinator.own(childId);
  } catch (error) {
    actor = null;
    failure = error;
  }
  if (actor) return actor;
  if (lease) coordinator.store.owners.release(lease);
  const why = failure === undefined ? 'another process owns it' : errorText(failure);
  try {
    coordinator.store.append({ sessionId: childId, type: 'input.cancelled', data: { inputId, reason: `the subagent could not start: ${why}` } });
  } catch {
    // The input already moved on (the child's first step ran before failing); its next owner settles it.
  }
  throw new SubagentStartError(childId, why);
}

/**
 * How many subagent levels lie above a session: 0 for a session nobody started with `task`. Only
 * links recorded by `task` (a `parentCallId`) count, so forks do not. Walks at most one step past
 * SUBAGENT_DEPTH_MAX.
 */
export function subagentDepth(store: Store, sessionId: string): number {
  let depth = 0;
  let id = sessionId;
  while (depth <= SUBAGENT_DEPTH_MAX) {
    const created = createdData(store, id);
    if (created?.parentCallId === undefined || created.parentId === undefined) return depth;
    depth++;
    id = created.parentId;
  }
  return depth;
}

function createdData(store: Store, sessionId: string): EventData<'session.created'> | undefined {
  const first = store.read(sessionId, { after: 0, limit: 1 })[0];
  return first?.type === 'session.created' ? first.data : undefined;
}

/** Resolves false once `quiet` resolves, true as soon as `signal` aborts (in a later microtask, outside any step). */
function quietOrAborted(quiet: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(true);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(true);
    signal.addEventListener('abort', onAbort, { once: true });
    quiet.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve(false);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Records a cancel of the child's open activity and waits for it to settle, at most `timeoutMs`.
 * A child already stopped (its process shuts down, or its parent's owner stopped everything) gets
 * no cancel: stopping records nothing, and the child's next owner recovers it.
 */
async function cancelChild(store: Store, actor: SessionActor, signal: AbortSignal, timeoutMs: number): Promise<void> {
  if (actor.isQuiet()) return;
  const activityId = actor.context().activity?.id;
  if (activityId === undefined) return;
  store.append({ sessionId: actor.sessionId, type: 'cancel.requested', data: { activityId, reason: cancelReason(signal) } });
  actor.catchUp();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  try {
    await Promise.race([actor.whenQuiet(), late]);
  } finally {
    clearTimeout(timer);
  }
}

function cancelReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return `parent task call stopped: ${reason.message}`;
  return 'parent task call cancelled';
}

/** The child's outcome: how its last activity settled (or that it did not) and its last text. */
function resultOf(store: Store, actor: SessionActor): SubagentResult {
  const sessionId = actor.sessionId;
  const text = lastAssistantText(store, sessionId);
  if (actor.failure !== undefined) {
    return { sessionId, status: 'unsettled', reason: `its actor stopped: ${errorText(actor.failure)}`, text };
  }
  if (actor.context().activity !== null) {
    const recovering = actor.snapshot().value === 'recovering';
    return {
      sessionId,
      status: recovering ? 'recovering' : 'unsettled',
      reason: recovering ? `it waits for a recovery decision (loom recover ${sessionId})` : 'it did not settle in time',
      text,
    };
  }
  const last = store.queries.activities(sessionId).at(-1);
  if (!last) return { sessionId, status: 'unsettled', reason: 'no activity ran', text };
  return { sessionId, status: last.status, reason: last.reason ?? undefined, text };
}

/** The text of the child's last assistant message that has any ('' when none does). */
function lastAssistantText(store: Store, sessionId: string): string {
  const messages = store.queries.conversation(sessionId);
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== 'assistant') continue;
    const text = m.parts.filter((p) => p.kind === 'text').map((p) => p.text).join('');
    if (text.trim() !== '') return text;
  }
  return '';
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
