/**
 * How a provider adapter authenticates one request. The adapter asks a `CredentialProvider` (the
 * auth service: environment over `$LOOM_HOME/auth.json`, expiring tokens refreshed) before EVERY
 * request, so a rotated key or a refreshed token is used by the next request without a restart.
 * A static key given to the adapter (config, tests) is the fallback when the provider has none.
 *
 * Whatever was sent is also what must not come back: a provider's error body may echo the
 * Authorization header, so every failure of the attempt is redacted with the secrets it sent.
 */
import { credentialSecrets, describeCredential, redactSecrets, type Credential, type CredentialProvider } from '../services/credentials.js';
import { ProviderAuthError, ProviderConfigError, ProviderError } from './errors.js';

/** Where an adapter puts an API key: `Authorization: Bearer` (OpenAI kinds) or `x-api-key` (Anthropic). */
export type ApiKeyHeader = 'authorization' | 'x-api-key';

/** The auth headers of one request and the secrets they carry (to redact from its failure). */
export interface RequestAuthHeaders {
  headers: Record<string, string>;
  secrets: string[];
  /** A safe description of what was sent (`api key …abcd from OPENAI_API_KEY`), for auth failures. */
  described?: string;
}

export interface RequestAuth {
  /** The headers for the next request. Throws ProviderConfigError when a credential is required and there is none. */
  headers(signal: AbortSignal): Promise<RequestAuthHeaders>;
}

export interface RequestAuthOptions {
  /** The provider id the credential provider is asked for (`openai`, `anthropic`, a custom id). */
  providerId: string;
  credentials?: CredentialProvider;
  /** Sent when the credential provider has nothing for this id (a key from config or a test). */
  apiKey?: string;
  apiKeyHeader: ApiKeyHeader;
  /** Fail the request when there is no credential at all (a local server needs none; api.openai.com does). */
  required: boolean;
  /** The environment variables to name when a required credential is missing. */
  variables: readonly string[];
}

/** Builds the per-request auth of an adapter. */
export function createRequestAuth(options: RequestAuthOptions): RequestAuth {
  const staticKey = options.apiKey === '' ? undefined : options.apiKey;
  return {
    async headers(signal) {
      const resolved = await lookUp(options, signal);
      if (resolved !== undefined) {
        const { credential, where } = resolved;
        return {
          headers: credentialHeaders(credential, options.apiKeyHeader),
          secrets: credentialSecrets(credential),
          described: `${describeCredential(credential)} from ${where}`,
        };
      }
      if (staticKey !== undefined) {
        const credential: Credential = { type: 'api', key: staticKey };
        return { headers: credentialHeaders(credential, options.apiKeyHeader), secrets: credentialSecrets(credential), described: describeCredential(credential) };
      }
      if (options.required) throw missingCredential(options);
      return { headers: {}, secrets: [] };
    },
  };
}

async function lookUp(options: RequestAuthOptions, signal: AbortSignal): Promise<{ credential: Credential; where: string } | undefined> {
  if (options.credentials === undefined) return undefined;
  let resolved;
  try {
    resolved = await options.credentials.get(options.providerId, signal);
  } catch (error) {
    if (error instanceof ProviderError) throw error;
    // A refresh that failed or an unreadable credentials file: the request cannot be authenticated.
    // The auth service's messages name the provider and never a secret.
    throw new ProviderAuthError(`No usable credential for provider "${options.providerId}": ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  if (resolved === undefined) return undefined;
  return { credential: resolved.credential, where: resolved.source === 'env' ? (resolved.variable ?? 'the environment') : 'the credentials file' };
}

function missingCredential(options: RequestAuthOptions): ProviderConfigError {
  const variables = options.variables.length > 0 ? `${options.variables.join(' or ')} is not set and ` : '';
  return new ProviderConfigError(
    `${variables}no credential for provider "${options.providerId}" is stored: set ${options.variables[0] ?? 'a variable'}, or run \`loom auth set ${options.providerId}\``,
    options.variables,
  );
}

/**
 * The HTTP headers that carry a credential: an API key as the adapter expects it, a token as
 * `Authorization: Bearer`, basic as `Authorization: Basic`, custom headers as given.
 */
export function credentialHeaders(credential: Credential, apiKeyHeader: ApiKeyHeader): Record<string, string> {
  switch (credential.type) {
    case 'api':
      return apiKeyHeader === 'x-api-key' ? { 'x-api-key': credential.key } : { authorization: `Bearer ${credential.key}` };
    case 'oauth':
      return { authorization: `Bearer ${credential.access}` };
    case 'basic':
      return { authorization: `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}` };
    case 'headers':
      return Object.fromEntries(Object.entries(credential.headers).map(([name, value]) => [name.toLowerCase(), value]));
  }
}

/**
 * Removes the request's secrets from a failure before anyone records or prints it: the message,
 * the stack (it repeats the message) and the chain of causes. An auth failure also says which
 * credential was refused (its safe description), so the user knows what to fix.
 */
export function redactFailure(error: unknown, auth: RequestAuthHeaders | undefined): unknown {
  if (auth === undefined) return error;
  if (auth.secrets.length > 0) scrub(error, auth.secrets, 0);
  if (error instanceof ProviderAuthError && auth.described !== undefined && !error.message.includes('(credential:')) {
    error.message = `${error.message} (credential: ${auth.described})`;
  }
  return error;
}

/** Causes followed when scrubbing a failure; a chain longer than this is not one we made. */
const CAUSE_DEPTH_MAX = 8;

function scrub(error: unknown, secrets: readonly string[], depth: number): void {
  if (!(error instanceof Error) || depth > CAUSE_DEPTH_MAX) return;
  rewrite(error, 'message', secrets);
  rewrite(error, 'stack', secrets);
  scrub(error.cause, secrets, depth + 1);
}

/** Rewrites one text property when it holds a secret. Some errors (DOMException) have read-only messages: those are fixed texts we did not make. */
function rewrite(error: Error, property: 'message' | 'stack', secrets: readonly string[]): void {
  const text = error[property];
  if (typeof text !== 'string') return;
  const redacted = redactSecrets(text, secrets);
  if (redacted === text) return;
  try {
    error[property] = redacted;
  } catch {
    try {
      Object.defineProperty(error, property, { value: redacted, configurable: true, writable: true });
    } catch {
      // a frozen error: nothing of ours can be in it
    }
  }
}
