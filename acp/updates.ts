/**
 * Loom session events as ACP `session/update`s (pure: no I/O; the inbox is read through `inputs`).
 *
 * | event | update |
 * |---|---|
 * | `text.delta` (live) / `text.done` (replay) | `agent_message_chunk` (messageId = the part id) |
 * | `reasoning.delta` (live) / `reasoning.done` (replay) | `agent_thought_chunk` |
 * | `input.consumed` (replay; live only for inputs this client did not send: job results, other processes) | `user_message_chunk` |
 * | `tool.called` | `tool_call`, status `pending` (title, kind, raw input, file location) |
 * | `tool.started` | `tool_call_update`, status `in_progress` |
 * | `tool.settled` | `tool_call_update`, `completed` (ok) or `failed` (error, denied, interrupted), with the output |
 * | `attempt.failed` (live) | `notice` (the model request failed; retrying or not) |
 *
 * Live updates follow the log as it is written (deltas as they are flushed); a replay (`session/load`)
 * uses each part's final text, so parts an attempt discarded are never shown.
 */
import path from 'node:path';
import type { SessionUpdate, ToolKind } from '@agentclientprotocol/sdk';
import type { AnyEnvelope, InputRow } from '../store/index.js';
import { primaryArgumentOf } from '../tools/permission.js';

/** Characters of a tool call's title (the tool and its main argument). */
const TITLE_CHARS_MAX = 120;

export interface UpdateSource {
  mode: 'live' | 'replay';
  /** The session's directory (relative file arguments become absolute locations). */
  location: string;
  /** An input of the session by id (its text and where it came from). */
  input(inputId: string): Pick<InputRow, 'text' | 'source' | 'attachments'> | undefined;
  /** Inputs this client sent (live mode does not echo them back). */
  own: ReadonlySet<string>;
}

/** Maps one session's envelopes, in order, to ACP updates. Keeps the tool calls it has seen. */
export class UpdateMapper {
  private readonly calls = new Map<string, { tool: string; input: unknown }>();

  constructor(private readonly source: UpdateSource) {}

  updates(e: AnyEnvelope): SessionUpdate[] {
    const live = this.source.mode === 'live';
    switch (e.type) {
      case 'text.delta':
        return live ? [{ sessionUpdate: 'agent_message_chunk', messageId: e.data.partId, content: { type: 'text', text: e.data.delta } }] : [];
      case 'reasoning.delta':
        return live ? [{ sessionUpdate: 'agent_thought_chunk', messageId: e.data.partId, content: { type: 'text', text: e.data.delta } }] : [];
      case 'text.done':
        return live || e.data.text === '' ? [] : [{ sessionUpdate: 'agent_message_chunk', messageId: e.data.partId, content: { type: 'text', text: e.data.text } }];
      case 'reasoning.done':
        return live || e.data.text === '' ? [] : [{ sessionUpdate: 'agent_thought_chunk', messageId: e.data.partId, content: { type: 'text', text: e.data.text } }];
      case 'input.consumed':
        return this.userMessage(e.data.inputId);
      case 'tool.called':
        return [this.toolCall(e.data.callId, e.data.tool, e.data.input)];
      case 'tool.started':
        return this.calls.has(e.data.callId) ? [{ sessionUpdate: 'tool_call_update', toolCallId: e.data.callId, status: 'in_progress' }] : [];
      case 'tool.settled':
        return [
          {
            sessionUpdate: 'tool_call_update',
            toolCallId: e.data.callId,
            status: e.data.status === 'ok' ? 'completed' : 'failed',
            content: [{ type: 'content', content: { type: 'text', text: e.data.output } }],
            rawOutput: { status: e.data.status, output: e.data.output, ...(e.data.truncated ? { truncated: true } : {}) },
          },
        ];
      case 'attempt.failed':
        if (!live || e.data.error.kind === 'cancelled' || e.data.error.kind === 'forked') return [];
        return [
          {
            sessionUpdate: 'notice',
            severity: e.data.retryable && !e.data.receivedChunks ? 'warning' : 'error',
            title: e.data.retryable && !e.data.receivedChunks ? 'The model request failed; retrying' : 'The model request failed',
            description: e.data.error.message,
          },
        ];
      default:
        return [];
    }
  }

  private userMessage(inputId: string): SessionUpdate[] {
    if (this.source.mode === 'live' && this.source.own.has(inputId)) return [];
    const input = this.source.input(inputId);
    if (!input) return [];
    const names = input.attachments.map((a) => `\n[attached ${a.kind}: ${a.name}]`).join('');
    return [{ sessionUpdate: 'user_message_chunk', messageId: inputId, content: { type: 'text', text: `${input.text}${names}` } }];
  }

  private toolCall(callId: string, tool: string, inputText: string): SessionUpdate {
    const input = parseInput(inputText);
    this.calls.set(callId, { tool, input });
    const location = locationOf(input, this.source.location);
    return {
      sessionUpdate: 'tool_call',
      toolCallId: callId,
      title: toolTitle(tool, input),
      kind: toolKind(tool),
      status: 'pending',
      rawInput: input,
      ...(location ? { locations: [{ path: location }] } : {}),
    };
  }
}

/** `tool` followed by its main argument (a path, a command, a URL, a pattern), on one bounded line. */
export function toolTitle(tool: string, input: unknown): string {
  const argument = primaryArgumentOf(input);
  const title = argument ? `${tool} ${argument.value}` : tool;
  const one = title.replace(/\s+/g, ' ').trim();
  return one.length > TITLE_CHARS_MAX ? `${one.slice(0, TITLE_CHARS_MAX - 1)}…` : one;
}

/** The ACP kind of a tool, so editors pick the right icon. */
export function toolKind(tool: string): ToolKind {
  switch (tool) {
    case 'read':
    case 'list':
      return 'read';
    case 'glob':
    case 'grep':
      return 'search';
    case 'write':
    case 'edit':
      return 'edit';
    case 'bash':
      return 'execute';
    case 'webfetch':
      return 'fetch';
    case 'task':
      return 'think';
    default:
      return 'other';
  }
}

/** The absolute file a call is about (a `path`/`file_path` argument), for the editor to follow. */
export function locationOf(input: unknown, location: string): string | undefined {
  const argument = primaryArgumentOf(input);
  if (!argument || (argument.key !== 'path' && argument.key !== 'file_path')) return undefined;
  return path.resolve(location, argument.value);
}

function parseInput(text: string): unknown {
  try {
    return text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    return text;
  }
}
