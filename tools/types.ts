import type { z } from 'zod';

/** What a running tool call knows about where it runs. */
export interface ToolContext {
  sessionId: string;
  /** The activity the call belongs to (empty for calls made outside a session, as in unit tests). */
  activityId: string;
  callId: string;
  /** Absolute, real path of the session's directory; file tools are confined to it. */
  location: string;
  /** `$LOOM_HOME`: full outputs of truncated results and job output files are kept under it. */
  home: string;
  /** Aborted on cancel or timeout; a tool must stop promptly when it fires. */
  signal: AbortSignal;
  /** What the session runtime offers tools that start child actors (background jobs, subagents). */
  services: ToolServices;
}

/**
 * Runtime services a tool may use. Each is optional: a tool that needs one and does not get it
 * (a unit test, a process without a session runtime) fails with a clear error.
 */
export interface ToolServices {
  /** Starts background jobs (`bash` / `task` with `background: true`) as children of the session. */
  jobs?: JobStarter;
  /** Runs a subagent: a child session, run as a child actor until it settles. */
  subagents?: SubagentRunner;
}

export type JobSpec =
  | { kind: 'bash'; command: string; description?: string; timeoutMs: number }
  | { kind: 'task'; prompt: string; description?: string; agent?: string; timeoutMs: number };

export interface JobStarter {
  /** Records `job.started` and starts the job; resolves once it is recorded (not when it ends). */
  start(spec: JobSpec, ctx: ToolContext): Promise<{ jobId: string; outputPath?: string }>;
}

export interface SubagentRequest {
  prompt: string;
  description?: string;
  /** Agent profile for the subagent (context management, issue 9); the parent's when absent. */
  agent?: string;
  signal: AbortSignal;
}

export interface SubagentResult {
  /** The child session's id (it stays in the store: `loom session show` works on it). */
  sessionId: string;
  /** How the child's activity settled (`completed`, `failed`, `cancelled`, …). */
  status: string;
  /** The child's final answer: the text of its last assistant message. */
  text: string;
}

export interface SubagentRunner {
  run(request: SubagentRequest, ctx: ToolContext): Promise<SubagentResult>;
}

export interface ToolResult {
  /**
   * Text sent back to the model. From the registry it is within TOOL_OUTPUT_LINES_MAX and
   * TOOL_OUTPUT_BYTES_MAX: a longer output becomes a head-and-tail preview (tools/truncate.ts).
   */
  output: string;
  truncated?: boolean;
  /** Where the registry saved the full output when it cut it (under `$LOOM_HOME/tool-output/`). */
  fullOutputPath?: string;
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
  /**
   * True for a tool that pages its own output and says where to continue (read: a window of lines
   * and a trailer naming the next offset). The registry then skips the line limit and the
   * head-and-tail preview, and only cuts what passes TOOL_OUTPUT_BYTES_MAX (keeping the head).
   */
  pagesOwnOutput?: boolean;
  execute(input: I, ctx: ToolContext): Promise<ToolResult>;
}
