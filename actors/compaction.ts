/**
 * Compaction (context management, DESIGN §3): the `compacting` state's child. It summarises the
 * conversation up to a boundary with one provider turn (a summarising system prompt, the covered
 * messages as a transcript, no tools) and records `compaction.finished` with the summary and the
 * boundary (`throughSeq`), or `compaction.failed`. Later requests send the summary and the
 * messages after the boundary (actors/history.ts, actors/providerTurn.ts).
 *
 * - The boundary keeps the most recent `compaction.keepRecentTurns` turns verbatim (an assistant
 *   round with its tool results, and the prompts just before it). A requested or overflow
 *   compaction keeps fewer when that is the only way to cover anything.
 * - Inputs admitted while it runs are still pending (not in the projected conversation), so a
 *   steer never ends up in a summary; the machine assigns them after it.
 * - Durable: `compaction.started` is recorded before the summary request; an owner lost mid-summary
 *   leaves it open, and the next owner starts the summary again (it has no side effect), at most
 *   COMPACTION_RESTARTS_MAX times. Cancellation aborts `signal`: nothing more is recorded here.
 */
import {
  ATTEMPT_RETRIES_MAX,
  ATTEMPT_RETRY_BACKOFF_MAX_MS,
  ATTEMPT_RETRY_BACKOFF_MS,
  COMPACTION_CHARS_PER_TOKEN,
  COMPACTION_REASON_CHARS_MAX,
  COMPACTION_SUMMARY_CHARS_MAX,
  COMPACTION_SUMMARY_TOKENS_MAX,
  COMPACTION_TOOL_OUTPUT_CHARS_MAX,
  COMPACTION_TRANSCRIPT_CHARS_MAX,
} from '../core/limits.js';
import { ProviderError } from '../llm/errors.js';
import type { Usage } from '../llm/types.js';
import { tokensOf } from '../machines/compaction.js';
import { visibleTools } from '../services/agents.js';
import type { AppendRequest, MessageView } from '../store/index.js';
import { summaryMessage } from './history.js';
import type { SessionActor } from './session.js';

/** The system prompt of a summary request (tests recognise summary requests by it). */
export const COMPACTION_SYSTEM_PROMPT = [
  'You summarise a conversation between a user and a coding agent, so that the agent can continue the work',
  'with your summary in place of the conversation. Write a concise but complete summary:',
  "- the user's goals and requests, with exact requirements quoted;",
  '- decisions made and why;',
  '- files read, created or changed (their paths) and what changed;',
  '- commands run and their important results; errors met and how they were resolved;',
  '- the current state of the work and what remains to do next.',
  'Keep exact names, paths, identifiers and numbers. Do not invent anything, do not address the user,',
  'and answer with the summary only.',
].join('\n');

/** Which messages a compaction covers and which it keeps verbatim. */
export interface CompactionPlan {
  covered: MessageView[];
  kept: MessageView[];
  /** The seq of the last covered message: later requests send the messages after it. */
  throughSeq: number;
  /** Assistant turns kept verbatim. */
  keptTurns: number;
}

/**
 * Chooses the boundary in `conversation` (the messages after the previous compaction): the last
 * `keep` assistant turns stay, with the user messages right before the first of them; the rest is
 * covered. With `allowFewer`, when that covers nothing, fewer turns are kept (down to none; user
 * messages at the very end always stay). Null when nothing can be covered.
 */
export function planCompaction(conversation: readonly MessageView[], keep: number, allowFewer: boolean): CompactionPlan | null {
  const assistants = conversation.flatMap((m, i) => (m.role === 'assistant' ? [i] : []));
  for (let k = Math.min(keep, assistants.length); k >= 0; k--) {
    let start = k === 0 ? conversation.length : assistants[assistants.length - k]!;
    while (start > 0 && conversation[start - 1]!.role === 'user') start--;
    if (start > 0) {
      const covered = conversation.slice(0, start);
      const kept = conversation.slice(start);
      return { covered, kept, throughSeq: covered.at(-1)!.seq, keptTurns: kept.filter((m) => m.role === 'assistant').length };
    }
    if (!allowFewer) return null;
  }
  return null;
}

/**
 * The covered conversation as plain text for the summary request: the previous summary, then each
 * message (tool results cut to COMPACTION_TOOL_OUTPUT_CHARS_MAX, head and tail). Past `budgetChars`
 * the oldest messages are left out, and the transcript says how many.
 */
export function renderTranscript(previousSummary: string | undefined, covered: readonly MessageView[], budgetChars: number): string {
  const entries = covered.map(renderMessage).filter((e) => e !== '');
  const head = previousSummary === undefined ? '' : `<previous-summary>\n${previousSummary}\n</previous-summary>\n\n`;
  let room = Math.max(0, budgetChars - head.length);
  const kept: string[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (entry.length + 2 > room) break;
    kept.unshift(entry);
    room -= entry.length + 2;
  }
  const omitted = entries.length - kept.length;
  const note = omitted > 0 ? `[${omitted} earlier message(s) left out: the transcript is limited to ${budgetChars} characters]\n\n` : '';
  return `${head}<conversation>\n${note}${kept.join('\n\n')}\n</conversation>`;
}

function renderMessage(m: MessageView): string {
  if (m.role === 'user') {
    const names = (m.attachments ?? []).map((a) => a.name);
    return `[user]\n${m.text ?? ''}${names.length > 0 ? `\n(attached: ${names.join(', ')})` : ''}`;
  }
  const lines: string[] = [];
  const text = m.parts.filter((p) => p.kind === 'text').map((p) => p.text).join('');
  if (text !== '') lines.push(`[assistant]\n${text}`);
  for (const c of m.toolCalls) {
    lines.push(`[assistant calls ${c.tool}] ${cut(c.input, COMPACTION_TOOL_OUTPUT_CHARS_MAX)}`);
    const output = c.state === 'settled' ? (c.output ?? '') : 'The tool call was interrupted before it finished.';
    lines.push(`[${c.tool} result: ${c.status ?? 'interrupted'}]\n${cut(output, COMPACTION_TOOL_OUTPUT_CHARS_MAX)}`);
  }
  return lines.join('\n');
}

/** Head and tail of `text` within `max` characters, the middle replaced by a marker. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const half = Math.floor((max - 40) / 2);
  return `${text.slice(0, half)}\n[… ${text.length - 2 * half} characters cut …]\n${text.slice(-half)}`;
}

function charsOf(messages: readonly MessageView[]): number {
  let chars = 0;
  for (const m of messages) {
    chars += (m.text ?? '').length + (m.attachments ?? []).reduce((n, a) => n + a.text.length, 0);
    for (const p of m.parts) chars += p.text.length;
    for (const c of m.toolCalls) chars += c.input.length + (c.output ?? '').length;
  }
  return chars;
}

/**
 * Runs the open compaction of `session` (its `compaction.started` is in the context) and records
 * the outcome. Retryable provider failures are retried like a turn's (ATTEMPT_RETRIES_MAX, with
 * backoff) while nothing streamed; any other failure is `compaction.failed`, never an exception.
 */
export async function runCompaction(session: SessionActor, signal: AbortSignal): Promise<void> {
  const context = session.context();
  const current = context.compaction.current;
  if (!current || signal.aborted) return;
  if (session.draining) {
    session.drained(); // a safe point: the next owner starts this summary again
    return;
  }
  const { store, config } = session.deps;
  const sid = session.sessionId;
  const epoch = session.lease.epoch;
  const owner = (r: Omit<AppendRequest, 'sessionId' | 'epoch'>) => ({ ...r, sessionId: sid, epoch }) as AppendRequest;
  const failed = (kind: string, reason: string) =>
    session.observe([owner({ type: 'compaction.failed', data: { compactionId: current.id, kind, reason: reason.slice(0, COMPACTION_REASON_CHARS_MAX) } })]);
  try {
    const previous = session.latestCompaction();
    const conversation = store.queries.conversation(sid, { afterSeq: previous?.throughSeq ?? 0 });
    const plan = planCompaction(conversation, config.compaction.keepRecentTurns, current.reason !== 'auto');
    if (!plan) {
      failed('nothing_to_compact', `nothing to compact: the conversation since the last compaction has ${conversation.length} message(s), all kept verbatim`);
      return;
    }
    const activity = context.activity;
    const model = session.modelFor(activity);
    const window = activity?.contextWindow ?? session.windowFor(model);
    // The summary request itself must fit: at most half the window (in characters) for the transcript.
    const budget = Math.min(COMPACTION_TRANSCRIPT_CHARS_MAX, Math.floor((window * COMPACTION_CHARS_PER_TOKEN) / 2));
    const transcript = renderTranscript(previous?.summary, plan.covered, budget);
    const { text, usage } = await summarise(session, model, transcript, signal);
    if (signal.aborted) return;
    const summary = text.trim().slice(0, COMPACTION_SUMMARY_CHARS_MAX);
    if (summary === '') {
      failed('empty', `the model (${model}) answered the summary request with no text`);
      return;
    }
    const estimatedTokens = await estimateAfter(session, summary, plan.kept);
    if (signal.aborted) return;
    session.observe([
      owner({
        type: 'compaction.finished',
        data: {
          compactionId: current.id,
          summary,
          throughSeq: plan.throughSeq,
          coveredMessages: plan.covered.length,
          keptTurns: plan.keptTurns,
          estimatedTokens,
          model,
          ...(usage ? { usage } : {}),
        },
      }),
    ]);
  } catch (error) {
    if (signal.aborted || session.failure !== undefined) return;
    const kind = error instanceof ProviderError ? `provider_${error.kind}` : 'internal';
    failed(kind, `the summary request failed: ${(error as Error)?.message ?? String(error)}`);
  }
}

/** One summary request, retried while retryable and nothing streamed. */
async function summarise(session: SessionActor, modelRef: string, transcript: string, signal: AbortSignal): Promise<{ text: string; usage?: Usage }> {
  const { provider, model } = session.deps.resolveProvider(modelRef);
  const messages = [
    { role: 'system' as const, content: COMPACTION_SYSTEM_PROMPT },
    { role: 'user' as const, content: `${transcript}\n\nSummarise the conversation above (and the previous summary, if there is one) as instructed.` },
  ];
  for (let attempt = 1; ; attempt++) {
    let text = '';
    let received = false;
    try {
      for await (const ev of provider.stream({ model, messages, tools: [], signal, maxOutputTokens: COMPACTION_SUMMARY_TOKENS_MAX })) {
        received = true;
        if (ev.type === 'text.delta' && text.length < COMPACTION_SUMMARY_CHARS_MAX) text += ev.delta;
        if (ev.type === 'finish') return { text, usage: ev.usage };
      }
      throw new Error('the provider stream ended without a finish event');
    } catch (error) {
      const retryable = error instanceof ProviderError && error.retryable && !received && !signal.aborted;
      if (!retryable || attempt > ATTEMPT_RETRIES_MAX) throw error;
      const delay = Math.min(Math.max(ATTEMPT_RETRY_BACKOFF_MS * 2 ** (attempt - 1), error.retryAfterMs ?? 0), ATTEMPT_RETRY_BACKOFF_MAX_MS);
      await sleep(delay, signal);
    }
  }
}

/** Estimated tokens of the next request after the compaction: system prompt, tools, summary and the kept messages. */
async function estimateAfter(session: SessionActor, summary: string, kept: readonly MessageView[]): Promise<number> {
  const activity = session.context().activity;
  let overhead = 0;
  try {
    const profile = session.profileFor(activity);
    const model = session.modelFor(activity);
    overhead += JSON.stringify(visibleTools(profile, session.deps.tools.specs())).length;
    overhead += (await session.systemPromptFor(activity?.id ?? null, profile, model))?.length ?? 0;
  } catch {
    // an unknown profile fails the next request itself; the estimate does without its prompt
  }
  return tokensOf(overhead + summaryMessage(summary).length + charsOf(kept));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
