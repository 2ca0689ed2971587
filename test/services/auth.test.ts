import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createManualClock } from '../../core/clock.js';
import { AUTH_FILE_BYTES_MAX, AUTH_REFRESH_MARGIN_MS } from '../../core/limits.js';
import {
  AuthFileError,
  AuthFilePermissionError,
  AuthLockTimeoutError,
  createAuthService,
  CredentialNotFoundError,
  CredentialRefreshError,
  InvalidCredentialError,
  type AuthChange,
  type AuthServiceOptions,
} from '../../services/auth.js';
import type { OAuthCredential } from '../../services/credentials.js';
import { DIST, onCleanup, tempDir } from '../helpers.js';

const SECRET = 'sk-loom-planted-SECRET-7f3a9c';

function service(options: Partial<AuthServiceOptions> = {}) {
  const home = options.home ?? tempDir('loom-auth-');
  const changes: AuthChange[] = [];
  const auth = createAuthService({ env: {}, ...options, home, onChange: (c) => void changes.push(c) });
  onCleanup(() => auth.close());
  return { home, auth, changes, path: join(home, 'auth.json') };
}

const fileOf = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as { revision: number; credentials: Record<string, unknown> };

describe('auth service - the credentials file', () => {
  it('set - creates auth.json with mode 0600, leaves no temp or lock file behind, and reads back', async () => {
    const { home, auth, path, changes } = service();
    await auth.set('openai', { type: 'api', key: SECRET });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(home)).toEqual(['auth.json']);
    expect(await auth.get('openai')).toEqual({ credential: { type: 'api', key: SECRET }, source: 'file' });
    expect(changes).toEqual([{ provider: 'openai', change: 'set', origin: 'loom' }]);
  });

  it('set - keeps the other providers (read, modify, write) and increments the revision', async () => {
    const { auth, path } = service();
    await auth.set('openai', { type: 'api', key: 'sk-one-111111' });
    await auth.set('anthropic', { type: 'api', key: 'sk-two-222222' });
    await auth.set('openai', { type: 'api', key: 'sk-three-333333' });
    const file = fileOf(path);
    expect(file.revision).toBe(3);
    expect(file.credentials).toEqual({ openai: { type: 'api', key: 'sk-three-333333' }, anthropic: { type: 'api', key: 'sk-two-222222' } });
  });

  it('a file other users can read is refused with the chmod to run, and is left unchanged', async () => {
    const { auth, path } = service();
    await auth.set('openai', { type: 'api', key: SECRET });
    chmodSync(path, 0o644);
    const before = readFileSync(path, 'utf8');
    expect(() => auth.has('openai')).toThrow(AuthFilePermissionError);
    expect(() => auth.list()).toThrow(new RegExp(`chmod 600 ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    await expect(auth.get('openai')).rejects.toThrow(/mode 0644/);
    await expect(auth.set('anthropic', { type: 'api', key: 'sk-other-1234' })).rejects.toThrow(AuthFilePermissionError);
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(statSync(path).mode & 0o777).toBe(0o644);
  });

  it('a file that is not JSON is refused naming the file and the line, without quoting it', () => {
    const { auth, path } = service();
    writeFileSync(path, `{\n  "version": 1,\n  "credentials": { "openai": { "type": "api", "key": "${SECRET}" } \n`, { mode: 0o600 });
    let message = '';
    try {
      auth.has('openai');
    } catch (error) {
      expect(error).toBeInstanceOf(AuthFileError);
      message = (error as Error).message;
    }
    expect(message).toContain(path);
    expect(message).toMatch(/line \d+, column \d+/);
    expect(message).not.toContain(SECRET);
  });

  it('a file of the wrong shape is refused naming the field, never the value nor a secret pasted where a name belongs', () => {
    const { auth, path } = service();
    writeFileSync(path, JSON.stringify({ version: 1, credentials: { openai: { type: 'api', kee: SECRET } } }), { mode: 0o600 });
    expect(() => auth.has('openai')).toThrow(/credentials\.openai/);
    expect(() => auth.has('openai')).not.toThrow(new RegExp(SECRET));
    writeFileSync(path, JSON.stringify({ version: 1, credentials: { openai: { type: 'api', key: 'sk-fine-1234', [SECRET]: true } } }), { mode: 0o600 });
    expect(() => auth.has('openai')).toThrow(/credentials\.openai: unknown field "…"/);
    writeFileSync(path, JSON.stringify({ version: 1, credentials: { [SECRET]: { type: 'api', key: 'sk-fine-1234' } } }), { mode: 0o600 });
    expect(() => auth.has('openai')).toThrow(/credentials\.…: provider id/);
    expect(() => auth.has('openai')).not.toThrow(new RegExp(SECRET));
  });

  it('a file larger than AUTH_FILE_BYTES_MAX or a symbolic link is refused', () => {
    const { auth, path, home } = service();
    writeFileSync(path, ' '.repeat(AUTH_FILE_BYTES_MAX + 1), { mode: 0o600 });
    expect(() => auth.has('openai')).toThrow(/larger than/);
    const other = join(home, 'elsewhere.json');
    writeFileSync(other, '{"version":1,"credentials":{}}', { mode: 0o600 });
    const linked = service();
    symlinkSync(other, linked.path);
    expect(() => linked.auth.has('openai')).toThrow(/symbolic link/);
  });

  it('a file from a newer Loom is refused, naming the version', () => {
    const { auth, path } = service();
    writeFileSync(path, JSON.stringify({ version: 2, credentials: {} }), { mode: 0o600 });
    expect(() => auth.list()).toThrow(/version 2, written by a newer Loom/);
  });

  it('remove - deletes one provider; removing one that is not there names it', async () => {
    const { auth, path, changes } = service();
    await auth.set('openai', { type: 'api', key: SECRET });
    await auth.remove('openai');
    expect(fileOf(path).credentials).toEqual({});
    await expect(auth.remove('openai')).rejects.toThrow(CredentialNotFoundError);
    await expect(auth.remove('openai')).rejects.toThrow(/no credential for provider "openai"/);
    expect(changes.map((c) => c.change)).toEqual(['set', 'removed']);
  });

  it('set - refuses a bad provider id or credential, naming the problem and never the secret', async () => {
    const { auth, path } = service();
    await expect(auth.set('OpenAI', { type: 'api', key: SECRET })).rejects.toThrow(/lowercase/);
    await expect(auth.set('openai', { type: 'api', key: 'abc' })).rejects.toThrow(/shorter than 4/);
    const broken = auth.set('gw', { type: 'headers', headers: { 'X-Key': `${SECRET}\r\nX-Injected: 1` } });
    await expect(broken).rejects.toThrow(InvalidCredentialError);
    await expect(broken).rejects.not.toThrow(new RegExp(SECRET));
    await expect(auth.set('gw', { type: 'headers', headers: { Host: 'evil.example' } })).rejects.toThrow(/may not be set/);
    expect(existsSync(path)).toBe(false);
  });

  it('a change written by another process is used by the next get, without a restart', async () => {
    const { auth, home } = service();
    const other = service({ home });
    await other.auth.set('openai', { type: 'api', key: 'sk-first-1111111' });
    expect((await auth.get('openai'))?.credential).toEqual({ type: 'api', key: 'sk-first-1111111' });
    await other.auth.set('openai', { type: 'api', key: 'sk-rotated-2222222' });
    expect((await auth.get('openai'))?.credential).toEqual({ type: 'api', key: 'sk-rotated-2222222' });
  });
});

describe('auth service - environment variables', () => {
  it('OPENAI_API_KEY overrides the file for openai and openai-responses; ls says where each comes from', async () => {
    const { home, auth } = service();
    await auth.set('openai', { type: 'api', key: 'sk-file-1111111' });
    const { auth: withEnv } = service({ home, env: { OPENAI_API_KEY: SECRET } });
    expect(await withEnv.get('openai')).toEqual({ credential: { type: 'api', key: SECRET }, source: 'env', variable: 'OPENAI_API_KEY' });
    expect((await withEnv.get('openai-responses'))?.variable).toBe('OPENAI_API_KEY');
    expect(withEnv.list()).toEqual([{ provider: 'openai', type: 'api', source: 'env', variable: 'OPENAI_API_KEY', description: 'api key …9c', overridesFile: true }].map((e) => ({ ...e, description: expect.stringMatching(/^api key …/) })));
    expect(JSON.stringify(withEnv.list())).not.toContain(SECRET);
  });

  it('LOOM_AUTH_<ID> gives any provider a key or a JSON credential, and wins over the vendor variable', async () => {
    const env = {
      LOOM_AUTH_MY_GATEWAY: JSON.stringify({ type: 'headers', headers: { 'X-Gateway-Key': SECRET } }),
      LOOM_AUTH_ANTHROPIC: 'sk-ant-from-loom-auth',
      ANTHROPIC_API_KEY: 'sk-ant-vendor-variable',
    };
    const { auth } = service({ env });
    expect(await auth.get('my-gateway')).toEqual({ credential: { type: 'headers', headers: { 'X-Gateway-Key': SECRET } }, source: 'env', variable: 'LOOM_AUTH_MY_GATEWAY' });
    expect((await auth.get('anthropic'))?.credential).toEqual({ type: 'api', key: 'sk-ant-from-loom-auth' });
    expect(auth.list().map((e) => [e.provider, e.variable])).toEqual([
      ['anthropic', 'LOOM_AUTH_ANTHROPIC'],
      ['my-gateway', 'LOOM_AUTH_MY_GATEWAY'],
    ]);
  });

  it('an invalid LOOM_AUTH_<ID> is refused naming the variable, never its value', async () => {
    const { auth } = service({ env: { LOOM_AUTH_GW: `{"type":"oauth","acess":"${SECRET}"}`, LOOM_AUTH_BROKEN: `{${SECRET}` } });
    await expect(auth.get('gw')).rejects.toThrow(/LOOM_AUTH_GW is not a valid credential/);
    await expect(auth.get('gw')).rejects.not.toThrow(new RegExp(SECRET));
    await expect(auth.get('broken')).rejects.toThrow(/LOOM_AUTH_BROKEN starts with "\{" but is not valid JSON/);
    await expect(auth.get('broken')).rejects.not.toThrow(new RegExp(SECRET));
  });

  it('a key given by an environment variable is never written to the file', async () => {
    const { auth, path } = service({ env: { OPENAI_API_KEY: SECRET, LOOM_AUTH_GW: `gw-${SECRET}` } });
    expect(await auth.get('openai')).toBeDefined();
    await auth.set('anthropic', { type: 'api', key: 'sk-ant-file-key' });
    await auth.remove('anthropic');
    await auth.set('openai', { type: 'api', key: 'sk-openai-file-key' });
    expect(readFileSync(path, 'utf8')).not.toContain(SECRET);
    expect((await auth.get('openai'))?.source).toBe('env');
  });

  it('openai-responses uses the openai credential of the file when it has none of its own', async () => {
    const { auth } = service();
    await auth.set('openai', { type: 'api', key: 'sk-openai-file' });
    expect((await auth.get('openai-responses'))?.credential).toEqual({ type: 'api', key: 'sk-openai-file' });
    await auth.set('openai-responses', { type: 'api', key: 'sk-responses-own' });
    expect((await auth.get('openai-responses'))?.credential).toEqual({ type: 'api', key: 'sk-responses-own' });
  });
});

describe('auth service - refreshing OAuth tokens (injected clock)', () => {
  const NOW = Date.UTC(2026, 10, 26, 12);

  function oauthService(expiresAt: number, options: Partial<AuthServiceOptions> = {}) {
    const clock = createManualClock(NOW);
    const s = service({ clock, ...options });
    return { ...s, clock, seed: () => s.auth.set('gw', { type: 'oauth', access: 'access-old-0001', refresh: 'refresh-old-0001', expiresAt }) };
  }

  it('a token that expires later than the margin is used without calling the refresher', async () => {
    const { auth, seed } = oauthService(NOW + AUTH_REFRESH_MARGIN_MS + 1);
    await seed();
    const refresher = vi.fn();
    auth.registerRefresher('gw', refresher);
    expect((await auth.get('gw'))?.credential).toMatchObject({ access: 'access-old-0001' });
    expect(refresher).not.toHaveBeenCalled();
  });

  it('a token within the margin is refreshed once for concurrent requests and written back to the file', async () => {
    const { auth, seed, path, changes, clock } = oauthService(NOW + AUTH_REFRESH_MARGIN_MS);
    await seed();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const refresher = vi.fn(async (current: OAuthCredential): Promise<OAuthCredential> => {
      expect(current.refresh).toBe('refresh-old-0001');
      await gate;
      return { type: 'oauth', access: 'access-new-0002', expiresAt: clock.now() + 3_600_000 };
    });
    auth.registerRefresher('gw', refresher);
    const both = Promise.all([auth.get('gw'), auth.get('gw')]);
    release();
    const [a, b] = await both;
    expect(refresher).toHaveBeenCalledTimes(1);
    expect(a?.credential).toEqual({ type: 'oauth', access: 'access-new-0002', refresh: 'refresh-old-0001', expiresAt: NOW + 3_600_000 });
    expect(b).toEqual(a);
    expect(fileOf(path).credentials.gw).toEqual(a?.credential);
    expect(changes.at(-1)).toEqual({ provider: 'gw', change: 'refreshed', origin: 'loom' });
  });

  it('a token another process already refreshed is taken from the file without refreshing again', async () => {
    const { auth, seed, home, clock } = oauthService(NOW + 1_000);
    await seed();
    const other = service({ home, clock });
    other.auth.registerRefresher('gw', async () => ({ type: 'oauth', access: 'access-by-other-0003', expiresAt: NOW + 3_600_000 }));
    await other.auth.get('gw');
    const refresher = vi.fn();
    auth.registerRefresher('gw', refresher);
    expect((await auth.get('gw'))?.credential).toMatchObject({ access: 'access-by-other-0003' });
    expect(refresher).not.toHaveBeenCalled();
  });

  it('a failed refresh names the provider and never the token, and leaves the file as it was', async () => {
    const { auth, seed, path } = oauthService(NOW - 1);
    await seed();
    const before = readFileSync(path, 'utf8');
    auth.registerRefresher('gw', async (current) => {
      throw new Error(`token endpoint said invalid_grant for ${current.refresh} (access ${current.access})`);
    });
    const failure = auth.get('gw');
    await expect(failure).rejects.toThrow(CredentialRefreshError);
    await expect(failure).rejects.toThrow(/refreshing the oauth token of provider "gw" failed: token endpoint said invalid_grant/);
    await expect(failure).rejects.not.toThrow(/refresh-old-0001|access-old-0001/);
    expect(readFileSync(path, 'utf8')).toBe(before);
  });

  it('a refresher that does not finish within the timeout fails naming the provider', async () => {
    const { auth, seed } = oauthService(NOW - 1, { refreshTimeoutMs: 20 });
    await seed();
    auth.registerRefresher('gw', () => new Promise(() => {}));
    await expect(auth.get('gw')).rejects.toThrow(/provider "gw" failed: it did not finish within 20 ms/);
  });

  it('a refresher answering something that is not an oauth credential is refused', async () => {
    const { auth, seed } = oauthService(NOW - 1);
    await seed();
    auth.registerRefresher('gw', async () => ({ type: 'oauth', access: '' }) as OAuthCredential);
    await expect(auth.get('gw')).rejects.toThrow(/provider "gw" failed: .*access token is shorter/);
  });

  it('an expired token with no refresher fails naming the provider; one still valid is used as it is', async () => {
    const { auth, seed, clock } = oauthService(NOW + 10_000);
    await seed();
    expect((await auth.get('gw'))?.credential).toMatchObject({ access: 'access-old-0001' });
    clock.advance(10_000);
    await expect(auth.get('gw')).rejects.toThrow(/the oauth token of provider "gw" expired at .* no refresher is registered/);
  });

  it('a token from the environment is refreshed in memory and never written to the file', async () => {
    const clock = createManualClock(NOW);
    const env = { LOOM_AUTH_GW: JSON.stringify({ type: 'oauth', access: 'env-access-0001', expiresAt: NOW }) };
    const { auth, path } = service({ clock, env });
    const refresher = vi.fn(async (): Promise<OAuthCredential> => ({ type: 'oauth', access: 'env-access-0002', expiresAt: NOW + 3_600_000 }));
    auth.registerRefresher('gw', refresher);
    expect((await auth.get('gw'))?.credential).toMatchObject({ access: 'env-access-0002' });
    expect((await auth.get('gw'))?.credential).toMatchObject({ access: 'env-access-0002' });
    expect(refresher).toHaveBeenCalledTimes(1);
    expect(existsSync(path)).toBe(false);
  });
});

describe('auth service - changes made by hand', () => {
  it('an edit by hand (same revision) is reported as an edit; a write by another Loom process is not', async () => {
    const { auth, path, home, changes } = service();
    await auth.set('openai', { type: 'api', key: 'sk-first-1111111' });
    const other = service({ home });
    await other.auth.set('anthropic', { type: 'api', key: 'sk-ant-2222222' });
    auth.list();
    expect(changes).toEqual([{ provider: 'openai', change: 'set', origin: 'loom' }]);
    const edited = fileOf(path);
    edited.credentials.openai = { type: 'api', key: 'sk-edited-3333333' };
    delete edited.credentials.anthropic;
    writeFileSync(path, JSON.stringify(edited), { mode: 0o600 });
    expect((await auth.get('openai'))?.credential).toEqual({ type: 'api', key: 'sk-edited-3333333' });
    expect(changes.slice(1)).toEqual([
      { provider: 'openai', change: 'set', origin: 'edit' },
      { provider: 'anthropic', change: 'removed', origin: 'edit' },
    ]);
  });

  it('watch - an edit by hand is noticed without any request, and a broken edit is reported once', async () => {
    const errors: Error[] = [];
    const { auth, path, changes } = service({ onError: (e) => void errors.push(e) });
    await auth.set('openai', { type: 'api', key: 'sk-first-1111111' });
    auth.watch();
    const edited = fileOf(path);
    edited.credentials.gw = { type: 'api', key: 'sk-gw-4444444' };
    writeFileSync(path, JSON.stringify(edited), { mode: 0o600 });
    await vi.waitFor(() => expect(changes).toContainEqual({ provider: 'gw', change: 'set', origin: 'edit' }), { timeout: 5_000 });
    writeFileSync(path, '{ "version": 1, ', { mode: 0o600 });
    await vi.waitFor(() => expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/is not valid JSON/)]), { timeout: 5_000 });
  });
});

describe('auth service - the lock', () => {
  it('a lock left by a process that died is broken', async () => {
    const { auth, path } = service();
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: dead, host: hostname(), token: 'stale' }));
    await auth.set('openai', { type: 'api', key: SECRET });
    expect(existsSync(`${path}.lock`)).toBe(false);
    expect(fileOf(path).credentials.openai).toEqual({ type: 'api', key: SECRET });
  });

  it('a lock a live process holds makes a writer wait, then fail naming the lock file', async () => {
    const { path, home } = service();
    const { auth } = service({ home, lockTimeoutMs: 100 });
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'held' }));
    const failure = auth.set('openai', { type: 'api', key: SECRET });
    await expect(failure).rejects.toThrow(AuthLockTimeoutError);
    await expect(failure).rejects.toThrow(/auth\.json\.lock/);
    expect(existsSync(path)).toBe(false);
  });

  it('two processes writing at once lose none of each other\'s credentials', async () => {
    const home = tempDir('loom-auth-race-');
    const count = 25;
    const children = ['a', 'b'].map((prefix) => {
      const child = spawn(process.execPath, [join(DIST, 'test/fixtures/auth-writer.js'), home, prefix, String(count)], { stdio: ['pipe', 'pipe', 'pipe'] });
      onCleanup(() => void child.kill('SIGKILL'));
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      return { child, done: new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr }))) };
    });
    // Both start together: each waits for this line.
    for (const { child } of children) child.stdin!.end('go\n');
    const results = await Promise.all(children.map((c) => c.done));
    expect(results).toEqual([
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
    ]);
    const file = fileOf(join(home, 'auth.json'));
    expect(Object.keys(file.credentials)).toHaveLength(2 * count);
    expect(file.revision).toBe(2 * count);
    expect(statSync(join(home, 'auth.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(home)).toEqual(['auth.json']);
  }, 60_000);
});
