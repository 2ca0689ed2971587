import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { Store, type StoreOptions } from '../store/index.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) {
    try {
      cleanups.pop()!();
    } catch {
      // best effort
    }
  }
});

/** A fresh temp directory, removed after the test. */
export function tempDir(prefix = 'loom-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh store on a temp SQLite file, closed after the test. */
export function tempStore(options: StoreOptions = {}): Store {
  const path = join(tempDir(), 'loom.db');
  const store = Store.open(path, options);
  cleanups.push(() => store.db.open && store.close());
  return store;
}

export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}

/** Root of the compiled project (child processes run compiled JavaScript). */
export const DIST = join(import.meta.dirname, '..', 'dist');
