import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../actors/coordinator.js';
import { Worker, type WorkerEvent } from '../../actors/worker.js';
import { createProviderResolver } from '../../llm/resolve.js';
import { resolveConfig } from '../../services/config.js';
import { Store } from '../../store/index.js';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';

/**
 * Workers in one process, each with its own connection to one database file (as separate
 * processes would have): they notice each other's commits through `data_version` polling.
 */
async function setup(respond: (n: number) => ScriptedTurn) {
  let n = 0;
  const server = await startScriptedOpenAIServer({ respond: () => respond(n++) });
  onCleanup(() => void server.close());
  const path = join(tempDir(), 'loom.db');
  const config = resolveConfig({ version: 2 });
  const home = tempDir();
  const tools = createDefaultRegistry();
  const client = Store.open(path); // the processes that admit inputs
  onCleanup(() => client.close());
  const location = tempDir();
  function worker(capacity = 4) {
    const store = Store.open(path);
    const lines: WorkerEvent[] = [];
    let w: Worker | undefined;
    const coordinator = new Coordinator({
      store,
      deps: () => ({ config, home, tools, resolveProvider: createProviderResolver(config, { OPENAI_BASE_URL: server.url }) }),
      onSessionFailure: (id, e) => w?.lost(id, e),
    });
    w = new Worker({ coordinator, capacity, log: (e) => lines.push(e), prepare: async () => {}, scanIntervalMs: 100 });
    onCleanup(() => {
      coordinator.shutdown();
      store.close();
    });
    return { worker: w, lines, coordinator, store };
  }
  const session = () => {
    const sessionId = client.ids.next('ses');
    client.append({ sessionId, type: 'session.created', data: { location, model: 'openai/test' } });
    return sessionId;
  };
  return { server, client, worker, session };
}

async function until(lines: WorkerEvent[], predicate: (e: WorkerEvent) => boolean, timeoutMs = 10_000): Promise<WorkerEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = lines.find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no matching worker event: ${JSON.stringify(lines)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const count = (lines: WorkerEvent[], event: WorkerEvent['event'], sessionId: string) => lines.filter((l) => l.event === event && 'sessionId' in l && l.sessionId === sessionId).length;

describe('Worker - claiming sessions', () => {
  it('releases a session once it is idle with nothing pending, and takes it again when new input arrives', async () => {
    const t = await setup(() => ({ text: 'ok' }));
    const a = t.worker();
    await a.worker.start();
    const id = t.session();
    t.client.admitInput(id, { mode: 'queue', text: 'one' });
    await until(a.lines, (e) => e.event === 'released' && e.sessionId === id);
    t.client.admitInput(id, { mode: 'queue', text: 'two' });
    await until(a.lines, () => count(a.lines, 'released', id) === 2);
    expect(count(a.lines, 'taken', id)).toBe(2);
    expect(a.lines.filter((l) => l.event === 'taken').map((l) => (l as { epoch: number }).epoch)).toEqual([1, 2]);
    expect(t.client.queries.activities(id).map((x) => x.status)).toEqual(['completed', 'completed']);
    await a.worker.drain();
  });

  it('two workers racing for many sessions: each session is taken by exactly one of them, once', async () => {
    const t = await setup(() => ({ text: 'ok', delayMs: 2, chunkSize: 1 }));
    const a = t.worker(3);
    const b = t.worker(3);
    const ids = Array.from({ length: 12 }, () => t.session());
    for (const id of ids) t.client.admitInput(id, { mode: 'queue', text: 'go' });
    await Promise.all([a.worker.start(), b.worker.start()]);
    const all = () => [...a.lines, ...b.lines];
    for (const id of ids) {
      const deadline = Date.now() + 15_000;
      while (count(all(), 'released', id) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(count(all(), 'taken', id), id).toBe(1);
    }
    expect(a.lines.some((l) => l.event === 'taken')).toBe(true);
    expect(b.lines.some((l) => l.event === 'taken')).toBe(true);
    for (const id of ids) expect(t.client.queries.activities(id).map((x) => x.status)).toEqual(['completed']);
    await Promise.all([a.worker.drain(), b.worker.drain()]);
  });

  it('holds a session parked by a cancel with input pending, and runs it when new input arrives', async () => {
    const t = await setup((n) => (n === 0 ? { text: 'x'.repeat(400), delayMs: 20, chunkSize: 2 } : { text: 'ok' }));
    const a = t.worker();
    await a.worker.start();
    const id = t.session();
    t.client.admitInput(id, { mode: 'queue', text: 'long' });
    await until(a.lines, (e) => e.event === 'taken' && e.sessionId === id);
    t.client.admitInput(id, { mode: 'queue', text: 'waits behind it' });
    const activityId = await (async () => {
      for (;;) {
        const row = t.client.queries.session(id);
        if (row?.activityId) return row.activityId;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    t.client.append({ sessionId: id, type: 'cancel.requested', data: { activityId } });
    const held = await until(a.lines, (e) => e.event === 'holding' && e.sessionId === id);
    expect(held).toMatchObject({ for: 'input' });
    expect(t.client.inputs(id, 'pending')).toHaveLength(1);
    t.client.admitInput(id, { mode: 'queue', text: 'now go' });
    await until(a.lines, (e) => e.event === 'released' && e.sessionId === id);
    expect(count(a.lines, 'taken', id)).toBe(1);
    expect(t.client.queries.activities(id).map((x) => x.status)).toEqual(['cancelled', 'completed', 'completed']);
    await a.worker.drain();
  });
});
