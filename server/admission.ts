/**
 * Admission over HTTP is the same function the CLI uses (store/admission.ts): an explicit mode is
 * used as given; without one, an idle session gets `queue` and a busy session its double-texting
 * policy (steer, queue, interrupt: cancel then run, reject: `SessionBusyError`, mapped to 409
 * naming `body.mode` in server/errors.ts). A missing session is `SessionNotFoundError` (404).
 */
import { assertBudgetPriced, BudgetPriceUnknownError, requestBudgetFor } from '../services/budget.js';
import type { RequestBudget } from '../store/index.js';
import type { ServerContext } from './app.js';
import { ApiError } from './errors.js';

export { admitWithPolicy, type Admission, type AdmitWithPolicyRequest as AdmitRequest } from '../store/admission.js';

/**
 * The budget to record with a request for a session in `location` running `model`: the config's
 * `budget` with the body's limits laid over it. A cost limit for a model with no known price is a
 * 400 naming the field it came from (`body.budget.activity.costUsd`, or the config key); nothing is
 * recorded.
 */
export async function requestBudget(ctx: ServerContext, location: string, model: string, body: RequestBudget | undefined): Promise<RequestBudget | undefined> {
  const config = await ctx.configFor(location);
  const budget = requestBudgetFor(config.budget, body);
  try {
    assertBudgetPriced(budget, model, ctx.modelInfo, {
      activity: body?.activity?.costUsd !== undefined ? 'body.budget.activity.costUsd' : 'budget.activity.costUsd (config)',
      session: body?.session?.costUsd !== undefined ? 'body.budget.session.costUsd' : 'budget.session.costUsd (config)',
    });
  } catch (error) {
    if (error instanceof BudgetPriceUnknownError) throw new ApiError(400, 'budget_price_unknown', error.message, error.field.startsWith('body.') ? error.field : 'body.budget');
    throw error;
  }
  return budget;
}
