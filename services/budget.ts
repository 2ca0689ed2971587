/**
 * Budgets at admission (README "Budgets and usage"): the budget a request records is the config's
 * `budget` with the request's own limits laid over it, dimension by dimension; a cost limit is
 * refused when the model has no price, because it could never be checked. The recorded budget is
 * what the session's owner enforces (machines/session.machine.ts), in whichever process it runs.
 */
import type { ModelInfo } from '../llm/modelInfo.js';
import type { BudgetLimit, RequestBudget } from '../store/schemas.js';

/** A cost budget for a model whose price is unknown; nothing was admitted. */
export class BudgetPriceUnknownError extends Error {
  override name = 'BudgetPriceUnknownError';
  constructor(
    readonly model: string,
    /** Where the cost limit came from: `--budget-usd`, `budget.session.costUsd` (config), `body.budget.activity.costUsd`. */
    readonly field: string,
  ) {
    super(
      `${field}: a cost budget needs the price of model ${model}, and the model catalog has none for it; ` +
        'set a token budget instead (--budget-tokens, budget.*.tokens) or give the model a price in the catalog',
    );
  }
}

/** `over`'s limits replace `base`'s one dimension at a time (null/undefined: nothing to lay over). */
function overlay(base: BudgetLimit | undefined, over: Partial<BudgetLimit> | undefined): BudgetLimit | undefined {
  const tokens = over?.tokens ?? base?.tokens;
  const costUsd = over?.costUsd ?? base?.costUsd;
  if (tokens === undefined && costUsd === undefined) return undefined;
  return { ...(tokens === undefined ? {} : { tokens }), ...(costUsd === undefined ? {} : { costUsd }) };
}

/**
 * The budget to record with a request: `configured` (the config's `budget`) overlaid with the
 * request's own `activity` and `session` limits. Undefined when neither sets anything.
 */
export function requestBudgetFor(configured: RequestBudget | undefined, requested: { activity?: Partial<BudgetLimit>; session?: Partial<BudgetLimit> } = {}): RequestBudget | undefined {
  const activity = overlay(configured?.activity, requested.activity);
  const session = overlay(configured?.session, requested.session);
  if (activity === undefined && session === undefined) return undefined;
  return { ...(activity === undefined ? {} : { activity }), ...(session === undefined ? {} : { session }) };
}

/**
 * Throws BudgetPriceUnknownError when `budget` caps cost and `model` has no price. `fields` names
 * where each cost limit came from, for the message (defaults: the config keys).
 */
export function assertBudgetPriced(
  budget: RequestBudget | undefined,
  model: string,
  modelInfo: ((ref: string) => ModelInfo | undefined) | undefined,
  fields: { activity?: string; session?: string } = {},
): void {
  if (budget?.activity?.costUsd === undefined && budget?.session?.costUsd === undefined) return;
  if (modelInfo?.(model)?.cost !== undefined) return;
  const field = budget.activity?.costUsd !== undefined ? (fields.activity ?? 'budget.activity.costUsd') : (fields.session ?? 'budget.session.costUsd');
  throw new BudgetPriceUnknownError(model, field);
}
