import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { runLoom as loom } from './loom.js';


type Message = { role: string; content: string | null };
const messagesOf = (body: unknown) => (body as { messages: Message[] }).messages.filter((m) => m.role !== 'system').map((m) => [m.role, m.content]);

describe('loom session fork (real processes)', () => {
  it('loom session fork - the fork carries the history up to SEQ and a prompt runs on it', async () => {
    const server = await startScriptedOpenAIServer({ script: [{ text: 'one' }, { text: 'two' }, { text: 'forked' }] });
    onCleanup(() => void server.close());
    const env = { LOOM_HOME: tempDir('loom-e2e-home-'), OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
    const dir = tempDir('loom-e2e-dir-');

    const first = await loom(['run', '--json', '--model', 'openai/test', '--dir', dir, 'first'], env);
    expect(first.code).toBe(0);
    const envelopes = first.stdout.trim().split('\n').map((l) => JSON.parse(l) as { sessionId: string; seq: number; type: string });
    const source = envelopes[0]!.sessionId;
    const settled = envelopes.at(-1)!;
    expect(settled.type).toBe('activity.settled');
    expect((await loom(['prompt', source, '--queue', 'second'], env)).code).toBe(0);

    // Back to the end of the first activity: "second" and its answer are not in the fork.
    const fork = await loom(['session', 'fork', source, '--at', String(settled.seq)], env);
    expect(fork.code).toBe(0);
    const forkId = fork.stdout.trim();
    expect(forkId).toMatch(/^ses_/);
    expect(forkId).not.toBe(source);
    expect(fork.stderr).toContain(`forked ${source} at seq ${settled.seq}: ${settled.seq - 1} event(s) copied`);

    const show = JSON.parse((await loom(['session', 'show', forkId, '--json'], env)).stdout) as {
      session: { parentId: string; title: string; status: string };
      conversation: { role: string }[];
    };
    expect(show.session).toMatchObject({ parentId: source, title: `fork of ${source} at ${settled.seq}`, status: 'idle' });
    expect(show.conversation.map((m) => m.role)).toEqual(['user', 'assistant']);

    const more = await loom(['prompt', forkId, '--queue', 'more'], env);
    expect(more.code).toBe(0);
    expect(more.stdout).toContain('forked');
    expect(server.requests).toHaveLength(3);
    expect(messagesOf(server.requests[2]!.body)).toEqual([
      ['user', 'first'],
      ['assistant', 'one'],
      ['user', 'more'],
    ]);
    // The source is untouched.
    const sourceShow = JSON.parse((await loom(['session', 'show', source, '--json'], env)).stdout) as { conversation: { role: string; text?: string }[] };
    expect(sourceShow.conversation.filter((m) => m.role === 'user').map((m) => m.text)).toEqual(['first', 'second']);
  });

  it('loom session fork - a SEQ outside the log exits 2 and names it; --json prints the result', async () => {
    const server = await startScriptedOpenAIServer({ script: [{ text: 'one' }] });
    onCleanup(() => void server.close());
    const env = { LOOM_HOME: tempDir('loom-e2e-home-'), OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' };
    const run = await loom(['run', '--json', '--model', 'openai/test', '--dir', tempDir('loom-e2e-dir-'), 'first'], env);
    const lines = run.stdout.trim().split('\n');
    const source = (JSON.parse(lines[0]!) as { sessionId: string }).sessionId;
    const last = lines.length;

    const tooFar = await loom(['session', 'fork', source, '--at', String(last + 1)], env);
    expect(tooFar.code).toBe(2);
    expect(tooFar.stderr).toContain(`cannot fork session ${source} at seq ${last + 1}: its log has seq 1..${last}`);
    const zero = await loom(['session', 'fork', source, '--at', '0'], env);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain(`at seq 0`);
    const notNumber = await loom(['session', 'fork', source, '--at', 'x'], env);
    expect(notNumber.code).toBe(2);
    expect(notNumber.stderr).toContain('--at x');
    const missing = await loom(['session', 'fork', source], env);
    expect(missing.code).toBe(2);

    const json = await loom(['session', 'fork', source, '--at', '3', '--json'], env);
    expect(json.code).toBe(0);
    const result = JSON.parse(json.stdout) as { sessionId: string; copied: number; abandonedActivityId: string | null };
    expect(result).toMatchObject({ sourceId: source, atSeq: 3, copied: 2, abandonedActivityId: expect.stringMatching(/^act_/) });
    const ls = (await loom(['session', 'ls', '--json'], env)).stdout.trim().split('\n').map((l) => JSON.parse(l) as { sessionId: string; status: string; lastActivityStatus: string });
    expect(ls.find((s) => s.sessionId === result.sessionId)).toMatchObject({ status: 'idle', lastActivityStatus: 'abandoned' });
  });
});
