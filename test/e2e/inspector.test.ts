import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { PROJECT_ROOT, spawnLoom } from '../fixtures/torture.js';
import { runLoom } from './loom.js';
import { onCleanup, tempDir } from '../helpers.js';

/** Debian's Chromium (.ci/run installs it); playwright-core drives it and never downloads a browser. */
const CHROMIUM = process.env.LOOM_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots kept for people to look at (git-ignored). */
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');
/** Longest wait for something to show up in the page (a real server, a real model stream, SSE). */
const UI_TIMEOUT_MS = 15_000;

/** The model writes a file (`write` asks by default), then answers. */
const SCRIPT: ScriptedTurn[] = [
  { text: 'I will write the file.', toolCalls: [{ name: 'write', arguments: { path: 'hello.txt', content: 'hello from the inspector\n' } }] },
  { text: 'Done: hello.txt is written.' },
];

/** A real `loom serve` against the scripted model; resolves with the inspector URL it printed. */
async function serve(script: ScriptedTurn[] = SCRIPT) {
  const model = await startScriptedOpenAIServer({ script });
  onCleanup(() => void model.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  const p = spawnLoom(['serve', '--port', '0'], { LOOM_HOME: home, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: '' });
  onCleanup(() => void p.kill());
  const m = await p.stderrUntil(/inspector at (http:\/\/\S+)\/inspector#token=(\S+)/);
  if (!m) throw new Error(`loom serve exited before printing the inspector URL:\n${(await p.done).stderr}`);
  const base = m[1]!;
  const token = decodeURIComponent(m[2]!);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  };
  return { base, token, inspectorUrl: `${base}/inspector#token=${encodeURIComponent(token)}`, dir, home, call, model };
}

async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's package (apt-get install chromium) or set LOOM_CHROMIUM`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** Keeps a full-page screenshot in test-artifacts/ and prints its path in the test output. */
async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`inspector screenshot: ${path}`);
}

/** The state highlighted in the session's statechart. */
const highlighted = (page: Page, scope = '#chart') => page.locator(`${scope} svg g.state.active`).getAttribute('data-state');

describe('inspector page (loom serve + headless Chromium)', () => {
  it('inspector - a session with a permission ask is answered from the page; the state and the timeline follow live', async () => {
    const server = await serve();
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1500, height: 1300 } });
      page.setDefaultTimeout(UI_TIMEOUT_MS);
      const requests: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('pageerror', (e) => problems.push(e.message));

      await page.goto(server.inspectorUrl);
      await page.locator('#connection[data-status="live"]').waitFor();
      // The token left the address bar once it was traded for the cookie.
      expect(page.url()).toBe(`${server.base}/inspector`);

      // A session created through the API shows up in the open page (global SSE), and opens on click.
      const created = await server.call('POST', '/sessions', { location: server.dir, model: 'openai/test', text: 'write hello.txt please', budget: { session: { tokens: 1_000_000 } } });
      expect(created.status).toBe(201);
      const id: string = created.body.session.sessionId;
      await page.locator(`#sessions li[data-session="${id}"] button`).click();

      // The ask arrives: the session waits in awaitingTools, its tool-call child in awaitingPermission.
      const ask = page.locator('#asks li[data-ask][data-tool="write"]');
      await ask.waitFor();
      await expect.poll(() => highlighted(page), { timeout: UI_TIMEOUT_MS }).toBe('awaitingTools');
      const child = page.locator('#children li[data-kind="toolCall"]');
      expect(await child.getAttribute('data-state')).toBe('awaitingPermission');
      expect(await highlighted(page, '#children li[data-kind="toolCall"]')).toBe('awaitingPermission');
      expect(await page.locator('#state-name').textContent()).toBe('awaitingTools');
      await page.locator('#timeline li[data-type="permission.asked"]').waitFor();
      expect(existsSync(join(server.dir, 'hello.txt'))).toBe(false);
      await screenshot(page, 'inspector-ask.png');

      // Answer "once" in the page.
      await ask.locator('button[data-reply="once"]').click();

      for (const type of ['permission.replied', 'tool.settled', 'activity.settled']) {
        await page.locator(`#timeline li[data-type="${type}"]`).first().waitFor();
      }
      await expect.poll(() => highlighted(page), { timeout: UI_TIMEOUT_MS }).toBe('idle');
      await page.locator('#asks li[data-ask]').waitFor({ state: 'detached' });
      expect(await page.locator('#children li[data-child]').count()).toBe(0);
      expect(readFileSync(join(server.dir, 'hello.txt'), 'utf8')).toBe('hello from the inspector\n');
      const replied = JSON.parse((await page.locator('#timeline li[data-type="permission.replied"] pre').textContent())!);
      expect(replied.data).toMatchObject({ reply: 'once' });
      const settled = JSON.parse((await page.locator('#timeline li[data-type="activity.settled"] pre').textContent())!);
      expect(settled.data.status).toBe('completed');
      expect(await page.locator('#usage dd[data-usage="turns"]').textContent()).toBe('2');
      // Usage against the budget in force; no price is known for openai/test, so the cost is unknown, not $0.
      expect(await page.locator('#usage dd[data-usage="cost"]').textContent()).toBe('unknown (no price)');
      const tokens = Number(await page.locator('#usage dd[data-usage="input tokens"]').textContent()) + Number(await page.locator('#usage dd[data-usage="output tokens"]').textContent());
      expect(tokens).toBeGreaterThan(0);
      expect(await page.locator('#usage dd[data-usage="session budget"]').textContent()).toBe(`${tokens} / 1000000 tokens (1000000 tokens)`);

      // The timeline filters by type prefix.
      await page.locator('#filter').fill('permission.');
      const visible = await page.locator('#timeline li:visible').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.type));
      expect(visible).toEqual(['permission.asked', 'permission.replied']);
      await page.locator('#filter').fill('tool. activity.');
      const both = await page.locator('#timeline li:visible').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.type));
      expect(new Set(both)).toEqual(new Set(['tool.called', 'tool.started', 'tool.settled', 'activity.opened', 'activity.settled']));
      await page.locator('#filter').fill('');

      await screenshot(page, 'inspector-done.png');

      // Everything the page loaded came from the server itself (no CDN), and nothing threw.
      expect(requests.filter((u) => !u.startsWith(server.base) && !u.startsWith('data:'))).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);

  it('inspector - a session is created and driven from the page: a rejected ask with a message, then a follow-up input', async () => {
    const server = await serve([
      { toolCalls: [{ name: 'write', arguments: { path: 'secret.txt', content: 'no\n' } }] },
      { text: 'Understood, I will not write it.' },
      { text: 'Second answer.' },
    ]);
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
      page.setDefaultTimeout(UI_TIMEOUT_MS);
      await page.goto(server.inspectorUrl);
      await page.locator('#connection[data-status="live"]').waitFor();

      await page.locator('.new-session summary').click();
      await page.locator('#new-session input[name="location"]').fill(server.dir);
      await page.locator('#new-session input[name="model"]').fill('openai/test');
      await page.locator('#new-session textarea[name="text"]').fill('write secret.txt');
      await page.locator('#new-session button[type="submit"]').click();
      await page.locator('#sessions li.selected[data-session]').waitFor();

      const ask = page.locator('#asks li[data-ask][data-tool="write"]');
      await ask.locator('input').fill('not that file');
      await ask.locator('button[data-reply="reject"]').click();
      await page.locator('#timeline li[data-type="activity.settled"]').waitFor();
      const settledCall = JSON.parse((await page.locator('#timeline li[data-type="tool.settled"] pre').textContent())!);
      expect(settledCall.data.status).toBe('denied');
      expect(settledCall.data.output).toContain('not that file');
      expect(existsSync(join(server.dir, 'secret.txt'))).toBe(false);
      await expect.poll(() => highlighted(page), { timeout: UI_TIMEOUT_MS }).toBe('idle');

      await page.locator('#input-form textarea').fill('and now?');
      await page.locator('#input-form button[type="submit"]').click();
      await expect.poll(() => page.locator('#timeline li[data-type="activity.settled"]').count(), { timeout: UI_TIMEOUT_MS }).toBe(2);
      const inputs = await page.locator('#timeline li[data-type="input.admitted"] pre').allTextContents();
      expect(inputs.map((t) => JSON.parse(t).data.text)).toEqual(['write secret.txt', 'and now?']);
      expect(server.model.requests).toHaveLength(3);
      await expect.poll(() => page.locator('#usage dd[data-usage="activities"]').textContent(), { timeout: UI_TIMEOUT_MS }).toBe('2');
    } finally {
      await browser.close();
    }
  }, 90_000);

  it('inspector - the System panel lists recent system events and shows a model added by another process live', async () => {
    const server = await serve();
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      page.setDefaultTimeout(UI_TIMEOUT_MS);
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(server.inspectorUrl);
      await page.locator('#connection[data-status="live"]').waitFor();
      // History: the server loaded the openai provider (OPENAI_BASE_URL) before or while the page opened.
      await page.locator('#system li[data-type="provider.loaded"]').first().waitFor();

      // Another process registers a model; the open page shows it without a reload.
      const added = await runLoom(['models', 'add', 'groq/llama-3.3-70b', '--context', '128k', '--input-cost', '0.59', '--output-cost', '0.79'], { LOOM_HOME: server.home });
      expect(added.code, added.stderr).toBe(0);
      const row = page.locator('#system li[data-type="model.added"]', { hasText: 'groq/llama-3.3-70b' });
      await row.waitFor();
      expect(await row.locator('.what').textContent()).toBe('groq/llama-3.3-70b (cli)');
      // Newest first: the new row heads the list.
      expect(await page.locator('#system li').first().getAttribute('data-type')).toBe('model.added');

      const removed = await runLoom(['models', 'rm', 'groq/llama-3.3-70b'], { LOOM_HOME: server.home });
      expect(removed.code, removed.stderr).toBe(0);
      await page.locator('#system li[data-type="model.removed"]', { hasText: 'groq/llama-3.3-70b' }).waitFor();
      await screenshot(page, 'inspector-system.png');
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);

  it('inspector - without the token the page asks for it, and a wrong one is refused', async () => {
    const server = await serve();
    const browser = await launch();
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(UI_TIMEOUT_MS);
      const response = await page.goto(`${server.base}/inspector`);
      expect(response!.status()).toBe(200);
      expect(response!.headers()['content-security-policy']).toContain("script-src 'self'");
      await page.locator('#signin').waitFor();
      expect(await page.locator('#main').isHidden()).toBe(true);

      await page.locator('#signin-token').fill('not-the-token-at-all');
      await page.locator('#signin-form button').click();
      await expect.poll(() => page.locator('#notice').textContent()).toContain('wrong token');
      expect(await page.locator('#main').isHidden()).toBe(true);

      await page.locator('#signin-token').fill(server.token);
      await page.locator('#signin-form button').click();
      await page.locator('#connection[data-status="live"]').waitFor();
      expect(await page.locator('#signin').isHidden()).toBe(true);
      // The cookie is HttpOnly: the page's script cannot read the token back.
      expect(await page.evaluate(() => document.cookie)).toBe('');
    } finally {
      await browser.close();
    }
  }, 60_000);
});
