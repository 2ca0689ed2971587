import { assign, fromCallback, fromPromise, setup } from 'xstate';

/**
 * One MCP server connection, a supervised actor of the MCP supervisor (actors/mcp.ts):
 *
 *   connecting ──connected──▶ ready ──LOST──▶ backoff ──(delay)──▶ connecting
 *       │                       │ TOOLS_CHANGED: publish the new list
 *       └──failed──▶ backoff    └─────────────── too many failures ──▶ stopped
 *   STOP from any state ──▶ stopped;  RESTART in stopped ──▶ connecting
 *
 * Its tools are in the registry exactly while it is `ready`: entering `ready` publishes them, a
 * changed list re-publishes them, leaving `ready` (lost, stopped) withdraws them, so sessions see
 * the change at their next turn without a restart.
 *
 * Failures count consecutively: an attempt that fails, or a connection lost before it had been up
 * `stableUptimeMs`, adds one; a connection lost after that counts as the first failure of a new
 * run. The delay before the next attempt doubles from `backoffMinMs` up to `backoffMaxMs`; after
 * `connectAttemptsMax` failures the server is given up (`stopped`, with the last error).
 *
 * Pure: connecting (spawning a process, reaching a URL), watching the connection, publishing and
 * withdrawing tools are named here and provided by actors/mcp.ts. The uptime of a lost connection
 * is measured there (monotonic clock) and carried in the LOST event.
 */
export const MCP_CONNECTION_MACHINE_VERSION = 'mcpConnection@1';

/** A tool as the server lists it (its own name, not yet the Loom name). */
export interface McpToolDescriptor {
  name: string;
  description?: string;
  /** The server's JSON Schema of the arguments. */
  inputSchema: Record<string, unknown>;
}

/** What a successful attempt found. */
export interface McpConnected {
  tools: McpToolDescriptor[];
  /** The server's `name` and `version` from `initialize`. */
  serverInfo: { name: string; version: string } | null;
}

export interface McpConnectionInput {
  server: string;
  connectAttemptsMax: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  stableUptimeMs: number;
}

export interface McpConnectionContext extends McpConnectionInput {
  /** Consecutive failures (see the machine's comment). */
  failures: number;
  /** Connections made and later lost (the supervisor's restarts). */
  restarts: number;
  /** The last failure, as a sentence (never a secret: actors/mcp.ts redacts env and header values). */
  lastError: string | null;
  tools: McpToolDescriptor[];
  serverInfo: McpConnected['serverInfo'];
  /** True once `stopped` was reached by giving up (not by STOP). */
  gaveUp: boolean;
}

export type McpConnectionEvent =
  | { type: 'TOOLS_CHANGED'; tools: McpToolDescriptor[] }
  | { type: 'LOST'; reason: string; uptimeMs: number }
  | { type: 'STOP' }
  | { type: 'RESTART' };

/** The delay before the attempt that follows `failures` consecutive failures. */
export function reconnectDelayMs(context: Pick<McpConnectionContext, 'failures' | 'backoffMinMs' | 'backoffMaxMs'>): number {
  const exponent = Math.max(0, context.failures - 1);
  return Math.min(context.backoffMaxMs, context.backoffMinMs * 2 ** Math.min(exponent, 30));
}

export const mcpConnectionMachine = setup({
  types: {
    input: {} as McpConnectionInput,
    context: {} as McpConnectionContext,
    events: {} as McpConnectionEvent,
  },
  actors: {
    /** One attempt: open the transport, initialize, list the tools. Rejects with a clear message. */
    connect: fromPromise<McpConnected, { server: string }>(async () => {
      throw new Error('connect not provided');
    }),
    /**
     * Watches a ready connection: sends TOOLS_CHANGED when the server's list changes and LOST when
     * the connection goes (with its uptime). Its cleanup closes the connection.
     */
    watch: fromCallback<McpConnectionEvent, { server: string }>(() => () => {}),
  },
  actions: {
    /** Registers the server's tools (replacing those it had): params are the new list. */
    publishTools: (_, _params: { tools: McpToolDescriptor[] }) => {},
    /** Removes every tool of the server from the registry, saying why. */
    withdrawTools: (_, _params: { reason: string }) => {},
  },
  guards: {
    /** The failure just counted is the last one allowed. */
    givingUp: ({ context }) => context.failures + 1 >= context.connectAttemptsMax,
    /** A lost connection had been up long enough to count as healthy. */
    wasStable: ({ context, event }) => event.type === 'LOST' && event.uptimeMs >= context.stableUptimeMs,
  },
  delays: {
    reconnect: ({ context }) => reconnectDelayMs(context),
  },
}).createMachine({
  id: 'mcpConnection',
  context: ({ input }) => ({ ...input, failures: 0, restarts: 0, lastError: null, tools: [], serverInfo: null, gaveUp: false }),
  initial: 'connecting',
  on: {
    STOP: { target: '.stopped', actions: [assign({ gaveUp: false, tools: [] }), { type: 'withdrawTools', params: { reason: 'the server was stopped' } }] },
  },
  states: {
    connecting: {
      invoke: {
        src: 'connect',
        input: ({ context }) => ({ server: context.server }),
        onDone: {
          target: 'ready',
          actions: assign({ tools: ({ event }) => event.output.tools, serverInfo: ({ event }) => event.output.serverInfo, lastError: null }),
        },
        onError: [
          {
            guard: 'givingUp',
            target: 'stopped',
            actions: assign({ failures: ({ context }) => context.failures + 1, lastError: ({ event }) => errorMessage(event.error), gaveUp: true }),
          },
          {
            target: 'backoff',
            actions: assign({ failures: ({ context }) => context.failures + 1, lastError: ({ event }) => errorMessage(event.error) }),
          },
        ],
      },
    },
    ready: {
      entry: { type: 'publishTools', params: ({ context }) => ({ tools: context.tools }) },
      invoke: { src: 'watch', input: ({ context }) => ({ server: context.server }) },
      on: {
        TOOLS_CHANGED: {
          actions: [assign({ tools: ({ event }) => event.tools }), { type: 'publishTools', params: ({ event }) => ({ tools: event.tools }) }],
        },
        LOST: [
          {
            guard: 'wasStable',
            target: 'backoff',
            actions: [assign({ failures: 1, restarts: ({ context }) => context.restarts + 1, lastError: ({ event }) => event.reason, tools: [] }), { type: 'withdrawTools', params: ({ event }) => ({ reason: event.reason }) }],
          },
          {
            guard: 'givingUp',
            target: 'stopped',
            actions: [assign({ failures: ({ context }) => context.failures + 1, lastError: ({ event }) => event.reason, gaveUp: true, tools: [] }), { type: 'withdrawTools', params: ({ event }) => ({ reason: event.reason }) }],
          },
          {
            target: 'backoff',
            actions: [
              assign({ failures: ({ context }) => context.failures + 1, restarts: ({ context }) => context.restarts + 1, lastError: ({ event }) => event.reason, tools: [] }),
              { type: 'withdrawTools', params: ({ event }) => ({ reason: event.reason }) },
            ],
          },
        ],
      },
    },
    backoff: {
      after: { reconnect: 'connecting' },
    },
    stopped: {
      on: {
        RESTART: { target: 'connecting', actions: assign({ failures: 0, gaveUp: false, lastError: null }) },
      },
    },
  },
});

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
