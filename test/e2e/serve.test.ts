import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer } from '../fixtures/scripted-openai-server.js';
import { spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';
import { createLoomClient, type Envelope } from '../../sdk/index.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function serve(port: number, env: NodeJS.ProcessEnv) {
  const p = spawnLoom(['serve', '--port', String(port)], env);
  onCleanup(() => void p.kill());
  return p;
}

describe('loom serve (a real process driven by the SDK)', () => {
  it('serve - a session with a tool call and a permission ask answered over HTTP, followed over SSE across a server restart', async () => {
    const provider = await startScriptedOpenAIServer({
      script: [{ toolCalls: [{ name: 'write', arguments: { path: 'hello.txt', content: 'from the e2e\n' } }] }, { text: 'file written' }],
    });
    onCleanup(() => void provider.close());
    const home = tempDir('loom-e2e-serve-home-');
    const dir = tempDir('loom-e2e-serve-dir-');
    const env = { LOOM_HOME: home, OPENAI_BASE_URL: provider.url, OPENAI_API_KEY: '' };
    const port = await freePort();

    let server = serve(port, env);
    const listening = await server.stderrUntil(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    expect(listening?.[1]).toBe(`http://127.0.0.1:${port}`);
    const token = readFileSync(join(home, 'server-token'), 'utf8').trim();
    const client = createLoomClient({ baseUrl: `http://127.0.0.1:${port}`, token });
    expect((await client.health()).ok).toBe(true);

    const { session } = await client.createSession({ location: dir, text: 'write hello.txt' });
    const id = session.sessionId;
    const seen: Envelope[] = [];
    let reconnects = 0;
    const ac = new AbortController();
    const followed = (async () => {
      for await (const e of client.events({ sessionId: id, signal: ac.signal, onReconnect: () => reconnects++ })) {
        seen.push(e);
        if (e.type === 'activity.settled') return;
      }
    })();
    const waitFor = async (pred: () => boolean) => {
      for (let i = 0; !pred(); i++) {
        if (i > 600) throw new Error(`timed out; seen: ${seen.map((e) => e.type).join(' ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor(() => seen.some((e) => e.type === 'permission.asked'));
    const asked = seen.find((e) => e.type === 'permission.asked')!;

    // The ask is durable: the server drains on SIGTERM (the waiting call is a safe point) and exits 0.
    server.child.kill('SIGTERM');
    const stopped = await server.done;
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toMatch(/SIGTERM: draining[\s\S]*stopped/);

    // A new server on the same port restores the unsettled session at startup; the SDK's stream resumes by itself.
    server = serve(port, env);
    await server.stderrUntil(/listening on/);
    const state = await (async () => {
      for (let i = 0; ; i++) {
        const s = await client.getSessionState(id);
        if (s.children.some((c) => c.state === 'awaitingPermission') || i > 200) return s;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    expect(state.permissions.pending.map((p: { requestId: string }) => p.requestId)).toEqual([asked.data.requestId]);
    await client.replyPermission(id, asked.data.requestId, { reply: 'once' });
    await followed;
    ac.abort();

    expect(readFileSync(join(dir, 'hello.txt'), 'utf8')).toBe('from the e2e\n');
    expect(reconnects).toBeGreaterThanOrEqual(1);
    const seqs = seen.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // no gap, no duplicate across the restart
    expect(seen.find((e) => e.type === 'tool.settled')!.data.status).toBe('ok');
    expect(seen[seen.length - 1]!.data.status).toBe('completed');

    // The CLI goes through the same API with --server.
    const ls = spawnLoom(['--server', `http://127.0.0.1:${port}`, 'session', 'ls', '--json'], env);
    const r = await ls.done;
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n')[0]!).sessionId).toBe(id);
    const tail = await spawnLoom(['tail', id, '--server', `http://127.0.0.1:${port}`, '--json'], env).done;
    expect(tail.code).toBe(0);
    expect(tail.stdout.trim().split('\n').map((l) => JSON.parse(l).seq)).toEqual(seqs);

    const prompt = await spawnLoom(['prompt', id, 'once more', '--server', `http://127.0.0.1:${port}`], env).done;
    expect(prompt.code).toBe(0);
    expect(prompt.stdout).toContain('(script exhausted)');
    const cancel = await spawnLoom(['cancel', id, '--server', `http://127.0.0.1:${port}`], env).done;
    expect(cancel.code).toBe(2); // nothing to cancel: the server's 409 is a usage error
    expect(cancel.stderr).toMatch(/no activity to cancel/);

    server.child.kill('SIGTERM');
    expect((await server.done).code).toBe(0);
  });

  it('serve - refuses a non-loopback host without an explicit token (exit 2)', async () => {
    const home = tempDir();
    const r = await spawnLoom(['serve', '--host', '0.0.0.0', '--port', '0'], { LOOM_HOME: home, LOOM_SERVER_TOKEN: '' }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/LOOM_SERVER_TOKEN/);
  });
});
