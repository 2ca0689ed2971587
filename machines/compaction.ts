import { COMPACTION_CHARS_PER_TOKEN } from '../core/limits.js';
import type { EventData } from '../store/schemas.js';

/**
 * The session machine's bookkeeping for compaction (context management, DESIGN §3): pure
 * functions of the log events, used by machines/session.machine.ts in its assigns and guards. The
 * estimate follows DESIGN's rule: the last turn's reported tokens, plus characters / 4 of what was
 * added since (tool results, inputs), compared with a fraction of the model's window.
 */

export type CompactionReason = 'auto' | 'requested' | 'overflow';

/** When a session compacts on its own (from config and the model catalog; refreshed on restore). */
export interface CompactionSettings {
  auto: boolean;
  /** Fraction of the window the estimated next request must reach. */
  threshold: number;
  /** The context window of the session's model, in tokens (catalog, else the configured fallback). */
  windowTokens: number;
  /** Turns kept verbatim after a compaction; an automatic one needs more turns than this to summarise. */
  keepRecentTurns: number;
}

export interface CompactionContext {
  /** Estimated tokens of the conversation the next request sends (inputs still pending not included). */
  estimate: number;
  /** Finished turns not covered by a summary. */
  turns: number;
  /** No automatic compaction until a turn finishes: one ran (or failed) since the last turn. */
  held: boolean;
  /** A `compaction.requested` waits for the next safe point. */
  requested: boolean;
  /** Characters of pending inputs, by input id: they join the estimate when assigned. */
  pending: Record<string, number>;
  /** The compaction running now, from its `compaction.started`. */
  current: { id: string; reason: CompactionReason; restarts: number } | null;
  /** The activity compacted after a context overflow and has finished no turn since: another overflow fails it. */
  overflowCompacted: boolean;
  /** The seq of the last `compaction.finished` (its summary and boundary are what requests are built from), or null. */
  summarySeq: number | null;
}

export function initialCompaction(): CompactionContext {
  return { estimate: 0, turns: 0, held: false, requested: false, pending: {}, current: null, overflowCompacted: false, summarySeq: null };
}

export function tokensOf(chars: number): number {
  return Math.ceil(chars / COMPACTION_CHARS_PER_TOKEN);
}

/** The estimate for a request that also sends `inputIds` (pending inputs about to be assigned). */
export function estimateWith(c: CompactionContext, inputIds: readonly string[]): number {
  return c.estimate + tokensOf(inputIds.reduce((sum, id) => sum + (c.pending[id] ?? 0), 0));
}

/**
 * Whether the next request (sending `inputIds` too) nears the window: automatic compaction is on,
 * not held, there are more finished turns than the ones kept verbatim, and the estimate reaches
 * `threshold × window`.
 */
export function autoCompactionDue(c: CompactionContext, settings: CompactionSettings | undefined, windowTokens: number | undefined, inputIds: readonly string[]): boolean {
  if (!settings?.auto || c.held || c.current !== null || c.turns <= settings.keepRecentTurns) return false;
  return estimateWith(c, inputIds) >= settings.threshold * (windowTokens ?? settings.windowTokens);
}

export const onAdmitted = (c: CompactionContext, d: EventData<'input.admitted'>): CompactionContext => {
  const chars = d.text.length + (d.attachments ?? []).reduce((sum, a) => sum + a.text.length + a.name.length, 0);
  return { ...c, pending: { ...c.pending, [d.inputId]: chars } };
};

/** An input assigned to an activity becomes part of the conversation; a cancelled one never will. */
export const onInputLeft = (c: CompactionContext, inputId: string, assigned: boolean): CompactionContext => {
  if (!(inputId in c.pending)) return c;
  const { [inputId]: chars, ...pending } = c.pending;
  return { ...c, pending, estimate: assigned ? c.estimate + tokensOf(chars!) : c.estimate };
};

export const onToolSettled = (c: CompactionContext, d: EventData<'tool.settled'>): CompactionContext => ({ ...c, estimate: c.estimate + tokensOf(d.output.length) });

/** The provider reported what the request held and what it answered: the next request sends both. */
export const onTurnFinished = (c: CompactionContext, d: EventData<'turn.finished'>): CompactionContext => ({
  ...c,
  estimate: d.usage.inputTokens + d.usage.outputTokens,
  turns: c.turns + 1,
  held: false,
  overflowCompacted: false,
});

export const onStarted = (c: CompactionContext, d: EventData<'compaction.started'>): CompactionContext => ({
  ...c,
  current: { id: d.compactionId, reason: d.reason, restarts: d.restarts ?? 0 },
  requested: false,
  overflowCompacted: c.overflowCompacted || d.reason === 'overflow',
});

export const onFinished = (c: CompactionContext, d: EventData<'compaction.finished'>, seq: number): CompactionContext => ({
  ...c,
  current: null,
  summarySeq: seq,
  estimate: d.estimatedTokens,
  turns: d.keptTurns,
  held: true,
});

export const onFailed = (c: CompactionContext): CompactionContext => ({ ...c, current: null, held: true });

/** What `loom inspect` and `GET /sessions/:id/state` show of it. */
export interface CompactionView {
  estimatedTokens: number;
  windowTokens: number | null;
  /** The reason of the compaction running now, or null. */
  running: CompactionReason | null;
  requested: boolean;
  summarySeq: number | null;
}

/** The view of a snapshot's bookkeeping (null for a snapshot from before compaction existed). */
export function compactionView(context: { compaction?: CompactionContext; compactionSettings?: CompactionSettings; activity?: { contextWindow?: number | null } | null } | undefined): CompactionView | null {
  const c = context?.compaction;
  if (!c) return null;
  return {
    estimatedTokens: c.estimate,
    windowTokens: context.activity?.contextWindow ?? context.compactionSettings?.windowTokens ?? null,
    running: c.current?.reason ?? null,
    requested: c.requested,
    summarySeq: c.summarySeq,
  };
}
