import { turnCostUsd } from '../llm/cost.js';
import { ProviderError } from '../llm/errors.js';
import type { ProviderRequest, Usage } from '../llm/types.js';
import { visibleTools } from '../services/agents.js';
import type { AppendRequest } from '../store/index.js';
import { buildMessages } from './history.js';
import type { SessionActor } from './session.js';

/**
 * One provider attempt of the current turn. Order (DESIGN §3, §5):
 * 1. build the request from the projected history (reloaded once per turn; after a compaction, its
 *    summary and the messages after its boundary), with the activity's agent profile: its model,
 *    its system prompt, the tools it lets the model see;
 *    plugins' `chat.params` and `chat.headers` hooks may change it (services/hooks.ts), before
 *    anything is recorded;
 * 2. commit `attempt.dispatched` (+ `input.consumed`) as a barrier, before the request leaves;
 * 3. stream: deltas are buffered into the log; each completed tool call is recorded at once
 *    (its child starts eagerly); the end of the stream records the parts and `turn.finished`;
 * 4. a failure records `attempt.failed` (retryable or not, whether chunks arrived, the parts it
 *    discards); the machine decides whether to retry.
 * Cancellation aborts `signal`: the request is cut and nothing more is recorded here.
 */
export async function runProviderTurn(session: SessionActor, signal: AbortSignal): Promise<void> {
  const { store } = session.deps;
  const sid = session.sessionId;
  const epoch = session.lease.epoch;
  const owner = (r: Omit<AppendRequest, 'sessionId' | 'epoch'>) => ({ ...r, sessionId: sid, epoch }) as AppendRequest;
  const activity = session.context().activity;
  if (!activity || signal.aborted) return;
  if (session.draining) {
    session.drained(); // a safe point: nothing of this attempt has left the process
    return;
  }
  const attemptId = store.ids.next('att');
  const attempt = activity.attempt + 1;
  const parts: string[] = [];
  const open = { activityId: activity.id, attemptId, parts, received: false };
  let dispatched = false;
  try {
    const profile = session.profileFor(activity);
    const modelRef = session.modelFor(activity);
    const { provider, model } = session.deps.resolveProvider(modelRef);
    const systemPrompt = await session.systemPromptFor(activity.id, profile, modelRef);
    if (signal.aborted) return;
    if (session.draining) {
      session.drained();
      return;
    }
    const compaction = session.latestCompaction();
    const messages = buildMessages(store.queries.conversation(sid, { afterSeq: compaction?.throughSeq ?? 0 }), systemPrompt, compaction?.summary);
    const tools = () => visibleTools(profile, session.deps.tools.specs());
    let request: ProviderRequest = { model, messages, tools: tools(), signal };
    if (session.deps.hooks?.has('chat.params') || session.deps.hooks?.has('chat.headers')) {
      request = await applyChatHooks(session, request, activity.id, tools);
      if (signal.aborted) return;
      if (session.draining) {
        session.drained(); // the hooks ran while a drain began: still nothing has left the process
        return;
      }
    }
    // A hook may pick another model of the same provider: the log says which one was asked.
    const asked = request.model === model ? modelRef : `${modelRef.slice(0, modelRef.indexOf('/'))}/${request.model}`;
    session.openAttempt = open;
    session.observe(
      [
        owner({ type: 'attempt.dispatched', data: { activityId: activity.id, turnId: activity.turnId!, attemptId, attempt, model: asked, inputIds: activity.unconsumed } }),
        ...activity.unconsumed.map((inputId) => owner({ type: 'input.consumed', data: { inputId, activityId: activity.id, attemptId } })),
      ],
      { barrier: true },
    );
    dispatched = true;
    let textPart: string | null = null;
    let reasoningPart: string | null = null;
    let text = '';
    let reasoning = '';
    let toolCalls = 0;
    for await (const ev of provider.stream(request)) {
      if (signal.aborted) return;
      open.received = true;
      if (ev.type === 'text.delta' || ev.type === 'reasoning.delta') {
        const isText = ev.type === 'text.delta';
        if (isText && !textPart) parts.push((textPart = store.ids.next('prt')));
        if (!isText && !reasoningPart) parts.push((reasoningPart = store.ids.next('prt')));
        if (isText) text += ev.delta;
        else reasoning += ev.delta;
        store.bufferDelta({ sessionId: sid, epoch, type: ev.type, activityId: activity.id, attemptId, partId: (isText ? textPart : reasoningPart)!, delta: ev.delta });
      } else if (ev.type === 'tool.call') {
        toolCalls++;
        const c = ev.call;
        session.observe([
          owner({ type: 'tool.called', data: { activityId: activity.id, attemptId, callId: store.ids.next('call'), providerCallId: c.id, tool: c.name, input: c.arguments, providerMetadata: c.providerMetadata } }),
        ]);
      } else if (ev.type === 'finish') {
        session.openAttempt = null;
        session.observe([
          ...(reasoningPart ? [owner({ type: 'reasoning.done', data: { activityId: activity.id, attemptId, partId: reasoningPart, text: reasoning, providerMetadata: ev.providerMetadata } })] : []),
          // Opaque provider data (thinking signatures, encrypted reasoning) rides on the reasoning part,
          // or on the text part when the turn streamed no reasoning text, so it is sent back either way.
          ...(textPart ? [owner({ type: 'text.done', data: { activityId: activity.id, attemptId, partId: textPart, text, ...(reasoningPart ? {} : { providerMetadata: ev.providerMetadata }) } })] : []),
          owner({ type: 'turn.finished', data: { activityId: activity.id, turnId: activity.turnId!, attemptId, finishReason: ev.finishReason, usage: ev.usage, toolCalls, costUsd: turnCost(session, modelRef, ev.usage), providerMetadata: ev.providerMetadata } }),
        ]);
        return;
      }
    }
    if (!signal.aborted) throw new Error('the provider stream ended without a finish event');
  } catch (error) {
    if (signal.aborted || session.failure !== undefined) return;
    session.openAttempt = null;
    const e = error instanceof ProviderError ? error : undefined;
    session.observe([
      owner({
        type: 'attempt.failed',
        data: {
          activityId: activity.id,
          attemptId,
          error: { kind: e?.kind ?? (error as Error)?.name ?? 'internal', message: (error as Error)?.message ?? String(error), status: e?.status, retryAfterMs: e?.retryAfterMs },
          retryable: e?.retryable ?? false,
          receivedChunks: open.received,
          discardedParts: parts,
          dispatched,
        },
      }),
    ]);
  }
}

/**
 * Runs the plugins' `chat.params` then `chat.headers` hooks over a request. The drafts hold no
 * signal, tools or credentials; extra headers go under the adapter's own (llm/headers.ts).
 */
async function applyChatHooks(session: SessionActor, request: ProviderRequest, activityId: string, tools: () => ProviderRequest['tools']): Promise<ProviderRequest> {
  const hooks = session.deps.hooks!;
  const ctx = { sessionId: session.sessionId, location: session.location, model: session.model, activityId };
  const { signal, tools: _before, headers: _none, ...base } = request;
  const params = await hooks.run('chat.params', base, ctx);
  const headers = await hooks.run('chat.headers', {}, ctx);
  // Read the tools again: a `required` plugin the hooks waited for may have registered some.
  return { ...params, tools: tools(), signal, ...(Object.keys(headers).length === 0 ? {} : { headers }) };
}

/** The turn's cost from the catalog's price of the model the activity asked (its profile's, else the session's); undefined when none is known (or the lookup fails). */
function turnCost(session: SessionActor, modelRef: string, usage: Usage): number | undefined {
  try {
    return turnCostUsd(session.deps.modelInfo?.(modelRef), usage);
  } catch {
    return undefined; // a broken catalog must not lose the turn; a cost budget then reports it cannot be checked
  }
}
