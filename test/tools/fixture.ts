/** A session directory with a sibling "outside" directory, and the built-in tools run against it. */
import fs from 'node:fs';
import path from 'node:path';
import { createDefaultRegistry } from '../../tools/builtin/index.js';
import type { ToolRegistry } from '../../tools/registry.js';
import type { ToolContext, ToolResult } from '../../tools/types.js';
import { tempDir } from '../helpers.js';

/** What sits outside the location in every fixture; no tool may ever show or change it. */
export const OUTSIDE_SECRET = 'OUTSIDE-SECRET-7f3a\n';

export interface FileFixture {
  root: string;
  /** The session directory (a real path). */
  location: string;
  /** A sibling directory holding `secret.txt` and `sub/secret.txt`. */
  outside: string;
  registry: ToolRegistry;
  /** Writes a file under the location, creating parents. */
  put(relPath: string, content: string | Buffer): string;
  /** Runs a registered tool through the registry (validation, timeout) against the location. */
  run(tool: string, input: unknown, signal?: AbortSignal): Promise<ToolResult>;
  context(signal?: AbortSignal): ToolContext;
}

export function fileFixture(): FileFixture {
  const root = fs.realpathSync(tempDir('loom-files-'));
  const location = path.join(root, 'project');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(location);
  fs.mkdirSync(path.join(outside, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(outside, 'secret.txt'), OUTSIDE_SECRET);
  fs.writeFileSync(path.join(outside, 'sub', 'secret.txt'), OUTSIDE_SECRET);
  const registry = createDefaultRegistry();
  const context = (signal = new AbortController().signal): ToolContext => ({
    sessionId: 'ses_1',
    activityId: '',
    callId: 'call_1',
    location,
    home: root,
    signal,
    services: {},
  });
  return {
    root,
    location,
    outside,
    registry,
    put(relPath, content) {
      const file = path.join(location, relPath);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, content);
      return file;
    },
    run: (tool, input, signal) => registry.execute(tool, input, context(signal)),
    context,
  };
}

/** Every file under `dir` with its content, for "nothing outside changed" checks. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const rel = path.relative(dir, file);
    out[rel] = entry.isFile() ? fs.readFileSync(file, 'utf8') : entry.isDirectory() ? '<dir>' : '<other>';
  }
  return out;
}
