import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Compiles the project once: child-process and end-to-end tests run the compiled JavaScript. */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
