import { createActor, fromPromise, initialTransition, transition, type Actor, type ActorOptions, type AnyActorLogic, type SnapshotFrom } from 'xstate';
import {
  ATTEMPT_RETRIES_MAX,
  ATTEMPT_RETRY_AFTER_MAX_MS,
  ATTEMPT_RETRY_BACKOFF_MAX_MS,
  ATTEMPT_RETRY_BACKOFF_MS,
  ATTEMPT_RETRY_JITTER_RATIO,
  READ_PAGE_EVENTS_MAX,
} from '../core/limits.js';
import type { ModelInfo } from '../llm/modelInfo.js';
import type { Provider } from '../llm/types.js';
import { estimateWith, initialCompaction } from '../machines/compaction.js';
import { nextActivityInputs, SESSION_MACHINE_VERSION, sessionMachine, type SessionContext, type SessionEvent, type SessionInput } from '../machines/session.machine.js';
import { DEFAULT_AGENT, resolveAgent, type AgentProfile } from '../services/agents.js';
import { jobMachine } from '../machines/job.machine.js';
import { toolCallMachine } from '../machines/toolCall.machine.js';
import { stateName } from '../machines/stateName.js';
import type { ResolvedConfig } from '../services/config.js';
import type { Hooks } from '../services/hooks.js';
import type { AnyEnvelope, AppendRequest, Lease, Store } from '../store/index.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { ToolServices } from '../tools/types.js';
import { runCompaction } from './compaction.js';
import { JobRuntime } from './job.js';
import { runProviderTurn } from './providerTurn.js';
import { PermissionWaits, type PermissionAsker } from './permission.js';
import { retryDelayMs } from './retry.js';
import { createToolCallImplementations } from './toolCall.js';

/** Resolves `provider/model` to an adapter and the provider's own model id; throws a typed config error. */
export type ProviderResolver = (model: string) => { provider: Provider; model: string };

/** What a system prompt is built for: the session's directory, the activity's profile and model, the time (injected clock). */
export interface SystemPromptRequest {
  location: string;
  profile: AgentProfile;
  model: string;
  now: Date;
}

/** Builds a request's system prompt (services/agents.ts `buildSystemPrompt` in every loom process). */
export type SystemPromptBuilder = (request: SystemPromptRequest) => Promise<string>;

export interface SessionDeps {
  store: Store;
  lease: Lease;
  sessionId: string;
  resolveProvider: ProviderResolver;
  tools: ToolRegistry;
  /**
   * The config in force. `SessionActor.reconfigure` replaces it (and `resolveProvider`) when the
   * files change while the session runs: read it through `deps` at each use, never keep a copy.
   */
  config: ResolvedConfig;
  /** `$LOOM_HOME`: tools keep full outputs and job output files under it. */
  home: string;
  /** Services for tools that start child actors (jobs, subagents); see tools/types.ts. */
  toolServices?: ToolServices;
  /**
   * Answers permission asks in this process (a TTY question, a policy). Without one, or when it
   * passes, an ask waits durably for a reply recorded by any process (actors/permission.ts).
   */
  askPermission?: PermissionAsker;
  /** Plugins' hooks (chat.*, tool.*, permission.ask); none when absent. */
  hooks?: Hooks;
  /**
   * The system prompt of the session's requests: a fixed text, or a builder called once per
   * activity with its agent profile and model (profile prompt, environment, instruction files).
   * Absent: requests carry no system prompt.
   */
  systemPrompt?: string | SystemPromptBuilder;
  /** An operating failure the session cannot continue from (lost lease, broken store). */
  onFailure?: (error: unknown) => void;
  /** The shared machine with implementations (one per coordinator); made per actor when absent. */
  logic?: SessionLogic;
  /** the model catalog's entry for a `provider/model` reference */
  modelInfo?: (ref: string) => ModelInfo | undefined;
  /**
   * A uniform draw in [0, 1) for the jitter of retry backoffs (Math.random when absent). The drawn
   * delay is recorded (`attempt.retrying`), so tests inject a fixed source and replays need none.
   */
  random?: () => number;
  /**
   * The timers of the session's XState actor (its `after` delays: the retry backoff). XState's
   * `SimulatedClock` lets a test move time by hand; real timers when absent.
   */
  timers?: TimerClock;
}

type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;

/** XState's timer interface (`setTimeout`/`clearTimeout`), as its `SimulatedClock` implements it. */
export type TimerClock = NonNullable<ActorOptions<AnyActorLogic>['clock']>;

/**
 * One live session: its XState actor, driven by committed log events.
 *
 * Every step runs inside one IMMEDIATE transaction: first catch up on events other processes
 * appended (admissions, cancels, replies), then append the new observations, send each to the
 * machine, let the machine's actions record their decisions (joining the same transaction), and
 * write the snapshot. A decision at the safe boundary therefore sees every steer committed before
 * it, and none can be committed between the check and the settlement.
 */
export class SessionActor {
  readonly sessionId: string;
  /** The session's directory and model (fixed at creation). */
  readonly location: string;
  readonly model: string;
  /** The agent profile the session was created with (null: DEFAULT_AGENT); an input or run may name another for its activity. */
  readonly agent: string | null;
  private readonly actor: Actor<typeof sessionMachine>;
  private readonly logic: SessionLogic;
  private lastSeq = 0;
  private depth = 0;
  private failed: unknown;
  private readonly idleWaiters = new Set<() => void>();

  private currentDeps: SessionDeps;

  constructor(deps: SessionDeps) {
    this.currentDeps = deps;
    this.sessionId = deps.sessionId;
    const row = deps.store.queries.session(deps.sessionId);
    if (!row) throw new Error(`session ${deps.sessionId} does not exist`);
    this.location = row.location;
    this.model = row.model;
    this.agent = row.agent ?? null;
    const restored = this.restore();
    this.logic = deps.logic ?? new SessionLogic();
    this.logic.actors.set(this.sessionId, this);
    this.actor = createActor(this.logic.machine, { snapshot: restored, input: this.input(), ...(deps.timers ? { clock: deps.timers } : {}) });
    this.actor.subscribe({
      next: () => this.notifyIdle(),
      error: (error) => this.fail(error),
    });
    this.actor.start();
    this.step([], () => {
      this.actor.send({ type: 'CHECK' });
      if (this.actor.getSnapshot().value === 'recovering' && this.restoredValue !== 'recovering') this.classify();
    });
  }

  /** The state value the session was in when its last owner stopped (before `recovering`). */
  private restoredValue: unknown;

  /**
   * Classifies an activity left unsettled by a lost owner (DESIGN §5) and records what was found
   * (`recovery.detected`) and, for a safe continuation, the automatic decision:
   * - the stream had finished and tool calls were unsettled: continue (idempotent calls run again,
   *   others settle `interrupted`);
   * - nothing was in flight (turn started, no attempt dispatched; or waiting to retry): retry;
   * - an attempt was dispatched with no outcome: ambiguous, wait for `loom recover`, unless the
   *   provider is idempotent and the retry budget allows an automatic retry;
   * - restarted more than `restartsMax` times: settle `failed` (crash-loop stop).
   */
  private classify(): void {
    const a = this.context().activity!;
    const { store, config } = this.deps;
    const value = stateName(this.restoredValue);
    // Stopped while waiting for permission replies (a headless run leaves asks pending on purpose):
    // nothing had started, so this is not a crash and does not count toward the crash-loop stop.
    const asks = value === 'awaitingTools' ? this.pendingAskCalls(a) : 0;
    const restarts = (store.queries.activity(a.id)?.restarts ?? 0) + (asks > 0 ? 0 : 1);
    const sid = this.sessionId;
    const detected = (reason: string, classification: 'ambiguous' | 'safe' | 'tools' | 'crash_loop', attemptId?: string) =>
      this.observe([{ sessionId: sid, epoch: this.lease.epoch, type: 'recovery.detected', data: { activityId: a.id, reason, restarts, classification, attemptId } }]);
    const decide = (decision: 'retry' | 'continue', reason: string) =>
      this.observe([{ sessionId: sid, type: 'recovery.decided', data: { activityId: a.id, decision, reason, automatic: true } }]);
    if (restarts > config.recovery.restartsMax) {
      detected(`the activity was restarted ${restarts - 1} times (limit ${config.recovery.restartsMax}): stopping a crash loop`, 'crash_loop');
      this.observe(this.settleRecords(a, 'failed', 'crash loop: too many restarts'));
      return;
    }
    const auto = config.recovery.autoResume;
    if (asks > 0) {
      // Continuing only re-enters the wait for the same requests (no second ask): the reply is the decision.
      detected(`the stream had finished; ${asks} tool call(s) had asked for permission and none had started`, 'tools');
      decide('continue', 'automatic: nothing had started; the calls take up their permission asks again (no second ask)');
    } else if (value === 'awaitingTools') {
      const open = Object.values(a.calls).filter((c) => c.state !== 'settled').length;
      detected(`the stream had finished; ${open} tool call(s) were unsettled`, 'tools');
      if (auto) decide('continue', 'automatic: the turn is complete; unsettled idempotent calls run again, others settle interrupted');
    } else if (value === 'providerTurn.backoff' || value === 'providerTurn.retrying' || (value === 'providerTurn.streaming' && a.attemptId === null)) {
      detected('no provider request was in flight', 'safe');
      if (auto) decide('retry', 'automatic: nothing was in flight');
    } else {
      const attempt = a.attemptId ?? undefined;
      detected(
        attempt
          ? `attempt ${attempt} was dispatched and has no outcome: the provider may or may not have received it`
          : `the activity was left in ${value}`,
        'ambiguous',
        attempt,
      );
      if (this.providerIdempotent() && restarts <= config.recovery.retryBudget) decide('retry', 'automatic: the provider is configured idempotent and the retry budget allows it');
    }
  }

  /** Calls with an ask in the log, when no unsettled call of the turn had started (else 0). */
  private pendingAskCalls(a: NonNullable<SessionContext['activity']>): number {
    const { queries } = this.deps.store;
    const open = new Set(Object.entries(a.calls).filter(([, c]) => c.state !== 'settled').map(([id]) => id));
    const rows = queries.toolCalls(this.sessionId, { activityId: a.id }).filter((c) => open.has(c.callId));
    if (rows.some((c) => c.state !== 'called')) return 0;
    return rows.filter((c) => {
      const request = queries.permissions.requestForCall(c.callId);
      return request !== undefined && request.status !== 'closed';
    }).length;
  }

  private providerIdempotent(): boolean {
    try {
      return this.deps.resolveProvider(this.model).provider.idempotent;
    } catch {
      return false;
    }
  }

  /** The events that settle an activity: interrupted calls, released inputs, the settlement. */
  settleRecords(a: NonNullable<SessionContext['activity']>, status: 'failed' | 'abandoned' | 'cancelled' | 'completed' | 'turn_limit', reason?: string): AppendRequest[] {
    const sid = this.sessionId;
    const epoch = this.lease.epoch;
    const open = Object.entries(a.calls).filter(([, c]) => c.state !== 'settled');
    return [
      ...this.lostAttempt(a),
      ...open.map(([callId]) => ({ sessionId: sid, epoch, type: 'tool.settled', data: { callId, status: 'interrupted', output: 'The tool call was interrupted before it finished.' } }) as AppendRequest),
      ...a.unconsumed.map(
        (inputId) =>
          ({ sessionId: sid, epoch, type: 'input.released', data: { inputId, activityId: a.id, reason: `activity ${status}`, mode: this.deps.store.input(inputId)?.mode ?? 'steer' } }) as AppendRequest,
      ),
      { sessionId: sid, epoch, type: 'activity.settled', data: { activityId: a.id, status, reason, turns: a.turns, usage: a.usage } },
    ];
  }

  get lease(): Lease {
    return this.deps.lease;
  }

  /** What the session runs with; `config` and `resolveProvider` change with `reconfigure`. */
  get deps(): SessionDeps {
    return this.currentDeps;
  }

  /**
   * Applies a changed config to the live session (hot reload): permission rules, job settings and
   * the provider resolver take effect at their next use; the limits (turn limit, tool calls per
   * turn, concurrency, timeouts) reach the machine now, so the next turn and the next tool call
   * use them. Work in flight keeps the bounds it started with. Runs one step (it commits the
   * snapshot with the new limits); a stopped or failed session ignores it.
   */
  reconfigure(patch: Pick<SessionDeps, 'config'> & Partial<Pick<SessionDeps, 'resolveProvider'>>): void {
    if (this.stopped || this.failed !== undefined) return;
    this.currentDeps = { ...this.currentDeps, ...patch };
    const { sessionId: _, ...limits } = this.input();
    this.step([], () => this.actor.send({ type: 'CONFIGURE', limits }));
  }

  // ---- agents and context management (issue 9) ----

  /**
   * The profile an activity runs with: the one its `activity.opened` recorded, else the session's.
   * Throws UnknownAgentError when the config in force no longer defines it.
   */
  profileFor(activity: { agent?: string | null } | null): AgentProfile {
    return resolveAgent(this.deps.config, activity?.agent ?? this.agent);
  }

  /** The model an activity's requests go to: recorded at its opening, else its profile's, else the session's. */
  modelFor(activity: { agent?: string | null; model?: string | null } | null): string {
    if (activity?.model) return activity.model;
    try {
      return this.profileFor(activity).model ?? this.model;
    } catch {
      return this.model; // an unknown profile fails the request itself, with its own message
    }
  }

  /** The context window of `model` in tokens: the model catalog's, else config `compaction.fallbackWindowTokens`. */
  windowFor(model: string): number {
    return this.deps.modelInfo?.(model)?.limits.context ?? this.deps.config.compaction.fallbackWindowTokens;
  }

  private promptCache: { activityId: string; key: string; prompt: Promise<string> } | null = null;

  /**
   * The system prompt of a request (see SessionDeps.systemPrompt). Built once per activity, so
   * every turn of it sends the same prompt (provider caches stay warm); `activityId` null builds
   * a fresh one.
   */
  systemPromptFor(activityId: string | null, profile: AgentProfile, model: string): Promise<string | undefined> {
    const fixed = this.deps.systemPrompt;
    if (fixed === undefined || typeof fixed === 'string') return Promise.resolve(fixed);
    const key = `${profile.name}\0${model}`;
    const cached = this.promptCache;
    if (activityId !== null && cached?.activityId === activityId && cached.key === key) return cached.prompt;
    const prompt = fixed({ location: this.location, profile, model, now: new Date(this.deps.store.clock.now()) });
    if (activityId !== null) {
      this.promptCache = { activityId, key, prompt };
      prompt.catch(() => {
        if (this.promptCache?.prompt === prompt) this.promptCache = null;
      });
    }
    return prompt;
  }

  /** The last compaction's summary and the seq it covers through (null before the first one). */
  latestCompaction(): { compactionId: string; summary: string; throughSeq: number } | null {
    const seq = this.context().compaction.summarySeq;
    if (seq === null) return null;
    const e = this.deps.store.read(this.sessionId, { after: seq - 1, limit: 1 })[0];
    if (e?.type !== 'compaction.finished') throw new Error(`session ${this.sessionId}: seq ${seq} is not the compaction.finished the machine recorded`);
    return { compactionId: e.data.compactionId, summary: e.data.summary, throughSeq: e.data.throughSeq };
  }

  snapshot(): SessionSnapshot {
    return this.actor.getSnapshot();
  }

  context(): SessionContext {
    return this.actor.getSnapshot().context;
  }

  /**
   * Idle with nothing it would start on its own (no eligible input, or parked after a cancel), or
   * waiting for a decision (a recovery decision, or permission replies no one here answers).
   */
  isQuiet(): boolean {
    const snap = this.actor.getSnapshot();
    if (this.failed !== undefined || snap.status !== 'active') return true;
    const c = snap.context;
    return (
      snap.value === 'recovering' ||
      (snap.value === 'idle' && (c.parked || (c.steers.length === 0 && c.queued.length === 0 && !c.runRequested))) ||
      this.waitingForPermission()
    );
  }

  /** Background jobs of the session not settled yet (running, or waiting for a new owner to look at them). */
  unsettledJobs(): string[] {
    return Object.keys(this.context().jobs);
  }

  /** Resolves once job `jobId` is no longer unsettled in this session (or the actor stopped). */
  whenJobSettled(jobId: string): Promise<void> {
    return this.until(() => this.stopped || this.failed !== undefined || this.context().jobs[jobId] === undefined);
  }

  /**
   * Resolves once the session is quiet (see isQuiet); with `jobs`, once it is also left with no
   * unsettled background job (their results delivered and answered). A stopped or failed actor is
   * quiet. Checked again after each change settles, so a state passed through inside one step
   * (a job settling just before its result opens an activity) does not count.
   */
  whenQuiet(options: { jobs?: boolean } = {}): Promise<void> {
    return this.until(() => this.isQuiet() && (!options.jobs || this.stopped || this.failed !== undefined || this.unsettledJobs().length === 0));
  }

  /** Resolves once `done()` holds when a change has settled (checked on every machine change). */
  private async until(done: () => boolean): Promise<void> {
    while (!done()) {
      await new Promise<void>((resolve) => {
        const check = () => {
          if (!done()) return;
          this.idleWaiters.delete(check);
          resolve();
        };
        this.idleWaiters.add(check);
      });
    }
  }

  get failure(): unknown {
    return this.failed;
  }

  /**
   * Appends observations and feeds them to the machine (see the class comment). Inside another
   * step it joins that step's transaction. A `barrier` step commits with a full sync and must be
   * outermost. Returns the appended envelopes.
   */
  observe(requests: AppendRequest[], options: { barrier?: boolean } = {}): AnyEnvelope[] {
    let out: AnyEnvelope[] = [];
    this.step(requests, undefined, options.barrier, (envs) => (out = envs));
    return out;
  }

  /**
   * Picks up what others appended (other processes, or this process outside a step). Cheap when
   * nothing is new; free when `knownSeq` (the newest seq the caller saw) is already delivered.
   */
  catchUp(knownSeq?: number): void {
    if (this.depth > 0 || this.failed !== undefined || this.stopped) return;
    if (knownSeq !== undefined && knownSeq <= this.lastSeq) return;
    const next = this.deps.store.read(this.sessionId, { after: this.lastSeq, limit: 1 });
    if (next.length === 0) return;
    this.step([]);
  }

  /** An advisory wake: starts work only when eligible input waits (and un-parks the session). */
  wake(): void {
    if (this.stopped) return;
    this.step([], () => this.actor.send({ type: 'WAKE' }));
  }

  private drainWaiters: (() => void)[] | null = null;

  /** True once `drain` was asked for: no new provider request is dispatched. */
  get draining(): boolean {
    return this.drainWaiters !== null;
  }

  /**
   * Resolves at the next safe point: the session is quiet, or its next provider request is about
   * to be dispatched (it is not: a draining session sends nothing more), or it waits out a retry's
   * backoff. Provider streams and tool calls already in flight finish first. The caller then stops
   * the actor and releases the lease; the log shows a turn started (or a retry scheduled) and
   * nothing in flight, which a new owner can continue safely.
   */
  drain(): Promise<void> {
    // Calls waiting for permission (even while someone here is being asked) are a safe point too:
    // nothing has started, and their asks stay pending in the log for the next owner. So is a
    // retry's backoff, which may last as long as a provider's retry-after.
    const safe = () => this.isQuiet() || this.waitingForPermission(true) || this.waitingToRetry();
    if (safe()) return Promise.resolve();
    return new Promise((resolve) => {
      (this.drainWaiters ??= []).push(resolve);
      const check = () => {
        if (!safe()) return;
        this.idleWaiters.delete(check);
        this.drained();
      };
      this.idleWaiters.add(check);
    });
  }

  /** Called by the provider turn when it stops before dispatching because the session drains. */
  drained(): void {
    for (const w of this.drainWaiters?.splice(0) ?? []) w();
  }

  private stopped = false;

  /** Between a failed attempt and its retry: nothing is in flight. */
  waitingToRetry(): boolean {
    const snap = this.actor.getSnapshot();
    return this.failed === undefined && snap.status === 'active' && (snap.matches({ providerTurn: 'backoff' }) || snap.matches({ providerTurn: 'retrying' }));
  }

  /** Calls waiting for a permission reply; fed with every delivered `permission.replied`. */
  readonly permissionWaits = new PermissionWaits(() => this.notifyIdle());

  /**
   * Waiting for a decision: every call holding a slot waits for a permission reply that no one in
   * this process is answering, so nothing moves until a reply is recorded (by any process).
   * `includeAsking` also counts asks an asker here is still working on (a question on a terminal).
   */
  waitingForPermission(includeAsking = false): boolean {
    const snap = this.actor.getSnapshot();
    if (this.failed !== undefined || snap.status !== 'active' || snap.value !== 'awaitingTools') return false;
    const running = Object.entries(snap.context.activity?.calls ?? {}).filter(([, c]) => c.state === 'running' && !c.refused);
    return running.length > 0 && running.every(([callId]) => this.permissionWaits.isWaiting(callId, includeAsking));
  }

  /** Stops the actor and its children (aborting provider requests and tools). Records nothing. */
  stop(): void {
    this.stopped = true;
    this.actor.stop();
    this.unregister();
    this.notifyIdle();
  }

  private step(requests: AppendRequest[], extra?: () => void, barrier = false, out?: (envs: AnyEnvelope[]) => void): void {
    if (this.failed !== undefined) throw this.failed;
    const store = this.deps.store;
    if (this.depth > 0) {
      const envs = store.append(requests);
      this.deliver(envs);
      out?.(envs);
      return;
    }
    try {
      store.transaction(
        () => {
          this.depth++;
          try {
            this.catchUpInTransaction();
            const envs = requests.length > 0 ? store.append(requests) : [];
            this.deliver(envs);
            extra?.();
            this.assertHealthy();
            const snap = this.actor.getSnapshot();
            store.putSnapshot({ sessionId: this.sessionId, machineVersion: SESSION_MACHINE_VERSION, value: snap.value, context: snap.context });
            out?.(envs);
          } finally {
            this.depth--;
          }
        },
        { barrier },
      );
    } catch (error) {
      // The transaction rolled back; the in-memory machine may be ahead of the log. Stop here.
      this.fail(error);
      throw error;
    }
  }

  private catchUpInTransaction(): void {
    for (;;) {
      const page = this.deps.store.read(this.sessionId, { after: this.lastSeq, limit: READ_PAGE_EVENTS_MAX });
      if (page.length === 0) return;
      this.deliver(page);
    }
  }

  /** Envelopes read or appended but not yet sent to the machine, in seq order. */
  private readonly mailbox: AnyEnvelope[] = [];
  private delivering = false;

  /**
   * Sends envelopes to the machine strictly in seq order. Events an action records while an
   * earlier envelope is being processed join the end of the mailbox, behind envelopes already
   * read (for example the rest of a catch-up page), so none is skipped or reordered.
   * `lastSeq` is the newest seq taken into the mailbox.
   */
  private deliver(envs: AnyEnvelope[]): void {
    for (const e of envs) {
      if (e.sessionId !== this.sessionId || e.seq <= this.lastSeq) continue;
      this.lastSeq = e.seq;
      this.mailbox.push(e);
    }
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let e = this.mailbox.shift(); e; e = this.mailbox.shift()) {
        this.actor.send(e as SessionEvent);
        if (e.type === 'permission.replied') this.permissionWaits.delivered(e.data);
      }
    } finally {
      this.delivering = false;
      this.mailbox.length = 0;
    }
  }

  private assertHealthy(): void {
    const snap = this.actor.getSnapshot();
    if (snap.status === 'error') throw snap.error;
  }

  private unregister(): void {
    if (this.logic.actors.get(this.sessionId) === this) this.logic.actors.delete(this.sessionId);
  }

  private fail(error: unknown): void {
    if (this.failed !== undefined) return;
    this.failed = error;
    this.unregister();
    try {
      this.actor?.stop();
    } catch {
      // already stopped
    }
    this.notifyIdle();
    this.deps.onFailure?.(error);
  }

  private notifyIdle(): void {
    for (const w of [...this.idleWaiters]) w();
  }

  private input(): SessionInput {
    const limits = this.deps.config.limits;
    return {
      sessionId: this.sessionId,
      turnLimit: limits.turnLimit,
      toolCallsPerTurn: limits.toolCallsPerTurn,
      toolConcurrency: limits.toolConcurrency,
      attemptRetriesMax: ATTEMPT_RETRIES_MAX,
      attemptBackoffMs: ATTEMPT_RETRY_BACKOFF_MS,
      attemptBackoffMaxMs: ATTEMPT_RETRY_BACKOFF_MAX_MS,
      attemptRetryAfterMaxMs: ATTEMPT_RETRY_AFTER_MAX_MS,
      toolTimeoutsMs: Object.fromEntries(this.deps.tools.list().map((t) => [t.name, t.timeoutMs])),
      toolTimeoutDefaultMs: limits.toolTimeoutMs,
      idempotentTools: this.deps.tools.list().filter((t) => t.idempotent).map((t) => t.name),
      compactionSettings: {
        auto: this.deps.config.compaction.auto,
        threshold: this.deps.config.compaction.threshold,
        keepRecentTurns: this.deps.config.compaction.keepRecentTurns,
        windowTokens: this.windowFor(this.modelFor(null)),
      },
    };
  }

  /**
   * Restores without re-running any child (DESIGN §5): from the snapshot when its machine version
   * matches, else by replaying the log through the pure machine. An unsettled session comes back
   * in `recovering`, which starts nothing.
   */
  private restore(): SessionSnapshot {
    const store = this.deps.store;
    const saved = store.getSnapshot(this.sessionId);
    let value: unknown;
    let context: SessionContext;
    const upgraded = saved ? upgradeSnapshotContext(saved.machineVersion, saved.context) : undefined;
    if (saved && upgraded) {
      value = saved.value;
      context = upgraded;
      this.lastSeq = saved.seq;
    } else {
      const replayed = replayLog(store, this.sessionId, this.input());
      value = replayed.snapshot.value;
      context = replayed.snapshot.context;
      this.lastSeq = replayed.lastSeq;
    }
    this.restoredValue = value;
    // Limits come from the current config, not from the one the snapshot was taken under.
    // No job has a child yet: CHECK gives each one that inspects what its process left.
    const jobs = Object.fromEntries(Object.entries(context.jobs ?? {}).map(([id, job]) => [id, { ...job, live: false }]));
    context = { ...context, ...this.input(), sessionId: this.sessionId, jobs };
    // A compaction left open runs again (a summary request has no side effect); it waits in
    // `restoring` for CHECK. Compaction happens only where no request or tool is in flight.
    const state = context.compaction.current !== null ? { compacting: 'restoring' } : context.activity === null ? 'idle' : value === 'idle' ? 'idle' : 'recovering';
    return sessionMachine.resolveState({ value: state, context });
  }

  /** An attempt dispatched by a lost owner with no outcome (never finished nor failed): marked failed, its parts discarded. */
  lostAttempt(a: NonNullable<SessionContext['activity']>): AppendRequest[] {
    if (!a.attemptId) return [];
    const attempt = this.deps.store.queries.attempt(a.attemptId);
    if (!attempt.exists || attempt.discarded || attempt.finished) return [];
    return [
      {
        sessionId: this.sessionId,
        epoch: this.lease.epoch,
        type: 'attempt.failed',
        data: {
          activityId: a.id,
          attemptId: a.attemptId,
          error: { kind: 'lost', message: 'the process was lost while this attempt was in flight' },
          retryable: false,
          receivedChunks: attempt.partIds.length > 0,
          discardedParts: attempt.partIds,
        },
      },
    ];
  }

  /** The attempt in flight when an activity is cancelled or abandoned: its parts are discarded. */
  openAttempt: { activityId: string; attemptId: string; parts: string[]; received: boolean } | null = null;

  openAttemptFailure(activityId: string, status: string): AppendRequest[] {
    const open = this.openAttempt;
    this.openAttempt = null;
    if (!open || open.activityId !== activityId) return [];
    return [
      {
        sessionId: this.sessionId,
        epoch: this.deps.lease.epoch,
        type: 'attempt.failed',
        data: {
          activityId,
          attemptId: open.attemptId,
          error: { kind: status, message: `the attempt was stopped: activity ${status}` },
          retryable: false,
          receivedChunks: open.received,
          discardedParts: open.parts,
        },
      },
    ];
  }
}

/**
 * A snapshot's context in the current machine's shape, or undefined when its version cannot be
 * upgraded (the state is then rebuilt from the log). `session@2` had no context management and
 * no usage or budget bookkeeping: its state is rebuilt from the log, which holds everything the
 * new fields are computed from.
 */
export function upgradeSnapshotContext(version: string, context: unknown): SessionContext | undefined {
  if (version === SESSION_MACHINE_VERSION) return context as SessionContext;
  return undefined;
}

/**
 * The session machine with the runtime's implementations, built once per process (per
 * coordinator) and shared by every session actor: implementations find their actor by the
 * `sessionId` in context or input. Building a machine per actor costs more than the actor.
 */
export class SessionLogic {
  readonly actors = new Map<string, SessionActor>();
  /** Starts background jobs for these sessions' tools and implements their job children. */
  readonly jobs = new JobRuntime((sessionId) => this.actors.get(sessionId));
  readonly machine = provideSessionMachine((sessionId) => {
    const actor = this.actors.get(sessionId);
    if (!actor) throw new Error(`no live session actor for ${sessionId}`);
    return actor;
  }, this.jobs);
}

function provideSessionMachine(lookup: (sessionId: string) => SessionActor, jobs: JobRuntime) {
  const owner = (s: SessionActor, r: Omit<AppendRequest, 'sessionId' | 'epoch'>) => ({ ...r, sessionId: s.sessionId, epoch: s.lease.epoch }) as AppendRequest;
  const tools = createToolCallImplementations(lookup);
  return sessionMachine.provide({
    actors: {
      providerTurn: fromPromise<void, { sessionId: string }>(async ({ input, signal }) => {
        await Promise.resolve(); // start after the step that entered providerTurn has committed
        await runProviderTurn(lookup(input.sessionId), signal);
      }),
      toolCall: toolCallMachine.provide(tools),
      job: jobMachine.provide(jobs.implementations()),
      compaction: fromPromise<void, { sessionId: string }>(async ({ input, signal }) => {
        await Promise.resolve(); // start after the step that entered compacting has committed
        await runCompaction(lookup(input.sessionId), signal);
      }),
    },
    actions: {
      openActivity: ({ context }) => {
        const s = lookup(context.sessionId);
        const ids = s.deps.store.ids;
        const activityId = ids.next('act');
        const inputs = nextActivityInputs(context);
        // One profile per activity: the first of its inputs that names one, else a run's, else the session's.
        const named = inputs.map((inputId) => s.deps.store.input(inputId)?.agent ?? null).find((a) => a !== null);
        const agent = named ?? context.runAgent ?? s.agent ?? DEFAULT_AGENT;
        const model = s.modelFor({ agent });
        s.observe([
          owner(s, {
            type: 'activity.opened',
            data: { activityId, trigger: inputs.length > 0 ? 'input' : 'run', inputIds: inputs, turnLimit: context.turnLimit, agent, model, contextWindow: s.windowFor(model) },
          }),
          ...inputs.map((inputId) => owner(s, { type: 'input.assigned', data: { inputId, activityId } })),
          owner(s, { type: 'turn.started', data: { activityId, turnId: ids.next('turn'), turn: 1 } }),
        ]);
      },
      assignSteers: ({ context }) => {
        const s = lookup(context.sessionId);
        const activityId = context.activity!.id;
        s.observe([
          ...context.steers.map((inputId) => owner(s, { type: 'input.assigned', data: { inputId, activityId } })),
          owner(s, { type: 'turn.started', data: { activityId, turnId: s.deps.store.ids.next('turn'), turn: 1 } }),
        ]);
      },
      startTurn: ({ context }) => {
        const s = lookup(context.sessionId);
        const a = context.activity!;
        s.observe([owner(s, { type: 'turn.started', data: { activityId: a.id, turnId: s.deps.store.ids.next('turn'), turn: a.turn + 1 } })]);
      },
      retryTurn: ({ context }) => {
        const s = lookup(context.sessionId);
        const a = context.activity!;
        s.observe([...s.lostAttempt(a), owner(s, { type: 'turn.started', data: { activityId: a.id, turnId: s.deps.store.ids.next('turn'), turn: Math.max(1, a.turn) } })]);
      },
      settleActivity: ({ context }, params) => {
        const s = lookup(context.sessionId);
        const a = context.activity!;
        const modeOf = (inputId: string) => s.deps.store.input(inputId)?.mode ?? 'steer';
        const inFlight = s.openAttemptFailure(a.id, params.status);
        s.observe([
          // The attempt in flight here, or one a lost owner left without an outcome (after a restore).
          ...(inFlight.length > 0 ? inFlight : s.lostAttempt(a)),
          ...a.unconsumed.map((inputId) =>
            owner(s, { type: 'input.released', data: { inputId, activityId: a.id, reason: `activity ${params.status}`, mode: modeOf(inputId) } }),
          ),
          owner(s, { type: 'activity.settled', data: { activityId: a.id, status: params.status, reason: params.reason, turns: a.turns, usage: a.usage } }),
        ]);
      },
      scheduleRetry: ({ context }, params) => {
        const s = lookup(context.sessionId);
        const delayMs = retryDelayMs({
          retry: params.failedAttempt,
          baseMs: context.attemptBackoffMs,
          maxMs: context.attemptBackoffMaxMs,
          jitterRatio: ATTEMPT_RETRY_JITTER_RATIO,
          retryAfterMs: params.retryAfterMs,
          random: s.deps.random ?? Math.random,
        });
        s.observe([
          owner(s, {
            type: 'attempt.retrying',
            data: {
              activityId: context.activity!.id,
              failedAttemptId: params.failedAttemptId,
              nextAttempt: params.failedAttempt + 1,
              delayMs,
              reason: params.reason,
              ...(params.retryAfterMs === undefined ? {} : { retryAfterMs: Math.ceil(params.retryAfterMs) }),
            },
          }),
        ]);
      },
      interruptCalls: ({ context }) => {
        const s = lookup(context.sessionId);
        const open = Object.entries(context.activity?.calls ?? {}).filter(([, c]) => c.state !== 'settled');
        s.observe(
          open.map(([callId]) => owner(s, { type: 'tool.settled', data: { callId, status: 'interrupted', output: 'The tool call was interrupted before it finished.' } })),
        );
      },
      startCompaction: ({ context }, params) => {
        const s = lookup(context.sessionId);
        const a = context.activity;
        s.observe([
          owner(s, {
            type: 'compaction.started',
            data: {
              compactionId: s.deps.store.ids.next('cmp'),
              reason: params.reason,
              ...(a ? { activityId: a.id } : {}),
              estimatedTokens: estimateWith(context.compaction, a ? context.steers : nextActivityInputs(context)),
              windowTokens: a?.contextWindow ?? context.compactionSettings?.windowTokens ?? s.windowFor(s.modelFor(null)),
              restarts: 0,
            },
          }),
        ]);
      },
      restartCompaction: ({ context }) => {
        const s = lookup(context.sessionId);
        const current = context.compaction.current!;
        s.observe([
          owner(s, {
            type: 'compaction.started',
            data: { compactionId: current.id, reason: current.reason, ...(context.activity ? { activityId: context.activity.id } : {}), restarts: current.restarts + 1 },
          }),
        ]);
      },
      failCompaction: ({ context }, params) => {
        const s = lookup(context.sessionId);
        const current = context.compaction.current;
        if (!current) return;
        s.observe([owner(s, { type: 'compaction.failed', data: { compactionId: current.id, kind: params.kind, reason: params.reason } })]);
      },
      refuseToolCall: ({ context }, params) => {
        const s = lookup(context.sessionId);
        s.observe([
          owner(s, {
            type: 'tool.settled',
            data: { callId: params.callId, status: 'error', output: `tool-call limit reached: at most ${s.deps.config.limits.toolCallsPerTurn} calls per turn` },
          }),
        ]);
      },
    },
  });
}

/** Rebuilds a session's machine state from its log with the pure machine (no action runs). */
export function replayLog(store: Store, sessionId: string, input: SessionInput): { snapshot: SessionSnapshot; lastSeq: number } {
  let [snapshot] = initialTransition(sessionMachine, input);
  let lastSeq = 0;
  for (;;) {
    const page = store.read(sessionId, { after: lastSeq, limit: READ_PAGE_EVENTS_MAX });
    if (page.length === 0) break;
    for (const e of page) {
      [snapshot] = transition(sessionMachine, snapshot, e as SessionEvent);
      lastSeq = e.seq;
    }
  }
  return { snapshot, lastSeq };
}
