import type { AnyEnvelope, EventData } from '../store/index.js';
import { colorsFor, type Colors } from './style.js';

/**
 * Human rendering of a session's events for `run`, `prompt` and `tail`: the answer's text goes to
 * stdout as it streams; everything else is a short line on stderr (or stdout for `tail`).
 */
export interface Renderer {
  event(e: AnyEnvelope): void;
  end(): void;
}

export function createJsonRenderer(out: NodeJS.WritableStream): Renderer {
  return { event: (e) => out.write(`${JSON.stringify(e)}\n`), end: () => {} };
}

/**
 * `info` lines are coloured only on a terminal without NO_COLOR (cli/style.ts); the answer's text
 * is never coloured.
 */
export function createHumanRenderer(out: NodeJS.WritableStream, info: NodeJS.WritableStream, c: Colors = colorsFor(info)): Renderer {
  let midLine = false;
  const text = (s: string) => {
    out.write(s);
    midLine = !s.endsWith('\n');
  };
  const line = (s: string) => {
    if (midLine) text('\n');
    info.write(`${s}\n`);
  };
  return {
    event(e) {
      switch (e.type) {
        case 'text.delta':
          text(e.data.delta);
          break;
        case 'turn.finished':
          if (midLine) text('\n');
          break;
        case 'input.admitted':
          line(c.dim(`» ${e.data.mode} ${short(e.data.text, 80)}${attachedNames(e.data.attachments)}`));
          break;
        case 'input.assigned':
          line(c.dim(`» input ${e.data.inputId} joins ${e.data.activityId}`));
          break;
        case 'tool.called':
          line(c.cyan(`→ ${e.data.tool}(${short(e.data.input, 100)})`));
          break;
        case 'tool.settled':
          line(e.data.status === 'ok' ? c.green('← ok') : c.red(`← ${e.data.status}: ${short(e.data.output, 120)}`));
          break;
        case 'permission.asked':
          line(c.yellow(`? permission asked for ${e.data.tool}${e.data.summary ? ` ${short(e.data.summary, 100)}` : ''} (${e.data.requestId})`));
          break;
        case 'permission.replied':
          line(c.yellow(`? permission ${e.data.reply} (${e.data.requestId})${e.data.message ? `: ${short(e.data.message, 120)}` : ''}`));
          break;
        case 'attempt.failed':
          line(c.red(`! attempt failed (${e.data.error.kind}): ${short(e.data.error.message, 200)}`));
          break;
        case 'attempt.retrying':
          line(c.yellow(`↻ ${retryingText(e.data)}`));
          break;
        case 'activity.settled':
          line(statusColor(c, e.data.status)(`■ activity ${settledText(e.data)}`));
          break;
        case 'job.started':
          line(c.dim(`⚙ job ${e.data.jobId} started: ${short(e.data.summary, 100)}`));
          break;
        case 'job.settled':
          line(statusColor(c, e.data.status)(`⚙ job ${e.data.jobId} ${e.data.status}${e.data.exitCode === undefined ? '' : ` (exit ${e.data.exitCode})`}${e.data.status === 'ok' || !e.data.reason ? '' : `: ${short(e.data.reason, 120)}`}`));
          break;
        case 'recovery.detected':
          line(c.red(`! recovering: ${e.data.reason}`));
          break;
        case 'plugin.hook.failed':
          line(c.yellow(`! plugin ${e.data.plugin}: ${e.data.hook} hook failed (its change was dropped): ${short(e.data.message, 160)}`));
          break;
        case 'compaction.started':
          line(c.dim(`≡ compacting the conversation (${e.data.reason}${e.data.estimatedTokens !== undefined && e.data.windowTokens !== undefined ? `: about ${e.data.estimatedTokens} of ${e.data.windowTokens} tokens` : ''}${e.data.restarts ? `, restart ${e.data.restarts}` : ''})`));
          break;
        case 'compaction.finished':
          line(c.dim(`≡ compacted: ${e.data.coveredMessages} message(s) summarised, ${e.data.keptTurns} recent turn(s) kept (about ${e.data.estimatedTokens} tokens now)`));
          break;
        case 'compaction.failed':
          line(c.red(`! compaction failed (${e.data.kind}): ${short(e.data.reason, 200)}`));
          break;
        default:
          break;
      }
    },
    end() {
      if (midLine) text('\n');
    },
  };
}

/**
 * One line per event for `loom tail` without --json (the type coloured on a terminal): the data as
 * JSON, except for the events a reader wants in words (usage, retries, settlements).
 */
export function formatEventLine(e: AnyEnvelope, c?: Colors): string {
  return `${c ? c.dim(`#${e.seq} ${e.at}`) : `#${e.seq} ${e.at}`} ${c ? c.cyan(e.type) : e.type} ${eventSummary(e) ?? short(JSON.stringify(e.data), 160)}`;
}

function eventSummary(e: AnyEnvelope): string | undefined {
  switch (e.type) {
    case 'turn.finished':
      return `${e.data.finishReason} · ${formatUsage({ ...e.data.usage, costUsd: e.data.costUsd })}${e.data.toolCalls > 0 ? ` · ${e.data.toolCalls} tool call${e.data.toolCalls === 1 ? '' : 's'}` : ''} (${e.data.activityId})`;
    case 'attempt.retrying':
      return `${retryingText(e.data)} (${e.data.activityId})`;
    case 'activity.settled':
      return `${settledText(e.data)} (${e.data.activityId})`;
    default:
      return undefined;
  }
}

/** `attempt 2 in 0.3 s after rate_limit: … (the provider asked for 7 s)` */
function retryingText(d: EventData<'attempt.retrying'>): string {
  const asked = d.retryAfterMs === undefined ? '' : ` (the provider asked for ${seconds(d.retryAfterMs)})`;
  return `retrying: attempt ${d.nextAttempt} in ${seconds(d.delayMs)}${asked} after ${short(d.reason, 160)}`;
}

/** `completed (2 turns · 1200 input / 80 output tokens · $0.0030)`, with the reason when there is one. */
function settledText(d: EventData<'activity.settled'>): string {
  const usage = d.usage ? ` · ${formatUsage(d.usage)}` : '';
  return `${d.status}${d.reason ? `: ${d.reason}` : ''} (${d.turns} turn${d.turns === 1 ? '' : 's'}${usage})`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

/** Green for a good end, yellow for a stop someone chose or a limit, red for a failure. */
export function statusColor(c: Colors, status: string): (s: string) => string {
  if (status === 'completed' || status === 'ok') return c.green;
  if (status === 'cancelled' || status === 'turn_limit' || status === 'budget_exceeded' || status === 'abandoned') return c.yellow;
  return c.red;
}

/** `1234 input / 56 output tokens · $0.0123` (the cost only when a turn was priced). */
export function formatUsage(u: { inputTokens: number; outputTokens: number; costUsd?: number | null }): string {
  return `${u.inputTokens} input / ${u.outputTokens} output tokens${u.costUsd === null || u.costUsd === undefined ? '' : ` · ${formatUsd(u.costUsd)}`}`;
}

/** `10000 tokens, $0.5000` */
export function formatBudget(b: { tokens?: number; costUsd?: number }): string {
  return [b.tokens === undefined ? '' : `${b.tokens} tokens`, b.costUsd === undefined ? '' : formatUsd(b.costUsd)].filter(Boolean).join(', ');
}

/** Dollars with four decimals below one dollar (a turn of a cheap model costs fractions of a cent), two above. */
export function formatUsd(dollars: number): string {
  return `$${dollars.toFixed(dollars < 1 ? 4 : 2)}`;
}

function short(s: string, max: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function attachedNames(attachments: readonly { name: string }[] | undefined): string {
  if (attachments === undefined || attachments.length === 0) return '';
  return ` (attached: ${attachments.map((a) => a.name).join(', ')})`;
}
