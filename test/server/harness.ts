import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { startScriptedOpenAIServer, type RecordedRequest, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';
import { createLoomClient } from '../../sdk/index.js';
import type { ServerContext } from '../../server/app.js';
import { openServerRuntime } from '../../server/runtime.js';
import { listen } from '../../server/server.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';

/** A real `loom serve` app in this process on a free loopback port, over a temp $LOOM_HOME, with the scripted provider. */
export async function startTestServer(
  options: {
    script?: ScriptedTurn[];
    respond?: (req: RecordedRequest, i: number) => ScriptedTurn;
    sse?: Partial<ServerContext['sse']>;
    env?: NodeJS.ProcessEnv;
    /** Model catalog entries (prices) the server admits and prices turns with. */
    modelInfo?: ServerContext['modelInfo'];
  } = {},
) {
  const provider = await startScriptedOpenAIServer({ script: options.script, respond: options.respond });
  const home = tempDir('loom-serve-home-');
  const dir = tempDir('loom-serve-dir-');
  const rt = openServerRuntime({
    home,
    token: TEST_TOKEN,
    sse: options.sse,
    env: { ...process.env, OPENAI_BASE_URL: provider.url, OPENAI_API_KEY: '', ...options.env },
    modelInfo: options.modelInfo,
  });
  const running = await listen(rt, { host: '127.0.0.1', port: 0, explicitToken: true });
  onCleanup(() => {
    void running.close();
    rt.runner.drain(0).finally(() => rt.close()).catch(() => {});
    void provider.close();
  });
  const client = createLoomClient({ baseUrl: running.url, token: TEST_TOKEN });
  return { rt, running, url: running.url, token: TEST_TOKEN, client, provider, home, dir };
}

/** fetch with the token. */
export function authed(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { authorization: `Bearer ${TEST_TOKEN}`, ...(init.headers as Record<string, string>) } });
}

export interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

/**
 * A raw SSE client over loopback (eventsource-parser): opens the stream, collects frames and
 * comments, and can pause reading (a slow consumer) or be closed.
 */
export async function openSse(url: string, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${TEST_TOKEN}`, accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const frames: SseFrame[] = [];
  const comments: string[] = [];
  const waiters: (() => void)[] = [];
  const notify = () => waiters.splice(0).forEach((w) => w());
  const parser = createParser({
    onEvent: (m: EventSourceMessage) => {
      frames.push({ id: m.id, event: m.event, data: m.data });
      notify();
    },
    onComment: (c) => {
      comments.push(c);
      notify();
    },
  });
  let ended = false;
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let paused: Promise<void> | undefined;
  let resume: (() => void) | undefined;
  const pump = (async () => {
    try {
      for (;;) {
        if (paused) await paused;
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // aborted
    } finally {
      ended = true;
      notify();
    }
  })();
  onCleanup(() => ac.abort());
  return {
    res,
    frames,
    comments,
    get ended() {
      return ended;
    },
    /** Waits until `pred` holds (checked after every frame, comment or end), at most `ms`. */
    async until(pred: () => boolean, ms = 15_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`SSE condition not met in ${ms} ms (frames: ${frames.length}, ended: ${ended})`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    pause() {
      paused = new Promise<void>((r) => (resume = r));
    },
    resume() {
      const r = resume;
      paused = undefined;
      r?.();
    },
    close() {
      ac.abort();
      return pump;
    },
    envelopes() {
      return frames.map((f) => JSON.parse(f.data) as { seq: number; gseq: number; type: string; sessionId: string | null; data: any });
    },
  };
}
