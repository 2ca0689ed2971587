/** Typed operating failures of the store. Each has its own `name`; messages say what was wrong. */

export class StoreError extends Error {
  override name = 'StoreError';
}

/** The file exists but is not a Loom database (nothing was written to it). */
export class ForeignDatabaseError extends StoreError {
  override name = 'ForeignDatabaseError';
  constructor(readonly path: string, detail: string) {
    super(`${path} is not a Loom database (${detail}); refusing to open it, nothing was written`);
  }
}

/** The database was written by a newer Loom whose schema this build does not know. */
export class NewerSchemaError extends StoreError {
  override name = 'NewerSchemaError';
  constructor(readonly path: string, readonly found: number, readonly known: number) {
    super(`${path} has schema version ${found}, newer than this Loom knows (${known}); upgrade Loom to open it`);
  }
}

/** An owner event was appended with an epoch that is not the session's current owner epoch. */
export class StaleOwnerError extends StoreError {
  override name = 'StaleOwnerError';
  constructor(readonly sessionId: string, readonly epoch: number, readonly currentEpoch: number | null) {
    super(
      `stale owner for session ${sessionId}: append carried epoch ${epoch}, current owner epoch is ${currentEpoch ?? 'none (no live owner)'}`,
    );
  }
}

/** Event data failed its type's schema. `field` is the dotted path of the first bad field. */
export class InvalidEventError extends StoreError {
  override name = 'InvalidEventError';
  constructor(readonly type: string, readonly field: string, detail: string) {
    super(`invalid ${type} event: field "${field}" ${detail}`);
  }
}

/** An event type (or a version of it) that this build does not know. */
export class UnknownEventTypeError extends StoreError {
  override name = 'UnknownEventTypeError';
  constructor(readonly type: string, readonly version?: number) {
    super(
      version === undefined
        ? `unknown event type "${type}"`
        : `unknown version ${version} of event type "${type}"`,
    );
  }
}

/** An inbox transition that the lifecycle table does not allow. */
export class IllegalInboxTransitionError extends StoreError {
  override name = 'IllegalInboxTransitionError';
  constructor(readonly inputId: string, readonly from: string | null, readonly to: string) {
    super(`input ${inputId} cannot go from ${from ?? 'nowhere (unknown input)'} to ${to}`);
  }
}

/** A request or event names a session that does not exist. */
export class SessionNotFoundError extends StoreError {
  override name = 'SessionNotFoundError';
  constructor(readonly sessionId: string) {
    super(`session ${sessionId} does not exist`);
  }
}

/** A payload, batch or queue went over its named bound. */
export class LimitExceededError extends StoreError {
  override name = 'LimitExceededError';
  constructor(readonly limit: string, detail: string) {
    super(`${detail} (limit ${limit})`);
  }
}

/** A lease operation lost its compare-and-swap. */
export class LeaseConflictError extends StoreError {
  override name = 'LeaseConflictError';
  constructor(readonly sessionId: string, detail: string) {
    super(`lease for session ${sessionId}: ${detail}`);
  }
}
