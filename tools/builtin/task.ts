/**
 * The `task` tool: a subagent. The prompt runs in a child session (same directory, same model, the
 * same permission policy) until it settles; its final answer becomes this call's result. Not
 * idempotent: after a process loss recovery settles a started call `interrupted` and names the
 * child session, which is never started twice for one call.
 */
import { z } from 'zod';
import { SUBAGENT_SETTLE_TIMEOUT_MS, TASK_AGENT_CHARS_MAX, TASK_ANSWER_BYTES_MAX, TASK_DESCRIPTION_CHARS_MAX, TASK_TIMEOUT_MS } from '../../core/limits.js';
import { SubagentFailedError, ToolServiceUnavailableError } from '../errors.js';
import { truncateOutput } from '../registry.js';
import { subagentSessionId } from '../subagents.js';
import type { SubagentResult, Tool, ToolContext, ToolResult } from '../types.js';

const taskInput = z.object({
  description: z.string().min(1).max(TASK_DESCRIPTION_CHARS_MAX).describe('A short title of the task (3-5 words), shown in session listings.'),
  prompt: z
    .string()
    .min(1)
    .describe('The whole task for the subagent. It sees nothing of this conversation, so say everything it needs and what its answer should contain.'),
  agent: z
    .string()
    .min(1)
    .max(TASK_AGENT_CHARS_MAX)
    .optional()
    .describe('Agent profile to run the task with: "build" (every tool), "plan" (read-only) or one defined in config. Default: your own profile.'),
  background: z
    .boolean()
    .optional()
    .describe('Run it as a background job: the call returns at once with a job id and the answer arrives later as a new message.'),
});

export type TaskInput = z.infer<typeof taskInput>;

export interface TaskToolOptions {
  /** The task's own deadline (TASK_TIMEOUT_MS); the tool's outer timeout adds SUBAGENT_SETTLE_TIMEOUT_MS. */
  timeoutMs?: number;
}

/**
 * Makes the tool; `timeoutMs` is for tests. The task's own deadline fires first (then the child is
 * cancelled and the error names it); the registry's timeout, later by the settle bound, only
 * catches a child that does not stop.
 */
export function createTaskTool(options: TaskToolOptions = {}): Tool<TaskInput> {
  const timeoutMs = options.timeoutMs ?? TASK_TIMEOUT_MS;
  return {
    name: 'task',
    description:
      'Delegate a self-contained task to a subagent: a new session in the same directory with the same tools runs the prompt ' +
      'until it is done, and its final answer comes back as the result (with the id of its session). Use it for searches or ' +
      'multi-step work whose details need not stay in this conversation. Give a complete prompt: the subagent knows nothing else. ' +
      `It may take up to ${Math.round(timeoutMs / 60_000)} minutes.`,
    input: taskInput,
    idempotent: false,
    timeoutMs: timeoutMs + SUBAGENT_SETTLE_TIMEOUT_MS,
    execute: (input, ctx) => (input.background === true ? startJob(input, ctx, timeoutMs) : runSubagent(input, ctx, timeoutMs)),
    interruptedNote: (callId) =>
      `Its subagent session, if it started, is ${subagentSessionId(callId)}: look at it (loom session show ${subagentSessionId(callId)}) before starting the task again.`,
  };
}

export const taskTool = createTaskTool();

async function startJob(input: TaskInput, ctx: ToolContext, timeoutMs: number): Promise<ToolResult> {
  const jobs = ctx.services.jobs;
  if (!jobs) throw new ToolServiceUnavailableError('task', 'background jobs');
  const { jobId, outputPath } = await jobs.start({ kind: 'task', prompt: input.prompt, description: input.description, agent: input.agent, timeoutMs }, ctx);
  const where = outputPath ? ` Its output goes to ${outputPath}.` : '';
  return {
    output: `Started background task job ${jobId} (${input.description}). Its answer arrives later as a new message.${where}`,
    metadata: { jobId },
  };
}

async function runSubagent(input: TaskInput, ctx: ToolContext, timeoutMs: number): Promise<ToolResult> {
  const subagents = ctx.services.subagents;
  if (!subagents) throw new ToolServiceUnavailableError('task', 'subagents');
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`the task timed out after ${timeoutMs} ms`)), timeoutMs);
  let result: SubagentResult;
  try {
    result = await subagents.run(
      { prompt: input.prompt, description: input.description, agent: input.agent, signal: AbortSignal.any([ctx.signal, deadline.signal]) },
      ctx,
    );
  } finally {
    clearTimeout(timer);
  }
  if (deadline.signal.aborted) throw new SubagentFailedError(result.sessionId, result.status, `the task timed out after ${timeoutMs} ms`);
  if (result.status !== 'completed') throw new SubagentFailedError(result.sessionId, result.status, result.reason);
  return renderAnswer(input, result);
}

function renderAnswer(input: TaskInput, result: SubagentResult): ToolResult {
  const agent = result.agent ?? input.agent;
  const header = `Subagent session ${result.sessionId} (${input.description}${agent ? `, agent ${agent}` : ''}) completed. Its final answer:`;
  const answer = truncateOutput(result.text === '' ? '(the subagent gave no final text)' : result.text, TASK_ANSWER_BYTES_MAX);
  return {
    output: `${header}\n\n${answer.text}`,
    truncated: answer.truncated,
    metadata: { sessionId: result.sessionId, status: result.status, ...(agent ? { agent } : {}) },
  };
}
