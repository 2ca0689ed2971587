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
  /**
   * Starts the job and records `job.started`; resolves once it is recorded (not when it ends) with
   * the job's id and the file its output goes to (under `$LOOM_HOME/jobs/`). The result reaches the
   * session later as an input. Throws JobLimitError when the session runs too many jobs.
   */
  start(spec: JobSpec, ctx: ToolContext): Promise<{ jobId: string; outputPath: string }>;
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
