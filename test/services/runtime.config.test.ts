import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { globalConfigPath, projectConfigPath } from '../../services/config.js';
import { openLoomRuntime, type LoomRuntime } from '../../services/runtime.js';
import type { AnyEnvelope } from '../../store/index.js';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { onCleanup, tempDir } from '../helpers.js';

/**
 * Hot reload end to end: a real runtime (store, config service watching real files, coordinator)
 * runs a session against the scripted OpenAI-compatible server over loopback HTTP, and the
 * config file changes while the session runs.
 */

/** A tool that waits until the test opens the gate, so the config can change mid-activity. */
function gate() {
  let release!: () => void;
  let entered!: () => void;
  const opened = new Promise<void>((r) => (release = r));
  const reached = new Promise<void>((r) => (entered = r));
  const tool = {
    name: 'gate',
    description: 'waits for the test',
    input: z.object({}),
    idempotent: true,
    timeoutMs: 20_000,
    async execute() {
      entered();
      await opened;
      return { output: 'open' };
    },
  };
  return { tool, release, reached };
}

async function setup(options: { script?: ScriptedTurn[]; respond?: (request: unknown, index: number) => ScriptedTurn; config: object }) {
  const server = await startScriptedOpenAIServer({ script: options.script ?? [], respond: options.respond });
  onCleanup(() => void server.close());
  const home = tempDir('loom-reload-home-');
  const location = tempDir('loom-reload-dir-');
  fs.writeFileSync(path.join(location, 'notes.md'), 'remember the milk\n');
  writeConfig(globalConfigPath(home), options.config);
  const rt = openLoomRuntime({ home, env: { OPENAI_BASE_URL: server.url }, processName: 'loom test', configWatch: 'watch' });
  onCleanup(() => rt.close());
  const g = gate();
  rt.tools.register(g.tool);
  const sessionId = rt.store.ids.next('ses');
  rt.store.append({ sessionId, type: 'session.created', data: { location, model: 'openai/test' } });
  await rt.configFor(location);
  return { rt, home, location, sessionId, gate: g, server };
}

function writeConfig(file: string, config: object | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.tmp`;
  fs.writeFileSync(temp, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  fs.renameSync(temp, file);
}

/** Starts the session on input `text` and returns the run (until it is quiet). */
function run(rt: LoomRuntime, sessionId: string, text: string): Promise<void> {
  rt.store.admitInput(sessionId, { mode: 'queue', text });
  if (!rt.coordinator.own(sessionId)) throw new Error('could not own the session');
  return rt.coordinator.runUntilQuiet(sessionId);
}

async function systemEvent(rt: LoomRuntime, type: string, timeoutMs = 10_000): Promise<AnyEnvelope> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    // The global scope (read by the model service) changes too: a directory's change names its location.
    const hit = rt.store.readSystem({ limit: 1_000 }).find((e) => e.type === type && (type !== 'config.updated' || (e.data as { location?: string }).location !== undefined));
    if (hit) return hit;
    if (Date.now() > until) throw new Error(`no ${type} system event; saw ${rt.store.readSystem({ limit: 1_000 }).map((e) => e.type).join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function sessionEvents(rt: LoomRuntime, sessionId: string): AnyEnvelope[] {
  rt.store.flushDeltas();
  const out: AnyEnvelope[] = [];
  for (let page = rt.store.read(sessionId); page.length > 0; page = rt.store.read(sessionId, { after: page.at(-1)!.seq })) out.push(...page);
  return out;
}

describe('runtime - config hot reload into live sessions', () => {
  it('a permission rule added while a session runs decides its next tool call, and config.updated names the key', async () => {
    const { rt, home, location, sessionId, gate } = await setup({
      script: [{ toolCalls: [{ name: 'gate', arguments: {} }] }, { toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, { text: 'done' }],
      config: { version: 2, permission: { default: 'allow' } },
    });
    const running = run(rt, sessionId, 'go');
    await gate.reached;
    writeConfig(globalConfigPath(home), { version: 2, permission: { default: 'allow', rules: [{ tool: 'read', action: 'deny' }] } });
    const updated = await systemEvent(rt, 'config.updated');
    expect(updated.data).toEqual({ source: globalConfigPath(home), keys: ['permission.rules'], location, files: [globalConfigPath(home)] });
    gate.release();
    await running;
    const settled = sessionEvents(rt, sessionId).filter((e) => e.type === 'tool.settled').map((e) => (e.data as { status: string }).status);
    expect(settled).toEqual(['ok', 'denied']);
    expect(rt.loadedConfig(location)!.permission.rules).toEqual([{ tool: 'read', action: 'deny' }]);
  });

  it('a turn limit lowered while a session runs stops the activity at the new limit (turn_limit)', async () => {
    const { rt, home, location, sessionId, gate } = await setup({
      respond: () => ({ toolCalls: [{ name: 'gate', arguments: {} }] }),
      config: { version: 2, permission: { default: 'allow' }, limits: { turnLimit: 10 } },
    });
    const running = run(rt, sessionId, 'loop');
    await gate.reached;
    // The project file lowers it (a project override, watched like the global file).
    writeConfig(projectConfigPath(location), { version: 2, limits: { turnLimit: 2 } });
    const updated = await systemEvent(rt, 'config.updated');
    expect(updated.data).toMatchObject({ source: projectConfigPath(location), keys: ['limits.turnLimit'], location });
    gate.release();
    await running;
    const settled = sessionEvents(rt, sessionId).find((e) => e.type === 'activity.settled')!;
    expect(settled.data).toMatchObject({ status: 'turn_limit', turns: 2 });
    expect(rt.coordinator.get(sessionId)!.context().turnLimit).toBe(2);
  });

  it('an invalid change is recorded as config.rejected (file, line, key) and the session keeps the last good config', async () => {
    const { rt, home, location, sessionId, gate } = await setup({
      script: [{ toolCalls: [{ name: 'gate', arguments: {} }] }, { toolCalls: [{ name: 'read', arguments: { path: 'notes.md' } }] }, { text: 'done' }],
      config: { version: 2, permission: { default: 'allow' }, limits: { turnLimit: 10 } },
    });
    const running = run(rt, sessionId, 'go');
    await gate.reached;
    const file = globalConfigPath(home);
    writeConfig(file, '{\n  "version": 2,\n  "permission": { "default": "allow", "rules": [{ "tool": "read", "action": "nope" }] },\n  "limits": { "turnLimit": 10 }\n}\n');
    const rejected = await systemEvent(rt, 'config.rejected');
    expect(rejected.data).toMatchObject({ file, line: 3, key: 'permission.rules.0.action' });
    expect((rejected.data as { message: string }).message).toContain(`${file}:3:`);
    gate.release();
    await running;
    const settled = sessionEvents(rt, sessionId).filter((e) => e.type === 'tool.settled').map((e) => (e.data as { status: string }).status);
    expect(settled).toEqual(['ok', 'ok']);
    expect(rt.loadedConfig(location)!.permission.rules).toEqual([]);
    expect(rt.store.readSystem({ limit: 1_000 }).filter((e) => e.type === 'config.updated')).toEqual([]);
  });
});
