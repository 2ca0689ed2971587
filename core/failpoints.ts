/**
 * Named failpoints at persistence boundaries, for crash tests (DESIGN §5). With
 * `LOOM_FAILPOINT=after:attempt.dispatched` the process kills itself (SIGKILL, no cleanup) right
 * after the first commit containing that event; `before:tool.started` kills it inside the
 * transaction that would write it (so it is never committed). `NAME@N` fires on the N-th hit;
 * several failpoints may be given, comma-separated. Unset, every check is one boolean test.
 */
const spec = process.env.LOOM_FAILPOINT ?? '';
const armed = new Map<string, { at: number; hits: number }>();
for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
  const [name, nth] = item.split('@');
  armed.set(name!, { at: Math.max(1, Number(nth ?? 1) || 1), hits: 0 });
}

export const failpointsArmed = armed.size > 0;

/** Kills the process if `phase:name` is armed and this is its N-th hit. */
export function failpoint(phase: 'before' | 'after', name: string): void {
  if (!failpointsArmed) return;
  const fp = armed.get(`${phase}:${name}`);
  if (!fp) return;
  fp.hits++;
  if (fp.hits === fp.at) {
    process.stderr.write(`loom: failpoint ${phase}:${name} hit, killing the process\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
