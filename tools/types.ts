import type { z } from 'zod';
import type { CheckpointFile } from '../store/schemas.js';

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
  /**
   * Keeps what this call changes in files (tools/checkpoints): tools that change files tell it
   * before they do. Absent when checkpoints are off or the call runs outside a session.
   */
  checkpoint?: CallCheckpoint;
}

/**
 * The prior state of a file a tool is about to change, read through the tool's own confined
 * handle: its bytes, or why they were not read (too large, unreadable); `null` when the file did
 * not exist (the tool is creating it, so undo deletes it).
 */
export type PriorFile = { bytes: Buffer; mode: number } | { uncaptured: string; mode?: number } | null;

/**
 * One tool call's file checkpoint (tools/checkpoints/recorder.ts). The tool reports each file
 * before it first changes it (write, edit), or runs its command inside `aroundCommand` (bash:
 * a bounded scan of the directory before and after). What the files hold afterwards is read when
 * the call ends, and the record is written with the call's settlement.
 */
export interface CallCheckpoint {
  /**
   * Before the first change of the file at `realPath` (the real path the confined open returned):
   * keeps `prior`, content-addressed. Later reports of the same file in this call are ignored.
   */
  keepBefore(realPath: string, prior: PriorFile): Promise<void>;
  /** Runs `run` (a shell command) between a scan of the session directory before it and one after it. */
  aroundCommand<T>(run: () => Promise<T>): Promise<T>;
  /** Says that the call's changes are not (fully) captured, and why; the diff shows it. */
  incomplete(reason: string): void;
  /** Given by the registry: the tool's own running promise, awaited before the after-states are read. */
  track(running: Promise<unknown>): void;
}

/** The session runtime's checkpoint service (tools/checkpoints/service.ts), one per process. */
export interface CheckpointService {
  /** A recorder for one call, or undefined when checkpoints are off for the session (config). */
  begin(call: CheckpointCall): CallCheckpoint | undefined;
  /**
   * Reads the after-states and makes the call's record ready for its settlement; resolves once it
   * is ready (after the tool itself has finished, bounded by CHECKPOINT_LATE_WAIT_MS).
   */
  finish(recorder: CallCheckpoint): Promise<void>;
  /** The finished record of a call, handed over once (the settlement writes it). */
  take(callId: string): CheckpointRecord | undefined;
}

export interface CheckpointCall {
  sessionId: string;
  activityId: string;
  callId: string;
  tool: string;
  /** Real path of the session directory. */
  location: string;
  /** Aborted when the call is cancelled: only the scan before a command stops for it. */
  signal: AbortSignal;
  /** The session's `checkpoints` config: `bash: false` skips the scans around commands. */
  bash: boolean;
}

/** What one call changed, as `checkpoint.recorded` carries it. */
export interface CheckpointRecord {
  activityId: string;
  callId: string;
  tool: string;
  files: CheckpointFile[];
  incomplete?: string;
  omittedFiles?: number;
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
  /** File checkpoints: keeps prior content of files calls change, for `loom diff` and `loom undo`. */
  checkpoints?: CheckpointService;
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
  /** A short title: it becomes the child session's title. */
  description?: string;
  /**
   * Agent profile for the subagent (services/agents.ts): recorded on the child's `session.created`,
   * so its activities run with it. Default: the parent activity's profile. Refused when unknown, or
   * when it would allow a tool the parent's profile switches off.
   */
  agent?: string;
  /** The child's model (`provider/model`); the parent session's model when absent. */
  model?: string;
  /** Aborting it cancels the child's activity (recorded as `cancel.requested`) and waits for it to settle, bounded. */
  signal: AbortSignal;
}

export interface SubagentResult {
  /** The child session's id (it stays in the store: `loom session show` works on it). */
  sessionId: string;
  /**
   * How the child's activity settled (`completed`, `failed`, `cancelled`, `turn_limit`, …), or
   * `recovering` (it waits for a recovery decision) or `unsettled` (it did not settle in time, or
   * its actor stopped on an operating failure).
   */
  status: string;
  /** Why it settled so, when the settlement says (`cancel requested`, a provider error…). */
  reason?: string;
  /** The child's final answer: the text of its last assistant message with text ('' when none). */
  text: string;
  /** The agent profile the child ran with. */
  agent?: string;
}

export interface SubagentRunner {
  /**
   * Runs `request.prompt` in a new child session of `ctx.sessionId` (created for the call
   * `ctx.callId`) until it is quiet and returns its answer and status. Refuses (a ToolError) when
   * the nesting is too deep or the call already has a child; a child that settles badly is a result
   * with that status, not an error.
   */
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

/**
 * A tool whose arguments are described by a zod schema (the built-in tools): the registry derives
 * the JSON Schema the model sees from it and parses every call's arguments with it.
 */
export interface Tool<I = any> extends ToolCommon {
  input: z.ZodType<I>;
  inputSchema?: never;
  execute(input: I, ctx: ToolContext): Promise<ToolResult>;
}

/**
 * A tool whose arguments come as a raw JSON Schema from elsewhere (an MCP server's `inputSchema`):
 * the schema is offered to the model as it is (`$schema` removed; its root must be an object
 * schema), and the registry checks each call's arguments only minimally (an object; `required`
 * keys present; declared top-level properties of the declared JSON type; no unknown keys when
 * `additionalProperties` is false). Whoever runs the tool validates the rest.
 */
export interface JsonSchemaTool extends ToolCommon {
  inputSchema: Record<string, unknown>;
  input?: never;
  execute(input: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult>;
}

/** Any tool the registry holds. */
export type AnyTool = Tool | JsonSchemaTool;

/** What every tool declares, whatever describes its arguments. */
export interface ToolCommon {
  name: string;
  description: string;
  /**
   * Where the tool comes from, for the `registry.tool.*` system events and `loom mcp ls`:
   * `builtin` when absent, `mcp:<server>` for an MCP server's tool, `plugin:<name>` for a plugin's.
   */
  source?: string;
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
  /**
   * A sentence added to the result of a started call that recovery settles `interrupted` instead of
   * running again (a tool that is not idempotent, after a process loss): where to look for what
   * the call did (the `task` tool names its child session).
   */
  interruptedNote?(callId: string): string;
}
