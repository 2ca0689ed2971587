import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TURN_LIMIT_DEFAULT } from '../../core/limits.js';
import { globalConfigPath, projectConfigPath, type ConfigNote } from '../../services/config.js';
import { createConfigService, type ConfigChange, type ConfigService, type ConfigServiceOptions } from '../../services/configService.js';
import { onCleanup, tempDir } from '../helpers.js';

const FAST = { debounceMs: 20, debounceMaxMs: 200, pollMs: 50 };

function start(options: Partial<ConfigServiceOptions> = {}): { service: ConfigService; home: string; location: string; changes: ConfigChange[]; next: (match: (c: ConfigChange) => boolean) => Promise<ConfigChange> } {
  const home = options.home ?? tempDir('loom-cfgsvc-home-');
  const location = tempDir('loom-cfgsvc-dir-');
  const service = createConfigService({ home, watchOptions: FAST, ...options });
  onCleanup(() => service.close());
  const changes: ConfigChange[] = [];
  const waiters = new Set<() => void>();
  service.subscribe((c) => {
    changes.push(c);
    for (const w of [...waiters]) w();
  });
  const next = (match: (c: ConfigChange) => boolean, timeoutMs = 10_000) =>
    new Promise<ConfigChange>((resolve, reject) => {
      const seen = changes.length;
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching config change; saw ${JSON.stringify(changes.map(summary))}`));
      }, timeoutMs);
      const check = () => {
        const hit = changes.slice(seen).find(match);
        if (!hit) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(hit);
      };
      waiters.add(check);
    });
  return { service, home, location, changes, next };
}

function summary(c: ConfigChange) {
  return c.type === 'updated' ? { type: c.type, location: c.location, keys: c.keys } : { type: c.type, message: c.error.message };
}

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Written beside and renamed over, as editors save.
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, text);
  fs.renameSync(temp, file);
}

describe('config service (hot reload)', () => {
  it('config service - a changed global file is applied and subscribers are told which keys changed', async () => {
    const { service, home, location, next } = start();
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 10 } }');
    expect((await service.configFor(location)).limits.turnLimit).toBe(10);
    const updated = next((c) => c.type === 'updated');
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 3 }, "permission": { "rules": [{ "tool": "read", "action": "deny" }] } }');
    const change = (await updated) as Extract<ConfigChange, { type: 'updated' }>;
    expect(change).toMatchObject({ location, source: globalConfigPath(home), keys: ['limits.turnLimit', 'permission.rules'], sources: [globalConfigPath(home)] });
    expect(change.previous.limits.turnLimit).toBe(10);
    expect(service.current(location)!.limits.turnLimit).toBe(3);
    expect((await service.configFor(location)).permission.rules).toEqual([{ tool: 'read', action: 'deny' }]);
  });

  it('config service - an invalid change is rejected with file, line and key, and the last good config stays in force', async () => {
    const { service, home, location, next } = start();
    const file = globalConfigPath(home);
    write(file, '{ "version": 2, "limits": { "turnLimit": 10 } }');
    await service.configFor(location);
    const rejected = next((c) => c.type === 'rejected');
    write(file, '{\n  "version": 2,\n  "limits": {\n    "turnLimit": 0\n  }\n}\n');
    const change = (await rejected) as Extract<ConfigChange, { type: 'rejected' }>;
    expect(change.file).toBe(file);
    expect([change.error.file, change.error.line, change.error.field]).toEqual([file, 4, 'limits.turnLimit']);
    expect(service.current(location)!.limits.turnLimit).toBe(10);
    // Fixed: applied.
    const updated = next((c) => c.type === 'updated');
    write(file, '{ "version": 2, "limits": { "turnLimit": 11 } }');
    expect(((await updated) as Extract<ConfigChange, { type: 'updated' }>).keys).toEqual(['limits.turnLimit']);
    expect(service.current(location)!.limits.turnLimit).toBe(11);
  });

  it('config service - a syntax error is rejected with its line and column', async () => {
    const { service, home, next } = start();
    write(globalConfigPath(home), '{ "version": 2 }');
    await service.configFor();
    const rejected = next((c) => c.type === 'rejected');
    write(globalConfigPath(home), '{\n  "version": 2\n  "model": "a/b"\n}');
    const { error } = (await rejected) as Extract<ConfigChange, { type: 'rejected' }>;
    expect([error.line, error.column]).toEqual([3, 3]);
    expect(service.current()!.version).toBe(2);
  });

  it('config service - a project file created after the first load (no .loom yet) is picked up', async () => {
    const { service, location, next } = start();
    expect((await service.configFor(location)).model).toBeUndefined();
    const updated = next((c) => c.type === 'updated' && c.location === location);
    write(projectConfigPath(location), '{ "version": 2, "model": "openai/late" }');
    expect(((await updated) as Extract<ConfigChange, { type: 'updated' }>).keys).toEqual(['model']);
    expect(service.current(location)!.model).toBe('openai/late');
  });

  it('config service - a removed file counts as empty (defaults again)', async () => {
    const { service, location, next } = start();
    write(projectConfigPath(location), '{ "version": 2, "limits": { "turnLimit": 4 } }');
    expect((await service.configFor(location)).limits.turnLimit).toBe(4);
    const updated = next((c) => c.type === 'updated');
    fs.rmSync(projectConfigPath(location));
    await updated;
    expect(service.current(location)!.limits.turnLimit).toBe(TURN_LIMIT_DEFAULT);
  });

  it('config service - a global change reaches each directory, except where the project file overrides it', async () => {
    const { service, home, location, changes, next } = start();
    const other = tempDir();
    write(globalConfigPath(home), '{ "version": 2, "model": "openai/a", "limits": { "turnLimit": 5 } }');
    write(projectConfigPath(other), '{ "version": 2, "model": "openai/mine" }');
    await service.configFor(location);
    await service.configFor(other);
    const here = next((c) => c.type === 'updated' && c.location === location);
    const there = next((c) => c.type === 'updated' && c.location === other);
    write(globalConfigPath(home), '{ "version": 2, "model": "openai/b", "limits": { "turnLimit": 6 } }');
    expect(((await here) as Extract<ConfigChange, { type: 'updated' }>).keys).toEqual(['model', 'limits.turnLimit']);
    expect(((await there) as Extract<ConfigChange, { type: 'updated' }>).keys).toEqual(['limits.turnLimit']);
    expect(service.current(other)!.model).toBe('openai/mine');
    expect(changes.filter((c) => c.type === 'rejected')).toEqual([]);
  });

  it('config service - a broken project file does not hold back a valid global change', async () => {
    const { service, home, location, next } = start();
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 5 } }');
    write(projectConfigPath(location), '{ "version": 2, "model": "openai/p" }');
    await service.configFor(location);
    const rejected = next((c) => c.type === 'rejected');
    write(projectConfigPath(location), '{ "version": 2, "model": "no-slash" }');
    await rejected;
    const updated = next((c) => c.type === 'updated');
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 6 } }');
    await updated;
    expect(service.current(location)).toMatchObject({ model: 'openai/p', limits: { turnLimit: 6 } });
  });

  it('config service - polls where fs.watch fails, and still applies changes', async () => {
    const fallbacks: string[] = [];
    const failing = (() => {
      throw Object.assign(new Error('inotify watch limit reached'), { code: 'ENOSPC' });
    }) as unknown as typeof fs.watch;
    const { service, home, location, next } = start({ watchOptions: { ...FAST, watch: failing }, onWatchFallback: (file) => fallbacks.push(file) });
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 10 } }');
    await service.configFor(location);
    expect(service.watchMode).toBe('poll');
    expect(fallbacks).toContain(globalConfigPath(home));
    const updated = next((c) => c.type === 'updated');
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 12 } }');
    await updated;
    expect(service.current(location)!.limits.turnLimit).toBe(12);
  });

  it('config service - with watching off, files are read once and never again', async () => {
    const { service, home, location, changes } = start({ watch: 'off' });
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 10 } }');
    await service.configFor(location);
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 12 } }');
    await service.refresh(); // an explicit refresh still reads
    expect(service.current(location)!.limits.turnLimit).toBe(12);
    expect(changes).toHaveLength(1);
    expect(service.watchMode).toBe('off');
  });

  it('config service - the first load of a broken file rejects and caches nothing; the next call tries again', async () => {
    const { service, home, location } = start();
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": -1 } }');
    await expect(service.configFor(location)).rejects.toThrow(/"limits.turnLimit"/);
    expect(service.current(location)).toBeUndefined();
    write(globalConfigPath(home), '{ "version": 2, "limits": { "turnLimit": 1 } }');
    expect((await service.configFor(location)).limits.turnLimit).toBe(1);
  });

  it('config service - tells the notes of an older file once, and a listener that throws does not stop the others', async () => {
    const notes: ConfigNote[] = [];
    const { service, home, location, next } = start({ onNotes: (n) => notes.push(n) });
    write(globalConfigPath(home), '{ "defaultModel": "openai/old" }');
    service.subscribe(() => {
      throw new Error('a broken subscriber');
    });
    await service.configFor(location);
    await service.configFor();
    expect(notes).toEqual([{ file: globalConfigPath(home), scope: 'global', from: 0, to: 2, changes: ['defaultModel → model'] }]);
    const updated = next((c) => c.type === 'updated' && c.location === location);
    write(globalConfigPath(home), '{ "defaultModel": "openai/older" }');
    await updated;
    expect(notes).toHaveLength(1);
  });

  it('config service - unsubscribe stops the calls', async () => {
    const { service, home, location, next } = start();
    let calls = 0;
    const stop = service.subscribe(() => calls++);
    write(globalConfigPath(home), '{ "version": 2, "model": "openai/a" }');
    await service.configFor(location);
    stop();
    const updated = next((c) => c.type === 'updated');
    write(globalConfigPath(home), '{ "version": 2, "model": "openai/b" }');
    await updated;
    expect(calls).toBe(0);
  });
});
