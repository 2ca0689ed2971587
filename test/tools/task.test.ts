import { describe, expect, it } from 'vitest';
import { TASK_ANSWER_BYTES_MAX, TASK_TIMEOUT_MS, SUBAGENT_SETTLE_TIMEOUT_MS, TOOL_OUTPUT_BYTES_MAX } from '../../core/limits.js';
import { createTaskTool, taskTool } from '../../tools/builtin/task.js';
import { createToolRegistry } from '../../tools/registry.js';
import type { JobSpec, SubagentRequest, SubagentResult, ToolContext, ToolServices } from '../../tools/types.js';
import { tempDir } from '../helpers.js';

function context(services: ToolServices, signal = new AbortController().signal): ToolContext {
  const dir = tempDir();
  return { sessionId: 'ses_parent', activityId: 'act_1', callId: 'call_1', location: dir, home: dir, signal, services };
}

/** A subagent service that answers at once, or (with `hang`) only when its signal aborts. */
function runner(result: Partial<SubagentResult>, options: { hang?: boolean } = {}) {
  const requests: SubagentRequest[] = [];
  return {
    requests,
    subagents: {
      run: (request: SubagentRequest) => {
        requests.push(request);
        const done = { sessionId: 'ses_call_1', status: 'completed', text: '', ...result };
        if (!options.hang) return Promise.resolve(done);
        return new Promise<SubagentResult>((resolve) => request.signal.addEventListener('abort', () => resolve({ ...done, status: 'cancelled' })));
      },
    },
  };
}

const input = { description: 'look around', prompt: 'list the files and say what they are' };

describe('task tool - input, output and failures', () => {
  it('registers (object schema, a timeout above its own deadline) and is not idempotent', () => {
    const registry = createToolRegistry();
    registry.register(taskTool);
    const spec = registry.specs()[0]!;
    expect(spec.parameters).toMatchObject({ type: 'object', required: ['description', 'prompt'] });
    expect(taskTool.idempotent).toBe(false);
    expect(taskTool.timeoutMs).toBe(TASK_TIMEOUT_MS + SUBAGENT_SETTLE_TIMEOUT_MS);
  });

  it('returns the final answer with a first line naming the child session; a huge answer is cut and that line survives', async () => {
    const registry = createToolRegistry();
    registry.register(taskTool);
    const small = await registry.execute('task', input, context(runner({ text: 'two files' })));
    expect(small.output).toBe('Subagent session ses_call_1 (look around) completed. Its final answer:\n\ntwo files');
    expect(small.metadata).toMatchObject({ sessionId: 'ses_call_1', status: 'completed' });
    const huge = await registry.execute('task', input, context(runner({ text: 'z'.repeat(TOOL_OUTPUT_BYTES_MAX * 2) })));
    expect(huge.truncated).toBe(true);
    expect(huge.output.startsWith('Subagent session ses_call_1')).toBe(true);
    expect(Buffer.byteLength(huge.output)).toBeLessThanOrEqual(TASK_ANSWER_BYTES_MAX + 200);
    expect(huge.output).toContain('[output truncated');
  });

  it('passes prompt, description and agent to the subagent service', async () => {
    const r = runner({ text: 'ok' });
    const registry = createToolRegistry();
    registry.register(taskTool);
    await registry.execute('task', { ...input, agent: 'explorer' }, context(r));
    expect(r.requests[0]).toMatchObject({ prompt: input.prompt, description: input.description, agent: 'explorer' });
  });

  it('a child that did not complete is an error naming its session, status and reason', async () => {
    const registry = createToolRegistry();
    registry.register(taskTool);
    await expect(registry.execute('task', input, context(runner({ status: 'turn_limit', reason: 'turn limit reached' })))).rejects.toThrow(
      'subagent session ses_call_1 ended turn_limit (turn limit reached); its work so far is in that session (loom session show ses_call_1)',
    );
  });

  it('its own deadline cancels the child and the error says it timed out, naming the child', async () => {
    const registry = createToolRegistry();
    registry.register(createTaskTool({ timeoutMs: 50 }));
    const r = runner({}, { hang: true });
    const error = await registry.execute('task', input, context(r)).catch((e: unknown) => e as Error);
    expect(error).toMatchObject({ name: 'SubagentFailedError', message: expect.stringContaining('ses_call_1 ended cancelled (the task timed out after 50 ms)') });
    expect(r.requests[0]!.signal.reason).toMatchObject({ message: 'the task timed out after 50 ms' });
  });

  it('without a subagent service it fails with an error naming the missing service', async () => {
    const registry = createToolRegistry();
    registry.register(taskTool);
    await expect(registry.execute('task', input, context({}))).rejects.toMatchObject({ name: 'ToolServiceUnavailableError', message: expect.stringContaining('subagents service') });
  });

  it('background: true starts a job through the jobs service and returns its id at once', async () => {
    const specs: JobSpec[] = [];
    const jobs = { start: async (spec: JobSpec) => (specs.push(spec), { jobId: 'job_7', outputPath: '/tmp/job_7.out' }) };
    const registry = createToolRegistry();
    registry.register(taskTool);
    const result = await registry.execute('task', { ...input, background: true }, context({ jobs }));
    expect(specs).toEqual([{ kind: 'task', prompt: input.prompt, description: input.description, agent: undefined, timeoutMs: TASK_TIMEOUT_MS }]);
    expect(result.output).toContain('Started background task job job_7');
    expect(result.metadata).toEqual({ jobId: 'job_7' });
  });

  it('names the child session of an interrupted call', () => {
    expect(taskTool.interruptedNote!('call_9')).toContain('ses_call_9');
  });
});
