import { fromPromise } from 'xstate';
import type { PermissionVerdict, ToolCallContext, ToolCallResult } from '../machines/toolCall.machine.js';
import { evaluatePermission } from '../tools/permission.js';
import type { SessionActor } from './session.js';

/** A question for whoever may answer a permission ask (a TTY user, a policy). */
export interface PermissionAsk {
  sessionId: string;
  requestId: string;
  callId: string;
  tool: string;
  input: unknown;
  signal: AbortSignal;
}

export type PermissionAsker = (ask: PermissionAsk) => Promise<{ reply: 'once' | 'always' | 'reject'; message?: string }>;

/**
 * The tool-call child's implementations: permission by the session's rules (recording asks and
 * replies), execution through the registry with `tool.started` recorded first (a barrier for
 * tools that are not idempotent), and the settlement record.
 */
export function createToolCallImplementations(lookup: (sessionId: string) => SessionActor) {
  const owner = (session: SessionActor, r: any) => ({ ...r, sessionId: session.sessionId, epoch: session.lease.epoch });
  const callRow = (session: SessionActor, input: ToolCallContext) =>
    session.deps.store.queries.toolCalls(session.sessionId, { activityId: input.activityId }).find((c) => c.callId === input.callId);
  /** The call's argument text: from the spawn input, or (a resumed call) from the projection. */
  const argumentsOf = (session: SessionActor, input: ToolCallContext) => input.arguments ?? callRow(session, input)?.input ?? '';

  const checkPermission = fromPromise<PermissionVerdict, ToolCallContext>(async ({ input, signal }) => {
    await Promise.resolve();
    const session = lookup(input.sessionId);
    const { store, tools, config } = session.deps;
    const tool = tools.get(input.tool);
    const text = argumentsOf(session, input);
    const args = parseArguments(text);
    const action = session.alwaysAllowedTools.has(input.tool)
      ? 'allow'
      : evaluatePermission(config.permission.rules, input.tool, args.ok ? args.value : undefined, {
          idempotent: tool?.idempotent ?? false,
          action: config.permission.default,
          location: session.location,
        });
    if (action === 'allow') return { allow: true };
    if (action === 'deny') return { allow: false, message: 'denied by a permission rule' };
    const requestId = store.ids.next('perm');
    session.observe([owner(session, { type: 'permission.asked', data: { requestId, callId: input.callId, tool: input.tool } })]);
    const asker = session.deps.askPermission;
    const answer = asker
      ? await asker({ sessionId: session.sessionId, requestId, callId: input.callId, tool: input.tool, input: args.ok ? args.value : text, signal })
      : { reply: 'reject' as const, message: 'no one is there to answer the permission ask' };
    if (signal.aborted) return { allow: false, message: 'cancelled' };
    session.observe([{ sessionId: session.sessionId, type: 'permission.replied', data: { requestId, reply: answer.reply, message: answer.message } }]);
    if (answer.reply === 'always') session.alwaysAllowedTools.add(input.tool);
    return answer.reply === 'reject' ? { allow: false, message: answer.message } : { allow: true };
  });

  const executeTool = fromPromise<ToolCallResult, ToolCallContext>(async ({ input, signal }) => {
    await Promise.resolve();
    const session = lookup(input.sessionId);
    const { tools } = session.deps;
    const tool = tools.get(input.tool);
    if (!tool) return { status: 'error', output: `Unknown tool "${input.tool}". Available tools: ${tools.list().map((t) => t.name).join(', ')}.` };
    if (input.resumed && !tool.idempotent && callRow(session, input)?.state !== 'called') {
      const note = tool.interruptedNote ? ` ${tool.interruptedNote(input.callId)}` : '';
      return { status: 'interrupted', output: `The ${input.tool} call was interrupted by a process loss while it ran; it was not run again because it is not idempotent. Check its effects before repeating it.${note}` };
    }
    const args = parseArguments(argumentsOf(session, input));
    if (!args.ok) return { status: 'error', output: `The arguments of ${input.tool} are not valid JSON: ${args.error}` };
    session.observe([owner(session, { type: 'tool.started', data: { callId: input.callId } })], { barrier: !tool.idempotent });
    try {
      const result = await tools.execute(input.tool, args.value, {
        sessionId: session.sessionId,
        activityId: input.activityId,
        callId: input.callId,
        location: session.location,
        home: session.deps.home,
        signal,
        services: session.deps.toolServices ?? {},
      });
      return { status: 'ok', output: result.output, truncated: result.truncated };
    } catch (error) {
      return { status: 'error', output: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
  });

  return {
    actors: { checkPermission, executeTool },
    actions: {
      recordSettled: ({ context }: { context: ToolCallContext }) => {
        const session = lookup(context.sessionId);
        const r = context.result!;
        session.observe([owner(session, { type: 'tool.settled', data: { callId: context.callId, status: r.status, output: r.output, truncated: r.truncated } })]);
      },
    },
  };
}

function parseArguments(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: text.trim() === '' ? {} : JSON.parse(text) };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}
