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
  /** The tool is idempotent (read-only: read, list, glob, grep). */
  idempotent: boolean;
  /** The configured default (`permission.default`) for non-idempotent calls no rule matches; `ask` when absent. */
  action?: PermissionAction;
  /** The session's directory: an absolute path argument inside it is matched relative to it. */
  location?: string;
}

/** Input keys that hold a call's primary argument, in the order they are looked for. */
const PRIMARY_KEYS = ['path', 'file_path', 'command', 'url', 'pattern', 'query'] as const;

/** The primary argument of a call. Path arguments are matched segment-wise; all others (commands, URLs) let `*` cross `/`. */
export interface PrimaryArgument {
  key: (typeof PRIMARY_KEYS)[number];
  value: string;
}

/**
 * Decides a tool call. The *last* rule that matches wins, so later (project) rules override earlier
 * (global) ones. When no rule matches: idempotent tools are allowed; others get `defaults.action`,
 * or `ask`. So `permission.default` never blocks reads by itself; deny them with an explicit rule
 * (`{ tool: '*', action: 'deny' }` or `{ tool: 'read', pattern: '**\/.env', action: 'deny' }`).
 *
 * Gotcha: a pattern on a shell command is a convenience, not a sandbox. `git *` also matches
 * `git status; rm -rf ~`, and a deny on `rm *` misses `sh -c 'rm …'`.
 */
export function evaluatePermission(
  rules: readonly PermissionRule[],
  toolName: string,
  input: unknown,
  defaults: PermissionDefaults,
): PermissionAction {
  const rule = matchingRule(rules, toolName, input, defaults);
  if (rule !== undefined) return rule.action;
  return defaults.idempotent ? 'allow' : (defaults.action ?? 'ask');
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
