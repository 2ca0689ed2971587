import { spawnLoom, type LoomResult } from '../fixtures/torture.js';
import { onCleanup } from '../helpers.js';

/**
 * Runs the built `loom` as a real process (stdin is not a terminal) and resolves with its exit
 * code and output; a process still running when the test ends is killed.
 */
export function runLoom(args: string[], env: NodeJS.ProcessEnv): Promise<LoomResult> {
  const p = spawnLoom(args, env);
  onCleanup(() => void p.kill());
  return p.done;
}
