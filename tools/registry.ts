/**
 * The tool registry: which tools a session may call, their JSON schemas for the provider, and the
 * one way to run a tool (`execute`): validate the model's arguments, bound the running time, bound
 * the output. Permission is decided before `execute` (see permission.ts); waiting for it does not
 * count against the timeout, because the timer starts here.
 */
import { z } from 'zod';
import { TOOL_INPUT_ISSUES_MAX, TOOL_INPUT_SCHEMA_BYTES_MAX, TOOL_NAME_CHARS_MAX, TOOL_OUTPUT_BYTES_MAX, TOOLS_REGISTERED_MAX } from '../core/limits.js';
import {
  ToolCancelledError,
  ToolInputError,
  ToolNotFoundError,
  ToolRegistrationError,
  ToolTimeoutError,
  type ToolInputIssue,
} from './errors.js';
import { boundOutput } from './truncate.js';
import type { AnyTool, JsonSchemaTool, ToolContext, ToolResult } from './types.js';

/** What a provider needs to offer a tool to the model (a function declaration). */
export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema (draft 2020-12, input shape, `$schema` removed) of the tool's arguments; always an object schema. */
  parameters: Record<string, unknown>;
}

export interface ToolRegistry {
  /**
   * Adds a tool: a zod-described one (`input`) or one with a raw JSON Schema (`inputSchema`, see
   * JsonSchemaTool). Throws ToolRegistrationError for a duplicate or malformed name, a missing
   * timeout, or a schema that is not a JSON object schema (or is over TOOL_INPUT_SCHEMA_BYTES_MAX).
   */
  register(tool: AnyTool): void;
  /**
   * Removes a tool; returns whether it was there. Calls already running are not affected. `reason`
   * (why it left: an MCP server went down) is passed on to subscribers.
   */
  unregister(name: string, reason?: string): boolean;
  get(name: string): AnyTool | undefined;
  /** Tools in registration order. */
  list(): AnyTool[];
  /** Specs for the provider request, in registration order. */
  specs(): ToolSpec[];
  /**
   * Runs one call: parses `rawInput` with the tool's schema (ToolInputError naming the field),
   * runs the tool under its timeout and `ctx.signal` (ToolTimeoutError, ToolCancelledError), and
   * bounds the output: beyond TOOL_OUTPUT_LINES_MAX lines or TOOL_OUTPUT_BYTES_MAX bytes the model
   * gets a head-and-tail preview and the full output is saved under `ctx.home` (tools/truncate.ts;
   * a tool that `pagesOwnOutput` is only cut at the byte bound). The tool's own typed errors pass
   * through unchanged.
   * Gotcha: a tool that ignores its signal keeps running after the timeout; only its result is
   * dropped. Tools must honour `ctx.signal`.
   */
  execute(name: string, rawInput: unknown, ctx: ToolContext): Promise<ToolResult>;
  /**
   * Told of every later `register` / successful `unregister` (a plugin or MCP server adding or
   * removing a tool while sessions run). Returns the unsubscribe function. A listener that
   * throws is ignored (the registry's change has happened either way).
   */
  subscribe(listener: (change: ToolRegistryChange) => void): () => void;
}

export interface ToolRegistryChange {
  kind: 'added' | 'removed';
  name: string;
  /** The tool's `source` (absent for built-ins). */
  source?: string;
  /** Why a tool was removed, when the remover said. */
  reason?: string;
}

const TOOL_NAME_PATTERN = /^[A-Za-z0-9_-]+$/;

/** Creates an empty registry. Each session (or process) may hold its own. */
export function createToolRegistry(): ToolRegistry {
  const tools = new Map<string, { tool: AnyTool; spec: ToolSpec }>();
  const listeners = new Set<(change: ToolRegistryChange) => void>();
  const notify = (change: ToolRegistryChange) => {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch {
        // a listener's failure is its own; the registry changed regardless
      }
    }
  };

  return {
    register(tool) {
      if (tools.has(tool.name)) throw new ToolRegistrationError(tool.name, 'a tool with that name is already registered');
      if (tools.size >= TOOLS_REGISTERED_MAX) {
        throw new ToolRegistrationError(tool.name, `the registry is full (${TOOLS_REGISTERED_MAX} tools)`);
      }
      checkTool(tool);
      tools.set(tool.name, { tool, spec: specOf(tool) });
      notify({ kind: 'added', name: tool.name, ...(tool.source === undefined ? {} : { source: tool.source }) });
    },
    unregister(name, reason) {
      const entry = tools.get(name);
      if (entry === undefined) return false;
      tools.delete(name);
      const source = entry.tool.source;
      notify({ kind: 'removed', name, ...(source === undefined ? {} : { source }), ...(reason === undefined ? {} : { reason }) });
      return true;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    get: (name) => tools.get(name)?.tool,
    list: () => [...tools.values()].map((entry) => entry.tool),
    specs: () => [...tools.values()].map((entry) => entry.spec),
    async execute(name, rawInput, ctx) {
      const entry = tools.get(name);
      if (entry === undefined) throw new ToolNotFoundError(name);
      const input = parseInput(entry.tool, rawInput);
      const result = await runWithTimeout(entry.tool, input, ctx);
      return boundResult(entry.tool, result, ctx);
    },
  };
}

function checkTool(tool: AnyTool): void {
  const name = String(tool.name);
  if (name.length === 0 || name.length > TOOL_NAME_CHARS_MAX || !TOOL_NAME_PATTERN.test(name)) {
    throw new ToolRegistrationError(name, `the name must be 1-${TOOL_NAME_CHARS_MAX} characters of A-Z, a-z, 0-9, _ or -`);
  }
  if (typeof tool.timeoutMs !== 'number' || !Number.isFinite(tool.timeoutMs) || tool.timeoutMs <= 0) {
    throw new ToolRegistrationError(name, `timeoutMs must be a positive number of milliseconds, got ${String(tool.timeoutMs)}`);
  }
  if (typeof tool.idempotent !== 'boolean') throw new ToolRegistrationError(name, 'idempotent must be declared (true or false)');
  if (typeof tool.execute !== 'function') throw new ToolRegistrationError(name, 'execute must be a function');
}

function specOf(tool: AnyTool): ToolSpec {
  let schema: Record<string, unknown>;
  if (tool.input === undefined) {
    schema = tool.inputSchema;
    if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) throw new ToolRegistrationError(tool.name, 'its inputSchema must be a JSON Schema object');
    const bytes = Buffer.byteLength(JSON.stringify(schema));
    if (bytes > TOOL_INPUT_SCHEMA_BYTES_MAX) throw new ToolRegistrationError(tool.name, `its inputSchema is ${bytes} bytes; at most ${TOOL_INPUT_SCHEMA_BYTES_MAX} are sent to the model`);
  } else {
    try {
      schema = z.toJSONSchema(tool.input, { io: 'input' }) as Record<string, unknown>;
    } catch (err) {
      throw new ToolRegistrationError(tool.name, `its input schema has no JSON Schema form: ${(err as Error).message}`);
    }
  }
  if (schema.type !== 'object') throw new ToolRegistrationError(tool.name, 'its input schema must be an object');
  const { $schema: _dialect, ...parameters } = schema;
  return { name: tool.name, description: tool.description, parameters };
}

function parseInput(tool: AnyTool, rawInput: unknown): unknown {
  if (tool.input === undefined) return checkJsonInput(tool, rawInput);
  const parsed = tool.input.safeParse(rawInput);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.flatMap(issueLines);
  const shown = issues.slice(0, TOOL_INPUT_ISSUES_MAX);
  throw new ToolInputError(tool.name, shown, issues.length - shown.length);
}

/**
 * The minimal check of a JsonSchemaTool's arguments: an object, `required` keys present, declared
 * top-level properties of their declared JSON type, and no unknown keys where
 * `additionalProperties` is false. Nested structure is left to whoever runs the tool.
 */
function checkJsonInput(tool: JsonSchemaTool, rawInput: unknown): Record<string, unknown> {
  const input = rawInput === undefined || rawInput === null ? {} : rawInput;
  if (typeof input !== 'object' || Array.isArray(input)) throw new ToolInputError(tool.name, [{ path: '', message: `expected an object, got ${jsonTypeOf(input)}` }]);
  const record = input as Record<string, unknown>;
  const schema = tool.inputSchema;
  const properties = isRecord(schema.properties) ? schema.properties : {};
  const issues: ToolInputIssue[] = [];
  for (const key of Array.isArray(schema.required) ? schema.required : []) {
    if (typeof key === 'string' && record[key] === undefined) issues.push({ path: key, message: 'required' });
  }
  for (const [key, value] of Object.entries(record)) {
    const property = properties[key];
    if (property === undefined) {
      if (schema.additionalProperties === false) issues.push({ path: key, message: 'unknown field' });
      continue;
    }
    const declared = isRecord(property) ? property.type : undefined;
    const types = typeof declared === 'string' ? [declared] : Array.isArray(declared) ? declared.filter((t): t is string => typeof t === 'string') : [];
    if (types.length > 0 && !types.some((t) => matchesJsonType(value, t))) issues.push({ path: key, message: `expected ${types.join(' or ')}, got ${jsonTypeOf(value)}` });
  }
  if (issues.length > 0) {
    const shown = issues.slice(0, TOOL_INPUT_ISSUES_MAX);
    throw new ToolInputError(tool.name, shown, issues.length - shown.length);
  }
  return record;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Whether `value` is of JSON Schema type `type`; a type this check does not know passes. */
function matchesJsonType(value: unknown, type: string): boolean {
  switch (type) {
    case 'string':
    case 'boolean':
      return typeof value === type;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'array':
      return Array.isArray(value);
    case 'object':
      return isRecord(value);
    case 'null':
      return value === null;
    default:
      return true;
  }
}

/** One line per bad field; an unknown-keys issue names each key as its own field path. */
function issueLines(issue: z.core.$ZodIssue): ToolInputIssue[] {
  const base = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: [...base, key].join('.'), message: 'unknown field' }));
  }
  return [{ path: base.join('.'), message: issue.message }];
}

async function runWithTimeout(tool: AnyTool, input: unknown, ctx: ToolContext): Promise<ToolResult> {
  if (ctx.signal.aborted) throw new ToolCancelledError(tool.name);
  const timeout = new AbortController();
  const signal = AbortSignal.any([ctx.signal, timeout.signal]);
  const failure = () => (timeout.signal.aborted ? new ToolTimeoutError(tool.name, tool.timeoutMs) : new ToolCancelledError(tool.name));
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(failure());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const timer = setTimeout(() => timeout.abort(), tool.timeoutMs);
  try {
    // A tool that rejects because its signal fired is reported as the timeout or cancellation.
    const running = Promise.resolve().then(() => (tool.execute as (input: unknown, ctx: ToolContext) => Promise<ToolResult>)(input, { ...ctx, signal }));
    // A checkpoint reads the files after the tool itself has finished, even when the call ended early.
    ctx.checkpoint?.track(running);
    return await Promise.race([running.catch((err: unknown) => Promise.reject(signal.aborted ? failure() : err)), aborted]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}

async function boundResult(tool: AnyTool, result: ToolResult, ctx: ToolContext): Promise<ToolResult> {
  if (result === null || typeof result !== 'object' || typeof result.output !== 'string') {
    throw new Error(`tool "${tool.name}" returned a result without a string output`);
  }
  if (tool.pagesOwnOutput === true) {
    const cut = truncateOutput(result.output, TOOL_OUTPUT_BYTES_MAX);
    return { ...result, output: cut.text, truncated: result.truncated === true || cut.truncated };
  }
  const bounded = await boundOutput(result.output, ctx);
  return {
    ...result,
    output: bounded.text,
    truncated: result.truncated === true || bounded.truncated,
    ...(bounded.savedPath !== undefined ? { fullOutputPath: bounded.savedPath } : {}),
  };
}

export interface TruncatedText {
  text: string;
  truncated: boolean;
  /** UTF-8 bytes of the original text that were cut. */
  omittedBytes: number;
}

/**
 * Keeps the head of `text` within `maxBytes` UTF-8 bytes, notice included: when it cuts, it ends
 * at a character boundary and appends a line saying how many bytes were cut. For short texts that
 * need no saved copy (error messages, excerpts); tool results go through `boundOutput`
 * (tools/truncate.ts), which keeps head and tail and saves the whole. Gotcha: a `maxBytes` smaller than the notice (about 100 bytes) yields the
 * notice alone, which is then longer than `maxBytes`.
 */
export function truncateOutput(text: string, maxBytes: number): TruncatedText {
  // Three bytes per UTF-16 unit is the UTF-8 worst case, so short texts skip the byte count.
  if (text.length * 3 <= maxBytes) return { text, truncated: false, omittedBytes: 0 };
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return { text, truncated: false, omittedBytes: 0 };
  // The notice is sized with the longest number it can carry, so the final one never overflows.
  const room = Math.max(0, maxBytes - Buffer.byteLength(truncationNotice(bytes.length, bytes.length)));
  const keep = utf8Boundary(bytes, room);
  const omittedBytes = bytes.length - keep;
  const head = bytes.subarray(0, keep).toString('utf8');
  return { text: head + truncationNotice(omittedBytes, bytes.length), truncated: true, omittedBytes };
}

function truncationNotice(omittedBytes: number, totalBytes: number): string {
  return `\n[output truncated: ${omittedBytes} of ${totalBytes} bytes cut]`;
}

/** The largest cut ≤ `at` that does not split a UTF-8 sequence. */
function utf8Boundary(bytes: Buffer, at: number): number {
  let cut = Math.min(at, bytes.length);
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
  return cut;
}
