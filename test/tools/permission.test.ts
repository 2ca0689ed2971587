import { describe, expect, it } from 'vitest';
import {
  askScope,
  BUILTIN_PERMISSION_DEFAULTS,
  evaluatePermission,
  globMatch,
  grantCovers,
  matchingRule,
  permissionRuleSchema,
  primaryArgumentOf,
  summarizeInput,
  type PermissionRule,
} from '../../tools/permission.js';

const readOnly = {};
const sideEffect = {};

describe('evaluatePermission - defaults', () => {
  it.each([
    ['read', { path: 'a.txt' }, 'allow'],
    ['list', { path: '.' }, 'allow'],
    ['glob', { pattern: '**/*.ts' }, 'allow'],
    ['grep', { pattern: 'TODO' }, 'allow'],
    ['task', { prompt: 'look around' }, 'allow'],
    ['write', { path: 'a.txt', content: 'x' }, 'ask'],
    ['edit', { path: 'a.txt', old: 'x', new: 'y' }, 'ask'],
    ['bash', { command: 'ls' }, 'ask'],
    ['webfetch', { url: 'https://example.com/' }, 'ask'],
    ['mcp_github_search', { query: 'x' }, 'ask'],
  ] as const)('evaluatePermission - with no config rule, %s is %s by default', (tool, input, expected) => {
    expect(evaluatePermission([], tool, input)).toBe(expected);
  });

  it('evaluatePermission - every built-in default is documented in the table', () => {
    expect(Object.keys(BUILTIN_PERMISSION_DEFAULTS).sort()).toEqual(['bash', 'edit', 'glob', 'grep', 'list', 'read', 'task', 'webfetch', 'write']);
  });

  it('evaluatePermission - applies permission.default to tools without a built-in default', () => {
    expect(evaluatePermission([], 'probe_append', {}, { action: 'allow' })).toBe('allow');
    expect(evaluatePermission([], 'mcp_x', {}, { action: 'deny' })).toBe('deny');
  });

  it('evaluatePermission - does not let permission.default change a built-in default', () => {
    expect(evaluatePermission([], 'read', { path: 'a' }, { action: 'deny' })).toBe('allow');
    expect(evaluatePermission([], 'bash', { command: 'ls' }, { action: 'allow' })).toBe('ask');
  });

  it('evaluatePermission - a config rule overrides a built-in default (last match wins)', () => {
    expect(evaluatePermission([{ tool: 'read', action: 'ask' }], 'read', { path: 'a' })).toBe('ask');
    expect(evaluatePermission([{ tool: 'bash', pattern: 'npm test', action: 'allow' }], 'bash', { command: 'npm test' })).toBe('allow');
    expect(evaluatePermission([{ tool: '*', action: 'allow' }], 'write', { path: 'a' })).toBe('allow');
  });
});

describe('evaluatePermission', () => {

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
    const defaults = { location: '/work/repo' };
    expect(evaluatePermission(rules, 'write', { path: '/work/repo/secrets/key' }, defaults)).toBe('deny');
    expect(evaluatePermission(rules, 'write', { path: '/work/repo/src/a.ts' }, defaults)).toBe('ask');
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

describe('askScope', () => {
  it('askScope - a path is scoped to the files of its directory', () => {
    expect(askScope({ path: 'src/lib/a.ts' })).toBe('src/lib/*');
    expect(askScope({ path: './notes.md' })).toBe('*');
    expect(askScope({ path: '/work/repo/src/a.ts' }, '/work/repo')).toBe('src/*');
  });

  it('askScope - a path outside the directory is scoped to exactly itself', () => {
    expect(askScope({ path: '../etc/passwd' })).toBe('../etc/passwd');
  });

  it('askScope - a command is scoped to its program and subcommand', () => {
    expect(askScope({ command: 'git status --short' })).toBe('git status *');
    expect(askScope({ command: 'ls -la' })).toBe('ls *');
    expect(askScope({ command: 'npm test' })).toBe('npm test *');
  });

  it('askScope - a compound command is scoped to exactly itself (wildcards escaped)', () => {
    expect(askScope({ command: 'ls; rm -rf *' })).toBe('ls; rm -rf \\*');
    expect(askScope({ command: 'cat a | sh' })).toBe('cat a | sh');
  });

  it('askScope - a URL is scoped to its origin', () => {
    expect(askScope({ url: 'https://example.com/a/b?c=1' })).toBe('https://example.com/*');
  });

  it('askScope - a call without a path, command or URL is scoped to the whole tool', () => {
    expect(askScope({ pattern: 'TODO' })).toBeUndefined();
    expect(askScope({ items: [] })).toBeUndefined();
  });
});

describe('grantCovers', () => {
  const grantFor = (tool: string, input: unknown) => ({ tool, pattern: askScope(input) ?? null });

  it('grantCovers - a path grant covers the files of the same directory, not subdirectories or other tools', () => {
    const g = grantFor('write', { path: 'src/a.ts' });
    expect(grantCovers(g, 'write', { path: 'src/b.ts' })).toBe(true);
    expect(grantCovers(g, 'write', { path: 'src/deep/b.ts' })).toBe(false);
    expect(grantCovers(g, 'write', { path: 'lib/a.ts' })).toBe(false);
    expect(grantCovers(g, 'edit', { path: 'src/a.ts' })).toBe(false);
  });

  it('grantCovers - a path grant never covers a path that leaves the directory', () => {
    const g = grantFor('write', { path: 'src/a.ts' });
    expect(grantCovers(g, 'write', { path: 'src/../../x' })).toBe(false);
  });

  it('grantCovers - a command grant covers the same program and subcommand, bare or with arguments', () => {
    const g = grantFor('bash', { command: 'git status --short' });
    expect(grantCovers(g, 'bash', { command: 'git status' })).toBe(true);
    expect(grantCovers(g, 'bash', { command: 'git status -v' })).toBe(true);
    expect(grantCovers(g, 'bash', { command: 'git push' })).toBe(false);
    expect(grantCovers(g, 'bash', { command: 'git statusx' })).toBe(false);
  });

  it('grantCovers - a command grant never covers a compound command', () => {
    const g = grantFor('bash', { command: 'git status' });
    expect(grantCovers(g, 'bash', { command: 'git status; rm -rf ~' })).toBe(false);
    expect(grantCovers(g, 'bash', { command: 'git status && curl x | sh' })).toBe(false);
    expect(grantCovers(g, 'bash', { command: 'git status $(rm -rf ~)' })).toBe(false);
  });

  it('grantCovers - an exact compound-command grant covers only that command', () => {
    const g = grantFor('bash', { command: 'make && make test' });
    expect(grantCovers(g, 'bash', { command: 'make && make test' })).toBe(true);
    expect(grantCovers(g, 'bash', { command: 'make && make install' })).toBe(false);
  });

  it('grantCovers - a URL grant covers its origin only', () => {
    const g = grantFor('webfetch', { url: 'https://example.com/docs' });
    expect(grantCovers(g, 'webfetch', { url: 'https://example.com/other?x=1' })).toBe(true);
    expect(grantCovers(g, 'webfetch', { url: 'https://example.com' })).toBe(true);
    expect(grantCovers(g, 'webfetch', { url: 'https://example.com.evil.org/' })).toBe(false);
    expect(grantCovers(g, 'webfetch', { url: 'https://example.com@evil.org/' })).toBe(false);
  });

  it('grantCovers - a grant without a pattern covers every call of its tool', () => {
    expect(grantCovers({ tool: 'todo', pattern: null }, 'todo', { items: [1] })).toBe(true);
    expect(grantCovers({ tool: 'todo', pattern: null }, 'other', {})).toBe(false);
  });
});

describe('summarizeInput', () => {
  it('summarizeInput - keeps short input whole and cuts long input with an ellipsis', () => {
    expect(summarizeInput({ command: 'ls' }, 100)).toBe('{"command":"ls"}');
    const long = summarizeInput({ content: 'x'.repeat(5_000) }, 50);
    expect(long).toHaveLength(50);
    expect(long.endsWith('…')).toBe(true);
  });
});
