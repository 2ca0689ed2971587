/**
 * `npm run demo`: a real Loom session on the embedded defaults (a SQLite file, the in-process
 * transport), driven through the real `loom` command and the real OpenAI-compatible adapter.
 *
 * No model API is reachable from this machine, so the model is a SCRIPTED OpenAI-compatible
 * server started here on a loopback port. Everything else is real: the session actor, the event
 * log, the tool call (`read`, confined to the demo directory), a steer admitted from a second
 * process at the next safe boundary, and a queued follow-up that runs after the activity settles.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startScriptedOpenAIServer } from '../test/fixtures/scripted-openai-server.js';

const LOOM = join(import.meta.dirname, '..', '..', 'bin', 'loom.js');

function lastUser(body: unknown): string {
  const messages = (body as { messages?: { role: string; content: string }[] }).messages ?? [];
  return [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'loom-demo-home-'));
  const project = mkdtempSync(join(tmpdir(), 'loom-demo-project-'));
  writeFileSync(join(project, 'NOTES.md'), '# Release notes\n\n- v0.1: durable sessions\n- v0.2: steering\n');

  const server = await startScriptedOpenAIServer({
    script: [
      // Turn 1: a tool call, streamed slowly so that a steer can arrive meanwhile.
      { text: 'Let me read the notes first.', toolCalls: [{ name: 'read', arguments: { path: 'NOTES.md' } }], delayMs: 150, chunkSize: 3 },
    ],
    respond: (request) => {
      const user = lastUser(request.body);
      if (/follow-up/i.test(user)) return { text: 'Follow-up: the next release should be v0.3.', delayMs: 20 };
      return { text: 'The notes list two releases, v0.1 (durable sessions) and v0.2 (steering). And yes, I saw your steer: I kept it short.', delayMs: 20 };
    },
  });

  const env = { ...process.env, LOOM_HOME: home, OPENAI_BASE_URL: server.url, OPENAI_API_KEY: 'scripted' };
  const say = (s: string) => process.stdout.write(`\x1b[36m[demo]\x1b[0m ${s}\n`);
  say(`the model is SCRIPTED: a local OpenAI-compatible server at ${server.url} (no model API is reachable here)`);
  say(`LOOM_HOME=${home}`);
  say(`project directory: ${project}`);
  say('$ loom run --model openai/scripted-model --dir <project> "Summarise the release notes"');

  const run = spawn(process.execPath, [LOOM, 'run', '--model', 'openai/scripted-model', '--dir', project, 'Summarise the release notes'], { env, stdio: ['ignore', 'inherit', 'pipe'] });
  let sessionId = '';
  const gotSession = new Promise<void>((resolve) => {
    run.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      const m = /session (ses_\S+)/.exec(chunk.toString());
      if (m && !sessionId) {
        sessionId = m[1]!;
        resolve();
      }
    });
  });
  const runExit = new Promise<number>((resolve) => run.on('exit', (code) => resolve(code ?? 1)));
  await gotSession;
  await new Promise((r) => setTimeout(r, 600));

  say(`second terminal: $ loom prompt ${sessionId} --steer "Keep it short"`);
  await cli(['prompt', sessionId, '--steer', 'Keep it short'], env);
  say(`second terminal: $ loom prompt ${sessionId} --queue "A follow-up: what comes next?"`);
  await cli(['prompt', sessionId, '--queue', 'A follow-up: what comes next?'], env);

  const code = await runExit;
  say(`loom run exited with ${code}`);
  say(`$ loom inspect ${sessionId}`);
  await cli(['inspect', sessionId], env, true);
  say(`the scripted server saw ${server.requests.length} requests; the steer travelled in request 2: ${JSON.stringify(server.requests[1] ? lastUser(server.requests[1].body) : '')}`);
  say(`try: LOOM_HOME=${home} node bin/loom.js tail ${sessionId}`);
  await server.close();
  process.exitCode = code;
}

function cli(args: string[], env: NodeJS.ProcessEnv, inherit = false): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LOOM, ...args], { env, stdio: inherit ? 'inherit' : ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
