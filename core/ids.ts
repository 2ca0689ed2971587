import { randomBytes } from 'node:crypto';

/** The one injected id generator. Ids are prefixed by kind and sort by creation time. */
export interface IdGenerator {
  next(prefix: string): string;
}

let lastMs = 0;
let counter = 0;

/** Time-ordered ids: prefix, 10 chars of millisecond time, 4 of counter, 8 random (base36). */
export const randomIds: IdGenerator = {
  next(prefix: string) {
    const ms = Date.now();
    if (ms === lastMs) counter++;
    else {
      lastMs = ms;
      counter = 0;
    }
    const time = ms.toString(36).padStart(10, '0');
    const seq = counter.toString(36).padStart(4, '0');
    const rnd = randomBytes(6).toString('base64url').replace(/[-_]/g, 'x').slice(0, 8).toLowerCase();
    return `${prefix}_${time}${seq}${rnd}`;
  },
};

/** Deterministic ids for tests: prefix_1, prefix_2, … */
export function createSequentialIds(): IdGenerator {
  let n = 0;
  return { next: (prefix: string) => `${prefix}_${String(++n).padStart(6, '0')}` };
}
