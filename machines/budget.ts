/**
 * Usage totals and budget checks of the session machine (DESIGN §3 "budget_exceeded"): pure
 * functions over the recorded `turn.finished` usage and the budgets requests recorded. No clock,
 * no I/O: the owner prices a turn before it is recorded (actors/providerTurn.ts).
 */
import type { BudgetLimit, EventData, UsageTotals } from '../store/schemas.js';

export const NO_USAGE: UsageTotals = { inputTokens: 0, outputTokens: 0 };

/** `totals` plus one finished turn (its cost only when the turn was priced). */
export function addUsage(totals: UsageTotals, turn: Pick<EventData<'turn.finished'>, 'usage' | 'costUsd'>): UsageTotals {
  const cost = turn.costUsd === undefined ? totals.costUsd : (totals.costUsd ?? 0) + turn.costUsd;
  return {
    inputTokens: totals.inputTokens + turn.usage.inputTokens,
    outputTokens: totals.outputTokens + turn.usage.outputTokens,
    ...(cost === undefined ? {} : { costUsd: cost }),
  };
}

/** The stricter of two budgets, dimension by dimension (null: no budget). */
export function tighterBudget(a: BudgetLimit | null | undefined, b: BudgetLimit | null | undefined): BudgetLimit | null {
  if (!a) return b ?? null;
  if (!b) return a;
  const min = (x: number | undefined, y: number | undefined) => (x === undefined ? y : y === undefined ? x : Math.min(x, y));
  const tokens = min(a.tokens, b.tokens);
  const costUsd = min(a.costUsd, b.costUsd);
  return { ...(tokens === undefined ? {} : { tokens }), ...(costUsd === undefined ? {} : { costUsd }) };
}

/**
 * Why `usage` breaks `budget` (named `what`), or null when it does not. A budget is used up once
 * usage reaches it. A cost budget over a usage with no price is a failure of its own: it cannot be
 * checked, and spending on without a check would ignore it silently.
 */
export function budgetBreach(what: string, usage: UsageTotals, turnPriced: boolean, budget: BudgetLimit | null): { status: 'budget_exceeded' | 'failed'; reason: string } | null {
  if (!budget) return null;
  const tokens = usage.inputTokens + usage.outputTokens;
  if (budget.tokens !== undefined && tokens >= budget.tokens) {
    return { status: 'budget_exceeded', reason: `${what} token budget of ${budget.tokens} used up (${tokens} tokens)` };
  }
  if (budget.costUsd === undefined) return null;
  if (!turnPriced) return { status: 'failed', reason: `${what} cost budget of $${budget.costUsd} cannot be checked: no price is known for this session's model` };
  const cost = usage.costUsd ?? 0;
  if (cost >= budget.costUsd) return { status: 'budget_exceeded', reason: `${what} cost budget of $${budget.costUsd} used up ($${cost.toFixed(4)})` };
  return null;
}

/** What budgets are checked against: the session's totals and budget, and the open activity's. */
export interface BudgetedContext {
  usage: UsageTotals;
  sessionBudget: BudgetLimit | null;
  activity: { usage: UsageTotals; budget: BudgetLimit | null } | null;
}

/** The breach a finished turn's totals make (the activity's budget first), or null. */
export function budgetVerdict(context: BudgetedContext, turnPriced: boolean): { status: 'budget_exceeded' | 'failed'; reason: string } | null {
  const a = context.activity;
  return (a ? budgetBreach('activity', a.usage, turnPriced, a.budget) : null) ?? budgetBreach('session', context.usage, turnPriced, context.sessionBudget);
}
