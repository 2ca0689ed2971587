import { describe, expect, it } from 'vitest';
import { promptInput } from '../../acp/agent.js';
import { locationOf, toolKind, toolTitle, UpdateMapper, type UpdateSource } from '../../acp/updates.js';
import type { AnyEnvelope } from '../../store/index.js';

let seq = 0;
const env = (type: string, data: Record<string, unknown>): AnyEnvelope =>
  ({ sessionId: 'ses_1', seq: ++seq, gseq: seq, type, version: 1, at: '2026-01-01T00:00:00.000Z', data }) as AnyEnvelope;

const inputs: Record<string, { text: string; source: string | null; attachments: never[] }> = {
  in_mine: { text: 'from the editor', source: 'acp', attachments: [] },
  in_job: { text: 'job result', source: 'job:job_1', attachments: [] },
};
const source = (mode: 'live' | 'replay'): UpdateSource => ({ mode, location: '/work/app', input: (id) => inputs[id], own: new Set(['in_mine']) });

const ids = { activityId: 'act_1', attemptId: 'att_1', partId: 'prt_1' };

describe('acp updates', () => {
  it('updates - live mode streams deltas; replay uses each part\'s final text', () => {
    const live = new UpdateMapper(source('live'));
    const replay = new UpdateMapper(source('replay'));
    const delta = env('text.delta', { ...ids, delta: 'Hel' });
    const done = env('text.done', { ...ids, text: 'Hello' });
    const thought = env('reasoning.delta', { ...ids, partId: 'prt_2', delta: 'hmm' });
    expect(live.updates(delta)).toEqual([{ sessionUpdate: 'agent_message_chunk', messageId: 'prt_1', content: { type: 'text', text: 'Hel' } }]);
    expect(live.updates(thought)).toEqual([{ sessionUpdate: 'agent_thought_chunk', messageId: 'prt_2', content: { type: 'text', text: 'hmm' } }]);
    expect(live.updates(done)).toEqual([]);
    expect(replay.updates(delta)).toEqual([]);
    expect(replay.updates(done)).toEqual([{ sessionUpdate: 'agent_message_chunk', messageId: 'prt_1', content: { type: 'text', text: 'Hello' } }]);
  });

  it('updates - the editor\'s own inputs are not echoed live; other inputs and every input on replay are user messages', () => {
    const live = new UpdateMapper(source('live'));
    const replay = new UpdateMapper(source('replay'));
    const mine = env('input.consumed', { inputId: 'in_mine', ...ids });
    const job = env('input.consumed', { inputId: 'in_job', ...ids });
    expect(live.updates(mine)).toEqual([]);
    expect(live.updates(job)).toEqual([{ sessionUpdate: 'user_message_chunk', messageId: 'in_job', content: { type: 'text', text: 'job result' } }]);
    expect(replay.updates(mine)).toEqual([{ sessionUpdate: 'user_message_chunk', messageId: 'in_mine', content: { type: 'text', text: 'from the editor' } }]);
  });

  it('updates - a tool call goes pending, in progress, then completed or failed with its output', () => {
    const m = new UpdateMapper(source('live'));
    expect(m.updates(env('tool.called', { ...ids, callId: 'call_1', providerCallId: 'p', tool: 'edit', input: '{"path":"src/a.ts","old_string":"a","new_string":"b"}' }))).toEqual([
      {
        sessionUpdate: 'tool_call',
        toolCallId: 'call_1',
        title: 'edit src/a.ts',
        kind: 'edit',
        status: 'pending',
        rawInput: { path: 'src/a.ts', old_string: 'a', new_string: 'b' },
        locations: [{ path: '/work/app/src/a.ts' }],
      },
    ]);
    expect(m.updates(env('tool.started', { callId: 'call_1' }))).toEqual([{ sessionUpdate: 'tool_call_update', toolCallId: 'call_1', status: 'in_progress' }]);
    expect(m.updates(env('tool.settled', { callId: 'call_1', status: 'denied', output: 'Permission to run edit was denied.' }))).toEqual([
      {
        sessionUpdate: 'tool_call_update',
        toolCallId: 'call_1',
        status: 'failed',
        content: [{ type: 'content', content: { type: 'text', text: 'Permission to run edit was denied.' } }],
        rawOutput: { status: 'denied', output: 'Permission to run edit was denied.' },
      },
    ]);
  });

  it('updates - a failed model request is a notice live (warning when it will be retried), nothing on replay', () => {
    const failed = env('attempt.failed', { ...ids, error: { kind: 'rate_limit', message: '429 slow down' }, retryable: true, receivedChunks: false, discardedParts: [] });
    expect(new UpdateMapper(source('live')).updates(failed)).toEqual([
      { sessionUpdate: 'notice', severity: 'warning', title: 'The model request failed; retrying', description: '429 slow down' },
    ]);
    expect(new UpdateMapper(source('replay')).updates(failed)).toEqual([]);
  });

  it('updates - titles, kinds and locations of tools', () => {
    expect(toolTitle('bash', { command: 'npm   test\n--watch' })).toBe('bash npm test --watch');
    expect(toolTitle('mcp_fx_echo', { text: 'hi' })).toBe('mcp_fx_echo');
    expect(toolTitle('read', { path: 'x'.repeat(300) })).toHaveLength(120);
    expect(['read', 'grep', 'write', 'bash', 'webfetch', 'task', 'mcp_fx_echo'].map(toolKind)).toEqual(['read', 'search', 'edit', 'execute', 'fetch', 'think', 'other']);
    expect(locationOf({ path: '/abs/file' }, '/work/app')).toBe('/abs/file');
    expect(locationOf({ command: 'ls' }, '/work/app')).toBeUndefined();
  });
});

describe('acp prompt content', () => {
  it('promptInput - text blocks join; resource links are named; embedded text resources become attachments', () => {
    const { text, attachments } = promptInput(
      [
        { type: 'text', text: 'look at this' },
        { type: 'resource_link', name: 'spec', uri: 'https://example.com/spec.md' },
        { type: 'resource', resource: { uri: 'file:///work/app/src/a.ts', mimeType: 'text/x-typescript', text: 'export {}' } },
      ],
      '/work/app',
    );
    expect(text).toBe('look at this\n[resource: spec https://example.com/spec.md]');
    expect(attachments).toEqual([{ kind: 'file', name: 'src/a.ts', mediaType: 'text/x-typescript', text: 'export {}', bytes: 9 }]);
  });

  it('promptInput - refuses images, binary resources and an empty prompt, naming why', () => {
    expect(() => promptInput([{ type: 'image', data: 'AAAA', mimeType: 'image/png' }], '/w')).toThrow(/image content is not supported/);
    expect(() => promptInput([{ type: 'resource', resource: { uri: 'file:///w/a.bin', blob: 'AAAA' } }], '/w')).toThrow(/file:\/\/\/w\/a\.bin is binary/);
    expect(() => promptInput([{ type: 'text', text: '   ' }], '/w')).toThrow(/the prompt is empty/);
  });
});
