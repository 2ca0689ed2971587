import { and, assign, enqueueActions, fromPromise, setup, type ActorRefFrom } from 'xstate';
import type { ActivityStatus, AnyEnvelope, BudgetLimit, EventData, UsageTotals } from '../store/schemas.js';
import { addUsage, budgetBreach, budgetVerdict, NO_USAGE, tighterBudget } from './budget.js';
import { COMPACTION_RESTARTS_MAX } from '../core/limits.js';
import {
  autoCompactionDue,
  initialCompaction,
  onAdmitted,
  onFailed,
  onFinished,
  onInputLeft,
  onStarted,
  onToolSettled,
  onTurnFinished,
  type CompactionContext,
  type CompactionReason,
  type CompactionSettings,
} from './compaction.js';
import { jobMachine, type JobInput, type JobKind } from './job.machine.js';
import { toolCallMachine, type ToolCallInput } from './toolCall.machine.js';

/**
 * The session statechart (DESIGN §3). It is driven by committed log events: every event it reacts
 * to is an envelope from the session's log (type-only import: machines/ load no store code), plus
 * three runtime nudges, WAKE (advisory: eligible input may wait), CHECK (re-evaluate after a
 * restore) and CONFIGURE (new limits from a changed config). Decisions are guarded transitions here; the named actions record the events that
 * carry them out, and those recorded events, not the actions, move the machine on. So replaying a
 * log through the machine with no-op actions reproduces its state.
 *
 * Pure: no I/O, clock or randomness. Ids are minted by the actions' implementations (actors/).
 */
export const SESSION_MACHINE_VERSION = 'session@3';

export interface CallState {
  tool: string;
  state: 'queued' | 'running' | 'settled';
  /** Refused at once (over the per-turn limit): it never held a concurrency slot. */
  refused?: boolean;
}

export interface ActivityContext {
  id: string;
  trigger: 'input' | 'run' | 'wake';
  /** Turns since the activity opened or steers were last assigned (the turn-limit counter). */
  turn: number;
  /** All turns of the activity. */
  turns: number;
  turnId: string | null;
  /** Attempts of the current turn. */
  attempt: number;
  attemptId: string | null;
  /** The current attempt has received a chunk (no in-process retry after that). */
  receivedChunks: boolean;
  /** The backoff before the next attempt, as recorded by `attempt.retrying`. */
  retryDelayMs: number;
  /** Inputs assigned to the activity and not yet part of a dispatched request. */
  unconsumed: string[];
  /** Tool calls of the current turn, by call id. */
  calls: Record<string, CallState>;
  /** Calls waiting for a concurrency slot, in call order. */
  waiting: string[];
  /** The last finished turn made tool calls, so their results must go back to the model. */
  toolResultsPending: boolean;
  /** Tokens and cost of the activity's finished turns. */
  usage: UsageTotals;
  /** The tightest activity budget of the requests that opened or joined the activity; null: none. */
  budget: BudgetLimit | null;
  /** The agent profile, model and context window the activity runs with (from its `activity.opened`; absent in older logs). */
  agent?: string | null;
  model?: string | null;
  contextWindow?: number | null;
}

/** What the runtime gives a session: its id and its limits (from config, refreshed on restore). */
export interface SessionInput {
  sessionId: string;
  turnLimit: number;
  toolCallsPerTurn: number;
  toolConcurrency: number;
  /** Retries after a turn's initial attempt. */
  attemptRetriesMax: number;
  attemptBackoffMs: number;
  attemptBackoffMaxMs: number;
  /** A provider asking to wait longer than this before a retry fails the activity instead. */
  attemptRetryAfterMaxMs: number;
  /** Running-time bound per tool name, and for tools not listed. */
  toolTimeoutsMs: Record<string, number>;
  toolTimeoutDefaultMs: number;
  /** Tools safe to run again after a process loss (recovery re-runs them). */
  idempotentTools: string[];
  /** Automatic compaction (context management); absent: only requested and overflow compactions run. */
  compactionSettings?: CompactionSettings;
}

/** A background job of the session that has not settled (DESIGN §1 "job"). */
export interface JobRef {
  kind: JobKind;
  /** A child actor watches it in this process (false after a restore, until CHECK gives it one). */
  live: boolean;
  /** A cancel was recorded; a child spawned later starts by stopping the job. */
  cancelRequested: boolean;
}

export interface SessionContext extends SessionInput {
  /** Pending steers and queued inputs, in admission order. */
  steers: string[];
  queued: string[];
  /** After a cancel the session waits in idle until a new input, run or wake. */
  parked: boolean;
  runRequested: boolean;
  activity: ActivityContext | null;
  lastStatus: ActivityStatus | null;
  /** Activities settled so far (an invariant checked by tests: each settles exactly once). */
  settledCount: number;
  /** Background jobs started and not settled, by job id. They outlive activities; a cancel of an activity leaves them running. */
  jobs: Record<string, JobRef>;
  /** Tokens and cost of every finished turn of the session. */
  usage: UsageTotals;
  /** The session budget in force: the last one a request recorded; null: none. */
  sessionBudget: BudgetLimit | null;
  /** Activity budgets of inputs admitted and not yet consumed or cancelled, by input id. */
  inputBudgets: Record<string, BudgetLimit>;
  /** The tightest activity budget of the pending run requests. */
  runBudget: BudgetLimit | null;
  /** The agent profile a `run.requested` named, for the activity it opens (null: the session's). */
  runAgent?: string | null;
  /** Context management: the estimate, requests and the compaction running (machines/compaction.ts). */
  compaction: CompactionContext;
}

/** The limits a CONFIGURE nudge replaces: everything in SessionInput but the session id. */
export type SessionLimits = Omit<SessionInput, 'sessionId'>;

/**
 * Besides log envelopes: WAKE, CHECK, and CONFIGURE (the config changed while the session runs:
 * the next turn and the next tool call use the new limits; like a restore, which also takes the
 * limits from the config in force, it is not an event of the log).
 */
export type SessionEvent = AnyEnvelope | { type: 'WAKE' } | { type: 'CHECK' } | { type: 'CONFIGURE'; limits: SessionLimits };

type E<T extends AnyEnvelope['type']> = Extract<AnyEnvelope, { type: T }>;
const data = <T extends AnyEnvelope['type']>(event: SessionEvent) => (event as E<T>).data as EventData<T>;

const withActivity = (context: SessionContext, patch: Partial<ActivityContext>): ActivityContext | null =>
  context.activity ? { ...context.activity, ...patch } : null;

/** The context after a finished turn's usage is counted (the activity's and the session's). */
function withTurnUsage(context: SessionContext, turn: EventData<'turn.finished'>): Pick<SessionContext, 'usage' | 'activity'> {
  return { usage: addUsage(context.usage, turn), activity: withActivity(context, { usage: addUsage(context.activity?.usage ?? NO_USAGE, turn) }) };
}

/** `kind: message` of a failure, as activity reasons and retry events name it. */
const failureText = (d: EventData<'attempt.failed'>) => `${d.error.kind}: ${d.error.message}`;
const canOpenActivity = (c: SessionContext) => !c.parked && (c.steers.length > 0 || c.queued.length > 0 || c.runRequested);
/** The inputs the next activity opens with: every pending steer, else the oldest queued input. */
export const nextActivityInputs = (c: SessionContext): string[] => (c.steers.length > 0 ? c.steers : c.queued.slice(0, 1));

const session = setup({
  types: {
    input: {} as SessionInput,
    context: {} as SessionContext,
    events: {} as SessionEvent,
  },
  actors: {
    /** Streams one provider attempt; records everything it observes. Aborted when the state is left. */
    providerTurn: fromPromise<void, { sessionId: string }>(async () => {}),
    toolCall: toolCallMachine,
    /** One background job; spawned on `job.started` (or after a restore, on CHECK) with the job id as its id. */
    job: jobMachine,
    /** Summarises the conversation (a provider turn without tools); records compaction.finished or .failed. Aborted when the state is left. */
    compaction: fromPromise<void, { sessionId: string }>(async () => {}),
  },
  actions: {
    /** Records activity.opened, input.assigned for the inputs it takes, and turn.started. */
    openActivity: () => {},
    /** Records input.assigned for every pending steer (admission order), then turn.started. */
    assignSteers: () => {},
    /** Records turn.started for the next turn. */
    startTurn: () => {},
    /** Records input.released for unconsumed inputs, then activity.settled with the status. */
    settleActivity: (_, _params: { status: ActivityStatus; reason?: string }) => {},
    /** Records tool.settled `interrupted` for unsettled calls (children are stopped by the machine). */
    interruptCalls: () => {},
    /** Records tool.settled `error` for a call beyond the per-turn limit. */
    refuseToolCall: (_, _params: { callId: string }) => {},
    /** Records turn.started for a new attempt after a recovery `retry` decision (or after an overflow compaction). */
    retryTurn: () => {},
    /** Records attempt.retrying with the backoff (exponential, jittered, at least the retry-after) drawn by the runtime. */
    scheduleRetry: (_, _params: { failedAttemptId: string; failedAttempt: number; reason: string; retryAfterMs?: number }) => {},
    /** Records compaction.started (a new compaction id, the reason, the estimate). */
    startCompaction: (_, _params: { reason: CompactionReason }) => {},
    /** Records compaction.started again for the open compaction (restored mid-summary; its restarts + 1). */
    restartCompaction: () => {},
    /** Records compaction.failed for the open compaction (restarted too often, or its activity was cancelled). */
    failCompaction: (_, _params: { kind: 'crash_loop' | 'cancelled'; reason: string }) => {},

  },
  delays: {
    retryBackoff: ({ context }) => context.activity?.retryDelayMs ?? 0,
  },
  guards: {
    canOpen: ({ context }) => !context.parked && (context.steers.length > 0 || context.queued.length > 0 || context.runRequested),
    hasPendingSteers: ({ context }) => context.steers.length > 0,
    hasToolResults: ({ context }) => context.activity?.toolResultsPending === true,
    underTurnLimit: ({ context }) => (context.activity?.turn ?? 0) < context.turnLimit,
    allCallsSettled: ({ context }) => Object.values(context.activity?.calls ?? {}).every((c) => c.state === 'settled'),
    turnHadToolCalls: ({ event }) => data<'turn.finished'>(event).toolCalls > 0,
    canRetry: ({ context, event }) => {
      const d = data<'attempt.failed'>(event);
      return d.retryable && !d.receivedChunks && (context.activity?.attempt ?? 0) <= context.attemptRetriesMax;
    },
    /** Retryable, but the provider asked to wait longer than a run waits. */
    retryAfterTooLong: ({ context, event }) => {
      const d = data<'attempt.failed'>(event);
      return d.retryable && !d.receivedChunks && (d.error.retryAfterMs ?? 0) > context.attemptRetryAfterMaxMs;
    },
    overBudget: ({ context, event }) => {
      const d = data<'turn.finished'>(event);
      return budgetVerdict({ ...context, ...withTurnUsage(context, d) }, d.costUsd !== undefined) !== null;
    },
    /** The session's totals already reach its budget: a new activity would spend past it. */
    sessionBudgetUsedUp: ({ context }) => budgetBreach('session', context.usage, true, context.sessionBudget)?.status === 'budget_exceeded',
    isCurrentRetry: ({ context, event }) => data<'attempt.retrying'>(event).activityId === context.activity?.id,
    isCurrentActivity: ({ context, event }) => {
      const id = data<'cancel.requested'>(event).activityId ?? data<'recovery.decided'>(event).activityId;
      return context.activity !== null && id === context.activity.id;
    },
    /** The failure is the current attempt's, or one that failed before it was dispatched. */
    isCurrentAttempt: ({ context, event }) => {
      const d = data<'attempt.failed'>(event);
      return d.dispatched === false || context.activity?.attemptId === null || d.attemptId === context.activity?.attemptId;
    },
    decidedAbandon: ({ event }) => data<'recovery.decided'>(event).decision === 'abandon',
    decidedRetry: ({ event }) => data<'recovery.decided'>(event).decision === 'retry',
    decidedContinue: ({ event }) => data<'recovery.decided'>(event).decision === 'continue',
    // ---- compaction ----
    /** Idle: compact when asked, or when the request the next activity opens with nears the window. */
    shouldCompactIdle: ({ context }) =>
      context.compaction.requested || (canOpenActivity(context) && autoCompactionDue(context.compaction, context.compactionSettings, undefined, nextActivityInputs(context))),
    /** At the safe boundary, when another turn follows: compact when asked, or when that turn's request nears the window. */
    shouldCompactAtBoundary: ({ context }) => {
      const continues = context.steers.length > 0 || (context.activity?.toolResultsPending === true && context.activity.turn < context.turnLimit);
      return continues && (context.compaction.requested || autoCompactionDue(context.compaction, context.compactionSettings, context.activity?.contextWindow ?? undefined, context.steers));
    },
    isContextOverflow: ({ event }) => data<'attempt.failed'>(event).error.kind === 'context_overflow',
    /** One compaction per overflow: not after an overflow compaction that no finished turn followed, and not once chunks arrived. */
    canCompactForOverflow: ({ context, event }) => !context.compaction.overflowCompacted && !data<'attempt.failed'>(event).receivedChunks,
    compactedForOverflow: ({ context }) => context.compaction.current?.reason === 'overflow',
    inActivity: ({ context }) => context.activity !== null,
    canRestartCompaction: ({ context }) => (context.compaction.current?.restarts ?? 0) < COMPACTION_RESTARTS_MAX,
  },
});

const assignTurn = session.assign(({ context, event }) => {
  const d = data<'turn.started'>(event);
  return {
    activity: withActivity(context, {
      turn: d.turn,
      turns: (context.activity?.turns ?? 0) + 1,
      turnId: d.turnId,
      attempt: 0,
      attemptId: null,
      receivedChunks: false,
      calls: {},
      waiting: [],
      toolResultsPending: false,
    }),
  };
});
/** Counts a finished turn's usage into the activity's and the session's totals. */
const countTurnUsage = session.assign(({ context, event }) => withTurnUsage(context, data<'turn.finished'>(event)));
const assignDispatch = session.assign(({ context, event }) => {
  const d = data<'attempt.dispatched'>(event);
  return { activity: withActivity(context, { attemptId: d.attemptId, attempt: d.attempt, receivedChunks: false }) };
});
/**
 * Settles the activity `failed` after its attempt failed: unsettled calls are interrupted, and
 * inputs the failed activity never sent return to pending (once); the session parks so they wait
 * for a new input, run or wake instead of failing the same way again at once.
 */
const failActivity = (reason: (d: EventData<'attempt.failed'>, context: SessionContext) => string) =>
  session.enqueueActions(({ context, event, enqueue }) => {
    enqueue('interruptCalls');
    for (const callId of Object.keys(context.activity?.calls ?? {})) enqueue.stopChild(callId);
    enqueue.assign({ parked: context.parked || (context.activity?.unconsumed.length ?? 0) > 0 });
    enqueue({ type: 'settleActivity', params: { status: 'failed', reason: reason(data<'attempt.failed'>(event), context) } });
  });
// ---- compaction bookkeeping (machines/compaction.ts) ----
const noteCompactionStarted = session.assign(({ context, event }) => ({ compaction: onStarted(context.compaction, data<'compaction.started'>(event)) }));
const noteCompactionFinished = session.assign(({ context, event }) => ({ compaction: onFinished(context.compaction, data<'compaction.finished'>(event), (event as E<'compaction.finished'>).seq) }));
const noteCompactionFailed = session.assign(({ context }) => ({ compaction: onFailed(context.compaction) }));
const noteTurnFinished = session.assign(({ context, event }) => ({ compaction: onTurnFinished(context.compaction, data<'turn.finished'>(event)) }));
const startCompactionFor = (reason: CompactionReason) => ({ type: 'startCompaction' as const, params: { reason } });
/** Asked for, or due: a request names its reason even when the estimate was due too. */
const startRequestedOrAuto = { type: 'startCompaction' as const, params: ({ context }: { context: SessionContext }) => ({ reason: context.compaction.requested ? ('requested' as const) : ('auto' as const) }) };

const markChunk = session.assign(({ context }) => ({ activity: withActivity(context, { receivedChunks: true }) }));
/** Eager tool settlement: a call recorded by the stream gets its child at once (or waits for a slot). */
const admitToolCall = session.enqueueActions(({ context, event, enqueue }) => {
  const d = data<'tool.called'>(event);
  const activity = context.activity;
  if (!activity || activity.calls[d.callId]) return;
  const count = Object.keys(activity.calls).length;
  if (count >= context.toolCallsPerTurn) {
    enqueue.assign({ activity: { ...activity, calls: { ...activity.calls, [d.callId]: { tool: d.tool, state: 'running', refused: true } } } });
    enqueue({ type: 'refuseToolCall', params: { callId: d.callId } });
    return;
  }
  const running = Object.values(activity.calls).filter((c) => c.state === 'running').length;
  const startNow = running < context.toolConcurrency;
  enqueue.assign({
    activity: {
      ...activity,
      calls: { ...activity.calls, [d.callId]: { tool: d.tool, state: startNow ? 'running' : 'queued' } },
      waiting: startNow ? activity.waiting : [...activity.waiting, d.callId],
    },
  });
  enqueue.spawnChild('toolCall', {
    id: d.callId,
    input: {
      sessionId: context.sessionId,
      activityId: activity.id,
      callId: d.callId,
      tool: d.tool,
      arguments: d.input,
      timeoutMs: context.toolTimeoutsMs[d.tool] ?? context.toolTimeoutDefaultMs,
      startNow,
    } satisfies ToolCallInput,
  });
});
/** After a process loss: every unsettled call of the turn gets a child again, within the concurrency bound. */
const resumeCalls = session.enqueueActions(({ context, enqueue }) => {
  const activity = context.activity;
  if (!activity) return;
  const calls = { ...activity.calls };
  const waiting: string[] = [];
  let running = 0;
  for (const [callId, call] of Object.entries(activity.calls)) {
    if (call.state === 'settled') continue;
    const startNow = running < context.toolConcurrency;
    if (startNow) running++;
    else waiting.push(callId);
    calls[callId] = { ...call, state: startNow ? 'running' : 'queued' };
    enqueue.spawnChild('toolCall', {
      id: callId,
      input: {
        sessionId: context.sessionId,
        activityId: activity.id,
        callId,
        tool: call.tool,
        timeoutMs: context.toolTimeoutsMs[call.tool] ?? context.toolTimeoutDefaultMs,
        startNow,
        resumed: true,
      } satisfies ToolCallInput,
    });
  }
  enqueue.assign({ activity: { ...activity, calls, waiting } });
});
/** While recovering no child exists: a settlement is only noted. */
const noteToolSettled = session.assign(({ context, event }) => {
  const d = data<'tool.settled'>(event);
  const activity = context.activity;
  if (!activity || !activity.calls[d.callId]) return {};
  return {
    activity: { ...activity, calls: { ...activity.calls, [d.callId]: { ...activity.calls[d.callId]!, state: 'settled' as const } }, waiting: activity.waiting.filter((x) => x !== d.callId) },
    compaction: onToolSettled(context.compaction, d),
  };
});
/** Stops the children of the current turn's calls (aborting tools still running; no-op for done ones). */
const stopCalls = session.enqueueActions(({ context, enqueue }) => {
  for (const callId of Object.keys(context.activity?.calls ?? {})) enqueue.stopChild(callId);
});
/** A settled call frees its slot; the oldest waiting call starts. */
const settleToolCall = session.enqueueActions(({ context, event, enqueue }) => {
  const d = data<'tool.settled'>(event);
  const activity = context.activity;
  if (!activity || !activity.calls[d.callId]) return;
  const settled = activity.calls[d.callId]!;
  const calls = { ...activity.calls, [d.callId]: { ...settled, state: 'settled' as const } };
  // Only a call that held a slot frees one (a refused call never did; a queued one never started).
  const freesSlot = settled.state === 'running' && !settled.refused;
  const [next, ...rest] = freesSlot ? activity.waiting : [];
  if (next) calls[next] = { ...calls[next]!, state: 'running' };
  enqueue.assign({ activity: { ...activity, calls, waiting: next ? rest : activity.waiting }, compaction: onToolSettled(context.compaction, d) });
  if (next) enqueue.sendTo(next, { type: 'START' });
});

/** A job recorded as started gets its child at once; it is not tied to the activity. */
const spawnJob = session.enqueueActions(({ context, event, enqueue }) => {
  const d = data<'job.started'>(event);
  if (context.jobs[d.jobId]) return;
  enqueue.assign({ jobs: { ...context.jobs, [d.jobId]: { kind: d.kind, live: true, cancelRequested: false } } });
  enqueue.spawnChild('job', {
    id: d.jobId,
    input: { sessionId: context.sessionId, jobId: d.jobId, kind: d.kind, resumed: false, cancelRequested: false } satisfies JobInput,
  });
});
/** After a restore (CHECK): every unsettled job without a child gets one that inspects what is left (never re-runs it). */
const resumeJobs = session.enqueueActions(({ context, enqueue }) => {
  const waiting = Object.entries(context.jobs).filter(([, job]) => !job.live);
  if (waiting.length === 0) return;
  const jobs = { ...context.jobs };
  for (const [jobId, job] of waiting) {
    jobs[jobId] = { ...job, live: true };
    enqueue.spawnChild('job', {
      id: jobId,
      input: { sessionId: context.sessionId, jobId, kind: job.kind, resumed: true, cancelRequested: job.cancelRequested } satisfies JobInput,
    });
  }
  enqueue.assign({ jobs });
});
const cancelJob = session.enqueueActions(({ context, event, enqueue }) => {
  const jobId = data<'cancel.requested'>(event).jobId!;
  const job = context.jobs[jobId]!;
  enqueue.assign({ jobs: { ...context.jobs, [jobId]: { ...job, cancelRequested: true } } });
  if (job.live) enqueue.sendTo(jobId, { type: 'CANCEL' });
});
const settleJob = session.enqueueActions(({ context, event, enqueue }) => {
  const jobId = data<'job.settled'>(event).jobId;
  const job = context.jobs[jobId];
  if (!job) return;
  const { [jobId]: _settled, ...jobs } = context.jobs;
  enqueue.assign({ jobs });
  if (job.live) enqueue.stopChild(jobId);
});

export const sessionMachine = session.createMachine({
  id: 'session',
  context: ({ input }) => ({
    ...input,
    steers: [],
    queued: [],
    parked: false,
    runRequested: false,
    activity: null,
    lastStatus: null,
    settledCount: 0,
    jobs: {},
    usage: NO_USAGE,
    sessionBudget: null,
    inputBudgets: {},
    runBudget: null,
    runAgent: null,
    compaction: initialCompaction(),
  }),
  initial: 'idle',
  on: {
    // Requests may arrive in any state; the inbox is tracked everywhere.
    'input.admitted': {
      actions: assign(({ context, event }) => {
        const d = data<'input.admitted'>(event);
        // Budgets travel with the request (durable): the activity's waits for the input's assignment.
        const budgets = {
          inputBudgets: d.budget?.activity ? { ...context.inputBudgets, [d.inputId]: d.budget.activity } : context.inputBudgets,
          sessionBudget: d.budget?.session ?? context.sessionBudget,
        };
        const compaction = onAdmitted(context.compaction, d);
        return d.mode === 'steer'
          ? { steers: [...context.steers, d.inputId], parked: false, compaction, ...budgets }
          : { queued: [...context.queued, d.inputId], parked: false, compaction, ...budgets };
      }),
    },
    'input.cancelled': {
      actions: assign(({ context, event }) => {
        const id = data<'input.cancelled'>(event).inputId;
        const { [id]: _dropped, ...inputBudgets } = context.inputBudgets;
        return { steers: context.steers.filter((x) => x !== id), queued: context.queued.filter((x) => x !== id), inputBudgets, compaction: onInputLeft(context.compaction, id, false) };
      }),
    },
    'input.assigned': {
      actions: assign(({ context, event }) => {
        const id = data<'input.assigned'>(event).inputId;
        return {
          steers: context.steers.filter((x) => x !== id),
          queued: context.queued.filter((x) => x !== id),
          // A steer is new user intent: the turn counter of the activity restarts.
          activity: withActivity(context, {
            unconsumed: [...(context.activity?.unconsumed ?? []), id],
            turn: 0,
            budget: tighterBudget(context.activity?.budget, context.inputBudgets[id]),
          }),
          compaction: onInputLeft(context.compaction, id, true),
        };
      }),
    },
    'input.released': {
      actions: assign(({ context, event }) => {
        const d = data<'input.released'>(event);
        const mode = d.mode === 'queue' ? 'queued' : 'steers';
        return {
          [mode]: [d.inputId, ...context[mode]],
          activity: withActivity(context, { unconsumed: (context.activity?.unconsumed ?? []).filter((x) => x !== d.inputId) }),
        };
      }),
    },
    'input.consumed': {
      actions: assign(({ context, event }) => {
        const id = data<'input.consumed'>(event).inputId;
        const { [id]: _consumed, ...inputBudgets } = context.inputBudgets;
        return { activity: withActivity(context, { unconsumed: (context.activity?.unconsumed ?? []).filter((x) => x !== id) }), inputBudgets };
      }),
    },
    'run.requested': {
      actions: assign(({ context, event }) => {
        const budget = data<'run.requested'>(event).budget;
        return {
          runRequested: true,
          parked: false,
          runBudget: tighterBudget(context.runBudget, budget?.activity),
          sessionBudget: budget?.session ?? context.sessionBudget,
          runAgent: data<'run.requested'>(event).agent ?? null,
        };
      }),
    },
    // Context management: a request waits for the next safe point; outside `compacting` the owner's
    // compaction events only update the bookkeeping (a replayed log that decided differently).
    'compaction.requested': { actions: assign(({ context }) => ({ compaction: { ...context.compaction, requested: true } })) },
    'compaction.started': { actions: noteCompactionStarted },
    'compaction.finished': { actions: noteCompactionFinished },
    'compaction.failed': { actions: noteCompactionFailed },
    // Background jobs live beside activities: tracked in every state, never stopped by an activity's end.
    'job.started': { actions: spawnJob },
    'job.settled': { actions: settleJob },
    // A cancel naming a job (an activity cancel is taken by the active state first).
    'cancel.requested': {
      guard: ({ context, event }) => {
        const jobId = data<'cancel.requested'>(event).jobId;
        return jobId !== undefined && context.jobs[jobId] !== undefined;
      },
      actions: cancelJob,
    },
    CHECK: { actions: resumeJobs },
    CONFIGURE: { actions: assign(({ event }) => ({ ...(event as Extract<SessionEvent, { type: 'CONFIGURE' }>).limits })) },
    WAKE: { actions: assign({ parked: false }) },
    'activity.settled': {
      target: '.idle',
      actions: [stopCalls, assign(({ context, event }) => ({
        activity: null,
        lastStatus: data<'activity.settled'>(event).status,
        settledCount: context.settledCount + 1,
      }))],
    },
  },
  states: {
    idle: {
      always: [
        { guard: 'shouldCompactIdle', target: 'compacting', actions: startRequestedOrAuto },
        { guard: 'canOpen', target: 'opening' },
      ],
    },
    opening: {
      entry: 'openActivity',
      on: {
        'activity.opened': {
          actions: assign(({ context, event }) => {
            const d = data<'activity.opened'>(event);
            return {
              runRequested: false,
              // A pending run request is served by this activity (whatever opened it): its budget applies.
              runBudget: null,
              runAgent: null,
              compaction: { ...context.compaction, overflowCompacted: false },
              activity: {
                id: d.activityId,
                trigger: d.trigger,
                turn: 0,
                turns: 0,
                turnId: null,
                attempt: 0,
                attemptId: null,
                receivedChunks: false,
                retryDelayMs: 0,
                unconsumed: [],
                calls: {},
                waiting: [],
                toolResultsPending: false,
                usage: NO_USAGE,
                budget: context.runRequested ? context.runBudget : null,
                agent: d.agent ?? null,
                model: d.model ?? null,
                contextWindow: d.contextWindow ?? null,
              },
            };
          }),
        },
        'turn.started': [
          {
            // The session's totals already reach its budget: settle before any request is sent. The
            // session parks (like after a failure), so released inputs wait for a new request
            // instead of reopening at once.
            guard: 'sessionBudgetUsedUp',
            target: 'settling',
            actions: [
              assignTurn,
              assign({ parked: true }),
              {
                type: 'settleActivity',
                params: ({ context }) => ({ status: 'budget_exceeded' as const, reason: budgetBreach('session', context.usage, true, context.sessionBudget)!.reason }),
              },
            ],
          },
          { target: 'providerTurn', actions: assignTurn },
        ],
      },
    },
    providerTurn: {
      initial: 'streaming',
      on: {
        'cancel.requested': { guard: 'isCurrentActivity', target: 'cancelling' },
        'attempt.dispatched': { actions: assignDispatch },
        'text.delta': { actions: markChunk },
        'reasoning.delta': { actions: markChunk },
        'tool.called': { actions: [markChunk, admitToolCall] },
        'tool.settled': { actions: settleToolCall },
        'attempt.failed': [
          // The context is too long: compact once, then retry the turn (machines/compaction.ts).
          { guard: and(['isCurrentAttempt', 'isContextOverflow', 'canCompactForOverflow']), target: 'compacting', actions: startCompactionFor('overflow') },
          {
            guard: and(['isCurrentAttempt', 'isContextOverflow']),
            target: 'settling',
            actions: [
              'interruptCalls',
              stopCalls,
              assign(({ context }) => ({ parked: context.parked || (context.activity?.unconsumed.length ?? 0) > 0 })),
              {
                type: 'settleActivity',
                params: ({ context, event }) => ({
                  status: 'failed' as const,
                  reason: context.compaction.overflowCompacted
                    ? `context_overflow: the conversation is still too long for the model's context window after compacting it: ${data<'attempt.failed'>(event).error.message}`
                    : `context_overflow: ${data<'attempt.failed'>(event).error.message}`,
                }),
              },
            ],
          },
          {
            guard: and(['isCurrentAttempt', 'retryAfterTooLong']),
            target: 'settling',
            actions: failActivity((d, context) =>
              `${failureText(d)} (not retried: the provider asked to wait ${Math.ceil(d.error.retryAfterMs! / 1000)} s, longer than the ${Math.ceil(context.attemptRetryAfterMaxMs / 1000)} s a run waits)`,
            ),
          },
          {
            guard: and(['isCurrentAttempt', 'canRetry']),
            target: '.retrying',
            actions: {
              type: 'scheduleRetry',
              params: ({ context, event }) => {
                const d = data<'attempt.failed'>(event);
                return { failedAttemptId: d.attemptId, failedAttempt: Math.max(1, context.activity?.attempt ?? 1), reason: failureText(d), ...(d.error.retryAfterMs === undefined ? {} : { retryAfterMs: d.error.retryAfterMs }) };
              },
            },
          },
          {
            guard: 'isCurrentAttempt',
            target: 'settling',
            actions: failActivity((d, context) => {
              const attempts = context.activity?.attempt ?? 1;
              if (d.retryable && d.receivedChunks) return `${failureText(d)} (not retried: the attempt had already streamed output)`;
              if (d.retryable) return `${failureText(d)} (gave up after ${attempts} attempts: the initial one and ${attempts - 1} retries)`;
              return failureText(d);
            }),
          },
        ],
        'turn.finished': [
          {
            // A budget used up by this turn: settle here; calls the turn made and not yet settled are interrupted.
            guard: 'overBudget',
            target: 'settling',
            actions: [
              countTurnUsage,
              noteTurnFinished,
              'interruptCalls',
              stopCalls,
              {
                type: 'settleActivity',
                params: ({ context, event }) => budgetVerdict(context, data<'turn.finished'>(event).costUsd !== undefined)!,
              },
            ],
          },
          { guard: 'turnHadToolCalls', target: 'awaitingTools', actions: [countTurnUsage, noteTurnFinished, assign(({ context }) => ({ activity: withActivity(context, { toolResultsPending: true }) }))] },
          { target: 'steerCoalescing', actions: [countTurnUsage, noteTurnFinished, assign(({ context }) => ({ activity: withActivity(context, { toolResultsPending: false }) }))] },
        ],
      },
      states: {
        streaming: {
          invoke: { src: 'providerTurn', input: ({ context }) => ({ sessionId: context.sessionId }) },
        },
        /** A retry was decided; waits for the runtime to record its delay (`attempt.retrying`). */
        retrying: {
          on: {
            'attempt.retrying': {
              guard: 'isCurrentRetry',
              target: 'backoff',
              actions: assign(({ context, event }) => ({ activity: withActivity(context, { retryDelayMs: data<'attempt.retrying'>(event).delayMs }) })),
            },
            // A log written before retries were recorded: the next dispatch shows the backoff ended.
            'attempt.dispatched': { target: 'streaming', actions: assignDispatch },
          },
        },
        backoff: {
          after: { retryBackoff: 'streaming' },
          // Replaying a log (no timers): the next attempt's dispatch shows the backoff ended.
          on: { 'attempt.dispatched': { target: 'streaming', actions: assignDispatch } },
        },
      },
    },
    awaitingTools: {
      always: { guard: 'allCallsSettled', target: 'steerCoalescing' },
      on: {
        'cancel.requested': { guard: 'isCurrentActivity', target: 'cancelling' },
        'tool.settled': { actions: settleToolCall },
      },
    },
    /** The safe boundary (DESIGN §3): one decision, made inside the transaction of the event that led here. */
    steerCoalescing: {
      always: [
        // Before another turn: compact first when asked or due (pending steers wait and go after it).
        { guard: 'shouldCompactAtBoundary', target: 'compacting', actions: startRequestedOrAuto },
        { guard: 'hasPendingSteers', target: 'continuing', actions: 'assignSteers' },
        { guard: { type: 'hasToolResults' }, target: 'continuingOrLimit' },
        { target: 'settling', actions: { type: 'settleActivity', params: { status: 'completed' } } },
      ],
    },
    continuingOrLimit: {
      always: [
        { guard: 'underTurnLimit', target: 'continuing', actions: 'startTurn' },
        { target: 'settling', actions: { type: 'settleActivity', params: { status: 'turn_limit', reason: 'turn limit reached' } } },
      ],
    },
    continuing: {
      // The previous turn's children are done: stop them so they leave the actor's children.
      on: { 'turn.started': { target: 'providerTurn', actions: [stopCalls, assignTurn] } },
    },
    settling: {},
    /**
     * Context management: the conversation up to a boundary is summarised by a provider turn without
     * tools (actors/compaction.ts); later requests send the summary and the messages after it.
     * Entered from idle, at the safe boundary before another turn, or after a context overflow. Inputs
     * admitted meanwhile stay pending and are assigned after it, so a steer is never in a summary.
     * Restored mid-summary, it waits in `restoring` until CHECK starts the summary again.
     */
    compacting: {
      initial: 'summarising',
      on: {
        'compaction.started': { actions: noteCompactionStarted },
        'compaction.finished': [
          { guard: 'compactedForOverflow', target: 'continuing', actions: [noteCompactionFinished, 'retryTurn'] },
          { guard: 'inActivity', target: 'steerCoalescing', actions: noteCompactionFinished },
          { target: 'idle', actions: noteCompactionFinished },
        ],
        'compaction.failed': [
          {
            guard: 'compactedForOverflow',
            target: 'settling',
            actions: [
              noteCompactionFailed,
              assign(({ context }) => ({ parked: context.parked || (context.activity?.unconsumed.length ?? 0) > 0 })),
              {
                type: 'settleActivity',
                params: ({ event }) => ({
                  status: 'failed' as const,
                  reason: `context_overflow: the conversation is too long for the model's context window and compacting it failed: ${data<'compaction.failed'>(event).reason}`,
                }),
              },
            ],
          },
          { guard: 'inActivity', target: 'steerCoalescing', actions: noteCompactionFailed },
          { target: 'idle', actions: noteCompactionFailed },
        ],
        // Already compacting: the running compaction serves the request.
        'compaction.requested': { actions: [] },
        'cancel.requested': {
          guard: 'isCurrentActivity',
          target: 'cancelling',
          actions: { type: 'failCompaction', params: { kind: 'cancelled', reason: 'the activity was cancelled' } },
        },
      },
      states: {
        summarising: {
          invoke: { src: 'compaction', input: ({ context }) => ({ sessionId: context.sessionId }) },
        },
        restoring: {
          on: {
            CHECK: [
              { guard: 'canRestartCompaction', target: 'summarising', actions: [resumeJobs, 'restartCompaction'] },
              {
                actions: [
                  resumeJobs,
                  { type: 'failCompaction', params: { kind: 'crash_loop', reason: `the summary was started ${COMPACTION_RESTARTS_MAX + 1} times and its process was lost each time` } },
                ],
              },
            ],
          },
        },
      },
    },
    cancelling: {
      // Parked on entry, not on exit: input admitted after the cancel request (an `interrupt`
      // double-text commits the cancel and the new input together) is new intent and un-parks.
      entry: [assign({ parked: true }), 'interruptCalls', stopCalls, { type: 'settleActivity', params: { status: 'cancelled', reason: 'cancel requested' } }],
    },
    recovering: {
      on: {
        // A crash loop is settled `failed` by the runtime; like an abandon, the session then parks.
        'recovery.detected': {
          guard: ({ event }) => data<'recovery.detected'>(event).classification === 'crash_loop',
          actions: assign({ parked: true }),
        },
        'recovery.decided': [
          {
            guard: and(['isCurrentActivity', 'decidedAbandon']),
            target: 'settling',
            // Like a cancel, an abandon is an explicit stop: pending input waits for a new input, run or wake.
            actions: ['interruptCalls', assign({ parked: true }), { type: 'settleActivity', params: ({ event }) => ({ status: 'abandoned' as const, reason: data<'recovery.decided'>(event).reason ?? 'abandoned by a recovery decision' }) }],
          },
          { guard: and(['isCurrentActivity', 'decidedRetry']), target: 'continuing', actions: ['interruptCalls', 'retryTurn'] },
          // The stream had finished: unsettled calls get their children again (a started call of a
          // tool that is not idempotent settles `interrupted` instead of running twice).
          { guard: and(['isCurrentActivity', 'decidedContinue', 'hasToolResults']), target: 'awaitingTools', actions: resumeCalls },
        ],
        'cancel.requested': { guard: 'isCurrentActivity', target: 'cancelling' },
        'tool.settled': { actions: noteToolSettled },
      },
    },
  },
});

export type SessionMachine = typeof sessionMachine;
export type ToolCallRef = ActorRefFrom<typeof toolCallMachine>;
export type { ToolCallInput };
