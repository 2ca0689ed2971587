import { describe, expect, it } from 'vitest';
import {
  evaluatePermission,
  globMatch,
  matchingRule,
  permissionRuleSchema,
  primaryArgumentOf,
  type PermissionRule,
} from '../../tools/permission.js';

const readOnly = { idempotent: true };
const sideEffect = { idempotent: false };

describe('evaluatePermission', () => {
  it('evaluatePermission - allows an idempotent tool when no rule matches', () => {
    expect(evaluatePermission([], 'read', { path: 'a.txt' }, readOnly)).toBe('allow');
  });

  it('evaluatePermission - asks for a non-idempotent tool when no rule matches', () => {
    expect(evaluatePermission([], 'bash', { command: 'ls' }, sideEffect)).toBe('ask');
  });

  it('evaluatePermission - applies the configured default to a non-idempotent tool', () => {
    expect(evaluatePermission([], 'bash', { command: 'ls' }, { idempotent: false, action: 'deny' })).toBe('deny');
  });

  it('evaluatePermission - does not let the configured default block an idempotent tool', () => {
    expect(evaluatePermission([], 'read', { path: 'a' }, { idempotent: true, action: 'deny' })).toBe('allow');
  });

  it('evaluatePermission - lets the last matching rule win', () => {
    const rules: PermissionRule[] = [
      { tool: 'bash', action: 'deny' },
      { tool: 'bash', pattern: 'git *', action: 'allow' },
    ];
    expect(evaluatePermission(rules, 'bash', { command: 'git status' }, sideEffect)).toBe('allow');
    expect(evaluatePermission(rules, 'bash', { command: 'rm -rf x' }, sideEffect)).toBe('deny');
  });

  it('evaluatePermission - lets a later rule override an earlier one for the same call', () => {
    const rules: PermissionRule[] = [
      { tool: 'bash', pattern: 'git *', action: 'allow' },
      { tool: 'bash', action: 'ask' },
    ];
    expect(evaluatePermission(rules, 'bash', { command: 'git status' }, sideEffect)).toBe('ask');
  });

  it('evaluatePermission - matches every tool with "*"', () => {
    expect(evaluatePermission([{ tool: '*', action: 'deny' }], 'read', { path: 'a' }, readOnly)).toBe('deny');
  });

  it('evaluatePermission - matches tool names by glob', () => {
    const rules: PermissionRule[] = [{ tool: 'mcp_*', action: 'allow' }];
    expect(evaluatePermission(rules, 'mcp_github_search', {}, sideEffect)).toBe('allow');
    expect(evaluatePermission(rules, 'bash', {}, sideEffect)).toBe('ask');
  });

  it('evaluatePermission - denies a read of a matching path', () => {
    const rules: PermissionRule[] = [{ tool: 'read', pattern: '**/.env', action: 'deny' }];
    expect(evaluatePermission(rules, 'read', { path: '.env' }, readOnly)).toBe('deny');
    expect(evaluatePermission(rules, 'read', { path: 'app/config/.env' }, readOnly)).toBe('deny');
    expect(evaluatePermission(rules, 'read', { path: 'app/.envrc' }, readOnly)).toBe('allow');
  });

  it('evaluatePermission - matches a path rule after normalising "./" and ".."', () => {
    const rules: PermissionRule[] = [{ tool: 'write', pattern: 'secrets/**', action: 'deny' }];
    expect(evaluatePermission(rules, 'write', { path: './secrets/key' }, sideEffect)).toBe('deny');
    expect(evaluatePermission(rules, 'write', { path: 'src/../secrets/key' }, sideEffect)).toBe('deny');
  });

  it('evaluatePermission - matches an absolute path relative to the location', () => {
    const rules: PermissionRule[] = [{ tool: 'write', pattern: 'secrets/**', action: 'deny' }];
    const defaults = { idempotent: false, action: 'allow' as const, location: '/work/repo' };
    expect(evaluatePermission(rules, 'write', { path: '/work/repo/secrets/key' }, defaults)).toBe('deny');
    expect(evaluatePermission(rules, 'write', { path: '/work/repo/src/a.ts' }, defaults)).toBe('allow');
  });

  it('evaluatePermission - keeps "*" within one path segment', () => {
    const rules: PermissionRule[] = [{ tool: 'write', pattern: 'src/*.ts', action: 'allow' }];
    expect(evaluatePermission(rules, 'write', { path: 'src/a.ts' }, sideEffect)).toBe('allow');
    expect(evaluatePermission(rules, 'write', { path: 'src/deep/a.ts' }, sideEffect)).toBe('ask');
  });

  it('evaluatePermission - lets "*" cross "/" in a command', () => {
    const rules: PermissionRule[] = [{ tool: 'bash', pattern: 'git add *', action: 'allow' }];
    expect(evaluatePermission(rules, 'bash', { command: 'git add src/a.ts' }, sideEffect)).toBe('allow');
  });

  it('evaluatePermission - does not match a patterned rule when the call has no primary argument', () => {
    const rules: PermissionRule[] = [{ tool: 'todo', pattern: '**', action: 'deny' }];
    expect(evaluatePermission(rules, 'todo', { items: [] }, sideEffect)).toBe('ask');
  });

  it('evaluatePermission - does not match a rule for another tool', () => {
    expect(evaluatePermission([{ tool: 'bash', action: 'deny' }], 'read', { path: 'a' }, readOnly)).toBe('allow');
  });
});

describe('matchingRule', () => {
  it('matchingRule - returns the deciding rule', () => {
    const rules: PermissionRule[] = [
      { tool: 'bash', action: 'deny' },
      { tool: 'bash', pattern: 'npm test', action: 'allow' },
    ];
    expect(matchingRule(rules, 'bash', { command: 'npm test' })).toBe(rules[1]);
    expect(matchingRule(rules, 'read', { path: 'a' })).toBeUndefined();
  });
});

describe('primaryArgumentOf', () => {
  it('primaryArgumentOf - prefers path over other keys', () => {
    expect(primaryArgumentOf({ pattern: 'x', path: 'src' })).toEqual({ key: 'path', value: 'src' });
  });

  it('primaryArgumentOf - finds a command', () => {
    expect(primaryArgumentOf({ command: 'ls', timeout: 3 })).toEqual({ key: 'command', value: 'ls' });
  });

  it('primaryArgumentOf - gives nothing for input that is not an object', () => {
    expect(primaryArgumentOf('ls')).toBeUndefined();
  });
});

describe('globMatch', () => {
  it('globMatch - "**/" also matches zero directories', () => {
    expect(globMatch('**/*.ts', 'a.ts')).toBe(true);
    expect(globMatch('**/*.ts', 'a/b/c.ts')).toBe(true);
  });

  it('globMatch - "dir/**" matches the directory and everything under it', () => {
    expect(globMatch('dir/**', 'dir')).toBe(true);
    expect(globMatch('dir/**', 'dir/a/b')).toBe(true);
    expect(globMatch('dir/**', 'dirx')).toBe(false);
  });

  it('globMatch - "?" matches one character but not "/"', () => {
    expect(globMatch('a?c', 'abc')).toBe(true);
    expect(globMatch('a?c', 'a/c')).toBe(false);
  });

  it('globMatch - treats regular-expression characters literally', () => {
    expect(globMatch('a.(b)+', 'a.(b)+')).toBe(true);
    expect(globMatch('a.b', 'axb')).toBe(false);
  });

  it('globMatch - escapes a star with a backslash', () => {
    expect(globMatch('echo \\*', 'echo *', true)).toBe(true);
    expect(globMatch('echo \\*', 'echo hi', true)).toBe(false);
  });

  it('globMatch - matches the whole text, not a part', () => {
    expect(globMatch('git', 'git status', true)).toBe(false);
  });

  it('globMatch - lets "*" in a command span lines', () => {
    expect(globMatch('echo *', 'echo a\nrm -rf /', true)).toBe(true);
  });
});

describe('permissionRuleSchema', () => {
  it('permissionRuleSchema - refuses an unknown action', () => {
    expect(permissionRuleSchema.safeParse({ tool: 'bash', action: 'maybe' }).success).toBe(false);
  });

  it('permissionRuleSchema - refuses an unknown key', () => {
    expect(permissionRuleSchema.safeParse({ tool: 'bash', action: 'allow', when: 'always' }).success).toBe(false);
  });
});
