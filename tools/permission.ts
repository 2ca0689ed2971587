/**
 * Permission rules: whether a tool call may run (`allow`), is refused (`deny`), or waits for the
 * user (`ask`). Pure functions; asking and remembering answers belong to the session.
 */
import path from 'node:path';
import { z } from 'zod';

export type PermissionAction = 'allow' | 'deny' | 'ask';

export interface PermissionRule {
  /** A tool name, `*` for every tool, or a glob over names such as `mcp_*`. */
  tool: string;
  /**
   * A glob over the call's primary argument (see `primaryArgumentOf`); without it the rule matches
   * every call of the tool. For paths `*` and `?` stay within one segment, `**` crosses segments
   * (`**\/x` also matches `x` at the top); for other arguments (commands, URLs) `*` matches
   * anything. `\` escapes the next character.
   */
  pattern?: string;
  action: PermissionAction;
}

export const permissionActionSchema = z.enum(['allow', 'deny', 'ask']);

export const permissionRuleSchema = z.strictObject({
  tool: z.string().min(1),
  pattern: z.string().min(1).optional(),
  action: permissionActionSchema,
});

export interface PermissionDefaults {
  /** `permission.default` from config: the action for tools without a built-in default (plugin, MCP and test tools); `ask` when absent. */
  action?: PermissionAction;
  /** The session's directory: an absolute path argument inside it is matched relative to it. */
  location?: string;
}

/**
 * The built-in defaults, one rule per tool, applied *before* the config's rules (so any config
 * rule overrides them under "last match wins"):
 *
 * | tool | default | why |
 * |---|---|---|
 * | read, list, glob, grep | allow | read-only, confined to the session's directory |
 * | task | allow | a subagent's own tool calls are checked in its own session |
 * | write, edit | ask | they change files |
 * | bash | ask | it runs anything and is not confined by path rules |
 * | webfetch | ask | it reaches the network |
 * | any other tool (plugins, MCP) | `permission.default`, else ask | unknown effects |
 *
 * A tool's `idempotent` flag is about recovery (safe to run again), not about safety, so it plays
 * no part here.
 */
export const BUILTIN_PERMISSION_DEFAULTS: Readonly<Record<string, PermissionAction>> = {
  read: 'allow',
  list: 'allow',
  glob: 'allow',
  grep: 'allow',
  task: 'allow',
  write: 'ask',
  edit: 'ask',
  bash: 'ask',
  webfetch: 'ask',
};

/** The default rule set: a catch-all with `permission.default` (or ask), then the built-in defaults. */
export function defaultPermissionRules(defaultAction: PermissionAction = 'ask'): PermissionRule[] {
  return [
    { tool: '*', action: defaultAction },
    ...Object.entries(BUILTIN_PERMISSION_DEFAULTS).map(([tool, action]) => ({ tool, action })),
  ];
}

/** Input keys that hold a call's primary argument, in the order they are looked for. */
const PRIMARY_KEYS = ['path', 'file_path', 'command', 'url', 'pattern', 'query'] as const;

/** The primary argument of a call. Path arguments are matched segment-wise; all others (commands, URLs) let `*` cross `/`. */
export interface PrimaryArgument {
  key: (typeof PRIMARY_KEYS)[number];
  value: string;
}

/**
 * Decides a tool call against the default rule set (`defaultPermissionRules`) followed by the
 * config's rules. The *last* rule that matches wins, so config rules override the defaults and
 * later (project) rules override earlier (global) ones.
 *
 * Gotcha: a pattern on a shell command is a convenience, not a sandbox. `git *` also matches
 * `git status; rm -rf ~`, and a deny on `rm *` misses `sh -c 'rm …'`.
 */
export function evaluatePermission(
  rules: readonly PermissionRule[],
  toolName: string,
  input: unknown,
  defaults: PermissionDefaults = {},
): PermissionAction {
  const rule = matchingRule(rules, toolName, input, defaults);
  if (rule !== undefined) return rule.action;
  return matchingRule(defaultPermissionRules(defaults.action), toolName, input, defaults)!.action;
}

/** The last rule matching the call, or undefined; for explaining a decision. */
export function matchingRule(
  rules: readonly PermissionRule[],
  toolName: string,
  input: unknown,
  defaults: Pick<PermissionDefaults, 'location'> = {},
): PermissionRule | undefined {
  const argument = primaryArgumentOf(input);
  const subject = argument === undefined ? undefined : subjectOf(argument, defaults.location);
  for (let i = rules.length - 1; i >= 0; i--) {
    const rule = rules[i];
    if (!globMatch(rule.tool, toolName, true)) continue;
    if (rule.pattern === undefined) return rule;
    if (argument !== undefined && subject !== undefined && globMatch(rule.pattern, subject, !isPathKey(argument.key))) return rule;
  }
  return undefined;
}

/** The first string field among `path`, `file_path`, `command`, `url`, `pattern`, `query`. */
export function primaryArgumentOf(input: unknown): PrimaryArgument | undefined {
  if (input === null || typeof input !== 'object') return undefined;
  const record = input as Record<string, unknown>;
  for (const key of PRIMARY_KEYS) {
    const value = record[key];
    if (typeof value === 'string') return { key, value };
  }
  return undefined;
}

function isPathKey(key: PrimaryArgument['key']): boolean {
  return key === 'path' || key === 'file_path';
}

/** Paths are normalised (`./a/../b` → `b`) and made relative to the location when inside it. */
function subjectOf(argument: PrimaryArgument, location: string | undefined): string {
  if (!isPathKey(argument.key)) return argument.value;
  let value = argument.value;
  if (location !== undefined && path.isAbsolute(value)) {
    const rel = path.relative(location, value);
    if (rel === '') value = '.';
    else if (!rel.startsWith('..') && !path.isAbsolute(rel)) value = rel;
  }
  return path.posix.normalize(value.split(path.sep).join('/')).replace(/(.)\/$/, '$1');
}

// ---- asks and grants ------------------------------------------------------------------------

/** A grant made by an `always` reply: every later call of `tool` that `pattern` covers is allowed (null: every call). */
export interface PermissionGrant {
  tool: string;
  pattern: string | null;
}

/**
 * The scope an `always` reply to this call would grant, shown with the ask so the user knows what
 * they allow. Undefined means every call of the tool.
 * - paths (`path`, `file_path`): the files of the same directory, `src/*` for `src/a.ts`, `*` at the
 *   top (one segment: not subdirectories);
 * - commands: the program and its subcommand-like second word, `git status *` for
 *   `git status --short` (a grant also covers the bare `git status`); a command with shell
 *   syntax that chains, substitutes or redirects (see SHELL_CONTROL) is scoped to exactly itself, and a
 *   prefix grant never covers such a command;
 * - URLs: the origin, `https://example.com/*`;
 * - anything else (search patterns, no primary argument): the whole tool.
 */
export function askScope(input: unknown, location?: string): string | undefined {
  const argument = primaryArgumentOf(input);
  if (argument === undefined) return undefined;
  if (isPathKey(argument.key)) {
    const subject = subjectOf(argument, location);
    if (isOutside(subject)) return escapeGlob(subject);
    const dir = path.posix.dirname(subject);
    return dir === '.' ? '*' : `${escapeGlob(dir)}/*`;
  }
  if (argument.key === 'command') {
    const command = argument.value.trim();
    if (SHELL_CONTROL.test(command)) return escapeGlob(command);
    const [program, second] = command.split(/\s+/);
    const prefix = second !== undefined && SUBCOMMAND.test(second) ? `${program} ${second}` : program!;
    return `${escapeGlob(prefix)} *`;
  }
  if (argument.key === 'url') {
    const url = parseUrl(argument.value);
    return url ? `${escapeGlob(url.origin)}/*` : escapeGlob(argument.value);
  }
  return undefined;
}

/** Whether a grant covers a call (see `askScope` for what patterns look like). */
export function grantCovers(grant: PermissionGrant, toolName: string, input: unknown, location?: string): boolean {
  if (grant.tool !== toolName) return false;
  if (grant.pattern === null || grant.pattern === '') return true;
  const argument = primaryArgumentOf(input);
  if (argument === undefined) return false;
  if (isPathKey(argument.key)) {
    const subject = subjectOf(argument, location);
    return isOutside(subject) ? grant.pattern === escapeGlob(subject) : globMatch(grant.pattern, subject);
  }
  if (argument.key === 'command') {
    const command = argument.value.trim();
    // A prefix grant never covers a compound command: `git status; rm -rf ~` is not `git status`.
    if (SHELL_CONTROL.test(command)) return grant.pattern === escapeGlob(command);
    return globMatch(grant.pattern, command, true) || globMatch(grant.pattern, `${command} `, true);
  }
  if (argument.key === 'url') {
    const url = parseUrl(argument.value);
    return url !== undefined && globMatch(grant.pattern, url.href, true);
  }
  return globMatch(grant.pattern, argument.value, true);
}

/** What is asked, in at most `maxChars` characters (the call's JSON input, cut with an ellipsis). */
export function summarizeInput(input: unknown, maxChars: number): string {
  let text: string;
  try {
    text = typeof input === 'string' ? input : (JSON.stringify(input) ?? String(input));
  } catch {
    text = String(input);
  }
  return text.length > maxChars ? `${text.slice(0, Math.max(0, maxChars - 1))}…` : text;
}

/** Shell syntax that chains, substitutes or redirects: a command with any of it is granted only exactly. */
const SHELL_CONTROL = /[;&|`$<>(){}\n\r\\]/;
/** A second word that looks like a subcommand (`git status`, `npm test`), not a path or flag. */
const SUBCOMMAND = /^[a-z][a-z0-9-]*$/;

function isOutside(subject: string): boolean {
  return subject === '..' || subject.startsWith('../') || path.posix.isAbsolute(subject);
}

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/** Escapes the characters globMatch treats specially, so a literal matches only itself. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?\\]/g, '\\$&');
}

/**
 * Whole-string glob match. `crossSlash` makes `*` and `?` match `/` too (commands, tool names).
 * Supports `*`, `**`, `?` and `\` escapes; no character classes or braces.
 */
export function globMatch(pattern: string, text: string, crossSlash = false): boolean {
  return globToRegExp(pattern, crossSlash).test(text);
}

function globToRegExp(pattern: string, crossSlash: boolean): RegExp {
  const star = crossSlash ? '.*' : '[^/]*';
  const one = crossSlash ? '.' : '[^/]';
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\' && i + 1 < pattern.length) source += escapeRegExp(pattern[++i]);
    else if (c === '*' && pattern[i + 1] === '*') {
      const slashAfter = pattern[i + 2] === '/';
      source += slashAfter ? '(?:.*/)?' : '.*';
      i += slashAfter ? 2 : 1;
    } else if (c === '/' && pattern.slice(i + 1) === '**') {
      source += '(?:/.*)?'; // `dir/**` also matches `dir` itself
      i += 2;
    } else if (c === '*') source += star;
    else if (c === '?') source += one;
    else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`, 's');
}

function escapeRegExp(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
