import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startScriptedOpenAIServer, type ScriptedTurn } from '../fixtures/scripted-openai-server.js';
import { LOOM_BIN, spawnLoom } from '../fixtures/torture.js';
import { onCleanup, tempDir } from '../helpers.js';

const ESC = '\x1b';
/** No colour from the environment the tests run in. */
const plainEnv = { NO_COLOR: '', FORCE_COLOR: '', TERM: 'xterm-256color' };

async function loom(args: string[], env: NodeJS.ProcessEnv = {}) {
  const p = spawnLoom(args, { ...plainEnv, ...env });
  onCleanup(() => void p.kill());
  return p.done;
}

async function setup(script: ScriptedTurn[] = []) {
  const server = await startScriptedOpenAIServer({ script });
  onCleanup(() => void server.close());
  const home = tempDir('loom-e2e-home-');
  const dir = tempDir('loom-e2e-dir-');
  return { server, home, dir, env: { LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: '' } };
}

/** The subcommand names listed under "Commands:" in a help text. */
function commandsIn(help: string): string[] {
  const section = help.split(/\nCommands:\n/)[1] ?? '';
  return section
    .split('\n')
    .map((l) => /^ {2}([a-z][a-z-]*)\b/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && n !== 'help');
}

/** Every command path, found by walking `--help` from the top (so a new command is covered too). */
async function allCommands(): Promise<string[][]> {
  const out: string[][] = [];
  const walk = async (path: string[]) => {
    const r = await loom([...path, '--help']);
    for (const name of commandsIn(r.stdout)) {
      out.push([...path, name]);
      await walk([...path, name]);
    }
  };
  await walk([]);
  return out;
}

/** Runs `command` under a pseudo-terminal (util-linux `script`), returning everything it printed. */
function onTty(command: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const quoted = command.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve) => {
    const child = spawn('script', ['-qefc', quoted, '/dev/null'], { env: { ...process.env, ...plainEnv, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    onCleanup(() => void child.kill('SIGKILL'));
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('close', () => resolve(text));
  });
}
const hasScript = spawnSync('script', ['--version']).status === 0;

describe('loom CLI completeness (real processes)', () => {
  it('every command has --help with a description and a description for every option, exit 0', async () => {
    const commands = await allCommands();
    const names = commands.map((c) => c.join(' '));
    for (const expected of ['run', 'prompt', 'session new', 'session ls', 'session show', 'session fork', 'session rm', 'session export', 'session import', 'tail', 'inspect', 'cancel', 'recover', 'permit', 'jobs', 'jobs cancel', 'serve', 'db backup', 'db vacuum', 'db prune']) {
      expect(names).toContain(expected);
    }
    const top = await loom(['--help']);
    expect(top.stdout).toMatch(/Exit codes: 0 completed; 1 failed or abandoned; 2 usage/);
    const results = await Promise.all(commands.map(async (path) => ({ path, r: await loom([...path, '--help']) })));
    for (const { path, r } of results) {
      const label = `loom ${path.join(' ')} --help`;
      expect(r.code, label).toBe(0);
      expect(r.stdout, label).toMatch(new RegExp(`^Usage: loom ${path.join(' ')}`));
      // The description is the paragraph after the usage line.
      const description = r.stdout.split('\n\n')[1] ?? '';
      expect(description.trim().length, `${label}: no description`).toBeGreaterThan(10);
      const options = (r.stdout.split(/\nOptions:\n/)[1] ?? '').split(/\n\n/)[0]!.split('\n').filter((l) => /^ {2}-/.test(l));
      for (const line of options) expect(line, `${label}: an option without a description`).toMatch(/^ {2}-\S.*?\s{2,}\S/);
    }
  }, 120_000);

  it('commands that print data take --json', async () => {
    const dataCommands = ['run', 'prompt', 'session new', 'session ls', 'session show', 'session fork', 'session rm', 'session import', 'tail', 'inspect', 'cancel', 'recover', 'permit', 'jobs', 'jobs cancel', 'db backup', 'db vacuum', 'db prune'];
    const results = await Promise.all(dataCommands.map(async (c) => ({ c, r: await loom([...c.split(' '), '--help']) })));
    for (const { c, r } of results) expect(r.stdout, `loom ${c}`).toMatch(/\n {2}--json\s/);
  });

  it('without a terminal, output carries no ANSI escape and no progress line, whatever is printed', async () => {
    const { env, dir } = await setup([
      { toolCalls: [{ name: 'read', arguments: { path: 'missing.txt' } }], delayMs: 5 },
      { text: 'There is no such file.', hangMs: 800 }, // a wait long enough for a spinner on a TTY
    ]);
    const run = await loom(['run', '--model', 'openai/test', '--dir', dir, 'read missing.txt'], env);
    expect(run.code).toBe(0);
    const id = run.stderr.match(/session (ses_\S+)/)![1]!;
    const outputs = [run, await loom(['tail', id], env), await loom(['inspect', id], env), await loom(['session', 'ls'], env), await loom(['session', 'show', id], env), await loom(['inspect', 'nope'], env)];
    expect(outputs.at(-1)!.code).toBe(2);
    for (const r of outputs) {
      expect(r.stdout).not.toContain(ESC);
      expect(r.stderr).not.toContain(ESC);
    }
    expect(run.stderr).not.toMatch(/waiting for openai/);
  });

  it.skipIf(!hasScript)('on a terminal there is colour and a progress line while the provider is silent; NO_COLOR turns both off', async () => {
    const { env, dir } = await setup([{ text: 'answer one', hangMs: 1_500 }, { text: 'answer two', hangMs: 1_500 }]);
    const tty = await onTty([process.execPath, LOOM_BIN, 'run', '--model', 'openai/test', '--dir', dir, 'hello'], { ...env, NO_COLOR: '' });
    expect(tty).toContain('answer one');
    expect(tty).toContain(`${ESC}[`); // colour
    expect(tty).toMatch(/waiting for openai\/test \(\d+s\)/); // the progress line
    const plain = await onTty([process.execPath, LOOM_BIN, 'run', '--model', 'openai/test', '--dir', dir, 'hello again'], { ...env, NO_COLOR: '1' });
    expect(plain).toContain('answer two');
    expect(plain).not.toContain(ESC);
    expect(plain).not.toMatch(/waiting for openai/);
  }, 60_000);

  it('loom inspect prints a tree: state → child actors with their states (asks under their call) → inbox', async () => {
    const { env, dir } = await setup([{ toolCalls: [{ name: 'write', arguments: { path: 'a.txt', content: 'x' } }] }, { text: 'written' }]);
    writeFileSync(join(dir, 'keep.txt'), 'x');
    const run = await loom(['run', '--model', 'openai/test', '--dir', dir, '--permission', 'ask', 'write a.txt'], env);
    expect(run.code).toBe(5);
    const id = run.stderr.match(/session (ses_\S+)/)![1]!;
    const queued = await loom(['prompt', id, '--queue', '--permission', 'ask', 'and then this'], env);
    expect(queued.code).toBe(5); // still waiting for the decision; the input waits in the inbox
    const r = await loom(['inspect', id], env);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^session ${id}  openai/test  `));
    // Top-level branches, in order, and the last one closes the tree.
    expect(lines.filter((l) => /^[├└]─ /.test(l)).map((l) => l.slice(3).split(' ')[0])).toEqual(['state', 'activity', 'children', 'inbox', 'owner', 'grants', 'usage', 'context', 'log']);
    expect(lines.find((l) => l.startsWith('├─ state '))).toMatch(/state awaitingTools · waiting for a permission decision/);
    const children = lines.findIndex((l) => l.startsWith('├─ children (1)'));
    expect(lines[children + 1]).toMatch(/^│  └─ toolCall call_\S+ write · awaitingPermission$/);
    expect(lines[children + 2]).toMatch(/^│     └─ ask perm_\S+ write .*a\.txt/);
    const inbox = lines.findIndex((l) => l.startsWith('├─ inbox (1)'));
    expect(lines[inbox + 1]).toMatch(/^│  └─ in_\S+ queue pending "and then this"$/);
    expect(lines.find((l) => l.startsWith('└─ '))).toMatch(/^└─ log seq \d+/);
    expect(r.stdout).not.toContain(ESC);
    const json = JSON.parse((await loom(['inspect', id, '--json'], env)).stdout);
    expect(json).toMatchObject({ state: 'awaitingTools', children: [{ kind: 'toolCall', tool: 'write', state: 'awaitingPermission' }], inbox: [{ mode: 'queue', status: 'pending' }] });
  });
});
