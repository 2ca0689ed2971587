/**
 * The one injected clock. `now()` is wall time in epoch milliseconds (comparable across
 * processes: leases and event times use it); `monotonic()` measures elapsed time and never jumps.
 */
export interface Clock {
  now(): number;
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

/** A clock tests move by hand. */
export function createManualClock(start = Date.UTC(2026, 0, 1)): Clock & { advance(ms: number): void; set(ms: number): void } {
  let wall = start;
  let mono = 0;
  return {
    now: () => wall,
    monotonic: () => mono,
    advance(ms: number) {
      wall += ms;
      mono += ms;
    },
    set(ms: number) {
      wall = ms;
    },
  };
}
