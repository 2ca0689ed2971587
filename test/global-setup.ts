import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Builds dist/ once (tsc, then the CLI bundle): child-process and end-to-end tests run the
 * compiled JavaScript. Type errors do not stop the run here; `.ci/run` type-checks separately.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  const result = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--allow-type-errors'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) console.warn('global-setup: the build reported errors; tests run against what it emitted');
}
