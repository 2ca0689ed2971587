import { fromPromise } from 'xstate';
import { TOOL_OUTPUT_BYTES_MAX } from '../core/limits.js';
import type { PermissionVerdict, ToolCallContext, ToolCallResult } from '../machines/toolCall.machine.js';
import type { HookContext } from '../services/hooks.js';
import { evaluatePermission } from '../tools/permission.js';
import { truncateOutput } from '../tools/registry.js';
import { decidePermission } from './permission.js';
import { validateForWrite } from '../store/schemas.js';
import type { CallCheckpoint, CheckpointRecord } from '../tools/types.js';
import type { SessionActor } from './session.js';

export type { PermissionAnswer, PermissionAsk, PermissionAsker } from './permission.js';

/**
 * The tool-call child's implementations: permission (rules, grants, and durable asks: see
 * actors/permission.ts), execution through the registry with `tool.started` recorded first (a
 * barrier for tools that are not idempotent), and the settlement record. Plugins' `tool.before`
 * hooks may change the input after the permission decision (a changed input is checked against the
 * deny rules again) and `tool.after` hooks the result, which stays within TOOL_OUTPUT_BYTES_MAX.
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
    const text = argumentsOf(session, input);
    const args = parseArguments(text);
    return decidePermission(session, { callId: input.callId, tool: input.tool }, args.ok ? args.value : undefined, text, signal);
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
    const hooks = session.deps.hooks;
    const ctx: HookContext = { sessionId: session.sessionId, location: session.location, model: session.model, activityId: input.activityId, callId: input.callId };
    let value = args.value;
    if (hooks?.has('tool.before')) {
      value = (await hooks.run('tool.before', { tool: input.tool, input: value }, ctx)).input;
      if (signal.aborted) return { status: 'interrupted', output: 'The tool call was cancelled before it started.' };
      const { config } = session.deps;
      if (value !== args.value && evaluatePermission(config.permission.rules, input.tool, value, { action: config.permission.default, location: session.location }) === 'deny') {
        return { status: 'denied', output: `A plugin's tool.before hook changed the ${input.tool} input to one the permission rules deny; it was not run.` };
      }
    }
    session.observe([owner(session, { type: 'tool.started', data: { callId: input.callId } })], { barrier: !tool.idempotent });
    const result = await runTool(session, input, value, signal);
    if (!hooks?.has('tool.after')) return result;
    const after = await hooks.run('tool.after', { tool: input.tool, output: result.output, isError: result.status === 'error' }, { ...ctx, input: structuredClone(value) });
    if (after.output === result.output && after.isError === (result.status === 'error')) return result;
    const cut = truncateOutput(after.output, TOOL_OUTPUT_BYTES_MAX);
    return { status: after.isError ? 'error' : 'ok', output: cut.text, truncated: result.truncated === true || cut.truncated };
  });

  /** Runs the call through the registry (validation, timeout, output bounds); a failure is an `error` result. */
  const runTool = async (session: SessionActor, input: ToolCallContext, value: unknown, signal: AbortSignal): Promise<ToolCallResult> => {
    const { tools } = session.deps;
    const services = session.deps.toolServices ?? {};
    const checkpoint = beginCheckpoint(session, input, signal);
    let result: ToolCallResult;
    try {
      const r = await tools.execute(input.tool, value, {
        sessionId: session.sessionId,
        activityId: input.activityId,
        callId: input.callId,
        location: session.location,
        home: session.deps.home,
        signal,
        services,
        ...(checkpoint ? { checkpoint } : {}),
      });
      result = { status: 'ok', output: r.output, truncated: r.truncated };
    } catch (error) {
      result = { status: 'error', output: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
    if (checkpoint) await finishCheckpoint(session, input.callId, checkpoint, signal);
    return result;
  };

  /** The call's file checkpoint (tools/checkpoints), unless the session's config turns them off. */
  const beginCheckpoint = (session: SessionActor, input: ToolCallContext, signal: AbortSignal): CallCheckpoint | undefined => {
    const service = session.deps.toolServices?.checkpoints;
    const config = session.deps.config.checkpoints;
    if (!service || config?.enabled === false) return undefined;
    return service.begin({
      sessionId: session.sessionId,
      activityId: input.activityId,
      callId: input.callId,
      tool: input.tool,
      location: session.location,
      signal,
      bash: config?.bash !== false,
    });
  };

  /**
   * Makes the call's checkpoint ready for its settlement (`recordSettled` takes it and appends it
   * in the same transaction as `tool.settled`). A call already settled meanwhile (cancelled or
   * timed out while its tool ran: this child's signal is aborted) gets it appended now, on its own;
   * if the session is no longer owned here, it is lost (its blobs expire with retention).
   */
  const finishCheckpoint = async (session: SessionActor, callId: string, checkpoint: CallCheckpoint, signal: AbortSignal): Promise<void> => {
    const service = session.deps.toolServices!.checkpoints!;
    try {
      await service.finish(checkpoint);
    } catch {
      return; // reading after-states failed (the location vanished): nothing reliable to record
    }
    if (!signal.aborted) return;
    const record = validRecord(service.take(callId));
    if (!record) return;
    try {
      session.observe([owner(session, { type: 'checkpoint.recorded', data: record })]);
    } catch {
      // The session stopped or lost its lease since the call settled.
    }
  };

  return {
    actors: { checkPermission, executeTool },
    actions: {
      recordSettled: ({ context }: { context: ToolCallContext }) => {
        const session = lookup(context.sessionId);
        const r = context.result!;
        const checkpoint = validRecord(session.deps.toolServices?.checkpoints?.take(context.callId));
        session.observe([
          ...(checkpoint ? [owner(session, { type: 'checkpoint.recorded', data: checkpoint })] : []),
          owner(session, { type: 'tool.settled', data: { callId: context.callId, status: r.status, output: r.output, truncated: r.truncated } }),
        ]);
      },
    },
  };
}

/**
 * The record if it is a valid `checkpoint.recorded` event, else undefined: a record that cannot be
 * stored must never keep the call's settlement from being stored with it.
 */
function validRecord(record: CheckpointRecord | undefined): CheckpointRecord | undefined {
  if (!record) return undefined;
  try {
    validateForWrite('checkpoint.recorded', record);
    return record;
  } catch (error) {
    if (process.env.LOOM_DEBUG) process.stderr.write(`loom: checkpoint of ${record.callId} not recorded: ${(error as Error).message}\n`);
    return undefined;
  }
}

function parseArguments(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: text.trim() === '' ? {} : JSON.parse(text) };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}
