/**
 * `loom auth set|ls|rm`: the credentials in `$LOOM_HOME/auth.json` (services/auth.ts). A secret
 * comes in on stdin (or a hidden prompt on a terminal), never on the command line: argv is visible
 * to every user in `ps` and stays in shell history. Nothing here prints a secret; `ls` shows
 * `describeCredential` (the type and at most the last 4 characters).
 */
import { AUTH_CREDENTIAL_BYTES_MAX } from '../../core/limits.js';
import {
  authVariable,
  createAuthService,
  parseCredential,
  PROVIDER_KEY_VARIABLES,
  providerIdProblem,
  type AuthChange,
  type AuthEntry,
  type AuthService,
} from '../../services/auth.js';
import { resolveLoomHome } from '../../services/config.js';
import { describeCredential, type Credential, type CredentialType } from '../../services/credentials.js';
import { emitSystem } from '../../services/runtime.js';
import { EXIT, UsageError } from '../exit.js';
import { openStore } from '../runtime.js';

export interface AuthSetOptions {
  type?: CredentialType;
  username?: string;
  expiresAt?: string;
  expiresIn?: string;
  json?: boolean;
  /** Refused: see `authSet`. */
  key?: string;
}

/**
 * The auth service of this CLI process and `record`, which writes the changes it made as
 * `auth.updated` system events (provider and change only) once they are saved.
 */
function openAuth(): { auth: AuthService; record: () => void } {
  const changes: AuthChange[] = [];
  const auth = createAuthService({ home: resolveLoomHome(), onChange: (change) => void changes.push(change) });
  const record = (): void => {
    if (changes.length === 0) return;
    let opened: ReturnType<typeof openStore> | undefined;
    try {
      opened = openStore();
      for (const change of changes.splice(0)) emitSystem(opened.store, { type: 'auth.updated', data: change });
    } catch (error) {
      // The credential is stored either way; only the event is missing when the store cannot open.
      process.stderr.write(`loom: the change was saved but not recorded as an event: ${(error as Error)?.message ?? String(error)}\n`);
    } finally {
      opened?.store.close();
    }
  };
  return { auth, record };
}

/**
 * `loom auth set PROVIDER [--type api|oauth|basic|headers]`: reads the secret from stdin (a hidden
 * prompt on a terminal) and stores it. `--key` is refused: the secret would be in argv.
 */
export async function authSet(providerId: string, opts: AuthSetOptions): Promise<number> {
  if (opts.key !== undefined) {
    throw new UsageError(
      '--key is refused: a secret on the command line is visible to other users (ps) and stays in your shell history ' +
        '(consider rotating that key). Pipe it on stdin instead: printf %s "$KEY" | loom auth set ' +
        `${providerId}, or run loom auth set ${providerId} on a terminal to be asked for it`,
    );
  }
  const problem = providerIdProblem(providerId);
  if (problem !== undefined) throw new UsageError(`provider id "${providerId.slice(0, 80)}" ${problem}`);
  checkFlags(opts);
  let text: string;
  try {
    text = process.stdin.isTTY ? await promptForSecret(providerId, opts) : await readStdin();
  } catch (error) {
    if (!(error instanceof AuthPromptCancelledError)) throw error;
    process.stderr.write(`loom: ${error.message}\n`);
    return EXIT.cancelled;
  }
  const credential = credentialFromInput(text, opts);
  const { auth, record } = openAuth();
  await auth.set(providerId, credential);
  record();
  const override = overridingVariable(providerId);
  const description = describeCredential(credential);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ provider: providerId, type: credential.type, description, path: auth.path, ...(override ? { overriddenBy: override } : {}) })}\n`);
  } else {
    process.stdout.write(`saved ${description} for "${providerId}" in ${auth.path}\n`);
  }
  if (override) process.stderr.write(`note: ${override} is set in this environment and overrides the saved credential\n`);
  return EXIT.ok;
}

/** `loom auth ls [--json]`: per provider, what is in force and where it comes from. Never a secret. */
export async function authLs(opts: { json?: boolean }): Promise<number> {
  const auth = createAuthService({ home: resolveLoomHome() });
  const entries = auth.list();
  if (opts.json) {
    for (const entry of entries) process.stdout.write(`${JSON.stringify(entry)}\n`);
    return EXIT.ok;
  }
  if (entries.length === 0) {
    process.stderr.write(`no credentials: loom auth set PROVIDER stores one in ${auth.path}, or set a variable such as OPENAI_API_KEY\n`);
    return EXIT.ok;
  }
  const rows = entries.map((e) => [e.provider, e.type, sourceText(e), `${e.description}${e.overridesFile ? ' (overrides the file\'s entry)' : ''}`]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['PROVIDER', 'TYPE', 'SOURCE'][i]!.length));
  const line = (r: string[]) => `${r.slice(0, 3).map((c, i) => c.padEnd(widths[i]!)).join('  ')}  ${r[3]}`.trimEnd();
  process.stdout.write(`${[line(['PROVIDER', 'TYPE', 'SOURCE', 'CREDENTIAL']), ...rows.map(line)].join('\n')}\n`);
  return EXIT.ok;
}

/** `loom auth rm PROVIDER [--json]`: removes the file's credential (an environment variable cannot be removed from here). */
export async function authRm(providerId: string, opts: { json?: boolean }): Promise<number> {
  const { auth, record } = openAuth();
  await auth.remove(providerId);
  record();
  const override = overridingVariable(providerId);
  if (opts.json) process.stdout.write(`${JSON.stringify({ provider: providerId, removed: true, path: auth.path, ...(override ? { stillSetBy: override } : {}) })}\n`);
  else process.stdout.write(`removed the credential for "${providerId}" from ${auth.path}\n`);
  if (override) process.stderr.write(`note: ${override} is still set in this environment, so "${providerId}" still has a credential\n`);
  return EXIT.ok;
}

function sourceText(entry: AuthEntry): string {
  return entry.source === 'env' ? `env ${entry.variable}` : 'file';
}

/** The environment variable that overrides the file for this provider, if one is set. */
function overridingVariable(providerId: string): string | undefined {
  return [authVariable(providerId), ...(PROVIDER_KEY_VARIABLES[providerId] ?? [])].find((v) => (process.env[v] ?? '').trim() !== '');
}

// ---- input -------------------------------------------------------------------------------------

function checkFlags(opts: AuthSetOptions): void {
  const type = opts.type ?? 'api';
  if (opts.username !== undefined && type !== 'basic') throw new UsageError('--username goes with --type basic');
  if ((opts.expiresAt !== undefined || opts.expiresIn !== undefined) && type !== 'oauth') throw new UsageError('--expires-at and --expires-in go with --type oauth');
  if (opts.expiresAt !== undefined && opts.expiresIn !== undefined) throw new UsageError('give --expires-at or --expires-in, not both');
  if (type === 'basic' && opts.username === undefined) throw new UsageError('--type basic needs --username NAME (the password comes from stdin)');
}

/** Epoch ms from --expires-at (ISO 8601 or epoch ms) or --expires-in (seconds from now). */
function expiryOf(opts: AuthSetOptions): number | undefined {
  if (opts.expiresIn !== undefined) {
    const seconds = Number(opts.expiresIn);
    if (!Number.isInteger(seconds) || seconds <= 0) throw new UsageError(`--expires-in ${opts.expiresIn}: expected a whole number of seconds`);
    return Date.now() + seconds * 1000;
  }
  if (opts.expiresAt === undefined) return undefined;
  const at = /^\d+$/.test(opts.expiresAt) ? Number(opts.expiresAt) : Date.parse(opts.expiresAt);
  if (!Number.isFinite(at)) throw new UsageError(`--expires-at ${opts.expiresAt}: expected an ISO 8601 time (2026-12-01T10:00:00Z) or epoch milliseconds`);
  return at;
}

/**
 * The credential the input describes: a JSON object (a whole credential, or with --type the
 * fields of one), else the secret itself for the type (`Name: value` lines for headers).
 * Errors name what is wrong, never the input.
 */
export function credentialFromInput(text: string, opts: AuthSetOptions): Credential {
  const input = text.replace(/\r?\n$/, '');
  if (input.trim() === '') {
    throw new UsageError('no secret given: pipe it on stdin (printf %s "$KEY" | loom auth set PROVIDER) or run the command on a terminal');
  }
  if (input.trimStart().startsWith('{')) return credentialFromJson(input, opts);
  const type = opts.type ?? 'api';
  const expiresAt = expiryOf(opts);
  switch (type) {
    case 'api':
      return parseCredential({ type, key: input.trim() }, 'the key');
    case 'oauth':
      return parseCredential({ type, access: input.trim(), ...(expiresAt === undefined ? {} : { expiresAt }) }, 'the token');
    case 'basic':
      return parseCredential({ type, username: opts.username, password: input }, 'the password');
    case 'headers':
      return parseCredential({ type, headers: headerLines(input) }, 'the headers');
  }
}

function credentialFromJson(input: string, opts: AuthSetOptions): Credential {
  let value: unknown;
  try {
    value = JSON.parse(input);
  } catch {
    throw new UsageError('the input starts with "{" but is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError('the JSON input must be an object');
  const object = value as Record<string, unknown>;
  const given = typeof object.type === 'string' ? object.type : undefined;
  if (given !== undefined && opts.type !== undefined && given !== opts.type) throw new UsageError(`--type ${opts.type} but the JSON input has type "${given}"`);
  const type = given ?? opts.type ?? 'api';
  let credential: Record<string, unknown> = { ...object, type };
  // `--type headers` with a bare object of headers.
  if (type === 'headers' && given === undefined && !('headers' in object)) credential = { type, headers: object };
  if (type === 'basic' && credential.username === undefined && opts.username !== undefined) credential.username = opts.username;
  const expiresAt = expiryOf(opts);
  if (type === 'oauth' && expiresAt !== undefined) credential.expiresAt = expiresAt;
  return parseCredential(credential, 'the JSON input');
}

/** `Name: value` per line (blank lines skipped); a bad line is named by number only. */
function headerLines(input: string): Record<string, string> {
  const headers: Record<string, string> = {};
  input.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '') return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new UsageError(`headers: line ${index + 1} is not "Name: value"`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  });
  return headers;
}

/** Reads stdin to its end, bounded. */
async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > AUTH_CREDENTIAL_BYTES_MAX) throw new UsageError(`stdin holds more than ${AUTH_CREDENTIAL_BYTES_MAX} bytes; a credential is smaller`);
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

// ---- the hidden prompt -------------------------------------------------------------------------

/** Asks on the terminal without echoing: the secret (or, for headers, one `Name: value` per line until an empty one). */
async function promptForSecret(providerId: string, opts: AuthSetOptions): Promise<string> {
  const type = opts.type ?? 'api';
  if (type !== 'headers') {
    const what = type === 'api' ? 'API key' : type === 'oauth' ? 'access token' : `password for ${opts.username}`;
    return readHidden(`${what} for ${providerId} (input hidden): `);
  }
  const lines: string[] = [];
  for (;;) {
    const line = await readHidden(`header for ${providerId}, Name: value (input hidden; empty line to finish): `);
    if (line.trim() === '') return lines.join('\n');
    lines.push(line);
  }
}

/** One line read from the terminal in raw mode, echoing nothing. Ctrl-C cancels (exit 3), Ctrl-D ends the line. */
function readHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let state: HiddenInput = { value: '' };
    const finish = (error?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(state.value);
    };
    const onData = (chunk: string) => {
      state = feedHidden(state, chunk);
      if (state.done === 'interrupt') finish(new AuthPromptCancelledError('cancelled at the prompt; nothing was saved'));
      else if (state.done === 'overflow') finish(new UsageError(`the input is longer than ${AUTH_CREDENTIAL_BYTES_MAX} bytes`));
      else if (state.done === 'enter') finish();
    };
    stdin.on('data', onData);
  });
}

/** Ctrl-C at the hidden prompt. */
export class AuthPromptCancelledError extends Error {
  override readonly name = 'AuthPromptCancelledError';
}

export interface HiddenInput {
  value: string;
  done?: 'enter' | 'interrupt' | 'overflow';
}

/**
 * Applies typed (or pasted) characters to a hidden line: Enter or Ctrl-D ends it, Ctrl-C
 * interrupts, Backspace removes the last character, other control characters are ignored.
 */
export function feedHidden(state: HiddenInput, chunk: string): HiddenInput {
  const chars = [...state.value];
  let bytes = Buffer.byteLength(state.value);
  for (const ch of chunk) {
    if (ch === '\r' || ch === '\n' || ch === '\u0004') return { value: chars.join(''), done: 'enter' };
    if (ch === '\u0003') return { value: '', done: 'interrupt' };
    if (ch === '\u007f' || ch === '\b') bytes -= Buffer.byteLength(chars.pop() ?? '');
    else if (ch >= ' ') {
      chars.push(ch);
      bytes += Buffer.byteLength(ch);
      if (bytes > AUTH_CREDENTIAL_BYTES_MAX) return { value: '', done: 'overflow' };
    }
  }
  return { value: chars.join('') };
}
