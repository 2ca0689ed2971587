/**
 * Merges a request's extra headers (ProviderRequest.headers, set by plugins' `chat.headers` hooks)
 * under the adapter's own headers. Header names are case-insensitive, so an extra header whose
 * name matches one of `own` in any case is dropped: credentials, content type and API version are
 * always the adapter's. Returns a new object; neither argument is changed.
 */
export function withExtraHeaders(own: Record<string, string>, extra: Record<string, string> | undefined): Record<string, string> {
  if (extra === undefined) return own;
  const taken = new Set(Object.keys(own).map((name) => name.toLowerCase()));
  const merged: Record<string, string> = {};
  for (const [name, value] of Object.entries(extra)) {
    if (!taken.has(name.toLowerCase())) merged[name] = value;
  }
  return { ...merged, ...own };
}
