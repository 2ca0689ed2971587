import { hostname } from 'node:os';

/**
 * Whether a lease holder is known to be dead: owner ids start with `host:pid:`, and a holder on
 * this host whose process no longer exists (killed, crashed) need not be waited out. False when
 * it cannot tell (another host, not a pid, this very process, or a process that is alive).
 */
export function ownerProcessGone(ownerId: string): boolean {
  const [host, pid] = ownerId.split(':');
  if (host !== hostname() || !pid || !/^\d+$/.test(pid) || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'EPERM';
  }
}
