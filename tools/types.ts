import type { z } from 'zod';

/** What a running tool call knows about where it runs. */
export interface ToolContext {
  sessionId: string;
  callId: string;
  /** Absolute, real path of the session's directory; file tools are confined to it. */
  location: string;
  /** Aborted on cancel or timeout; a tool must stop promptly when it fires. */
  signal: AbortSignal;
}

export interface ToolResult {
  /** Text sent back to the model (already truncated to TOOL_OUTPUT_BYTES_MAX by the registry). */
  output: string;
  truncated?: boolean;
  metadata?: Record<string, unknown>;
}

export interface Tool<I = any> {
  name: string;
  description: string;
  input: z.ZodType<I>;
  /** Safe to run again after a crash (read, list, glob, grep). Recovery relies on it. */
  idempotent: boolean;
  /** Running-time bound; required (a tool without one is refused at registration). */
  timeoutMs: number;
  execute(input: I, ctx: ToolContext): Promise<ToolResult>;
}
