/** Exit codes (DESIGN §7): they follow the last activity the command settled. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  cancelled: 3,
  limit: 4,
  waiting: 5,
} as const;

export function exitCodeForStatus(status: string | null | undefined): number {
  switch (status) {
    case 'completed':
    case null:
    case undefined:
      return EXIT.ok;
    case 'failed':
    case 'abandoned':
      return EXIT.failed;
    case 'cancelled':
      return EXIT.cancelled;
    case 'turn_limit':
    case 'budget_exceeded':
      return EXIT.limit;
    default:
      return EXIT.failed;
  }
}

/** A failure the user caused or can fix (bad input, missing configuration): exit 2 with its message. */
export class UsageError extends Error {
  override name = 'UsageError';
}
