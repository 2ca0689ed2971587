import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Compiles the project once: child-process and end-to-end tests run the compiled JavaScript.
 * Type errors do not stop the run here (tsc still emits); `.ci/run` type-checks separately.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  const result = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) console.warn('global-setup: tsc reported errors; tests run against what it emitted');
}
