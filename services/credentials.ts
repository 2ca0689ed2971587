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

/** Where a credential in force came from: the environment always wins over the file. */
export type CredentialSource = 'env' | 'file';

export interface ResolvedCredential {
  credential: Credential;
  source: CredentialSource;
  /** The environment variable it came from, when `source` is `env`. */
  variable?: string;
}

/** Renews an OAuth credential; registered per provider id (a plugin's `loom.auth.refresher`). */
export type CredentialRefresher = (current: Extract<Credential, { type: 'oauth' }>, signal: AbortSignal) => Promise<Extract<Credential, { type: 'oauth' }>>;

/** What a provider asks for before each request. */
export interface CredentialProvider {
  /**
   * The credential for a provider id (`openai`, `anthropic`, a custom provider's id), with
   * environment variables overriding the file; an expired or expiring OAuth token is refreshed
   * first (bounded by a timeout). Undefined when there is none.
   */
  get(providerId: string, signal?: AbortSignal): Promise<ResolvedCredential | undefined>;
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
