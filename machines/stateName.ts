/** Dotted state name from an XState state value: { providerTurn: 'streaming' } → providerTurn.streaming. */
export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [k, v] = Object.entries(value)[0] ?? [];
    return k === undefined ? '' : `${k}.${stateName(v)}`;
  }
  return String(value);
}
