import { BUDGET_COST_USD_MAX, BUDGET_TOKENS_MAX } from '../core/limits.js';
import type { ModelInfo } from '../llm/modelInfo.js';
import { assertBudgetPriced, BudgetPriceUnknownError, requestBudgetFor } from '../services/budget.js';
import type { ResolvedConfig } from '../services/config.js';
import type { BudgetLimit, RequestBudget } from '../store/index.js';
import { UsageError } from './exit.js';

/** `--budget-tokens` and `--budget-usd` of `run` and `prompt`: the budget of the activity the input opens or joins. */
export interface BudgetFlags {
  budgetTokens?: string;
  budgetUsd?: string;
}

/**
 * The budget a CLI admission records: the config's `budget`, with the flags laid over its
 * `activity` part. A malformed flag, or a cost budget for a model with no known price, is a usage
 * error (exit 2) naming the flag or config key; nothing is admitted.
 */
export function admissionBudget(config: ResolvedConfig, model: string, modelInfo: ((ref: string) => ModelInfo | undefined) | undefined, flags: BudgetFlags): RequestBudget | undefined {
  const activity = parseBudgetFlags(flags);
  const budget = requestBudgetFor(config.budget, { activity });
  try {
    assertBudgetPriced(budget, model, modelInfo, {
      activity: activity.costUsd !== undefined ? '--budget-usd' : 'budget.activity.costUsd (config)',
      session: 'budget.session.costUsd (config)',
    });
  } catch (error) {
    if (error instanceof BudgetPriceUnknownError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
  return budget;
}

/** The activity limits the flags set (a malformed value is a usage error naming the flag). */
export function parseBudgetFlags(flags: BudgetFlags): Partial<BudgetLimit> {
  const out: Partial<BudgetLimit> = {};
  if (flags.budgetTokens !== undefined) {
    const n = Number(flags.budgetTokens);
    if (!/^\d+$/.test(flags.budgetTokens.trim()) || !Number.isSafeInteger(n) || n < 1 || n > BUDGET_TOKENS_MAX) {
      throw new UsageError(`--budget-tokens ${flags.budgetTokens}: expected a whole number of tokens from 1 to ${BUDGET_TOKENS_MAX}`);
    }
    out.tokens = n;
  }
  if (flags.budgetUsd !== undefined) {
    const x = Number(flags.budgetUsd.trim().replace(/^\$/, ''));
    if (flags.budgetUsd.trim() === '' || !Number.isFinite(x) || x <= 0 || x > BUDGET_COST_USD_MAX) {
      throw new UsageError(`--budget-usd ${flags.budgetUsd}: expected an amount of US dollars above 0 and at most ${BUDGET_COST_USD_MAX}, for example 0.50`);
    }
    out.costUsd = x;
  }
  return out;
}
