/**
 * The auth service (DESIGN §8, issue 8 item 6): credentials of every kind (API key, OAuth token
 * with expiry, basic, custom headers) kept in `$LOOM_HOME/auth.json`, with environment variables
 * overriding the file. It implements `CredentialProvider` (services/credentials.ts): providers ask
 * it before every request, so a key set or rotated while Loom runs is used by the next request.
 *
 * The file:
 * - is created with mode 0600 and checked on every read: a file another user could read or write
 *   (any group/other bit), or that belongs to another user, is REFUSED with a message saying what
 *   to run (`chmod 600 …`) — never fixed silently, since its keys may already have been read;
 * - is written atomically (a 0600 temp file in the same directory, fsync, rename, fsync of the
 *   directory), under a lock file (`auth.json.lock`, created exclusively) so two processes writing
 *   at once each re-read and modify the latest content and neither loses the other's change;
 * - is bounded (AUTH_FILE_BYTES_MAX, AUTH_PROVIDERS_MAX, AUTH_CREDENTIAL_BYTES_MAX);
 * - carries a `revision` that every Loom write increments: a change seen with a new revision was
 *   made (and recorded as an event) by a Loom process; a change without one is a hand edit, which
 *   the process that notices it reports.
 *
 * Environment variables (never written to disk): `LOOM_AUTH_<ID>` for any provider id (upper-cased,
 * every character but A-Z and 0-9 turned into `_`), holding a key or a credential as JSON; then the
 * vendor's own variable (`OPENAI_API_KEY` for `openai` and `openai-responses`, `ANTHROPIC_API_KEY`
 * for `anthropic`). `openai-responses` falls back to the `openai` credential.
 *
 * OAuth tokens whose `expiresAt` is within AUTH_REFRESH_MARGIN_MS are refreshed before use by the
 * refresher registered for the provider id (bounded by AUTH_REFRESH_TIMEOUT_MS, one refresh at a
 * time per provider, under the file lock so two processes never spend one refresh token twice),
 * and the new token is written back to the file (a token from the environment is kept in memory).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  watch as fsWatch,
  writeSync,
  type FSWatcher,
  type Stats,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { z } from 'zod';
import { systemClock, type Clock } from '../core/clock.js';
import {
  AUTH_CREDENTIAL_BYTES_MAX,
  AUTH_FILE_BYTES_MAX,
  AUTH_HEADERS_MAX,
  AUTH_LOCK_RETRY_MS,
  AUTH_LOCK_STALE_MS,
  AUTH_LOCK_TIMEOUT_MS,
  AUTH_PROVIDER_ID_CHARS_MAX,
  AUTH_PROVIDERS_MAX,
  AUTH_REFRESH_MARGIN_MS,
  AUTH_REFRESH_TIMEOUT_MS,
  AUTH_SECRET_BYTES_MAX,
  AUTH_SECRET_CHARS_MIN,
  AUTH_WATCH_DEBOUNCE_MS,
} from '../core/limits.js';
import {
  credentialSecrets,
  describeCredential,
  redactSecrets,
  type Credential,
  type CredentialProvider,
  type CredentialRefresher,
  type CredentialSource,
  type CredentialType,
  type OAuthCredential,
  type ResolvedCredential,
} from './credentials.js';

/** The credentials file's name in `$LOOM_HOME`. */
export const AUTH_FILE_NAME = 'auth.json';
/** The version of the credentials file this build writes and reads. */
export const AUTH_FILE_VERSION = 1;

/** The vendor variables that hold a provider's API key (after `LOOM_AUTH_<ID>`). */
export const PROVIDER_KEY_VARIABLES: Readonly<Record<string, readonly string[]>> = {
  openai: ['OPENAI_API_KEY'],
  'openai-responses': ['OPENAI_API_KEY'],
  anthropic: ['ANTHROPIC_API_KEY'],
};

/** Provider ids whose credential, when they have none of their own, is another's. */
const CREDENTIAL_FALLBACKS: Readonly<Record<string, readonly string[]>> = {
  'openai-responses': ['openai'],
};

/** The prefix of the generic variable `LOOM_AUTH_<ID>`. */
export const AUTH_ENV_PREFIX = 'LOOM_AUTH_';

// ---- errors ------------------------------------------------------------------------------------

/** The credentials file cannot be used: not JSON, wrong shape, too big, newer, or not a regular file. */
export class AuthFileError extends Error {
  override readonly name = 'AuthFileError';
}

/** The credentials file is readable or writable by others, or belongs to another user. */
export class AuthFilePermissionError extends Error {
  override readonly name = 'AuthFilePermissionError';
}

/** A credential given to `set`, in a variable, or by a refresher is not valid (the message never shows its secret). */
export class InvalidCredentialError extends Error {
  override readonly name = 'InvalidCredentialError';
}

/** `remove` of a provider the file has no credential for. */
export class CredentialNotFoundError extends Error {
  override readonly name = 'CredentialNotFoundError';
}

/** The lock of the credentials file could not be taken in time. */
export class AuthLockTimeoutError extends Error {
  override readonly name = 'AuthLockTimeoutError';
}

/** An OAuth token could not be refreshed (or expired with no refresher); the message names the provider, never the token. */
export class CredentialRefreshError extends Error {
  override readonly name = 'CredentialRefreshError';
  constructor(
    readonly providerId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// ---- schemas -----------------------------------------------------------------------------------

const PROVIDER_ID = /^[a-z0-9][a-z0-9._-]*$/;
// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Control characters would let a value split a header (or a log line).
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Headers a credential may not set: they frame the request, and a gateway never needs them. */
const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'keep-alive', 'content-type', 'accept']);

/** The reason a provider id is not valid, or undefined when it is. */
export function providerIdProblem(id: string): string | undefined {
  if (id.length === 0) return 'is empty';
  if (id.length > AUTH_PROVIDER_ID_CHARS_MAX) return `is longer than ${AUTH_PROVIDER_ID_CHARS_MAX} characters`;
  if (!PROVIDER_ID.test(id)) return 'must be lowercase letters, digits, ".", "_" or "-", starting with a letter or digit';
  return undefined;
}

/** A key, token or password; only a password may start or end with white space (keys and tokens never do: it is a paste error). */
const secret = (what: string, spaces: 'allowed' | 'refused' = 'refused') =>
  z.string().superRefine((value, ctx) => {
    if (value.length < AUTH_SECRET_CHARS_MIN) ctx.addIssue({ code: 'custom', message: `${what} is shorter than ${AUTH_SECRET_CHARS_MIN} characters` });
    else if (Buffer.byteLength(value) > AUTH_SECRET_BYTES_MAX) ctx.addIssue({ code: 'custom', message: `${what} is longer than ${AUTH_SECRET_BYTES_MAX} bytes` });
    else if (CONTROL.test(value)) ctx.addIssue({ code: 'custom', message: `${what} contains a control character (a line break?)` });
    else if (spaces === 'refused' && value.trim() !== value) ctx.addIssue({ code: 'custom', message: `${what} starts or ends with white space` });
  });

const headerValue = z.string().superRefine((value, ctx) => {
  if (value.length === 0) ctx.addIssue({ code: 'custom', message: 'header value is empty' });
  else if (Buffer.byteLength(value) > AUTH_SECRET_BYTES_MAX) ctx.addIssue({ code: 'custom', message: `header value is longer than ${AUTH_SECRET_BYTES_MAX} bytes` });
  else if (CONTROL.test(value)) ctx.addIssue({ code: 'custom', message: 'header value contains a control character (a line break?)' });
});

/** The problem with a header name a credential sets, or undefined when there is none. */
function headerNameProblem(name: string): string | undefined {
  if (!HEADER_NAME.test(name)) return `"${safeName(name)}" is not a valid header name`;
  if (FORBIDDEN_HEADERS.has(name.toLowerCase())) return `header "${name}" may not be set by a credential`;
  return undefined;
}

const headersSchema = z.record(z.string(), headerValue).superRefine((headers, ctx) => {
  const names = Object.keys(headers);
  if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'headers is empty' });
  if (names.length > AUTH_HEADERS_MAX) ctx.addIssue({ code: 'custom', message: `more than ${AUTH_HEADERS_MAX} headers` });
  if (new Set(names.map((n) => n.toLowerCase())).size !== names.length) ctx.addIssue({ code: 'custom', message: 'the same header is named twice' });
  for (const name of names) {
    const problem = headerNameProblem(name);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  }
});

export const credentialSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('api'), key: secret('key') }),
  z.strictObject({
    type: z.literal('oauth'),
    access: secret('access token'),
    refresh: secret('refresh token').optional(),
    expiresAt: z.number().int().nonnegative().optional(),
  }),
  z.strictObject({
    type: z.literal('basic'),
    username: z
      .string()
      .min(1)
      .max(AUTH_PROVIDER_ID_CHARS_MAX * 4)
      .refine((u) => !u.includes(':') && !CONTROL.test(u), 'username may not contain ":" or control characters'),
    password: secret('password', 'allowed'),
  }),
  z.strictObject({ type: z.literal('headers'), headers: headersSchema }),
]);

const authFileSchema = z.object({
  version: z.number().int(),
  revision: z.number().int().nonnegative().default(0),
  credentials: z
    .record(z.string(), credentialSchema)
    .default({})
    .superRefine((credentials, ctx) => {
      const ids = Object.keys(credentials);
      if (ids.length > AUTH_PROVIDERS_MAX) ctx.addIssue({ code: 'custom', message: `more than ${AUTH_PROVIDERS_MAX} providers` });
      for (const id of ids) {
        const problem = providerIdProblem(id);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [id], message: `provider id ${problem}` });
      }
    }),
});

interface AuthFileData {
  version: number;
  revision: number;
  credentials: Record<string, Credential>;
}

/**
 * The issues of a failed parse, as `path: message`. Zod's messages never repeat a value, but paths
 * and unknown keys are names taken from the input, and a malformed input may have a secret where a
 * name belongs: a name that does not look like one (too long, or other characters) is shown as `…`.
 */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path.map((segment) => safeName(String(segment))).join('.');
      const message = issue.code === 'unrecognized_keys' ? `unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => `"${safeName(k)}"`).join(', ')}` : issue.message;
      return `${path === '' ? '' : `${path}: `}${message}`;
    })
    .join('; ');
}

/** Characters of a name from the input shown in an error; longer ones (or odd ones) could be a pasted secret. */
const SHOWN_NAME_CHARS_MAX = 24;

function safeName(name: string): string {
  return name.length <= SHOWN_NAME_CHARS_MAX && /^[A-Za-z0-9._-]*$/.test(name) ? name : '…';
}

/**
 * Checks a credential (from `loom auth set`, a variable or a refresher). Throws
 * InvalidCredentialError naming `what` and the problem, never the secret.
 */
export function parseCredential(value: unknown, what: string): Credential {
  if (Buffer.byteLength(JSON.stringify(value) ?? '') > AUTH_CREDENTIAL_BYTES_MAX) {
    throw new InvalidCredentialError(`${what} is larger than ${AUTH_CREDENTIAL_BYTES_MAX} bytes`);
  }
  const result = credentialSchema.safeParse(value);
  if (!result.success) throw new InvalidCredentialError(`${what} is not a valid credential: ${describeIssues(result.error)}`);
  return result.data as Credential;
}

/** `LOOM_AUTH_<ID>` for a provider id. */
export function authVariable(providerId: string): string {
  return `${AUTH_ENV_PREFIX}${providerId.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

// ---- the service -------------------------------------------------------------------------------

/** A change to the credentials worth a system event (`auth.updated`). */
export interface AuthChange {
  provider: string;
  change: 'set' | 'removed' | 'refreshed';
  /** `loom`: made through the auth service (a set, rm or refresh); `edit`: the file was changed by hand. */
  origin: 'loom' | 'edit';
}

/** One row of `loom auth ls`: what is in force for a provider, described safely. */
export interface AuthEntry {
  provider: string;
  type: CredentialType;
  source: CredentialSource;
  /** The environment variable, when `source` is `env`. */
  variable?: string;
  /** `describeCredential`: the type and at most the last 4 characters of a key or token. */
  description: string;
  /** True when the file also holds a credential for this provider, which the environment overrides. */
  overridesFile?: boolean;
  /** Epoch ms, for an OAuth token that has an expiry. */
  expiresAt?: number;
}

export interface AuthServiceOptions {
  /** `$LOOM_HOME`: the file is `<home>/auth.json`. */
  home: string;
  /** Where `LOOM_AUTH_<ID>` and the vendor variables are read. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Wall time for token expiry. Default the system clock. */
  clock?: Clock;
  /** Default AUTH_REFRESH_TIMEOUT_MS. */
  refreshTimeoutMs?: number;
  /** Default AUTH_LOCK_TIMEOUT_MS. */
  lockTimeoutMs?: number;
  /** Told of every change worth recording: this service's writes and hand edits it notices. Must not throw. */
  onChange?: (change: AuthChange) => void;
  /** Told when the watched file changed into something unusable (the next `get` throws the same). */
  onError?: (error: Error) => void;
}

export interface AuthService extends CredentialProvider {
  /** `<home>/auth.json`. */
  readonly path: string;
  get(providerId: string, signal?: AbortSignal): Promise<ResolvedCredential | undefined>;
  has(providerId: string): boolean;
  /** What is in force, per provider with a credential (environment variables and file), sorted by id. Never a secret. */
  list(): AuthEntry[];
  /** Stores a credential in the file (under the lock, atomically). The environment still overrides it. */
  set(providerId: string, credential: Credential): Promise<void>;
  /** Removes the file's credential for a provider; CredentialNotFoundError when there is none. */
  remove(providerId: string): Promise<void>;
  /** Registers the refresher of a provider's OAuth tokens (a plugin's); returns its unregistration. */
  registerRefresher(providerId: string, refresher: CredentialRefresher): () => void;
  /** Starts watching the file: a change is read within AUTH_WATCH_DEBOUNCE_MS and reported through `onChange`. */
  watch(): void;
  /** Stops watching. */
  close(): void;
}

interface Found {
  credential: Credential;
  source: CredentialSource;
  variable?: string;
  /** The id the credential is kept under (`openai` for an `openai-responses` request that fell back). */
  id: string;
}

interface Snapshot {
  /** Identity of the file read (undefined: there is no file). */
  stamp: string | undefined;
  data: AuthFileData;
}

const EMPTY: AuthFileData = { version: AUTH_FILE_VERSION, revision: 0, credentials: {} };

/** Creates the auth service of one `$LOOM_HOME`. Nothing is read until it is asked. */
export function createAuthService(options: AuthServiceOptions): AuthService {
  return new FileAuthService(options);
}

class FileAuthService implements AuthService {
  readonly path: string;
  private readonly lockPath: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly clock: Clock;
  private readonly refreshTimeoutMs: number;
  private readonly lockTimeoutMs: number;
  private snapshot: Snapshot | undefined;
  private readonly refreshers = new Map<string, CredentialRefresher>();
  private readonly refreshing = new Map<string, Promise<OAuthCredential>>();
  /** Tokens from the environment refreshed in memory, by variable, with the value they replaced. */
  private readonly envRefreshed = new Map<string, { from: string; credential: OAuthCredential }>();
  /** Writers of this process queue here instead of polling the lock file against each other. */
  private writeQueue: Promise<unknown> = Promise.resolve();
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastWatchError: string | undefined;

  constructor(private readonly options: AuthServiceOptions) {
    this.path = join(options.home, AUTH_FILE_NAME);
    this.lockPath = `${this.path}.lock`;
    this.env = options.env ?? process.env;
    this.clock = options.clock ?? systemClock;
    this.refreshTimeoutMs = options.refreshTimeoutMs ?? AUTH_REFRESH_TIMEOUT_MS;
    this.lockTimeoutMs = options.lockTimeoutMs ?? AUTH_LOCK_TIMEOUT_MS;
  }

  // ---- reading ---------------------------------------------------------------------------------

  has(providerId: string): boolean {
    return this.find(providerId) !== undefined;
  }

  async get(providerId: string, signal?: AbortSignal): Promise<ResolvedCredential | undefined> {
    const found = this.find(providerId);
    if (found === undefined) return undefined;
    const credential = found.credential.type === 'oauth' && this.expiring(found.credential) ? await this.fresh(found, signal) : found.credential;
    return { credential, source: found.source, ...(found.variable === undefined ? {} : { variable: found.variable }) };
  }

  list(): AuthEntry[] {
    const file = this.load().credentials;
    const ids = new Set(Object.keys(file));
    for (const [name, value] of Object.entries(this.env)) {
      if (value === undefined || value.trim() === '') continue;
      if (name.startsWith(AUTH_ENV_PREFIX) && name.length > AUTH_ENV_PREFIX.length) ids.add(name.slice(AUTH_ENV_PREFIX.length).toLowerCase().replace(/_/g, '-'));
    }
    for (const [id, variables] of Object.entries(PROVIDER_KEY_VARIABLES)) {
      if (CREDENTIAL_FALLBACKS[id] === undefined && variables.some((v) => (this.env[v] ?? '').trim() !== '')) ids.add(id);
    }
    const entries: AuthEntry[] = [];
    for (const id of [...ids].sort()) {
      const found = this.find(id);
      if (found === undefined) continue;
      const entry: AuthEntry = { provider: id, type: found.credential.type, source: found.source, description: describeCredential(found.credential) };
      if (found.variable !== undefined) entry.variable = found.variable;
      if (found.source === 'env' && file[id] !== undefined) entry.overridesFile = true;
      if (found.credential.type === 'oauth' && found.credential.expiresAt !== undefined) entry.expiresAt = found.credential.expiresAt;
      entries.push(entry);
    }
    return entries;
  }

  /** The credential in force: every environment variable of the id and its fallbacks, then the file. */
  private find(providerId: string): Found | undefined {
    if (providerIdProblem(providerId) !== undefined) return undefined;
    const chain = [providerId, ...(CREDENTIAL_FALLBACKS[providerId] ?? [])];
    for (const id of chain) {
      for (const variable of [authVariable(id), ...(PROVIDER_KEY_VARIABLES[id] ?? [])]) {
        const value = this.env[variable]?.trim();
        if (value === undefined || value === '') continue;
        const refreshed = this.envRefreshed.get(variable);
        const credential = refreshed !== undefined && refreshed.from === value ? refreshed.credential : this.fromVariable(variable, value);
        return { credential, source: 'env', variable, id };
      }
    }
    const file = this.load().credentials;
    for (const id of chain) {
      const credential = file[id];
      if (credential !== undefined) return { credential, source: 'file', id };
    }
    return undefined;
  }

  /** A variable holds a key, or (`LOOM_AUTH_<ID>` only) a credential as JSON. */
  private fromVariable(variable: string, value: string): Credential {
    if (variable.startsWith(AUTH_ENV_PREFIX) && value.startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        // JSON.parse's message quotes the text, which is a secret: say only what is wrong.
        throw new InvalidCredentialError(`${variable} starts with "{" but is not valid JSON (a key, or a credential as JSON: {"type":"oauth","access":"…"})`);
      }
      return parseCredential(parsed, variable);
    }
    return parseCredential({ type: 'api', key: value }, variable);
  }

  /** The file as it is now: re-read when its identity changed (a write by anyone), else the cached copy. */
  private load(): AuthFileData {
    const stamp = fileStamp(this.path);
    if (this.snapshot !== undefined && this.snapshot.stamp === stamp) return this.snapshot.data;
    const data = stamp === undefined ? EMPTY : readAuthFile(this.path);
    this.accept({ stamp, data });
    return data;
  }

  /**
   * Takes a newly read file as current and reports a hand edit: the same revision with other
   * credentials, or the file deleted (Loom never deletes it). A new revision was written, and
   * reported, by a Loom process.
   */
  private accept(next: Snapshot): void {
    const previous = this.snapshot;
    this.snapshot = next;
    if (previous === undefined) return;
    if (next.stamp !== undefined && next.data.revision !== previous.data.revision) return;
    for (const change of diffCredentials(previous.data.credentials, next.data.credentials)) this.report({ ...change, origin: 'edit' });
  }

  private report(change: AuthChange): void {
    try {
      this.options.onChange?.(change);
    } catch {
      // Reporting a change must never fail the change.
    }
  }

  // ---- refreshing ------------------------------------------------------------------------------

  private expiring(credential: OAuthCredential): boolean {
    return credential.expiresAt !== undefined && credential.expiresAt - this.clock.now() <= AUTH_REFRESH_MARGIN_MS;
  }

  /** The token refreshed (once at a time per provider), or as it is when it is still valid and nobody can refresh it. */
  private async fresh(found: Found, signal: AbortSignal | undefined): Promise<OAuthCredential> {
    const current = found.credential as OAuthCredential;
    const refresher = this.refreshers.get(found.id);
    if (refresher === undefined) {
      if (current.expiresAt! > this.clock.now()) return current;
      throw new CredentialRefreshError(
        found.id,
        `the oauth token of provider "${found.id}" expired at ${new Date(current.expiresAt!).toISOString()} and no refresher is registered for it: run \`loom auth set ${found.id} --type oauth\``,
      );
    }
    const key = `${found.source}:${found.variable ?? found.id}`;
    let pending = this.refreshing.get(key);
    if (pending === undefined) {
      pending = (found.source === 'env' ? this.refreshInMemory(found, current, refresher) : this.refreshInFile(found.id, refresher)).finally(() =>
        this.refreshing.delete(key),
      );
      this.refreshing.set(key, pending);
    }
    return waitFor(pending, signal);
  }

  private async refreshInMemory(found: Found, current: OAuthCredential, refresher: CredentialRefresher): Promise<OAuthCredential> {
    const variable = found.variable!;
    const from = this.env[variable]!.trim();
    const credential = await this.runRefresher(found.id, current, refresher);
    this.envRefreshed.set(variable, { from, credential });
    return credential;
  }

  /** Under the lock: a token another process refreshed meanwhile is taken as it is; otherwise refreshed and written back. */
  private refreshInFile(id: string, refresher: CredentialRefresher): Promise<OAuthCredential> {
    return this.locked(async () => {
      const data = this.reread();
      const current = data.credentials[id];
      if (current?.type !== 'oauth') throw new CredentialRefreshError(id, `the credential of provider "${id}" changed while it was being refreshed; try again`);
      if (!this.expiring(current)) return current;
      const credential = await this.runRefresher(id, current, refresher);
      this.write({ ...data, credentials: { ...data.credentials, [id]: credential } });
      this.report({ provider: id, change: 'refreshed', origin: 'loom' });
      return credential;
    });
  }

  private async runRefresher(id: string, current: OAuthCredential, refresher: CredentialRefresher): Promise<OAuthCredential> {
    const timeout = AbortSignal.timeout(this.refreshTimeoutMs);
    let result: unknown;
    try {
      result = await Promise.race([
        refresher(current, timeout),
        new Promise<never>((_, reject) => timeout.addEventListener('abort', () => reject(timeout.reason), { once: true })),
      ]);
    } catch (error) {
      const reason = timeout.aborted ? `it did not finish within ${this.refreshTimeoutMs} ms` : redactSecrets((error as Error)?.message ?? String(error), credentialSecrets(current));
      throw new CredentialRefreshError(id, `refreshing the oauth token of provider "${id}" failed: ${reason}`);
    }
    let credential: Credential;
    try {
      credential = parseCredential(result, `the refresher of provider "${id}"'s answer`);
    } catch (error) {
      throw new CredentialRefreshError(id, `refreshing the oauth token of provider "${id}" failed: ${(error as Error).message}`);
    }
    if (credential.type !== 'oauth') throw new CredentialRefreshError(id, `refreshing the oauth token of provider "${id}" failed: the refresher answered a ${credential.type} credential`);
    // A token endpoint that does not rotate refresh tokens leaves the old one valid.
    return credential.refresh === undefined && current.refresh !== undefined ? { ...credential, refresh: current.refresh } : credential;
  }

  registerRefresher(providerId: string, refresher: CredentialRefresher): () => void {
    const problem = providerIdProblem(providerId);
    if (problem !== undefined) throw new InvalidCredentialError(`provider id "${providerId.slice(0, 80)}" ${problem}`);
    this.refreshers.set(providerId, refresher);
    return () => {
      if (this.refreshers.get(providerId) === refresher) this.refreshers.delete(providerId);
    };
  }

  // ---- writing ---------------------------------------------------------------------------------

  async set(providerId: string, credential: Credential): Promise<void> {
    const problem = providerIdProblem(providerId);
    if (problem !== undefined) throw new InvalidCredentialError(`provider id "${providerId.slice(0, 80)}" ${problem}`);
    const checked = parseCredential(credential, `the credential for "${providerId}"`);
    await this.locked(async () => {
      const data = this.reread();
      if (data.credentials[providerId] === undefined && Object.keys(data.credentials).length >= AUTH_PROVIDERS_MAX) {
        throw new AuthFileError(`${this.path} already holds ${AUTH_PROVIDERS_MAX} providers; remove one first (loom auth rm)`);
      }
      this.write({ ...data, credentials: { ...data.credentials, [providerId]: checked } });
    });
    this.report({ provider: providerId, change: 'set', origin: 'loom' });
  }

  async remove(providerId: string): Promise<void> {
    await this.locked(async () => {
      const data = this.reread();
      if (data.credentials[providerId] === undefined) {
        const variable = [authVariable(providerId), ...(PROVIDER_KEY_VARIABLES[providerId] ?? [])].find((v) => (this.env[v] ?? '').trim() !== '');
        const note = variable === undefined ? '' : ` (its credential comes from ${variable}, which only your environment can unset)`;
        throw new CredentialNotFoundError(`${this.path} holds no credential for provider "${providerId}"${note}`);
      }
      const { [providerId]: _removed, ...rest } = data.credentials;
      this.write({ ...data, credentials: rest });
    });
    this.report({ provider: providerId, change: 'removed', origin: 'loom' });
  }

  /** The file read now, bypassing the cache (inside the lock, before a read-modify-write). */
  private reread(): AuthFileData {
    const stamp = fileStamp(this.path);
    const data = stamp === undefined ? EMPTY : readAuthFile(this.path);
    this.accept({ stamp, data });
    return data;
  }

  /** Writes the next revision atomically and takes it as current (so this process reports no edit for it). */
  private write(data: AuthFileData): void {
    const next: AuthFileData = { version: AUTH_FILE_VERSION, revision: data.revision + 1, credentials: data.credentials };
    writeAuthFile(this.options.home, this.path, next);
    this.snapshot = { stamp: fileStamp(this.path), data: next };
  }

  /** Runs `fn` holding the file lock: queued behind this process's other writers, then the lock file across processes. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeQueue.then(async () => {
      mkdirSync(this.options.home, { recursive: true, mode: 0o700 });
      const release = await acquireLock(this.lockPath, this.lockTimeoutMs);
      try {
        removeStaleTemps(this.options.home);
        return await fn();
      } finally {
        release();
      }
    });
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  // ---- watching --------------------------------------------------------------------------------

  watch(): void {
    if (this.watcher !== undefined) return;
    try {
      mkdirSync(this.options.home, { recursive: true });
      // The directory, not the file: an atomic rename replaces the file's inode, which a file watch would lose.
      this.watcher = fsWatch(this.options.home, { persistent: false }, (_event, filename) => {
        if (filename !== null && filename !== AUTH_FILE_NAME) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.onWatch(), AUTH_WATCH_DEBOUNCE_MS);
        this.debounce.unref();
      });
      this.watcher.on('error', (error) => this.options.onError?.(error));
    } catch (error) {
      // No watching (a platform or file system without it): changes are still seen by the next `get`.
      this.options.onError?.(error as Error);
    }
  }

  private onWatch(): void {
    try {
      this.load();
      this.lastWatchError = undefined;
    } catch (error) {
      const message = (error as Error).message;
      if (message === this.lastWatchError) return; // said once per distinct problem
      this.lastWatchError = message;
      this.options.onError?.(error as Error);
    }
  }

  close(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }
}

/** Waits for a shared refresh, or stops waiting (the refresh goes on for the others) when the caller aborts. */
function waitFor<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Providers added or changed (`set`) and removed between two versions of the file, by id. */
export function diffCredentials(before: Record<string, Credential>, after: Record<string, Credential>): Omit<AuthChange, 'origin'>[] {
  const changes: Omit<AuthChange, 'origin'>[] = [];
  for (const id of Object.keys(after).sort()) {
    if (before[id] === undefined || JSON.stringify(before[id]) !== JSON.stringify(after[id])) changes.push({ provider: id, change: 'set' });
  }
  for (const id of Object.keys(before).sort()) if (after[id] === undefined) changes.push({ provider: id, change: 'removed' });
  return changes;
}

// ---- the file ----------------------------------------------------------------------------------

/** Identity of the file now (inode, size, change time), or undefined when there is none. */
function fileStamp(path: string): string | undefined {
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}:${stats.mode}`;
}

/** Refuses a file others could read or write, or that another user owns (POSIX only). */
function checkPermissions(path: string, stats: Stats): void {
  if (process.platform === 'win32') return;
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new AuthFilePermissionError(`${path} belongs to another user (uid ${stats.uid}); Loom only uses a credentials file you own`);
  }
  if ((stats.mode & 0o077) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    throw new AuthFilePermissionError(
      `${path} can be read or written by other users (mode ${mode}); Loom refuses to use it. Run \`chmod 600 ${path}\`, and consider rotating the keys in it`,
    );
  }
}

/** Reads and checks the credentials file. Every message names the file and never quotes its content. */
export function readAuthFile(path: string): AuthFileData {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new AuthFileError(`${path} is a symbolic link; the credentials file must be a regular file`);
    throw error;
  }
  let text: string;
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new AuthFileError(`${path} is not a regular file`);
    checkPermissions(path, stats);
    if (stats.size > AUTH_FILE_BYTES_MAX) throw new AuthFileError(`${path} is larger than ${AUTH_FILE_BYTES_MAX} bytes (${stats.size}); it is not a credentials file Loom wrote`);
    const buffer = Buffer.alloc(AUTH_FILE_BYTES_MAX + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) n = readSync(fd, buffer, length, buffer.length - length, null);
    if (length > AUTH_FILE_BYTES_MAX) throw new AuthFileError(`${path} is larger than ${AUTH_FILE_BYTES_MAX} bytes; it is not a credentials file Loom wrote`);
    text = buffer.subarray(0, length).toString('utf8');
  } finally {
    closeSync(fd);
  }
  return parseAuthFile(path, text);
}

function parseAuthFile(path: string, text: string): AuthFileData {
  if (text.trim() === '') return EMPTY;
  const errors: ParseError[] = [];
  const raw: unknown = parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false });
  if (errors.length > 0) {
    const { line, column } = position(text, errors[0]!.offset);
    throw new AuthFileError(`${path} is not valid JSON: ${printParseErrorCode(errors[0]!.error)} at line ${line}, column ${column}`);
  }
  const result = authFileSchema.safeParse(raw);
  if (!result.success) throw new AuthFileError(`${path} is not a valid credentials file: ${describeIssues(result.error)}`);
  if (result.data.version > AUTH_FILE_VERSION) {
    throw new AuthFileError(`${path} has version ${result.data.version}, written by a newer Loom (this one reads version ${AUTH_FILE_VERSION}); upgrade Loom`);
  }
  if (result.data.version < 1) throw new AuthFileError(`${path} has an unknown version ${result.data.version}`);
  return { version: result.data.version, revision: result.data.revision, credentials: result.data.credentials as Record<string, Credential> };
}

function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/** The temp files of writes: `.auth.json.<pid>.<random>.tmp`. */
const TEMP_FILE = /^\.auth\.json\.\d+\.[0-9a-f]+\.tmp$/;

/** Writes the file atomically: a 0600 temp file in the same directory, fsync, rename, fsync of the directory. */
function writeAuthFile(home: string, path: string, data: AuthFileData): void {
  const text = `${JSON.stringify(data, null, 2)}\n`;
  if (Buffer.byteLength(text) > AUTH_FILE_BYTES_MAX) {
    throw new AuthFileError(`the credentials would make ${path} larger than ${AUTH_FILE_BYTES_MAX} bytes; remove some (loom auth rm)`);
  }
  const temp = join(home, `.${AUTH_FILE_NAME}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | (fsConstants.O_NOFOLLOW ?? 0), 0o600);
  try {
    try {
      fchmodSync(fd, 0o600); // the umask may have taken bits away; it never adds any, but be exact
      const bytes = Buffer.from(text, 'utf8');
      for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written, bytes.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // already renamed or never made
    }
    throw error;
  }
  syncDirectory(home);
}

/** Makes the rename durable. Some platforms cannot open a directory for fsync; the rename still happened. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, fsConstants.O_RDONLY);
    fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Temp files left by a writer that died mid-write. Called holding the lock, so no live writer has one open. */
function removeStaleTemps(home: string): void {
  let names: string[];
  try {
    names = readdirSync(home);
  } catch {
    return;
  }
  for (const name of names) {
    if (!TEMP_FILE.test(name)) continue;
    try {
      unlinkSync(join(home, name));
    } catch {
      // gone already
    }
  }
}

// ---- the lock ----------------------------------------------------------------------------------

interface LockOwner {
  pid: number;
  host: string;
  token: string;
}

/**
 * Takes `<file>.lock`, created exclusively (O_EXCL), holding its owner's pid, host and a random
 * token; waits (polling every AUTH_LOCK_RETRY_MS) up to `timeoutMs`. A lock whose holder is a dead
 * process on this host, or that is older than AUTH_LOCK_STALE_MS, is broken. Returns the release.
 */
async function acquireLock(lockPath: string, timeoutMs: number): Promise<() => void> {
  const owner: LockOwner = { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') };
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (tryCreateLock(lockPath, owner)) return () => releaseLock(lockPath, owner);
    breakIfStale(lockPath);
    if (performance.now() >= deadline) {
      throw new AuthLockTimeoutError(
        `another process has held ${lockPath} for more than ${timeoutMs} ms; if no loom process is running, remove that file and try again`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, AUTH_LOCK_RETRY_MS));
  }
}

function tryCreateLock(lockPath: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, JSON.stringify(owner));
  } finally {
    closeSync(fd);
  }
  return true;
}

function releaseLock(lockPath: string, owner: LockOwner): void {
  // Only our own lock: if it was broken as stale and taken by another, it is theirs now.
  if (readLock(lockPath)?.token !== owner.token) return;
  try {
    unlinkSync(lockPath);
  } catch {
    // gone already
  }
}

function readLock(lockPath: string): LockOwner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<LockOwner>;
    return typeof parsed.pid === 'number' && typeof parsed.host === 'string' && typeof parsed.token === 'string' ? (parsed as LockOwner) : undefined;
  } catch {
    return undefined; // absent, or being written by its creator this very moment
  }
}

function breakIfStale(lockPath: string): void {
  let stats: Stats;
  try {
    stats = lstatSync(lockPath);
  } catch {
    return; // released meanwhile
  }
  const holder = readLock(lockPath);
  const dead = holder !== undefined && holder.host === hostname() && !processAlive(holder.pid);
  const old = Date.now() - stats.mtimeMs > AUTH_LOCK_STALE_MS;
  if (!dead && !old) return;
  // Re-check just before removing, so a lock another process took meanwhile is left alone.
  if (readLock(lockPath)?.token !== holder?.token) return;
  try {
    unlinkSync(lockPath);
  } catch {
    // another process broke it first
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
