/**
 * The `bash` tool: runs a shell command in the session's directory, as its own process group, and
 * reports its output (stdout and stderr interleaved, head and tail kept when it is long) and how
 * it ended. On timeout or cancel the whole group is stopped (SIGTERM, then SIGKILL after
 * PROCESS_KILL_GRACE_MS), so nothing it spawned keeps running. With `background: true` the
 * command becomes a background job of the session instead (see actors/job.ts) and the call
 * returns at once with the job's id.
 *
 * Not confined by path rules: a shell command can read and write anything the user can. Not
 * idempotent: recovery never runs a started command twice.
 */
import { z } from 'zod';
import {
  BASH_COMMAND_BYTES_MAX,
  BASH_OUTPUT_BYTES_MAX,
  BASH_TIMEOUT_DEFAULT_MS,
  BASH_TIMEOUT_MAX_MS,
  JOB_TIMEOUT_DEFAULT_MS,
  JOB_TIMEOUT_MAX_MS,
  PROCESS_EXIT_WAIT_MS,
  PROCESS_KILL_GRACE_MS,
} from '../../core/limits.js';
import { CommandStartError, ToolServiceUnavailableError, ToolCancelledError } from '../errors.js';
import { commandShell, groupAlive, killGroup, spawnInGroup } from '../process.js';
import type { Tool, ToolContext, ToolResult } from '../types.js';

const bashInput = z
  .object({
    command: z
      .string()
      .min(1)
      .refine((c) => Buffer.byteLength(c) <= BASH_COMMAND_BYTES_MAX, `the command may have at most ${BASH_COMMAND_BYTES_MAX} bytes`)
      .describe('The command line, run with bash -c in the session directory.'),
    description: z.string().max(200).optional().describe('A few words saying what the command does, for the user.'),
    timeout: z
      .number()
      .int()
      .min(1)
      .max(JOB_TIMEOUT_MAX_MS)
      .optional()
      .describe(
        `Milliseconds before the command is stopped. Default ${BASH_TIMEOUT_DEFAULT_MS} (max ${BASH_TIMEOUT_MAX_MS}); ` +
          `with background, default ${JOB_TIMEOUT_DEFAULT_MS} (max ${JOB_TIMEOUT_MAX_MS}).`,
      ),
    background: z
      .boolean()
      .optional()
      .describe('Run as a background job: returns at once with a job id; the result arrives later as a message.'),
  })
  .superRefine((input, ctx) => {
    if (!input.background && input.timeout !== undefined && input.timeout > BASH_TIMEOUT_MAX_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeout'],
        message: `at most ${BASH_TIMEOUT_MAX_MS} ms for a foreground command; use background: true for longer work`,
      });
    }
  });

export type BashInput = z.infer<typeof bashInput>;

export const bashTool: Tool<BashInput> = {
  name: 'bash',
  description:
    'Run a shell command (bash -c) in the session directory and return its output (stdout and stderr together) and exit code. ' +
    `Default timeout ${BASH_TIMEOUT_DEFAULT_MS / 60_000} minutes, at most ${BASH_TIMEOUT_MAX_MS / 60_000}; on timeout the command and everything it started are stopped. ` +
    `Long output keeps its first and last ${BASH_OUTPUT_BYTES_MAX / 2 / 1024} KiB. stdin is closed. ` +
    'For long-running work (servers, long builds, watchers) pass background: true: the call returns a job id at once and the result is delivered to you as a message when the job ends.',
  input: bashInput,
  idempotent: false,
  // The per-call timeout is enforced here (and the group killed); the registry's bound only has to
  // cover the longest call plus the time to stop its group.
  timeoutMs: BASH_TIMEOUT_MAX_MS + PROCESS_KILL_GRACE_MS + 2 * PROCESS_EXIT_WAIT_MS + 5_000,
  async execute(input, ctx) {
    if (input.background) return startBackground(input, ctx);
    const timeoutMs = input.timeout ?? BASH_TIMEOUT_DEFAULT_MS;
    const run = () => runInGroup(input.command, { cwd: ctx.location, timeoutMs, signal: ctx.signal });
    // Checkpoints: a bounded scan of the directory before and after the command (tools/checkpoints).
    const result = await (ctx.checkpoint ? ctx.checkpoint.aroundCommand(run) : run());
    if (result.cancelled) throw new ToolCancelledError('bash');
    return {
      output: renderResult(result),
      metadata: {
        exitCode: result.exitCode,
        signal: result.signal,
        timedOut: result.timedOut,
        outputBytes: result.totalBytes,
        cutBytes: result.cutBytes,
      },
    };
  },
};

async function startBackground(input: BashInput, ctx: ToolContext): Promise<ToolResult> {
  const jobs = ctx.services.jobs;
  if (!jobs) throw new ToolServiceUnavailableError('bash', 'background jobs');
  // A job outlives its call, and other calls change files meanwhile: its changes are not attributed.
  ctx.checkpoint?.incomplete('a background bash job was started: changes it makes to files are not captured');
  const { jobId, outputPath } = await jobs.start(
    { kind: 'bash', command: input.command, description: input.description, timeoutMs: input.timeout ?? JOB_TIMEOUT_DEFAULT_MS },
    ctx,
  );
  return {
    output:
      `Started background job ${jobId}${outputPath ? `; its output goes to ${outputPath}` : ''}. ` +
      'Its result will be delivered to you as a message when it finishes. Do not wait for it by polling.',
    metadata: { jobId, outputPath },
  };
}

/** How a command run in its own process group ended, with its captured output. */
export interface CommandResult {
  /** Captured output: the head and the tail, with a notice in between when the middle was cut. */
  output: string;
  totalBytes: number;
  cutBytes: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** Processes the command left running in its group were stopped after it exited. */
  leftoversStopped: boolean;
}

export interface RunOptions {
  cwd: string;
  timeoutMs: number;
  signal: AbortSignal;
  /** Output bytes kept (half head, half tail); BASH_OUTPUT_BYTES_MAX by default. */
  outputBytesMax?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs `command` with the command shell in a new process group, stdin closed, capturing stdout
 * and stderr (bounded). On timeout or abort the whole group is stopped; after the command exits,
 * any process it left in its group is stopped too (it would otherwise run unobserved). Resolves
 * once the group is gone; rejects only when the command could not be started.
 */
export async function runInGroup(command: string, options: RunOptions): Promise<CommandResult> {
  const capture = new OutputCapture(options.outputBytesMax ?? BASH_OUTPUT_BYTES_MAX);
  let child: ReturnType<typeof spawnInGroup>;
  try {
    child = spawnInGroup(commandShell(), ['-c', command], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    throw new CommandStartError('bash', (error as Error).message);
  }
  const pgid = child.pid;
  child.stdout!.on('data', (chunk: Buffer) => capture.add(chunk));
  child.stderr!.on('data', (chunk: Buffer) => capture.add(chunk));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
  });

  let stopping: Promise<unknown> | undefined;
  let timedOut = false;
  let cancelled = false;
  const stop = () => (stopping ??= killGroup(pgid));
  const timer = setTimeout(() => {
    timedOut = true;
    void stop();
  }, options.timeoutMs);
  const onAbort = () => {
    cancelled = true;
    void stop();
  };
  if (options.signal.aborted) onAbort();
  else options.signal.addEventListener('abort', onAbort, { once: true });

  try {
    const end = await exited;
    if (end.error) throw new CommandStartError('bash', end.error.message);
    clearTimeout(timer);
    if (stopping) await stopping;
    let leftoversStopped = false;
    if (groupAlive(pgid)) {
      leftoversStopped = true;
      await killGroup(pgid);
    }
    // Pipes close once every process holding them is gone; bounded in case one survived SIGKILL.
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, PROCESS_EXIT_WAIT_MS).unref())]);
    child.stdout!.destroy();
    child.stderr!.destroy();
    const { text, totalBytes, cutBytes } = capture.render();
    return { output: text, totalBytes, cutBytes, exitCode: end.code, signal: end.signal, timedOut, cancelled, leftoversStopped };
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener('abort', onAbort);
  }
}

/** The text the model sees: the output, then one line saying how the command ended. */
export function renderResult(r: CommandResult): string {
  const lines: string[] = [];
  lines.push(r.output === '' ? '(no output)' : r.output.replace(/\n$/, ''));
  if (r.timedOut) lines.push(`[timed out; the command and every process it started were stopped${r.signal ? ` (${r.signal})` : ''}]`);
  else if (r.signal) lines.push(`[terminated by signal ${r.signal}]`);
  else lines.push(`[exit code ${r.exitCode ?? 'unknown'}]`);
  if (r.leftoversStopped) lines.push('[processes the command left running in the background were stopped; use background: true for long-running work]');
  return lines.join('\n');
}

/**
 * Keeps the first and the last `maxBytes / 2` bytes of a stream; the middle is counted and
 * dropped as it arrives, so memory stays bounded whatever the command prints.
 */
export class OutputCapture {
  private readonly headMax: number;
  private readonly tailMax: number;
  private head = Buffer.alloc(0);
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(maxBytes: number) {
    this.headMax = Math.floor(maxBytes / 2);
    this.tailMax = maxBytes - this.headMax;
  }

  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.head.length < this.headMax) {
      const take = Math.min(this.headMax - this.head.length, chunk.length);
      this.head = Buffer.concat([this.head, chunk.subarray(0, take)]);
      chunk = chunk.subarray(take);
      if (chunk.length === 0) return;
    }
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes - this.tail[0]!.length >= this.tailMax) this.tailBytes -= this.tail.shift()!.length;
  }

  render(): { text: string; totalBytes: number; cutBytes: number } {
    let tail = Buffer.concat(this.tail);
    if (tail.length > this.tailMax) tail = tail.subarray(tail.length - this.tailMax);
    const cutBytes = this.total - this.head.length - tail.length;
    if (cutBytes === 0) return { text: Buffer.concat([this.head, tail]).toString('utf8'), totalBytes: this.total, cutBytes: 0 };
    // Cut at character boundaries so no half-character shows up around the notice.
    const headEnd = utf8End(this.head);
    const tailStart = utf8Start(tail);
    const cut = cutBytes + (this.head.length - headEnd) + tailStart;
    const text =
      this.head.subarray(0, headEnd).toString('utf8') +
      `\n[... ${cut} bytes of output cut (${this.total} in all) ...]\n` +
      tail.subarray(tailStart).toString('utf8');
    return { text, totalBytes: this.total, cutBytes: cut };
  }
}

/** Length of `bytes` without a trailing incomplete UTF-8 sequence. */
export function utf8End(bytes: Buffer): number {
  let i = bytes.length;
  let back = 0;
  while (i > 0 && back < 4 && (bytes[i - 1]! & 0xc0) === 0x80) {
    i--;
    back++;
  }
  if (i === 0) return bytes.length;
  const lead = bytes[i - 1]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return need > back + 1 ? i - 1 : bytes.length;
}

/** Offset of the first byte of `bytes` that starts a UTF-8 character (skips leading continuation bytes). */
export function utf8Start(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length && i < 4 && (bytes[i]! & 0xc0) === 0x80) i++;
  return i;
}
