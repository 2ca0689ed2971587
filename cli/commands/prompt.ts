import { attachmentsFor } from '../attach.js';
import { admissionBudget, type BudgetFlags } from '../budget.js';
import { EXIT, exitCodeForStatus, UsageError } from '../exit.js';
import { driveSession } from '../drive.js';
import { createHumanRenderer, createJsonRenderer } from '../render.js';
import { openRuntime, type CliRuntime, type PermissionMode } from '../runtime.js';
import { requireSession } from './session.js';
import { resolveAgent } from '../../services/agents.js';
import { admitWithHooks } from '../../services/hooks.js';
import { SessionBusyError } from '../../store/index.js';

export interface PromptOptions extends BudgetFlags {
  steer?: boolean;
  queue?: boolean;
  follow?: boolean;
  json?: boolean;
  clientId?: string;
  permission?: PermissionMode;
  /** Files (inside the session's directory) and URLs to attach to the text. */
  attach?: string[];
  /** Admit and return: never run the session here (a worker or the live owner runs it). */
  detach?: boolean;
  /** Leave background jobs running instead of waiting for them (the next owner re-attaches them). */
  detachJobs?: boolean;
  /** The agent profile of the activity this input opens (default: the session's). */
  agent?: string;
}

/**
 * `loom prompt`: admit an input. With no mode given, a busy session applies its double-texting
 * policy (steer, queue, interrupt or reject). If no live owner holds the session, this process
 * takes it and runs it until idle; otherwise it returns after admission, or follows with --follow.
 * With --detach it never runs the session: it admits, wakes the owner (or, over NATS, the workers)
 * and returns (or follows with --follow).
 */
export async function promptCommand(idArg: string, text: string, opts: PromptOptions): Promise<number> {
  if (opts.steer && opts.queue) throw new UsageError('choose one of --steer and --queue');
  if (text.trim() === '') throw new UsageError('prompt needs some text to send');
  const rt = await openRuntime({ permission: opts.permission });
  try {
    const session = requireSession(rt.store, idArg);
    const sessionId = session.sessionId;
    const config = await rt.configFor(session.location);
    // This process will run the session (no live owner, not detached): a provider that cannot load
    // is refused now, naming it, before the input is admitted (exit 2), as `run` does.
    if (!opts.detach && !rt.store.owners.get(sessionId, rt.store.clock.now())?.live) await rt.providers.ready(session.model);
    const budget = admissionBudget(config, session.model, rt.modelInfo, opts); // a cost budget needs a price: refused before anything is stored
    if (opts.agent !== undefined) resolveAgent(config, opts.agent); // an unknown agent is refused before anything is stored
    const attachments = await attachmentsFor(session.location, opts.attach); // resolved before anything is stored
    const after = rt.store.queries.session(sessionId)!.lastSeq;
    let admission;
    try {
      admission = await admitWithHooks(rt.store, rt.hooks, sessionId, {
        text,
        ...(opts.steer ? { mode: 'steer' as const } : opts.queue ? { mode: 'queue' as const } : {}),
        ...(opts.clientId === undefined ? {} : { clientId: opts.clientId }),
        source: 'cli',
        ...(attachments === undefined ? {} : { attachments }),
        ...(budget === undefined ? {} : { budget }),
        ...(opts.agent === undefined ? {} : { agent: opts.agent }),
      });
    } catch (error) {
      if (error instanceof SessionBusyError) throw new UsageError(`${error.message} (loom prompt --steer or --queue)`);
      throw error;
    }
    const { input, admitted, policy, interrupted } = admission;
    const how = policy ? ` (busy: double-texting policy ${policy}${interrupted ? `, cancelled ${interrupted}` : ''})` : '';
    process.stderr.write(`${admitted ? 'admitted' : 'already admitted'} ${input.mode} ${input.inputId} into ${sessionId}${how}\n`);
    if (interrupted) await rt.signal('cancel', sessionId);
    if (admitted) await rt.signal('wake', sessionId);
    if (opts.detach) return opts.follow ? await followInput(rt, sessionId, input.inputId, after, opts.json) : EXIT.ok;
    const code = await driveSession(rt, sessionId, { json: opts.json, after, jobs: opts.detachJobs ? 'detach' : 'wait' });
    if (code !== null) return code;
    if (!opts.follow) return EXIT.ok;
    return await followInput(rt, sessionId, input.inputId, after, opts.json);
  } finally {
    rt.close();
  }
}

/** Follows another owner's events until the activity that took this input settles. */
export async function followInput(rt: CliRuntime, sessionId: string, inputId: string, after: number, json?: boolean): Promise<number> {
  const render = json ? createJsonRenderer(process.stdout) : createHumanRenderer(process.stdout, process.stderr);
  let activityId: string | null = null;
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  for await (const e of rt.store.tail({ sessionId, after }, { signal: ac.signal })) {
    render.event(e);
    if (e.type === 'input.assigned' && e.data.inputId === inputId) activityId = e.data.activityId;
    if (e.type === 'input.cancelled' && e.data.inputId === inputId) return EXIT.cancelled;
    if (e.type === 'activity.settled' && e.data.activityId === activityId) {
      render.end();
      return exitCodeForStatus(e.data.status);
    }
  }
  render.end();
  return EXIT.cancelled;
}
