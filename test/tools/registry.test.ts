import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TOOL_OUTPUT_BYTES_MAX } from '../../core/limits.js';
import {
  ToolCancelledError,
  ToolInputError,
  ToolNotFoundError,
  ToolRegistrationError,
  ToolTimeoutError,
} from '../../tools/errors.js';
import { createToolRegistry, truncateOutput } from '../../tools/registry.js';
import type { JsonSchemaTool, Tool, ToolContext } from '../../tools/types.js';
import { TOOL_INPUT_SCHEMA_BYTES_MAX } from '../../core/limits.js';
import type { ToolRegistryChange } from '../../tools/registry.js';
import { tempDir } from '../helpers.js';

function makeTool(overrides: Partial<Tool> = {}): Tool {
  return {
    name: 'echo',
    description: 'Echoes its text.',
    input: z.object({ text: z.string(), times: z.number().int().min(1).optional() }),
    idempotent: true,
    timeoutMs: 1_000,
    execute: async (input: { text: string; times?: number }) => ({ output: input.text.repeat(input.times ?? 1) }),
    ...overrides,
  };
}

function makeContext(signal: AbortSignal = new AbortController().signal): ToolContext {
  return { sessionId: 'ses_1', activityId: '', callId: 'call_1', location: '/tmp', home: tempDir(), signal, services: {} };
}

describe('registry', () => {
  it('registry - registers, lists and gets a tool', () => {
    const registry = createToolRegistry();
    const tool = makeTool();
    registry.register(tool);
    expect(registry.get('echo')).toBe(tool);
    expect(registry.list()).toEqual([tool]);
  });

  it('registry - refuses a tool without a timeout', () => {
    const registry = createToolRegistry();
    expect(() => registry.register(makeTool({ timeoutMs: undefined as unknown as number }))).toThrow(ToolRegistrationError);
  });

  it('registry - refuses a tool with a zero timeout', () => {
    const registry = createToolRegistry();
    expect(() => registry.register(makeTool({ timeoutMs: 0 }))).toThrow(ToolRegistrationError);
  });

  it('registry - refuses a tool with an infinite timeout', () => {
    const registry = createToolRegistry();
    expect(() => registry.register(makeTool({ timeoutMs: Number.POSITIVE_INFINITY }))).toThrow(ToolRegistrationError);
  });

  it('registry - refuses a duplicate name', () => {
    const registry = createToolRegistry();
    registry.register(makeTool());
    expect(() => registry.register(makeTool())).toThrow(/already registered/);
  });

  it('registry - refuses a name the providers cannot carry', () => {
    const registry = createToolRegistry();
    expect(() => registry.register(makeTool({ name: 'has space' }))).toThrow(ToolRegistrationError);
  });

  it('registry - refuses an input schema that is not an object', () => {
    const registry = createToolRegistry();
    expect(() => registry.register(makeTool({ input: z.string() }))).toThrow(/must be an object/);
  });

  it('registry - refuses an input schema with no JSON Schema form', () => {
    const registry = createToolRegistry();
    expect(() => registry.register(makeTool({ input: z.object({ when: z.date() }) }))).toThrow(ToolRegistrationError);
  });

  it('registry - unregisters a tool', () => {
    const registry = createToolRegistry();
    registry.register(makeTool());
    expect(registry.unregister('echo')).toBe(true);
    expect(registry.get('echo')).toBeUndefined();
    expect(registry.unregister('echo')).toBe(false);
  });

  it('registry - gives specs with a JSON schema of the input', () => {
    const registry = createToolRegistry();
    registry.register(makeTool());
    const [spec] = registry.specs();
    expect(spec.name).toBe('echo');
    expect(spec.description).toBe('Echoes its text.');
    expect(spec.parameters).toMatchObject({
      type: 'object',
      properties: { text: { type: 'string' }, times: { type: 'integer' } },
      required: ['text'],
    });
    expect(spec.parameters).not.toHaveProperty('$schema');
  });

  it('registry - executes a tool with parsed input', async () => {
    const registry = createToolRegistry();
    registry.register(makeTool());
    const result = await registry.execute('echo', { text: 'ab', times: 2 }, makeContext());
    expect(result).toEqual({ output: 'abab', truncated: false });
  });

  it('registry - refuses an unknown tool', async () => {
    const registry = createToolRegistry();
    await expect(registry.execute('nope', {}, makeContext())).rejects.toThrow(ToolNotFoundError);
  });

  it('registry - refuses bad input naming the tool and the field', async () => {
    const registry = createToolRegistry();
    registry.register(makeTool());
    const failure = registry.execute('echo', { text: 'a', times: 'two' }, makeContext());
    await expect(failure).rejects.toThrow(ToolInputError);
    await expect(failure).rejects.toThrow(/"echo".*"times"/);
  });

  it('registry - refuses input that is not an object', async () => {
    const registry = createToolRegistry();
    registry.register(makeTool());
    await expect(registry.execute('echo', 'text', makeContext())).rejects.toThrow(ToolInputError);
  });

  it('registry - names each unknown field of a strict schema', async () => {
    const registry = createToolRegistry();
    registry.register(makeTool({ input: z.strictObject({ text: z.string() }) }));
    const failure = registry.execute('echo', { text: 'a', extra: 1 }, makeContext());
    await expect(failure).rejects.toMatchObject({ issues: [{ path: 'extra', message: 'unknown field' }] });
  });

  it('registry - times a slow tool out', async () => {
    const registry = createToolRegistry();
    let sawAbort = false;
    registry.register(
      makeTool({
        timeoutMs: 20,
        execute: (_input, ctx) =>
          new Promise((_, reject) => {
            ctx.signal.addEventListener('abort', () => {
              sawAbort = true;
              reject(new Error('aborted'));
            });
          }),
      }),
    );
    await expect(registry.execute('echo', { text: 'a' }, makeContext())).rejects.toThrow(ToolTimeoutError);
    expect(sawAbort).toBe(true);
  });

  it('registry - times out a tool that ignores its signal', async () => {
    const registry = createToolRegistry();
    registry.register(makeTool({ timeoutMs: 20, execute: () => new Promise(() => {}) }));
    await expect(registry.execute('echo', { text: 'a' }, makeContext())).rejects.toThrow(/timed out after 20 ms/);
  });

  it('registry - reports a cancel from the context as cancelled', async () => {
    const registry = createToolRegistry();
    registry.register(makeTool({ execute: () => new Promise(() => {}) }));
    const controller = new AbortController();
    const running = registry.execute('echo', { text: 'a' }, makeContext(controller.signal));
    controller.abort();
    await expect(running).rejects.toThrow(ToolCancelledError);
  });

  it('registry - refuses to start when the context is already aborted', async () => {
    const registry = createToolRegistry();
    let ran = false;
    registry.register(
      makeTool({
        execute: async () => {
          ran = true;
          return { output: '' };
        },
      }),
    );
    await expect(registry.execute('echo', { text: 'a' }, makeContext(AbortSignal.abort()))).rejects.toThrow(ToolCancelledError);
    expect(ran).toBe(false);
  });

  it("registry - passes a tool's own error through", async () => {
    const registry = createToolRegistry();
    class OwnError extends Error {
      override name = 'OwnError';
    }
    registry.register(makeTool({ execute: async () => Promise.reject(new OwnError('boom')) }));
    await expect(registry.execute('echo', { text: 'a' }, makeContext())).rejects.toThrow(OwnError);
  });

  it('registry - cuts long output to a preview within the byte bound and saves the whole', async () => {
    const registry = createToolRegistry();
    registry.register(makeTool());
    const result = await registry.execute('echo', { text: 'x', times: TOOL_OUTPUT_BYTES_MAX * 2 }, makeContext());
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(TOOL_OUTPUT_BYTES_MAX);
    expect(result.output).toMatch(/the output has 1 lines \(102400 bytes\).*The full output is saved at .*call_1\.txt/);
    expect(readFileSync(result.fullOutputPath!, 'utf8')).toBe('x'.repeat(TOOL_OUTPUT_BYTES_MAX * 2));
  });
});

describe('truncateOutput', () => {
  it('truncateOutput - leaves text within the bound alone', () => {
    expect(truncateOutput('héllo', 100)).toEqual({ text: 'héllo', truncated: false, omittedBytes: 0 });
  });

  it('truncateOutput - keeps the result within the bound, notice included', () => {
    const cut = truncateOutput('a'.repeat(1_000), 200);
    expect(cut.truncated).toBe(true);
    expect(Buffer.byteLength(cut.text)).toBeLessThanOrEqual(200);
    expect(cut.text).toContain(`${cut.omittedBytes} of 1000 bytes cut`);
    expect(cut.text.startsWith('a'.repeat(100))).toBe(true);
  });

  it('truncateOutput - never splits a multi-byte character', () => {
    const text = '€'.repeat(500); // 3 bytes each
    for (const max of [150, 151, 152, 153]) {
      const cut = truncateOutput(text, max);
      const head = cut.text.split('\n[output truncated')[0];
      expect(head).toMatch(/^€*$/);
      expect(head.length * 3 + cut.omittedBytes).toBe(1_500);
    }
  });

  it('truncateOutput - never splits an emoji surrogate pair', () => {
    const cut = truncateOutput('😀'.repeat(100), 150);
    expect(cut.text).not.toContain('\uFFFD');
    expect(Buffer.byteLength(cut.text)).toBeLessThanOrEqual(150);
  });
});

describe('registry - tools with a raw JSON schema (MCP tools)', () => {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    properties: { path: { type: 'string' }, count: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } }, mode: { type: ['string', 'null'] } },
    required: ['path'],
    additionalProperties: false,
  };
  function jsonTool(overrides: Partial<JsonSchemaTool> = {}): JsonSchemaTool {
    return {
      name: 'mcp_fs_stat',
      description: 'Stats a path.',
      source: 'mcp:fs',
      inputSchema: schema,
      idempotent: false,
      timeoutMs: 1_000,
      execute: async (input) => ({ output: JSON.stringify(input) }),
      ...overrides,
    };
  }

  it('registry - offers the JSON schema as it is, without $schema', () => {
    const registry = createToolRegistry();
    registry.register(jsonTool());
    const { $schema: _, ...rest } = schema;
    expect(registry.specs()).toEqual([{ name: 'mcp_fs_stat', description: 'Stats a path.', parameters: rest }]);
  });

  it('registry - runs a JSON-schema tool with the arguments as given', async () => {
    const registry = createToolRegistry();
    registry.register(jsonTool());
    const result = await registry.execute('mcp_fs_stat', { path: 'a.txt', count: 2, tags: ['x'], mode: null }, makeContext());
    expect(JSON.parse(result.output)).toEqual({ path: 'a.txt', count: 2, tags: ['x'], mode: null });
  });

  it('registry - checks a JSON-schema tool\'s arguments minimally: required keys, top-level types, unknown keys', async () => {
    const registry = createToolRegistry();
    registry.register(jsonTool());
    const ctx = makeContext();
    await expect(registry.execute('mcp_fs_stat', [], ctx)).rejects.toThrow('invalid input for tool "mcp_fs_stat": input: expected an object, got array');
    await expect(registry.execute('mcp_fs_stat', {}, ctx)).rejects.toThrow('"path": required');
    await expect(registry.execute('mcp_fs_stat', { path: 1 }, ctx)).rejects.toThrow('"path": expected string, got integer');
    await expect(registry.execute('mcp_fs_stat', { path: 'a', count: 1.5 }, ctx)).rejects.toThrow('"count": expected integer, got number');
    await expect(registry.execute('mcp_fs_stat', { path: 'a', mode: 3 }, ctx)).rejects.toThrow('"mode": expected string or null, got integer');
    await expect(registry.execute('mcp_fs_stat', { path: 'a', extra: true }, ctx)).rejects.toThrow('"extra": unknown field');
    await expect(registry.execute('mcp_fs_stat', { path: 'a', extra: true }, ctx)).rejects.toThrow(ToolInputError);
  });

  it('registry - without additionalProperties: false, unknown keys pass through to the tool', async () => {
    const registry = createToolRegistry();
    const { additionalProperties: _, ...open } = schema;
    registry.register(jsonTool({ inputSchema: open }));
    const result = await registry.execute('mcp_fs_stat', { path: 'a', extra: true }, makeContext());
    expect(JSON.parse(result.output)).toEqual({ path: 'a', extra: true });
  });

  it('registry - refuses a JSON schema that is not an object schema', () => {
    const registry = createToolRegistry();
    expect(() => registry.register(jsonTool({ inputSchema: { type: 'string' } }))).toThrow(/must be an object/);
    expect(() => registry.register(jsonTool({ inputSchema: [] as unknown as Record<string, unknown> }))).toThrow(/must be a JSON Schema object/);
  });

  it('registry - refuses a JSON schema over TOOL_INPUT_SCHEMA_BYTES_MAX', () => {
    const registry = createToolRegistry();
    const huge = { type: 'object', description: 'x'.repeat(TOOL_INPUT_SCHEMA_BYTES_MAX) };
    expect(() => registry.register(jsonTool({ inputSchema: huge }))).toThrow(/inputSchema is \d+ bytes; at most/);
  });

  it('registry - tells subscribers the source of a tool and why it was removed', () => {
    const registry = createToolRegistry();
    const changes: ToolRegistryChange[] = [];
    registry.subscribe((c) => changes.push(c));
    registry.register(jsonTool());
    registry.register(makeTool());
    registry.unregister('mcp_fs_stat', 'MCP server "fs": its process exited');
    registry.unregister('echo');
    expect(changes).toEqual([
      { kind: 'added', name: 'mcp_fs_stat', source: 'mcp:fs' },
      { kind: 'added', name: 'echo' },
      { kind: 'removed', name: 'mcp_fs_stat', source: 'mcp:fs', reason: 'MCP server "fs": its process exited' },
      { kind: 'removed', name: 'echo' },
    ]);
  });
});
