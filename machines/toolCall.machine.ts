import { assign, fromPromise, setup } from 'xstate';

/**
 * One tool call, as a child of the session actor: queued (over the per-session concurrency bound)
 * → awaitingPermission → running → settled. The running time is bounded by `timeoutMs`; time spent
 * waiting for permission does not count, because the delay is armed on entering `running`.
 *
 * Pure: executing the tool, asking for permission and recording the settlement are named here and
 * provided by actors/toolCall.ts. Every path ends in `settled` with exactly one `recordSettled`.
 */
export const TOOL_CALL_MACHINE_VERSION = 'toolCall@1';

export type ToolCallStatus = 'ok' | 'error' | 'denied' | 'interrupted';
export interface PermissionVerdict {
  allow: boolean;
  message?: string;
}

export interface ToolCallInput {
  sessionId: string;
  activityId: string;
  callId: string;
  tool: string;
  /** The model's argument text, validated by the tool layer when it runs (loaded by id when absent). */
  arguments?: string;
  /** Spawned again after a process loss: a started, non-idempotent call is not run twice. */
  resumed?: boolean;
  timeoutMs: number;
  /** False when the session is at its concurrency bound: the call waits for START. */
  startNow: boolean;
}

export interface ToolCallResult {
  status: ToolCallStatus;
  output: string;
  truncated?: boolean;
}

export interface ToolCallContext extends ToolCallInput {
  result: ToolCallResult | null;
}

export type ToolCallEvent =
  | { type: 'START' }
  | { type: 'CANCEL' };

export const toolCallMachine = setup({
  types: {
    input: {} as ToolCallInput,
    context: {} as ToolCallContext,
    events: {} as ToolCallEvent,
  },
  actors: {
    /** Runs the tool (recording `tool.started` first). Resolves with a result; never rejects on tool errors. */
    executeTool: fromPromise<ToolCallResult, ToolCallContext>(async () => {
      throw new Error('executeTool not provided');
    }),
    /**
     * Decides permission by the session's rules; for `ask` it records `permission.asked` and waits
     * for the reply. Aborted (and its wait dropped) when the call is cancelled.
     */
    checkPermission: fromPromise<PermissionVerdict, ToolCallContext>(async () => ({ allow: true })),
  },
  actions: {
    /** Records `tool.settled` with `context.result`. */
    recordSettled: () => {},
  },
  delays: {
    toolTimeout: ({ context }) => context.timeoutMs,
  },
  guards: {
    startNow: ({ context }) => context.startNow,
  },
}).createMachine({
  id: 'toolCall',
  context: ({ input }) => ({ ...input, result: null }),
  initial: 'queued',
  on: {
    CANCEL: {
      target: '.settled',
      actions: assign({ result: { status: 'interrupted', output: 'The tool call was interrupted (cancelled).' } }),
    },
  },
  states: {
    queued: {
      always: { guard: 'startNow', target: 'awaitingPermission' },
      on: { START: 'awaitingPermission' },
    },
    awaitingPermission: {
      invoke: {
        src: 'checkPermission',
        input: ({ context }) => context,
        onDone: [
          { guard: ({ event }) => event.output.allow, target: 'running' },
          {
            target: 'settled',
            actions: assign({
              result: ({ context, event }) => ({
                status: 'denied' as const,
                output: `Permission to run ${context.tool} was denied${event.output.message ? `: ${event.output.message}` : '.'}`,
              }),
            }),
          },
        ],
        onError: {
          target: 'settled',
          actions: assign({ result: ({ event }) => ({ status: 'denied' as const, output: `Permission check failed: ${errorMessage(event.error)}` }) }),
        },
      },
    },
    running: {
      invoke: {
        src: 'executeTool',
        input: ({ context }) => context,
        onDone: { target: 'settled', actions: assign({ result: ({ event }) => event.output }) },
        onError: {
          target: 'settled',
          actions: assign({ result: ({ event }) => ({ status: 'error' as const, output: `Tool failed: ${errorMessage(event.error)}` }) }),
        },
      },
      after: {
        toolTimeout: {
          target: 'settled',
          actions: assign({
            result: ({ context }) => ({ status: 'error' as const, output: `The tool ${context.tool} timed out after ${context.timeoutMs} ms.` }),
          }),
        },
      },
    },
    settled: {
      type: 'final',
      entry: 'recordSettled',
    },
  },
  output: ({ context }) => context.result,
});

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
