import type { AnyEnvelope } from '../store/index.js';
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
          line(c.red(`! attempt failed (${e.data.error.kind}): ${short(e.data.error.message, 200)}${e.data.retryable && !e.data.receivedChunks ? ' — retrying' : ''}`));
          break;
        case 'activity.settled':
          line(statusColor(c, e.data.status)(`■ activity ${e.data.status}${e.data.reason ? `: ${e.data.reason}` : ''} (${e.data.turns} turn${e.data.turns === 1 ? '' : 's'})`));
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

/** One line per event for `loom tail` without --json (the type coloured on a terminal). */
export function formatEventLine(e: AnyEnvelope, c?: Colors): string {
  const data = JSON.stringify(e.data);
  return `${c ? c.dim(`#${e.seq} ${e.at}`) : `#${e.seq} ${e.at}`} ${c ? c.cyan(e.type) : e.type} ${short(data, 160)}`;
}

/** Green for a good end, yellow for a stop someone chose or a limit, red for a failure. */
export function statusColor(c: Colors, status: string): (s: string) => string {
  if (status === 'completed' || status === 'ok') return c.green;
  if (status === 'cancelled' || status === 'turn_limit' || status === 'budget_exceeded' || status === 'abandoned') return c.yellow;
  return c.red;
}

function short(s: string, max: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function attachedNames(attachments: readonly { name: string }[] | undefined): string {
  if (attachments === undefined || attachments.length === 0) return '';
  return ` (attached: ${attachments.map((a) => a.name).join(', ')})`;
}
