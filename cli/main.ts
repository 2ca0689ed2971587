import { readFileSync } from 'node:fs';
import { Argument, Command, CommanderError, Option } from 'commander';
import { WORKER_CAPACITY_DEFAULT } from '../core/limits.js';
import { CREDENTIAL_TYPES } from '../services/credentials.js';
import { EXIT, UsageError } from './exit.js';
import { colorsFor } from './style.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The `loom` command line. Each action imports its implementation lazily, so `--help` and
 * argument errors never load SQLite, XState or undici. Returns the exit code (DESIGN §7).
 */
export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const set = (c: number): void => {
    code = c;
  };
  const program = new Command()
    .name('loom')
    .description('A durable runtime for AI coding-agent sessions')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .option('--server <url>', 'talk to a running loom serve at URL (session ls, prompt, tail, cancel, permit); token from LOOM_SERVER_TOKEN or $LOOM_HOME/server-token')
    .option('--nats <url>', 'carry wakes, cancels and events over the NATS server at URL (default: $LOOM_NATS_URL; unset: in-process only)')
    .hook('preAction', () => {
      const nats = program.opts().nats as string | undefined;
      if (nats !== undefined) process.env.LOOM_NATS_URL = nats;
    });
  /** The --server URL, given before or after the command name. */
  const server = (cmd: Command): string | undefined => cmd.optsWithGlobals().server as string | undefined;
  const remote = () => import('./commands/remote.js');

  const attach = () =>
    new Option('--attach <path-or-url>', 'attach a text file (inside the session directory) or an http(s) URL; repeatable').argParser(
      (value: string, previous: string[] = []) => [...previous, value],
    );
  const doubleTexting = () =>
    new Option('--double-texting <policy>', 'what a prompt with no --steer/--queue does while the session is busy: steer, queue, interrupt (cancel, then run it) or reject (default: steer)').choices([
      'steer',
      'queue',
      'interrupt',
      'reject',
    ]);
  const budgetTokens = () =>
    new Option('--budget-tokens <n>', 'token budget of the activity this input opens or joins (input + output tokens of every turn); reaching it settles the activity budget_exceeded (exit 4)');
  const budgetUsd = () =>
    new Option('--budget-usd <dollars>', 'cost budget in US dollars of the activity, priced from the model catalog (refused when the model has no price); reaching it settles the activity budget_exceeded (exit 4)');
  const agent = (what: string) =>
    new Option('--agent <name>', `agent profile ${what}: build (every tool, the default), plan (read-only: no write, edit or bash) or one defined under "agents" in config.jsonc`);
  const permission = (defaults = 'ask on a TTY, deny otherwise') =>
    new Option('--permission <mode>', `answer permission asks: allow, deny or ask (ask without a TTY leaves them pending: exit 5) (default: ${defaults})`).choices([
      'allow',
      'deny',
      'ask',
    ]);

  program
    .command('run')
    .description('create a session in DIR, admit TEXT and run the session until it is idle')
    .argument('<text...>', 'what to ask')
    .option('-m, --model <provider/model>', 'model, for example openai/gpt-4o-mini (default: config "model" or $LOOM_MODEL)')
    .option('-d, --dir <dir>', 'the directory the session works in', '.')
    .option('--json', 'print every event as one JSON envelope per line')
    .option('--detach', 'create the session and admit TEXT, then return: a `loom worker` runs it')
    .addOption(permission())
    .addOption(attach())
    .option('--detach-jobs', 'do not wait for background jobs: leave them running for the next owner')
    .addOption(doubleTexting())
    .addOption(budgetTokens())
    .addOption(budgetUsd())
    .addOption(agent('of the session (later prompts use it unless they name another)'))
    .action(async (text: string[], opts) => set(await (await import('./commands/run.js')).runCommand(text.join(' '), opts)));

  program
    .command('prompt')
    .description('admit TEXT into session ID; run it here if no live owner holds it')
    .argument('<id>', 'session id (or a unique prefix)')
    .argument('<text...>', 'the input')
    .option('--steer', 'join the current activity at its next safe boundary')
    .option('--queue', 'wait for the current activity to settle, then run (FIFO)')
    .addHelpText('after', '\nWithout --steer or --queue, a busy session applies its double-texting policy (loom run/session new --double-texting).')
    .option('--follow', 'when another process owns the session, follow its events until this input is answered')
    .option('--json', 'print events as JSON envelopes')
    .option('--client-id <id>', 'idempotency key: a second admission with the same id is ignored')
    .option('--detach', 'admit and return without running the session here: a `loom worker` (or its live owner) runs it')
    .addOption(permission())
    .addOption(attach())
    .option('--detach-jobs', 'when running the session here, do not wait for its background jobs')
    .addOption(budgetTokens())
    .addOption(budgetUsd())
    .addOption(agent('for the activity this input opens (default: the session\'s); a steer joining a running activity keeps that activity\'s'))
    .action(async (id: string, text: string[], opts, cmd: Command) => {
      const url = server(cmd);
      set(await (url ? (await remote()).remotePrompt(url, id, text.join(' '), opts) : (await import('./commands/prompt.js')).promptCommand(id, text.join(' '), opts)));
    });

  const session = program.command('session').description('create, list, show, fork, remove, export and import sessions');
  session
    .command('new')
    .description('create a session in DIR without running anything (prompt it to start); prints its id')
    .option('-m, --model <provider/model>', 'model (default: config "model" or $LOOM_MODEL)')
    .option('-d, --dir <dir>', 'the directory the session works in', '.')
    .option('--title <title>', 'a title shown by session ls')
    .addOption(doubleTexting())
    .addOption(agent('of the session'))
    .option('--json', 'print the session as one JSON object')
    .action(async (opts) => set(await (await import('./commands/sessionOps.js')).sessionNew(opts)));
  session
    .command('ls')
    .description('list sessions, newest first')
    .option('--json', 'one JSON object per line')
    .action(async (opts, cmd: Command) => {
      const url = server(cmd);
      set(await (url ? (await remote()).remoteSessionLs(url, opts) : (await import('./commands/session.js')).sessionLs(opts)));
    });
  session
    .command('show')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--json', 'print the session and its conversation as one JSON object')
    .description('show one session and its conversation')
    .action(async (id: string, opts) => set(await (await import('./commands/session.js')).sessionShow(id, opts)));
  session
    .command('fork')
    .argument('<id>', 'session id (or a unique prefix)')
    .requiredOption('--at <seq>', 'the last seq of ID to keep')
    .option('--restore-files', 'also put the files of the session directory (shared by ID and the fork) back to their state at SEQ, undoing every change recorded after it; refused, naming the files, if one changed since')
    .option('--partial', 'with --restore-files: restore what was captured and skip files whose content was not')
    .option('--json', 'print the result as one JSON object')
    .description('make a new session whose history is ID\'s up to SEQ (an activity open there is settled abandoned)')
    .action(async (id: string, opts) => set(await (await import('./commands/fork.js')).sessionFork(id, opts)));
  session
    .command('rm')
    .description('remove session ID: its events, projections, snapshot, owner, jobs, permission rows, saved tool outputs and job files')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--force', 'remove even while a live owner holds it or its background jobs run (their process groups are stopped)')
    .option('--json', 'print what was removed as one JSON object')
    .action(async (id: string, opts) => set(await (await import('./commands/sessionOps.js')).sessionRm(id, opts)));
  session
    .command('export')
    .description('write the event log of session ID as NDJSON envelopes (one per line), to stdout or --out FILE')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('-o, --out <file>', 'write into FILE (refused if it exists) instead of stdout')
    .action(async (id: string, opts) => set(await (await import('./commands/sessionOps.js')).sessionExport(id, opts)));
  session
    .command('import')
    .description('replay an exported event log into a new session (fresh ids; every event validated; a bad line is refused by number and nothing is stored)')
    .argument('<file>', 'an export made by loom session export')
    .option('-d, --dir <dir>', 'the new session\'s directory instead of the exported one')
    .option('--json', 'print the result as one JSON object')
    .action(async (file: string, opts) => set(await (await import('./commands/sessionOps.js')).sessionImport(file, opts)));

  program
    .command('tail')
    .description('print the events of session ID')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--after <seq>', 'start after this seq', '0')
    .option('-f, --follow', 'keep following new events (from any process)')
    .option('--json', 'print JSON envelopes (NDJSON)')
    .action(async (id: string, opts, cmd: Command) => {
      const url = server(cmd);
      set(await (url ? (await remote()).remoteTail(url, id, opts) : (await import('./commands/tail.js')).tailCommand(id, opts)));
    });

  program
    .command('diff')
    .description('show what an activity of session ID changed in files (default: the last activity with changes not undone), as unified diffs')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--activity <activity>', 'the activity to show (id or unique prefix)')
    .option('--all', 'the whole session: every recorded change from its first checkpoint to now')
    .option('--json', 'print the report as one JSON object')
    .addHelpText('after', '\nCreated, deleted and binary files are summarised; changes the checkpoints did not capture (bash scans past their bounds, background jobs) are named.')
    .action(async (id: string, opts) => set(await (await import('./commands/checkpoints.js')).diffCommand(id, opts)));

  program
    .command('undo')
    .description('put the files an activity of session ID changed back as they were before it (default: the last activity with changes not undone)')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--activity <activity>', 'the activity to undo (id or unique prefix)')
    .option('--partial', 'restore the files that were captured and skip those that were not (an incomplete checkpoint is refused otherwise)')
    .option('--json', 'print the result as one JSON object')
    .addHelpText(
      'after',
      '\nRefused, naming the files, when a file changed since the activity (by you, or by a later activity: undo that one first); nothing is restored then.\n' +
        'Exit codes: 0 restored; 1 refused (files changed since, incomplete checkpoint, session busy or owned elsewhere); 2 nothing to undo.',
    )
    .action(async (id: string, opts) => set(await (await import('./commands/checkpoints.js')).undoCommand(id, opts)));

  program
    .command('inspect')
    .description('show session ID as a tree: machine state, child actors (tool calls, jobs) with their states, inbox and pending asks; owner and usage')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--json', 'print the state as one JSON object')
    .action(async (id: string, opts) => set(await (await import('./commands/inspect.js')).inspectCommand(id, opts)));

  program
    .command('cancel')
    .description('cancel the current activity of session ID')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--json', 'when this process acts on the cancel, print the events as JSON envelopes')
    .action(async (id: string, opts, cmd: Command) => {
      const url = server(cmd);
      set(await (url ? (await remote()).remoteCancel(url, id) : (await import('./commands/control.js')).cancelCommand(id, opts)));
    });

  program
    .command('compact')
    .description('summarise the conversation of session ID so later requests send the summary and the recent turns (at its next safe point, from any process)')
    .argument('<id>', 'session id (or a unique prefix)')
    .option('--reason <text>', 'why (recorded with the request)')
    .option('--json', 'when this process runs the compaction, print the events as JSON envelopes')
    .addOption(permission('ask on a TTY, otherwise asks stay pending'))
    .addHelpText(
      'after',
      '\nRecords compaction.requested and wakes the owner; with no live owner this process takes the session and compacts it.\n' +
        'Exit 0 when the summary was written (or the live owner will do it), 1 when the compaction failed.',
    )
    .action(async (id: string, opts) => set(await (await import('./commands/control.js')).compactCommand(id, opts)));

  program
    .command('recover')
    .description('decide an ambiguous activity of session ID, or --scan for every unsettled session')
    .argument('[id]', 'session id (or a unique prefix)')
    .option('--json', 'print the events as JSON envelopes (with --scan: one JSON object per session)')
    .option('--scan', 'restore every unsettled session no live owner holds (startup discovery, run now)')
    .option('--abandon', 'settle the activity as abandoned')
    .option('--retry', 'retry the interrupted turn')
    .option('--reason <text>', 'why (recorded with the decision)')
    .addOption(permission('ask on a TTY, otherwise asks stay pending'))
    .action(async (id: string | undefined, opts) => set(await (await import('./commands/control.js')).recoverCommand(id, opts)));

  program
    .command('permit')
    .description('answer a permission ask of session ID (once, always or reject), revoke an always grant, or list pending asks and grants')
    .argument('<id>', 'session id (or a unique prefix)')
    .argument('[request]', 'the request id of the ask (or a unique prefix); without it: list asks and grants')
    .addArgument(new Argument('[reply]', 'once, always or reject').choices(['once', 'always', 'reject']))
    .option('--message <text>', 'a message the model sees with the reply (for reject: why)')
    .option('--revoke <tool>', 'remove the session\'s always grants of TOOL (records permission.revoked)')
    .option('--pattern <pattern>', 'with --revoke: only the grant with this pattern')
    .option('--json', 'list as one JSON object; with a reply, print the run\'s events as JSON envelopes')
    .addOption(permission('ask on a TTY, otherwise later asks stay pending'))
    .action(async (id: string, request: string | undefined, reply: string | undefined, opts, cmd: Command) => {
      const url = server(cmd);
      set(await (url ? (await remote()).remotePermit(url, id, request, reply, opts) : (await import('./commands/permit.js')).permitCommand(id, request, reply, opts)));
    });
  const jobs = program
    .command('jobs')
    .description('list background jobs (of session ID, or of every session), with their status')
    .argument('[id]', 'session id (or a unique prefix)')
    .option('--json', 'one JSON object per line')
    .action(async (id: string | undefined, opts) => set(await (await import('./commands/jobs.js')).jobsList(id, opts)));
  jobs
    .command('cancel')
    .description('stop background job JOB (its whole process group); its owner, or this process when there is none, settles it cancelled')
    .argument('<job>', 'job id (or a unique prefix)')
    .option('--json', 'print the events as JSON envelopes')
    .addOption(permission())
    .action(async (job: string, opts) => set(await (await import('./commands/jobs.js')).jobsCancel(job, opts)));

  const models = program
    .command('models')
    .description('list the model catalog (capabilities, context/output limits, price, source) and every provider with its state')
    .option('--provider <id>', 'only this provider\'s models and status')
    .option('--json', 'print { models, providers } as one JSON object')
    .addHelpText('after', '\nPrices are a snapshot shipped with Loom; override them in config (providers.<id>.models) or with loom models add.')
    .action(async (opts) => set(await (await import('./commands/models.js')).modelsList(opts)));
  models
    .command('add')
    .description('register model ID (provider/model) for every process sharing $LOOM_HOME, or change its registration; a running loom serve sees it at once. Fields not given keep the built-in or config value')
    .argument('<id>', 'provider/model, for example groq/llama-3.3-70b-versatile')
    .option('--name <name>', 'a display name')
    .option('--context <tokens>', 'context window in tokens (128000 or 128k)')
    .option('--output <tokens>', 'most output tokens of one response')
    .option('--input-cost <usd>', 'US dollars per million input tokens')
    .option('--output-cost <usd>', 'US dollars per million output tokens')
    .option('--cache-read-cost <usd>', 'US dollars per million cached input tokens read')
    .option('--cache-write-cost <usd>', 'US dollars per million input tokens written to the cache')
    .option('--reasoning', 'the model reasons (thinking / reasoning tokens)')
    .option('--no-tools', 'the model cannot call tools')
    .option('--json', 'print the entry now in force as one JSON object')
    // `--json` after the subcommand may be taken by `loom models` itself: honour it from either.
    .action(async (id: string, opts, cmd: Command) => set(await (await import('./commands/models.js')).modelsAdd(id, { ...opts, json: opts.json || cmd.parent?.opts().json })));
  models
    .command('rm')
    .description('remove a model registered with loom models add or POST /models (a built-in or config entry it covered comes back)')
    .argument('<id>', 'provider/model')
    .option('--json', 'print { removed, now } as one JSON object')
    .action(async (id: string, opts, cmd: Command) => set(await (await import('./commands/models.js')).modelsRm(id, { json: opts.json || cmd.parent?.opts().json })));

  program
    .command('worker')
    .description('run sessions for every process sharing $LOOM_HOME until SIGTERM/SIGINT (which drain); several workers spread sessions between them')
    .option('--capacity <n>', `sessions run at once; sessions waiting for a decision do not count (default: ${WORKER_CAPACITY_DEFAULT})`)
    .option('--lease-ttl <ms>', 'owner lease lifetime; a killed worker\'s sessions are taken over after it (at once on the same host)')
    .option('--json', 'one JSON object per line: started, taken, settled, holding, released, lost, failed, draining, stopped')
    .action(async (opts) => set(await (await import('./commands/worker.js')).workerCommand(opts)));

  program
    .command('serve')
    .description('serve the HTTP API (sessions, inputs, permissions, jobs, SSE event streams, /doc) until SIGTERM')
    .option('-p, --port <port>', 'port to listen on (0: any free port)', '4747')
    .option('-H, --host <host>', 'address to bind; anything but loopback needs LOOM_SERVER_TOKEN or --token-file', '127.0.0.1')
    .option('--token-file <file>', 'read the bearer token from FILE (mode 0600) instead of $LOOM_HOME/server-token')
    .option('--allow-host <name>', 'also accept this Host header name (DNS-rebinding check); repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .action(async (opts) => set(await (await import('./commands/serve.js')).serveCommand(opts)));

  const mcp = program.command('mcp').description('MCP servers whose tools sessions may call (mcp.servers in $LOOM_HOME/config.jsonc)');
  mcp
    .command('ls')
    .description('connect every configured MCP server, list its state and tools, disconnect (exit 1 when a server is not ready)')
    .option('--json', 'one JSON object per server')
    .action(async (opts) => set(await (await import('./commands/mcp.js')).mcpLs(opts)));

  program
    .command('acp')
    .description('speak the Agent Client Protocol on stdin/stdout, for editors (Zed and others): sessions, prompts with streamed updates, permission requests, cancel, session load')
    .addHelpText('after', '\nOnly protocol messages go to stdout; logs go to stderr (LOOM_DEBUG=1 for more). Permission asks go to the editor.')
    .action(async () => set(await (await import('./commands/acp.js')).acpCommand()));

  const db = program.command('db').description('maintain the database in $LOOM_HOME: backup, vacuum, prune (retention)');
  db.command('backup')
    .description('copy the database to FILE while Loom runs (SQLite online backup), then check the copy')
    .argument('<file>', 'the backup file to create (refused if it exists)')
    .option('--json', 'print the result as one JSON object')
    .action(async (file: string, opts) => set(await (await import('./commands/db.js')).dbBackup(file, opts)));
  db.command('vacuum')
    .description('rebuild the database file without free pages (gives back the space of removed sessions)')
    .option('--json', 'print the sizes as one JSON object')
    .action(async (opts) => set(await (await import('./commands/db.js')).dbVacuum(opts)));
  db.command('prune')
    .description(
      'apply retention once: remove sessions idle longer than retention.sessionsDays, saved outputs older than retention.toolOutputDays, ' +
        'and checkpoint content older than checkpoints.retentionDays (default 30) or past checkpoints.maxBytes (default 2 GiB), oldest first',
    )
    .option('--dry-run', 'only list what would be removed')
    .option('--sessions-days <days>', 'instead of config retention.sessionsDays')
    .option('--tool-output-days <days>', 'instead of config retention.toolOutputDays')
    .option('--checkpoints-days <days>', 'instead of config checkpoints.retentionDays')
    .option('--json', 'print the report as one JSON object')
    .action(async (opts) => set(await (await import('./commands/db.js')).dbPrune(opts)));

  const auth = program
    .command('auth')
    .description('keep provider credentials (API keys, OAuth tokens, basic, custom headers) in $LOOM_HOME/auth.json (mode 0600); environment variables override it')
    .addHelpText(
      'after',
      '\nEnvironment variables win over the file and are never written to it: LOOM_AUTH_<PROVIDER> (the id upper-cased,\n' +
        'other characters as _; a key, or a credential as JSON) for any provider, then OPENAI_API_KEY (openai,\n' +
        'openai-responses) and ANTHROPIC_API_KEY (anthropic). Providers read the credential before every request,\n' +
        'so a change takes effect without a restart.',
    );
  const authCommands = () => import('./commands/auth.js');
  auth
    .command('set')
    .description('store the credential of PROVIDER, read from stdin (or asked for, hidden, on a terminal)')
    .argument('<provider>', 'provider id: openai, openai-responses, anthropic or a custom provider\'s id')
    .addOption(new Option('--type <type>', 'the kind of credential (default: api)').choices(CREDENTIAL_TYPES))
    .option('--username <name>', 'with --type basic: the user name (the password comes from stdin)')
    .option('--expires-at <time>', 'with --type oauth: when the token expires (ISO 8601 or epoch ms); it is refreshed before then when a refresher is registered')
    .option('--expires-in <seconds>', 'with --type oauth: the token expires this many seconds from now')
    .option('--json', 'print the result (never the secret) as one JSON object')
    .addOption(new Option('--key <secret>', 'refused: argv is visible to other users').hideHelp())
    .addHelpText(
      'after',
      '\nThe secret is never taken from the command line (argv shows in ps and shell history):\n' +
        '  printf %s "$KEY" | loom auth set openai\n' +
        '  loom auth set anthropic                                   (on a terminal: asked for, not echoed)\n' +
        '  printf %s "$TOKEN" | loom auth set my-gateway --type oauth --expires-in 3600\n' +
        '  printf %s "$PASSWORD" | loom auth set my-proxy --type basic --username me\n' +
        '  printf \'X-Api-Key: %s\\n\' "$K" | loom auth set my-gateway --type headers\n' +
        'stdin may also hold the credential as JSON, e.g. {"type":"oauth","access":"…","refresh":"…","expiresAt":1767225600000}.',
    )
    .action(async (provider: string, opts) => set(await (await authCommands()).authSet(provider, opts)));
  auth
    .command('ls')
    .description('list the credential in force per provider: type, source (env VARIABLE or file) and a safe description (never the secret)')
    .option('--json', 'one JSON object per line')
    .action(async (opts) => set(await (await authCommands()).authLs(opts)));
  auth
    .command('rm')
    .description('remove the stored credential of PROVIDER from the file (a credential from an environment variable stays in force)')
    .argument('<provider>', 'provider id')
    .option('--json', 'print the result as one JSON object')
    .action(async (provider: string, opts) => set(await (await authCommands()).authRm(provider, opts)));
  const config = program
    .command('config')
    .description('show the config in force, migrate config files to the current version, print its JSON Schema')
    .addHelpText(
      'after',
      '\nFiles: $LOOM_HOME/config.jsonc (global) and DIR/.loom/config.jsonc (project, merged over it). Older versions are\n' +
        'converted in memory at every load (a note on stderr says what changed); `config migrate` makes it permanent.\n' +
        'Running processes reload a changed file (LOOM_CONFIG_WATCH=poll polls instead of watching; off never reloads).',
    );
  config
    .command('show')
    .description('the merged config in force for DIR (defaults filled in), the files read and where each setting comes from; never secrets')
    .option('-d, --dir <dir>', 'the project directory whose .loom/config.jsonc is merged over the global file', '.')
    .option('--json', 'one JSON object: home, location, files, config, origins (key → file or "default"), legacyCredentials')
    .action(async (opts) => set(await (await import('./commands/config.js')).configShow(opts)));
  config
    .command('migrate')
    .description('rewrite config files at the current version, each with a timestamped backup next to it (config.jsonc.v1-<time>.bak); comments kept where possible; a file newer than this Loom is refused')
    .option('-d, --dir <dir>', 'migrate DIR/.loom/config.jsonc')
    .option('--global', 'migrate $LOOM_HOME/config.jsonc')
    .option('--drop-credentials', 'remove version 1 API keys (providers.*.apiKey) from the file: move them first with `loom auth set PROVIDER`')
    .option('--json', 'one JSON object per file: file, status (migrated, current, missing), from, to, backup, notes')
    .addHelpText('after', '\nWithout --dir or --global: the global file and ./.loom/config.jsonc, those that exist.')
    .action(async (opts) => set(await (await import('./commands/config.js')).configMigrate(opts)));
  config
    .command('schema')
    .description('print the JSON Schema of the current config version (save it and point "$schema" at it for completion in your editor)')
    .action(async () => set(await (await import('./commands/config.js')).configSchema()));

  program.addHelpText(
    'after',
    '\nExit codes: 0 completed; 1 failed or abandoned; 2 usage, invalid input or missing configuration;\n' +
      '3 cancelled; 4 a limit reached (turn_limit, budget_exceeded); 5 waiting for a decision (recovery or permission).\n' +
      'NO_COLOR=1 turns colour off; colour and progress lines appear only on a terminal.',
  );

  try {
    await program.parseAsync(argv);
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    return reportError(error);
  }
}

/** Operating failures reach the user as one clear line; configuration problems exit 2. */
function reportError(error: unknown): number {
  const e = error as Error & { kind?: string };
  const message = e?.message ?? String(error);
  process.stderr.write(`${colorsFor(process.stderr).red('loom:')} ${message}\n`);
  if (process.env.LOOM_DEBUG && e?.stack) process.stderr.write(`${e.stack}\n`);
  const usage =
    error instanceof UsageError ||
    e?.name === 'ProviderConfigError' ||
    e?.name === 'ConfigError' ||
    e?.name === 'InvalidEventError' ||
    e?.name === 'SessionNotFoundError' ||
    e?.name === 'LimitExceededError' ||
    e?.name === 'ForeignDatabaseError' ||
    e?.name === 'PermissionRequestNotFoundError' ||
    e?.name === 'PermissionNotPendingError' ||
    e?.name === 'PermissionGrantNotFoundError' ||
    e?.name === 'NewerSchemaError' ||
    e?.name === 'AuthFileError' ||
    e?.name === 'AuthFilePermissionError' ||
    e?.name === 'InvalidCredentialError' ||
    e?.name === 'CredentialNotFoundError' ||
    e?.name === 'ModelRegistrationError' ||
    e?.name === 'ModelNotRegisteredError' ||
    e?.name === 'CatalogEntryError' ||
    e?.name === 'CatalogFullError' ||
    e?.name === 'UnknownAgentError';
  return usage ? EXIT.usage : EXIT.failed;
}
