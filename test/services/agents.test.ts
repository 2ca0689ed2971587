import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  agentProfiles,
  buildSystemPrompt,
  permissionRulesFor,
  resolveAgent,
  toolEnabled,
  UnknownAgentError,
  visibleTools,
} from '../../services/agents.js';
import { evaluatePermission } from '../../tools/permission.js';
import { tempDir } from '../helpers.js';

const specs = ['read', 'write', 'edit', 'bash', 'list', 'task'].map((name) => ({ name }));

describe('agent profiles', () => {
  it('build (the default) offers every tool; plan hides write, edit and bash and denies them whatever the config allows', () => {
    const build = resolveAgent({ agents: {} }, undefined);
    expect(build.name).toBe('build');
    expect(visibleTools(build, specs).map((s) => s.name)).toEqual(['read', 'write', 'edit', 'bash', 'list', 'task']);
    const plan = resolveAgent({ agents: {} }, 'plan');
    expect(visibleTools(plan, specs).map((s) => s.name)).toEqual(['read', 'list', 'task']);
    const allowAll = [{ tool: '*', action: 'allow' as const }];
    for (const tool of ['write', 'edit', 'bash']) {
      expect(toolEnabled(plan, tool)).toBe(false);
      expect(evaluatePermission(permissionRulesFor(plan, allowAll), tool, { path: 'a' })).toBe('deny');
    }
    expect(evaluatePermission(permissionRulesFor(plan, allowAll), 'read', { path: 'a' })).toBe('allow');
  });

  it('config adds profiles and changes built-in ones (tools merged, rules appended after the built-in ones)', () => {
    const profiles = agentProfiles({
      agents: {
        review: { description: 'reviews', model: 'openai/gpt-4o', prompt: 'Review carefully.', tools: { webfetch: false } },
        plan: { tools: { bash: true }, permission: [{ tool: 'bash', action: 'ask' }] },
      },
    });
    expect([...profiles.keys()]).toEqual(['build', 'plan', 'review']);
    const review = profiles.get('review')!;
    expect(review).toMatchObject({ description: 'reviews', model: 'openai/gpt-4o', prompt: 'Review carefully.', builtin: false });
    expect(toolEnabled(review, 'webfetch')).toBe(false);
    const plan = profiles.get('plan')!;
    expect(toolEnabled(plan, 'bash')).toBe(true);
    expect(toolEnabled(plan, 'write')).toBe(false);
    expect(evaluatePermission(permissionRulesFor(plan, []), 'bash', { command: 'ls' })).toBe('ask');
  });

  it('an unknown name is refused, naming it and listing the defined ones', () => {
    let error: unknown;
    try {
      resolveAgent({ agents: { review: {} } }, 'nope');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnknownAgentError);
    expect((error as Error).message).toBe('unknown agent "nope": the agents defined are build, plan, review (add one under "agents" in config.jsonc)');
  });

  it('buildSystemPrompt - the profile prompt, the environment with the injected date, and the instruction files with their paths', async () => {
    const home = tempDir();
    const repo = tempDir();
    mkdirSync(join(repo, '.git'));
    writeFileSync(join(repo, 'CLAUDE.md'), 'Prefer small commits.\n');
    const now = new Date('2031-02-03T04:05:06Z');
    const prompt = await buildSystemPrompt({ location: repo, home, profile: resolveAgent({ agents: {} }, 'plan'), model: 'openai/x', now, platform: 'testos' });
    expect(prompt).toContain('You are in plan mode');
    expect(prompt).toContain('Tools not available to this profile: write, edit, bash.');
    expect(prompt).toContain(`- Working directory: ${repo}`);
    expect(prompt).toContain('- Platform: testos');
    expect(prompt).toContain('- Date: 2031-02-03');
    expect(prompt).toContain('- Model: openai/x');
    expect(prompt).toContain(`<instructions path="${join(repo, 'CLAUDE.md')}" scope="project">\nPrefer small commits.\n</instructions>`);
  });
});
