/** What tools and the session runtime share about subagents (the `task` tool's child sessions). */

/**
 * The child session of a `task` call. Derived from the call's id, so one call can never start two
 * children (a second start is refused) and a call that recovery settles `interrupted` can still
 * name the session its subagent worked in.
 */
export function subagentSessionId(callId: string): string {
  return `ses_${callId}`;
}
