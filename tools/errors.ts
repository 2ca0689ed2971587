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

// ---- subagents (the task tool) ----

/** A tool needs a runtime service (jobs, subagents) that this process does not offer. */
export class ToolServiceUnavailableError extends ToolError {
  override name = 'ToolServiceUnavailableError';
  constructor(
    readonly tool: string,
    readonly service: string,
  ) {
    super(`tool "${tool}" needs the ${service} service, which is not available here (no session runtime offers it)`);
  }
}

/** A `task` call from a session already SUBAGENT_DEPTH_MAX subagent levels deep. */
export class SubagentDepthError extends ToolError {
  override name = 'SubagentDepthError';
  constructor(
    readonly sessionId: string,
    readonly depth: number,
    readonly max: number,
  ) {
    super(`subagent depth limit reached: session ${sessionId} is a subagent ${depth} level(s) deep and at most ${max} are allowed; do the work in this session instead`);
  }
}

/** A subagent could not be started: its parent session is unknown, or the call already has a child. */
export class SubagentStartError extends ToolError {
  override name = 'SubagentStartError';
  constructor(
    readonly sessionId: string,
    reason: string,
  ) {
    super(`cannot start a subagent session ${sessionId}: ${reason}`);
  }
}

/** The subagent's activity settled other than `completed` (failed, cancelled, turn_limit…) or not at all. */
export class SubagentFailedError extends ToolError {
  override name = 'SubagentFailedError';
  constructor(
    readonly sessionId: string,
    readonly status: string,
    reason?: string,
  ) {
    super(
      `subagent session ${sessionId} ended ${status}${reason ? ` (${reason})` : ''}; ` +
        `its work so far is in that session (loom session show ${sessionId})`,
    );
  }
}

// ---- file tools (write, edit, list, glob, grep) ----------------------------------------------

/** The path exists but is not a directory, and the tool walks directories (list, glob). */
export class NotADirectoryError extends ToolError {
  override name = 'NotADirectoryError';
  constructor(readonly path: string) {
    super(`"${path}" is not a directory`);
  }
}

/** Content given to `write` is larger than the tool writes. */
export class ContentTooLargeError extends ToolError {
  override name = 'ContentTooLargeError';
  constructor(
    readonly tool: string,
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`content for tool "${tool}" is ${bytes} bytes; the limit is ${maxBytes} bytes`);
  }
}

/** `edit`: old_string does not occur in the file. */
export class EditNoMatchError extends ToolError {
  override name = 'EditNoMatchError';
  constructor(readonly path: string) {
    super(`old_string was not found in "${path}"; read the file and copy the text exactly, whitespace and line breaks included`);
  }
}

/** `edit`: old_string occurs more than once and replace_all was not asked. */
export class EditAmbiguousError extends ToolError {
  override name = 'EditAmbiguousError';
  constructor(
    readonly path: string,
    readonly matches: number,
  ) {
    super(
      `old_string occurs ${matches} times in "${path}"; include more surrounding lines to make it unique, ` +
        'or set replace_all to replace every occurrence',
    );
  }
}

/** `edit`: old_string and new_string are the same, so the edit would change nothing. */
export class EditNoChangeError extends ToolError {
  override name = 'EditNoChangeError';
  constructor(readonly path: string) {
    super(`old_string and new_string are identical; the edit would not change "${path}"`);
  }
}

/** `edit`: the file is not valid UTF-8, so writing it back as text would corrupt it. */
export class NotUtf8Error extends ToolError {
  override name = 'NotUtf8Error';
  constructor(readonly path: string) {
    super(`file "${path}" is not valid UTF-8; it was not edited (writing it back as text would alter it)`);
  }
}

/** A glob pattern the tool refuses (empty, absolute, climbing out with `..`). */
export class InvalidGlobError extends ToolError {
  override name = 'InvalidGlobError';
  constructor(
    readonly pattern: string,
    reason: string,
  ) {
    super(`invalid glob pattern ${JSON.stringify(pattern)}: ${reason}`);
  }
}

/** `grep` needs ripgrep and there is no `rg` to run. */
export class RipgrepNotInstalledError extends ToolError {
  override name = 'RipgrepNotInstalledError';
  constructor(readonly command: string) {
    super(
      `ripgrep is not installed (no "${command}" command found); install the Debian package "ripgrep" ` +
        '(apt-get install ripgrep, or run sh scripts/setup.sh)',
    );
  }
}

/** ripgrep refused the pattern (a regex syntax error, for instance). */
export class GrepPatternError extends ToolError {
  override name = 'GrepPatternError';
  constructor(
    readonly pattern: string,
    detail: string,
  ) {
    super(`grep pattern ${JSON.stringify(pattern)} was refused by ripgrep: ${detail}`);
  }
}

/** ripgrep failed for another reason (exit status 2 without output, a crash). */
export class GrepFailedError extends ToolError {
  override name = 'GrepFailedError';
  constructor(detail: string) {
    super(`ripgrep failed: ${detail}`);
  }
}

// ---- bash and background jobs ----

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
