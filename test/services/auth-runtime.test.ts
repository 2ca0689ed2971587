import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createAuthService } from '../../services/auth.js';
import { openLoomRuntime } from '../../services/runtime.js';
import { onCleanup, tempDir } from '../helpers.js';

const SECRET = 'sk-loom-planted-RUNTIME-a41c';

describe('runtime - the auth service', () => {
  it('runtime - changes to the credentials file become auth.updated system events (provider and change, no secret), hand edits included', async () => {
    const home = tempDir('loom-auth-rt-');
    const rt = openLoomRuntime({ home, env: {}, processName: 'test' });
    onCleanup(() => rt.close());
    // A change made through the runtime's service (as a refresh or a plugin would) is recorded at once.
    await rt.auth.set('openai', { type: 'api', key: SECRET });
    // A hand edit is noticed by the watcher, with no request needed.
    const path = join(home, 'auth.json');
    const file = JSON.parse(readFileSync(path, 'utf8')) as { credentials: Record<string, unknown> };
    file.credentials.gw = { type: 'headers', headers: { 'X-Gateway-Key': `gw-${SECRET}` } };
    writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
    await vi.waitFor(() => expect(rt.store.readSystem().filter((e) => e.type === 'auth.updated').map((e) => e.data)).toHaveLength(2), { timeout: 5_000 });
    const events = rt.store.readSystem().filter((e) => e.type === 'auth.updated');
    expect(events.map((e) => e.data)).toEqual([
      { provider: 'openai', change: 'set', origin: 'loom' },
      { provider: 'gw', change: 'set', origin: 'edit' },
    ]);
    expect(JSON.stringify(events)).not.toContain(SECRET);
  });

  it('runtime - a write by another Loom process is read without being recorded twice', async () => {
    const home = tempDir('loom-auth-rt-');
    const rt = openLoomRuntime({ home, env: {}, processName: 'test' });
    onCleanup(() => rt.close());
    await createAuthService({ home, env: {} }).set('anthropic', { type: 'api', key: SECRET }); // as `loom auth set` (which records its own event)
    await vi.waitFor(() => expect(rt.auth.has('anthropic')).toBe(true), { timeout: 5_000 });
    expect(rt.store.readSystem().filter((e) => e.type === 'auth.updated')).toEqual([]);
  });
});
