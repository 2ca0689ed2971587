import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Tool } from '../types.js';

/**
 * A deliberately NON-idempotent tool for crash tests: it appends its call id to `.loom-probe.log`
 * in the session's directory, after an optional delay. Counting the lines shows whether a call ran
 * twice. Registered only when `LOOM_TEST_TOOLS=1` (never in normal use).
 */
export const probeTool: Tool<{ delayMs?: number; note?: string }> = {
  name: 'probe_append',
  description: 'Test tool: appends this call id to .loom-probe.log after delayMs.',
  input: z.object({ delayMs: z.number().int().min(0).max(60_000).optional(), note: z.string().max(200).optional() }),
  idempotent: false,
  timeoutMs: 90_000,
  async execute(input, ctx) {
    if (input.delayMs) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, input.delayMs);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new Error('aborted'));
        });
      });
    }
    await appendFile(join(ctx.location, '.loom-probe.log'), `${ctx.callId}${input.note ? ` ${input.note}` : ''}\n`);
    return { output: `appended ${ctx.callId}` };
  },
};

/** Test tools enabled by the environment (`LOOM_TEST_TOOLS=1`). */
export function testToolsFromEnv(env: NodeJS.ProcessEnv = process.env): Tool[] {
  return env.LOOM_TEST_TOOLS === '1' ? [probeTool] : [];
}
