import { attachmentsFor } from '../attach.js';
import { admissionBudget, type BudgetFlags } from '../budget.js';
import { EXIT, UsageError } from '../exit.js';
import { driveSession } from '../drive.js';
import { openRuntime, resolveLocation, type PermissionMode } from '../runtime.js';
import { DEFAULT_MODEL } from '../../llm/resolve.js';
import { resolveAgent } from '../../services/agents.js';
import { followInput } from './prompt.js';
import { hookFailedEvent, runInputHooks, type HookFailure } from '../../services/hooks.js';
import { admitWithPolicy, type DoubleTextingPolicy } from '../../store/index.js';

export { DEFAULT_MODEL };

export interface RunOptions extends BudgetFlags {
  model?: string;
  dir: string;
  json?: boolean;
  permission?: PermissionMode;
  /** Files (inside DIR) and URLs to attach to the text. */
  attach?: string[];
  /** Create and admit, then return: a `loom worker` runs the session. */
  detach?: boolean;
  /** Leave background jobs running instead of waiting for them (the next owner re-attaches them). */
  detachJobs?: boolean;
  /** The session's double-texting policy (what a prompt with no mode does while it is busy). */
  doubleTexting?: DoubleTextingPolicy;
  /** The session's agent profile (build, plan, or one from config `agents`). */
  agent?: string;
}

/**
 * `loom run`: create a session, admit the text, own and run it until idle. If a `loom worker` takes
 * the new session first, follow its events until the input's activity settles. With --detach,
 * return once the input is admitted.
 */
export async function runCommand(text: string, opts: RunOptions): Promise<number> {
  if (text.trim() === '') throw new UsageError('run needs some text to send');
  const location = resolveLocation(opts.dir);
  const rt = await openRuntime({ permission: opts.permission });
  try {
    const config = await rt.configFor(location);
    const profile = resolveAgent(config, opts.agent); // an unknown agent is refused before anything is stored
    const model = opts.model ?? config.model ?? process.env.LOOM_MODEL ?? DEFAULT_MODEL;
    await rt.providers.ready(profile.model ?? model); // fail before creating anything when the provider is not configured or failed to load (bounded wait)
    const budget = admissionBudget(config, profile.model ?? model, rt.modelInfo, opts); // a cost budget needs a price: refused before anything is stored
    const attachments = await attachmentsFor(location, opts.attach); // resolved before anything is stored
    const sessionId = rt.store.ids.next('ses');
    // Plugins' input.admitted hooks see the text before anything is stored; their failures are recorded with the session.
    const failures: HookFailure[] = [];
    const request = await runInputHooks(rt.hooks, { sessionId, location, model, source: 'cli' }, { mode: 'steer', text, source: 'cli', attachments, budget }, (f) => failures.push(f));
    rt.store.transaction(() => {
      rt.store.append({
        sessionId,
        type: 'session.created',
        data: { location, model, ...(opts.doubleTexting ? { doubleTexting: opts.doubleTexting } : {}), ...(opts.agent ? { agent: profile.name } : {}) },
      });
      if (failures.length > 0) rt.store.append(failures.map((f) => hookFailedEvent(sessionId, f)));
      admitWithPolicy(rt.store, sessionId, request);
    });
    process.stderr.write(`session ${sessionId} (${profile.model ?? model}, agent ${profile.name}) in ${location}\n`);
    if (opts.detach) {
      await rt.signal('wake', sessionId); // over NATS a worker hears it at once; otherwise it polls
      return EXIT.ok;
    }
    const code = await driveSession(rt, sessionId, { json: opts.json, after: 0, jobs: opts.detachJobs ? 'detach' : 'wait' });
    if (code !== null) return code;
    // A worker took the new session before this process could: follow its run instead.
    const input = rt.store.inputs(sessionId)[0];
    return input ? await followInput(rt, sessionId, input.inputId, 0, opts.json) : EXIT.ok;
  } finally {
    rt.close();
  }
}
