import { AUTH_REDACT_PARTIAL_CHARS_MIN, AUTH_SECRET_CHARS_MIN } from '../core/limits.js';

/**
 * Credentials, as providers and plugins see them (DESIGN §8, issue 8 item 6). The auth service
 * (services/auth.ts) keeps them in a 0600 file under `$LOOM_HOME`, lets environment variables
 * override the file, and refreshes expiring tokens; this module is the contract between it and
 * the providers that send them.
 *
 * A credential is a secret: it never enters the event log, `--json` output, an error message or
 * any file but the credentials file. Code that reports on credentials shows `describeCredential`.
 */
export type Credential =
  /** An API key, sent as the provider expects it (Authorization: Bearer, or x-api-key for Anthropic). */
  | { type: 'api'; key: string }
  /** A bearer or OAuth access token; `expiresAt` (epoch ms) lets the auth service refresh it before use. */
  | { type: 'oauth'; access: string; refresh?: string; expiresAt?: number }
  /** HTTP basic authentication. */
  | { type: 'basic'; username: string; password: string }
  /** Arbitrary headers (a gateway's own scheme). */
  | { type: 'headers'; headers: Record<string, string> };

export type CredentialType = Credential['type'];

/** The credential types, in the order `loom auth set --type` lists them. */
export const CREDENTIAL_TYPES = ['api', 'oauth', 'basic', 'headers'] as const satisfies readonly CredentialType[];

export type OAuthCredential = Extract<Credential, { type: 'oauth' }>;

/** Where a credential in force came from: the environment always wins over the file. */
export type CredentialSource = 'env' | 'file';

export interface ResolvedCredential {
  credential: Credential;
  source: CredentialSource;
  /** The environment variable it came from, when `source` is `env`. */
  variable?: string;
}

/** Renews an OAuth credential; registered per provider id (a plugin's `loom.auth.refresher`). */
export type CredentialRefresher = (current: OAuthCredential, signal: AbortSignal) => Promise<OAuthCredential>;

/** What a provider asks for before each request. */
export interface CredentialProvider {
  /**
   * The credential for a provider id (`openai`, `anthropic`, a custom provider's id), with
   * environment variables overriding the file; an expired or expiring OAuth token is refreshed
   * first (bounded by a timeout). Undefined when there is none.
   */
  get(providerId: string, signal?: AbortSignal): Promise<ResolvedCredential | undefined>;
  /**
   * Whether a credential for the provider id is present now (environment or file), without
   * refreshing anything. A resolver uses it to refuse a provider that has no credential before a
   * session is created; `get` stays the truth at request time.
   */
  has?(providerId: string): boolean;
}

/** A safe one-line description: the type and, for keys and tokens, the last 4 characters at most. */
export function describeCredential(credential: Credential): string {
  const tail = (secret: string) => (secret.length >= 12 ? `…${secret.slice(-4)}` : '…');
  switch (credential.type) {
    case 'api':
      return `api key ${tail(credential.key)}`;
    case 'oauth':
      return `oauth token ${tail(credential.access)}${credential.expiresAt === undefined ? '' : ` (expires ${new Date(credential.expiresAt).toISOString()})`}`;
    case 'basic':
      return `basic ${credential.username}:…`;
    case 'headers':
      return `headers ${Object.keys(credential.headers).join(', ')}`;
  }
}

/**
 * Every string of a credential that must never appear outside the credentials file: the key,
 * tokens, the password and its Basic encoding, header values, each also as it looks JSON-escaped
 * and URL-encoded (the forms a provider's error body may echo it in). Header values shorter than
 * AUTH_SECRET_CHARS_MIN are not secret (`X-Org: 7`) and are left out.
 */
export function credentialSecrets(credential: Credential): string[] {
  const raw: string[] = [];
  switch (credential.type) {
    case 'api':
      raw.push(credential.key);
      break;
    case 'oauth':
      raw.push(credential.access);
      if (credential.refresh !== undefined) raw.push(credential.refresh);
      break;
    case 'basic':
      raw.push(credential.password, Buffer.from(`${credential.username}:${credential.password}`).toString('base64'));
      break;
    case 'headers':
      raw.push(...Object.values(credential.headers));
      break;
  }
  const forms = new Set<string>();
  for (const secret of raw) {
    if (secret.length < AUTH_SECRET_CHARS_MIN) continue;
    forms.add(secret);
    forms.add(JSON.stringify(secret).slice(1, -1));
    forms.add(encodeURIComponent(secret));
  }
  return [...forms];
}

/** What a secret is replaced with in error text. */
export const REDACTED = '[redacted]';

/**
 * `text` with every occurrence of each secret replaced by `[redacted]`, and a tail that is the
 * start of a secret (at least AUTH_REDACT_PARTIAL_CHARS_MIN characters, before an optional `…`)
 * replaced too: an error excerpt cut off by its byte bound may end half-way through an echoed key.
 * Use it on any text that may carry what a provider echoed before it is recorded or printed.
 */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  const list = [...new Set(secrets)].filter((s) => s.length >= AUTH_SECRET_CHARS_MIN).sort((a, b) => b.length - a.length);
  let result = text;
  for (const secret of list) result = result.split(secret).join(REDACTED);
  return redactPartialTail(result, list);
}

function redactPartialTail(text: string, secrets: readonly string[]): string {
  const ellipsis = text.endsWith('…') ? '…' : '';
  const body = ellipsis === '' ? text : text.slice(0, -1);
  let cut = body.length;
  for (const secret of secrets) {
    const head = secret.slice(0, AUTH_REDACT_PARTIAL_CHARS_MIN);
    // The first place (from the earliest a proper prefix could start) where the rest of the text is the secret's start.
    for (let p = body.indexOf(head, Math.max(0, body.length - secret.length + 1)); p !== -1 && p < cut; p = body.indexOf(head, p + 1)) {
      if (secret.startsWith(body.slice(p))) {
        cut = p;
        break;
      }
    }
  }
  return cut === body.length ? text : `${body.slice(0, cut)}${REDACTED}${ellipsis}`;
}
