/**
 * Headers that carry credentials. A request's extra headers may never set them: credentials come
 * from the provider's configuration (the auth service), and a plugin hook must neither replace
 * nor forward one.
 */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'x-api-key', 'api-key', 'cookie']);

/**
 * Merges a request's extra headers (ProviderRequest.headers, set by plugins' `chat.headers` hooks)
 * under the adapter's own headers. Header names are case-insensitive: an extra header named like
 * one of `own` (in any case) or like a credential header is dropped, so credentials, content type
 * and API version are always the adapter's. Returns a new object; neither argument is changed.
 */
export function withExtraHeaders(own: Record<string, string>, extra: Record<string, string> | undefined): Record<string, string> {
  if (extra === undefined) return own;
  const taken = new Set(Object.keys(own).map((name) => name.toLowerCase()));
  const merged: Record<string, string> = {};
  for (const [name, value] of Object.entries(extra)) {
    const lower = name.toLowerCase();
    if (!taken.has(lower) && !CREDENTIAL_HEADERS.has(lower)) merged[name] = value;
  }
  return { ...merged, ...own };
}
