import type { AnyEnvelope } from '../store/index.js';

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

export function createHumanRenderer(out: NodeJS.WritableStream, info: NodeJS.WritableStream): Renderer {
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
          line(`» ${e.data.mode} ${short(e.data.text, 80)}${attachedNames(e.data.attachments)}`);
          break;
        case 'input.assigned':
          line(`» input ${e.data.inputId} joins ${e.data.activityId}`);
          break;
        case 'tool.called':
          line(`→ ${e.data.tool}(${short(e.data.input, 100)})`);
          break;
        case 'tool.settled':
          line(`← ${e.data.status}${e.data.status === 'ok' ? '' : `: ${short(e.data.output, 120)}`}`);
          break;
        case 'permission.asked':
          line(`? permission asked for ${e.data.tool}${e.data.summary ? ` ${short(e.data.summary, 100)}` : ''} (${e.data.requestId})`);
          break;
        case 'permission.replied':
          line(`? permission ${e.data.reply} (${e.data.requestId})${e.data.message ? `: ${short(e.data.message, 120)}` : ''}`);
          break;
        case 'attempt.failed':
          line(`! attempt failed (${e.data.error.kind}): ${short(e.data.error.message, 200)}${e.data.retryable && !e.data.receivedChunks ? ' — retrying' : ''}`);
          break;
        case 'activity.settled':
          line(`■ activity ${e.data.status}${e.data.reason ? `: ${e.data.reason}` : ''} (${e.data.turns} turn${e.data.turns === 1 ? '' : 's'})`);
          break;
        case 'job.started':
          line(`⚙ job ${e.data.jobId} started: ${short(e.data.summary, 100)}`);
          break;
        case 'job.settled':
          line(`⚙ job ${e.data.jobId} ${e.data.status}${e.data.exitCode === undefined ? '' : ` (exit ${e.data.exitCode})`}${e.data.status === 'ok' || !e.data.reason ? '' : `: ${short(e.data.reason, 120)}`}`);
          break;
        case 'recovery.detected':
          line(`! recovering: ${e.data.reason}`);
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

/** One line per event for `loom tail` without --json. */
export function formatEventLine(e: AnyEnvelope): string {
  const data = JSON.stringify(e.data);
  return `#${e.seq} ${e.at} ${e.type} ${short(data, 160)}`;
}

function short(s: string, max: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function attachedNames(attachments: readonly { name: string }[] | undefined): string {
  if (attachments === undefined || attachments.length === 0) return '';
  return ` (attached: ${attachments.map((a) => a.name).join(', ')})`;
}
