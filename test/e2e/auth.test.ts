import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../store/index.js';
import { firstUserMessage } from '../fixtures/scripted-routes.js';
import { startScriptedOpenAIServer, type RecordedRequest, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { LOOM_BIN, spawnLoom, type LoomResult } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';

/** Every output of every loom process this file ran, searched for secrets at the end of each test. */
let outputs: string[] = [];

function loom(args: string[], env: NodeJS.ProcessEnv): Promise<LoomResult> {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return p.done.then((r) => {
    outputs.push(r.stdout, r.stderr);
    return r;
  });
}

/** A loom process whose stdin is `input` (a pipe, so not a terminal). */
function loomWithInput(args: string[], env: NodeJS.ProcessEnv, input: string): Promise<LoomResult> {
  const child = spawn(process.execPath, [LOOM_BIN, ...args], { env: { ...process.env, LOOM_FAILPOINT: '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  onCleanup(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.end(input);
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      outputs.push(stdout, stderr);
      resolve({ code, signal, stdout, stderr, ms: 0 });
    }),
  );
}

/** Every file under `dir` (recursively) but the ones `skip` names, relative path → bytes. */
function filesUnder(dir: string, skip: (relativePath: string) => boolean): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && !skip(relative(dir, path))) files.set(relative(dir, path), readFileSync(path));
    }
  };
  walk(dir);
  return files;
}

/** The places a secret was found: files (by path) and outputs (by index). Each secret is searched whole and by its distinctive middle. */
function leaks(secrets: string[], home: string): string[] {
  const found: string[] = [];
  const needles = secrets.flatMap((s) => [s, s.slice(4, -4)]);
  for (const [path, bytes] of filesUnder(home, (p) => p === 'auth.json')) {
    for (const needle of needles) if (bytes.includes(needle)) found.push(`${path} holds ${needle}`);
  }
  outputs.forEach((text, i) => {
    for (const needle of needles) if (text.includes(needle)) found.push(`output #${i} holds ${needle}: ${text.slice(0, 300)}`);
  });
  return found;
}

const planted = (label: string) => `sk-${label}-PLANTED-${randomBytes(12).toString('hex')}`;

/** An OpenAI-compatible server: "please fail" gets a 401 whose body echoes the Authorization header (as some gateways do). */
async function echoingOpenAI() {
  const server = await startScriptedOpenAIServer({
    respond: (request: RecordedRequest): ScriptedTurn =>
      firstUserMessage(request.body) === 'please fail'
        ? {
            status: 401,
            errorBody: JSON.stringify({ error: { message: `Incorrect API key provided: ${String(request.headers.authorization)}`, type: 'invalid_request_error' } }),
          }
        : { text: 'hello back' },
  });
  onCleanup(() => void server.close());
  return server;
}

/** A Messages server answering every request 401 with the x-api-key it got in the body. */
async function echoingAnthropic(): Promise<{ url: string; keys: string[] }> {
  const keys: string[] = [];
  const server = createServer((req, res) => {
    keys.push(String(req.headers['x-api-key']));
    req.resume();
    req.on('end', () => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: `invalid x-api-key: ${String(req.headers['x-api-key'])}` } }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => void server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, keys };
}

describe('loom auth (real processes)', () => {
  it('no planted secret (environment or file) reaches $LOOM_HOME outside auth.json, the database, --json output, export or any stdout/stderr', async () => {
    outputs = [];
    const envSecret = planted('ENV');
    const fileSecret = planted('FILE');
    const antSecret = planted('ANT');
    const openai = await echoingOpenAI();
    const anthropic = await echoingAnthropic();
    const home = tempDir('loom-auth-e2e-home-');
    const dir = tempDir('loom-auth-e2e-dir-');
    const base = { LOOM_HOME: home, OPENAI_BASE_URL: openai.url, ANTHROPIC_BASE_URL: anthropic.url, OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '' };

    // 1. The key in the environment: a good turn, then a 401 that echoes it (plain and --json).
    const withEnv = { ...base, OPENAI_API_KEY: envSecret };
    expect((await loom(['run', '--dir', dir, '--json', 'hello'], withEnv)).code).toBe(0);
    const refused = await loom(['run', '--dir', dir, 'please fail'], withEnv);
    expect(refused.code).toBe(1);
    expect(refused.stderr + refused.stdout).toMatch(/refused the credentials \(HTTP 401\).*Incorrect API key provided: Bearer \[redacted\]/);
    expect((await loom(['run', '--dir', dir, '--json', 'please fail'], withEnv)).code).toBe(1);

    // 2. The key in the file (set through stdin), the environment empty.
    const set = await loomWithInput(['auth', 'set', 'openai'], base, `${fileSecret}\n`);
    expect(set.code).toBe(0);
    expect((await loom(['run', '--dir', dir, 'hello'], base)).code).toBe(0);
    expect((await loom(['run', '--dir', dir, '--json', 'please fail'], base)).code).toBe(1);
    expect((await loomWithInput(['auth', 'set', 'anthropic', '--json'], base, antSecret)).code).toBe(0);
    const ant = await loom(['run', '--dir', dir, '--model', 'anthropic/claude-test', 'hello'], base);
    expect(ant.code).toBe(1);
    expect(ant.stderr + ant.stdout).toContain('invalid x-api-key: [redacted]');

    // The secrets really went out (and came back in the error bodies), so finding none below means something.
    expect(openai.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${envSecret}`, `Bearer ${envSecret}`, `Bearer ${envSecret}`, `Bearer ${fileSecret}`, `Bearer ${fileSecret}`]);
    expect(anthropic.keys).toEqual([antSecret]);

    // 3. Everything that shows sessions, events and credentials.
    expect((await loom(['auth', 'ls'], withEnv)).code).toBe(0);
    expect((await loom(['auth', 'ls', '--json'], base)).code).toBe(0);
    const sessions = (await loom(['session', 'ls', '--json'], base)).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { sessionId: string }).sessionId);
    expect(sessions).toHaveLength(6);
    mkdirSync(join(home, 'exports'));
    for (const id of sessions) {
      for (const args of [['tail', id, '--json'], ['tail', id], ['inspect', id, '--json'], ['inspect', id], ['session', 'show', id, '--json'], ['session', 'export', id]]) {
        expect((await loom(args, base)).code).toBe(0);
      }
      expect((await loom(['session', 'export', id, '--out', join(home, 'exports', `${id}.ndjson`)], base)).code).toBe(0);
    }

    // 4. The search: every file under $LOOM_HOME but auth.json (the database and its WAL included) and every output.
    expect(leaks([envSecret, fileSecret, antSecret], home)).toEqual([]);
    const authFile = readFileSync(join(home, 'auth.json'), 'utf8');
    expect(authFile).toContain(fileSecret); // planted where it belongs, so the search above could have found it
    expect(authFile).not.toContain(envSecret); // a key given by the environment is never written
    expect(statSync(join(home, 'auth.json')).mode & 0o777).toBe(0o600);

    // The two `auth set`s were recorded, without their secrets.
    const store = Store.open(join(home, 'loom.db'));
    try {
      expect(store.readSystem().filter((e) => e.type === 'auth.updated').map((e) => e.data)).toEqual([
        { provider: 'openai', change: 'set', origin: 'loom' },
        { provider: 'anthropic', change: 'set', origin: 'loom' },
      ]);
    } finally {
      store.close();
    }
  }, 180_000);

  it('loom auth ls - shows type, source and a safe description; the environment overrides the file', async () => {
    outputs = [];
    const home = tempDir('loom-auth-e2e-');
    const secret = planted('LS');
    expect((await loomWithInput(['auth', 'set', 'openai'], { LOOM_HOME: home, OPENAI_API_KEY: '' }, secret)).code).toBe(0);
    const fromFile = await loom(['auth', 'ls', '--json'], { LOOM_HOME: home, OPENAI_API_KEY: '' });
    expect(JSON.parse(fromFile.stdout)).toEqual({ provider: 'openai', type: 'api', source: 'file', description: `api key …${secret.slice(-4)}` });
    const env = { LOOM_HOME: home, OPENAI_API_KEY: 'sk-env-override-1234', LOOM_AUTH_MY_GATEWAY: '{"type":"basic","username":"me","password":"pw-secret-99"}' };
    const overridden = await loom(['auth', 'ls', '--json'], env);
    expect(overridden.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { provider: 'my-gateway', type: 'basic', source: 'env', variable: 'LOOM_AUTH_MY_GATEWAY', description: 'basic me:…' },
      { provider: 'openai', type: 'api', source: 'env', variable: 'OPENAI_API_KEY', description: 'api key …1234', overridesFile: true },
    ]);
    const table = await loom(['auth', 'ls'], env);
    expect(table.stdout).toMatch(/openai\s+api\s+env OPENAI_API_KEY\s+api key …1234 \(overrides the file's entry\)/);
    expect(leaks([secret, 'pw-secret-99'], home)).toEqual([]);
  });

  it('loom auth set - refuses --key (argv is visible in ps), an empty stdin and a bad credential, storing nothing', async () => {
    outputs = [];
    const home = tempDir('loom-auth-e2e-');
    const env = { LOOM_HOME: home };
    const key = await loom(['auth', 'set', 'openai', '--key', 'sk-on-the-command-line'], env);
    expect(key.code).toBe(2);
    expect(key.stderr).toMatch(/--key is refused: a secret on the command line is visible to other users \(ps\)/);
    const empty = await loom(['auth', 'set', 'openai'], env); // stdin is /dev/null
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('no secret given');
    const header = await loomWithInput(['auth', 'set', 'gw', '--type', 'headers'], env, 'X-Key gw-secret-value\n');
    expect(header.code).toBe(2);
    expect(header.stderr).toContain('headers: line 1 is not "Name: value"');
    expect(header.stderr).not.toContain('gw-secret-value');
    const basic = await loomWithInput(['auth', 'set', 'proxy', '--type', 'basic'], env, 'pw-1234');
    expect(basic.code).toBe(2);
    expect(basic.stderr).toContain('--type basic needs --username');
    expect(existsSync(join(home, 'auth.json'))).toBe(false);
  });

  it('loom auth set - basic, headers and oauth credentials from stdin; rm removes one', async () => {
    outputs = [];
    const home = tempDir('loom-auth-e2e-');
    const env = { LOOM_HOME: home };
    expect((await loomWithInput(['auth', 'set', 'proxy', '--type', 'basic', '--username', 'me'], env, 'pw-secret-1234\n')).code).toBe(0);
    expect((await loomWithInput(['auth', 'set', 'gw', '--type', 'headers'], env, 'X-Gateway-Key: gw-secret-value\nX-Org: 7\n')).code).toBe(0);
    expect((await loomWithInput(['auth', 'set', 'sso', '--type', 'oauth', '--expires-at', '2030-01-01T00:00:00Z'], env, 'oauth-access-secret-1')).code).toBe(0);
    expect((await loomWithInput(['auth', 'set', 'sso2'], env, '{"type":"oauth","access":"oauth-access-secret-2","refresh":"oauth-refresh-secret-2"}')).code).toBe(0);
    const file = JSON.parse(readFileSync(join(home, 'auth.json'), 'utf8')) as { credentials: Record<string, unknown> };
    expect(file.credentials).toEqual({
      proxy: { type: 'basic', username: 'me', password: 'pw-secret-1234' },
      gw: { type: 'headers', headers: { 'X-Gateway-Key': 'gw-secret-value', 'X-Org': '7' } },
      sso: { type: 'oauth', access: 'oauth-access-secret-1', expiresAt: Date.parse('2030-01-01T00:00:00Z') },
      sso2: { type: 'oauth', access: 'oauth-access-secret-2', refresh: 'oauth-refresh-secret-2' },
    });
    const rm = await loom(['auth', 'rm', 'gw', '--json'], env);
    expect(rm.code).toBe(0);
    expect(JSON.parse(rm.stdout)).toMatchObject({ provider: 'gw', removed: true });
    const again = await loom(['auth', 'rm', 'gw'], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('holds no credential for provider "gw"');
    expect(leaks(['pw-secret-1234', 'gw-secret-value', 'oauth-access-secret-1', 'oauth-refresh-secret-2'], home)).toEqual([]);
  });

  it('a credentials file other users can read is refused by ls and run (exit 2, naming the chmod to run)', async () => {
    outputs = [];
    const home = tempDir('loom-auth-e2e-');
    const dir = tempDir('loom-auth-e2e-dir-');
    const env = { LOOM_HOME: home, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' };
    expect((await loomWithInput(['auth', 'set', 'openai'], env, 'sk-mode-test-1234')).code).toBe(0);
    chmodSync(join(home, 'auth.json'), 0o640);
    const ls = await loom(['auth', 'ls'], env);
    expect(ls.code).toBe(2);
    expect(ls.stderr).toContain(`mode 0640`);
    expect(ls.stderr).toContain(`chmod 600 ${join(home, 'auth.json')}`);
    const run = await loom(['run', '--dir', dir, 'hello'], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('chmod 600');
  });

  it('two loom auth set processes at once: both credentials are stored', async () => {
    outputs = [];
    const home = tempDir('loom-auth-e2e-');
    const env = { LOOM_HOME: home };
    const providers = ['p-a', 'p-b', 'p-c', 'p-d'];
    const results = await Promise.all(providers.map((p) => loomWithInput(['auth', 'set', p], env, `key-${p}-0123456789`)));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    const ls = await loom(['auth', 'ls', '--json'], env);
    expect(ls.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { provider: string }).provider)).toEqual(providers);
    expect(readdirSync(home).filter((name) => name.startsWith('.auth') || name.endsWith('.lock'))).toEqual([]);
  });
});
