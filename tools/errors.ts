/**
 * Operating failures of tools, one class per failure, each with its own `name`. They reach the
 * model (as the text of an `error` tool result) and the user, so every message names what failed:
 * the tool, the field or the path. A broken invariant is not one of these; it throws a plain Error.
 */

/** Base of every tool failure, so callers can tell an operating failure from a bug. */
export class ToolError extends Error {
  override name = 'ToolError';
}

/** One problem with a tool's input: where (a dotted field path, empty for the root) and what. */
export interface ToolInputIssue {
  path: string;
  message: string;
}

/** The model's arguments did not match the tool's schema. */
export class ToolInputError extends ToolError {
  override name = 'ToolInputError';
  constructor(
    readonly tool: string,
    readonly issues: readonly ToolInputIssue[],
    /** Issues not listed in `issues` (the list is bounded). */
    readonly omitted = 0,
  ) {
    super(formatInputIssues(tool, issues, omitted));
  }
}

function formatInputIssues(tool: string, issues: readonly ToolInputIssue[], omitted: number): string {
  const parts = issues.map((i) => `${i.path === '' ? 'input' : `"${i.path}"`}: ${i.message}`);
  const more = omitted > 0 ? `; and ${omitted} more` : '';
  return `invalid input for tool "${tool}": ${parts.join('; ')}${more}`;
}

/** A path resolved (lexically or through a symlink) outside the session's directory. */
export class PathOutsideLocationError extends ToolError {
  override name = 'PathOutsideLocationError';
  constructor(
    readonly path: string,
    reason = 'is outside the session directory',
  ) {
    super(`path "${path}" ${reason}`);
  }
}

/** A path that cannot name a file at all (empty, or containing a NUL byte). */
export class InvalidPathError extends ToolError {
  override name = 'InvalidPathError';
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`invalid path ${JSON.stringify(path)}: ${reason}`);
  }
}

/** No tool of that name is registered (the model hallucinated one, or a plugin was unloaded). */
export class ToolNotFoundError extends ToolError {
  override name = 'ToolNotFoundError';
  constructor(readonly tool: string) {
    super(`no tool named "${tool}"`);
  }
}

/** The tool ran longer than its `timeoutMs`. */
export class ToolTimeoutError extends ToolError {
  override name = 'ToolTimeoutError';
  constructor(
    readonly tool: string,
    readonly timeoutMs: number,
  ) {
    super(`tool "${tool}" timed out after ${timeoutMs} ms`);
  }
}

/** The call was cancelled from outside (the context's signal fired) before the tool finished. */
export class ToolCancelledError extends ToolError {
  override name = 'ToolCancelledError';
  constructor(readonly tool: string) {
    super(`tool "${tool}" was cancelled`);
  }
}

/** A tool was refused at registration: no timeout, a duplicate or malformed name, a bad schema. */
export class ToolRegistrationError extends ToolError {
  override name = 'ToolRegistrationError';
  constructor(
    readonly tool: string,
    reason: string,
  ) {
    super(`cannot register tool "${tool}": ${reason}`);
  }
}

/** The path (or one of its parent directories) does not exist. */
export class FileNotFoundError extends ToolError {
  override name = 'FileNotFoundError';
  constructor(
    readonly path: string,
    reason = 'does not exist',
  ) {
    super(`file "${path}" ${reason}`);
  }
}

/** The path exists but is not a regular file (a directory, a FIFO, a device…). */
export class NotAFileError extends ToolError {
  override name = 'NotAFileError';
  constructor(
    readonly path: string,
    readonly kind: string,
    hint = '',
  ) {
    super(`"${path}" is a ${kind}, not a file${hint === '' ? '' : `; ${hint}`}`);
  }
}

/** The file is bigger than the tool will read. */
export class FileTooLargeError extends ToolError {
  override name = 'FileTooLargeError';
  constructor(
    readonly path: string,
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`file "${path}" is ${bytes} bytes; the limit is ${maxBytes} bytes`);
  }
}

/** The file looks binary (a NUL byte near its start); text tools refuse it. */
export class BinaryFileError extends ToolError {
  override name = 'BinaryFileError';
  constructor(readonly path: string) {
    super(`file "${path}" looks binary (it contains a NUL byte); it was not read`);
  }
}

/** Any other operating-system refusal (EACCES, ELOOP from a symlink loop, EMFILE…), with its code. */
export class FileAccessError extends ToolError {
  override name = 'FileAccessError';
  constructor(
    readonly path: string,
    readonly code: string,
    detail: string,
  ) {
    super(`cannot open "${path}": ${detail} (${code})`);
  }
}

// ---- bash and background jobs ----

/** A tool needs a runtime service this process does not offer (background jobs, subagents). */
export class ServiceUnavailableError extends ToolError {
  override name = 'ServiceUnavailableError';
  constructor(
    readonly tool: string,
    readonly service: string,
  ) {
    super(`tool "${tool}" cannot use ${service}: this process runs no session runtime that offers them`);
  }
}

/** A command could not be started at all (no shell, the directory is gone, out of processes). */
export class CommandStartError extends ToolError {
  override name = 'CommandStartError';
  constructor(
    readonly tool: string,
    detail: string,
  ) {
    super(`tool "${tool}" could not start its command: ${detail}`);
  }
}

/** A session already runs as many background jobs as it may (JOBS_RUNNING_PER_SESSION_MAX). */
export class JobLimitError extends ToolError {
  override name = 'JobLimitError';
  constructor(
    readonly sessionId: string,
    readonly limit: number,
  ) {
    super(`session ${sessionId} already runs ${limit} background jobs (the limit); wait for one to finish or cancel one (loom jobs cancel JOB)`);
  }
}
