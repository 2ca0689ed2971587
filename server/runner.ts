import type { Coordinator } from '../actors/coordinator.js';
import { SERVER_RUNNING_SESSIONS_MAX } from '../core/limits.js';
import { stateName } from '../machines/stateName.js';
import type { ResolvedConfig } from '../services/config.js';
import type { Store } from '../store/index.js';

export interface SessionRunnerOptions {
  store: Store;
  coordinator: Coordinator;
  configFor(location: string): Promise<ResolvedConfig>;
  /** Told when holding a session fails (the session is released; the server goes on). */
  onError?(sessionId: string, error: unknown): void;
}

/** Where a kicked session runs. */
export type KickResult = 'here' | 'elsewhere';

/**
 * Runs the sessions of a long-lived process (`loom serve`): a session with work (an admitted
 * input, a run, a decision, a permission reply, a cancel) is owned here unless another live process
 * holds it, run until quiet in the background, and released once it is idle with no background job.
 * A session that is quiet but waiting (a durable permission ask, a recovery decision, a job) stays
 * owned, so a reply over HTTP reaches its live actor at once and the inspector sees its children;
 * it is looked at again after every commit.
 */
export class SessionRunner {
  private readonly held = new Map<string, Promise<void>>();
  private readonly starting = new Map<string, Promise<KickResult>>();
  private draining = false;

  constructor(private readonly options: SessionRunnerOptions) {}

  /** Sessions this runner holds now. */
  get sessions(): string[] {
    return [...this.held.keys()];
  }

  /**
   * Makes sure a session with work runs: owned and run here (returns `here`), or left to the live
   * process that owns it (`elsewhere`: it notices the request by polling). Concurrent kicks of one
   * session share one start.
   */
  kick(sessionId: string): Promise<KickResult> {
    if (this.held.has(sessionId)) {
      this.options.coordinator.get(sessionId)?.catchUp();
      return Promise.resolve('here');
    }
    const pending = this.starting.get(sessionId);
    if (pending) return pending;
    const start = this.start(sessionId).finally(() => this.starting.delete(sessionId));
    this.starting.set(sessionId, start);
    return start;
  }

  private async start(sessionId: string): Promise<KickResult> {
    if (this.draining) return 'elsewhere';
    const { store, coordinator } = this.options;
    const session = store.queries.session(sessionId);
    if (!session) return 'elsewhere';
    await this.options.configFor(session.location);
    if (this.held.has(sessionId)) return 'here';
    if (this.held.size >= SERVER_RUNNING_SESSIONS_MAX) return 'elsewhere'; // committed; discovery or a later kick runs it
    // Owned in this process by someone else (a `task` subagent's runner): it runs it and releases it.
    const live = coordinator.get(sessionId);
    if (live) {
      live.catchUp();
      return 'here';
    }
    const actor = coordinator.own(sessionId);
    if (!actor) return 'elsewhere';
    this.held.set(sessionId, this.hold(sessionId));
    return 'here';
  }

  /** Adopts sessions already owned by the coordinator (startup discovery) and runs them like kicked ones. */
  adopt(sessionId: string): void {
    if (!this.held.has(sessionId) && this.options.coordinator.get(sessionId)) this.held.set(sessionId, this.hold(sessionId));
  }

  private async hold(sessionId: string): Promise<void> {
    const { coordinator, store } = this.options;
    await Promise.resolve(); // registered in `held` before the loop looks at it
    try {
      for (;;) {
        await coordinator.runUntilQuiet(sessionId, { jobs: true });
        const actor = coordinator.get(sessionId);
        if (!actor) return; // released (drain) or stopped on a failure
        if (actor.failure !== undefined) throw actor.failure;
        const idle = stateName(actor.snapshot().value) === 'idle';
        if (idle && actor.unsettledJobs().length === 0 && !actor.waitingForPermission()) {
          store.flushSession(sessionId);
          coordinator.release(sessionId);
          return;
        }
        if (this.draining) return;
        await nextCommit(store);
      }
    } catch (error) {
      this.options.onError?.(sessionId, error);
      try {
        coordinator.release(sessionId);
      } catch {
        // already gone
      }
    } finally {
      this.held.delete(sessionId);
    }
  }

  /**
   * SIGTERM: nothing new is started; every held session drains (in-flight streams and tools
   * finish, nothing new is dispatched) within `timeoutMs`, then is released.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const { coordinator } = this.options;
    const ids = this.sessions;
    const drained = Promise.all(ids.map((id) => coordinator.get(id)?.drain() ?? Promise.resolve()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([drained, timeout]);
    clearTimeout(timer);
    for (const id of ids) coordinator.release(id);
  }
}

/** Resolves after the next commit, by this process or another (the store's change detector). */
function nextCommit(store: Store): Promise<void> {
  return new Promise<void>((resolve) => {
    const off = store.changes.subscribe(() => {
      off();
      resolve();
    });
  });
}
