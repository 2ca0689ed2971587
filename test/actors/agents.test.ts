import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSystemPrompt } from '../../services/agents.js';
import type { AnyEnvelope } from '../../store/index.js';
import type { RecordedRequest } from '../fixtures/scripted-openai-server.js';
import { tempDir } from '../helpers.js';
import { createHarness } from './harness.js';

const of = <T extends AnyEnvelope['type']>(events: AnyEnvelope[], type: T) => events.filter((e) => e.type === type) as Extract<AnyEnvelope, { type: T }>[];
const toolNames = (r: RecordedRequest) => ((r.body as { tools?: { function: { name: string } }[] }).tools ?? []).map((t) => t.function.name);
const systemOf = (r: RecordedRequest) => (r.body as { messages: { role: string; content: string }[] }).messages.find((m) => m.role === 'system')?.content ?? '';
const allowAll = { permission: { default: 'allow' as const, rules: [{ tool: '*', action: 'allow' as const }] } };

describe('agents - profiles applied to a session', () => {
  it('plan cannot edit: write, edit and bash are not offered, and a write the model makes anyway is denied (the file is untouched), even with every tool allowed by config', async () => {
    const h = await createHarness({
      agent: 'plan',
      config: allowAll,
      script: [
        {
          toolCalls: [
            { name: 'write', arguments: { path: 'notes.md', content: 'overwritten' } },
            { name: 'bash', arguments: { command: 'touch made-by-bash' } },
          ],
        },
        { text: 'I could not write; here is the plan' },
      ],
    });
    writeFileSync(join(h.location, 'notes.md'), 'original\n');
    h.admit('steer', 'rewrite notes.md');
    await h.run();
    const request = h.server.requests[0]!;
    expect(toolNames(request)).toEqual(expect.arrayContaining(['read', 'list', 'glob', 'grep']));
    for (const hidden of ['write', 'edit', 'bash']) expect(toolNames(request)).not.toContain(hidden);
    const settled = of(h.events(), 'tool.settled');
    expect(settled.map((e) => e.data.status)).toEqual(['denied', 'denied']);
    expect(settled[0]!.data.output).toContain('the agent profile "plan" does not allow the write tool');
    expect(readFileSync(join(h.location, 'notes.md'), 'utf8')).toBe('original\n');
    expect(existsSync(join(h.location, 'made-by-bash'))).toBe(false);
    expect(of(h.events(), 'activity.opened')[0]!.data.agent).toBe('plan');
    expect(of(h.events(), 'activity.settled')[0]!.data.status).toBe('completed');
  });

  it('the profile is per activity: an input naming one runs its activity with it; the next input falls back to the session profile', async () => {
    const h = await createHarness({ config: allowAll, script: [{ text: 'planned' }, { text: 'built' }] });
    h.store.admitInput(h.sessionId, { mode: 'queue', text: 'plan it', agent: 'plan' });
    h.admit('queue', 'build it');
    await h.run();
    expect(of(h.events(), 'activity.opened').map((e) => e.data.agent)).toEqual(['plan', 'build']);
    expect(toolNames(h.server.requests[0]!)).not.toContain('write');
    expect(toolNames(h.server.requests[1]!)).toContain('write');
  });

  it('a custom profile from config sets the model, hides tools and adds permission rules (its rules win over the config\'s)', async () => {
    const h = await createHarness({
      agent: 'careful',
      config: {
        ...allowAll,
        agents: {
          careful: {
            description: 'no network, no shell',
            model: 'openai/careful-model',
            tools: { bash: false },
            permission: [{ tool: 'webfetch', action: 'deny' }],
          },
        },
      },
      script: [{ toolCalls: [{ name: 'webfetch', arguments: { url: 'http://127.0.0.1:9/x' } }] }, { text: 'ok' }],
    });
    h.admit('steer', 'fetch it');
    await h.run();
    const request = h.server.requests[0]!;
    expect((request.body as { model: string }).model).toBe('careful-model');
    expect(toolNames(request)).not.toContain('bash');
    expect(toolNames(request)).toContain('webfetch');
    expect(of(h.events(), 'attempt.dispatched')[0]!.data.model).toBe('openai/careful-model');
    expect(of(h.events(), 'activity.opened')[0]!.data).toMatchObject({ agent: 'careful', model: 'openai/careful-model' });
    const settled = of(h.events(), 'tool.settled')[0]!;
    expect(settled.data).toMatchObject({ status: 'denied' });
  });

  it('the system prompt is the profile\'s prompt, the environment (date from the store\'s clock) and the instruction files, built once per activity', async () => {
    const home = tempDir();
    const repo = tempDir();
    mkdirSync(join(repo, '.git'));
    writeFileSync(join(repo, 'AGENTS.md'), 'Always run the tests with npm test.\n');
    writeFileSync(join(home, 'AGENTS.md'), 'Answer in English.\n');
    let builds = 0;
    const h = await createHarness({
      agent: 'plan',
      home,
      systemPrompt: (request) => {
        builds++;
        return buildSystemPrompt({ ...request, location: repo, home });
      },
      script: [{ toolCalls: [{ name: 'list', arguments: {} }] }, { text: 'done' }],
    });
    h.admit('steer', 'look');
    await h.run();
    const system = systemOf(h.server.requests[0]!);
    expect(system).toContain('You are in plan mode: read-only.');
    expect(system).toContain(`Date: ${new Date(h.store.clock.now()).toISOString().slice(0, 10)}`);
    expect(system).toContain(`Repository root: ${repo}`);
    expect(system).toContain(`<instructions path="${join(repo, 'AGENTS.md')}" scope="project">\nAlways run the tests with npm test.`);
    expect(system).toContain(`<instructions path="${join(home, 'AGENTS.md')}" scope="global">\nAnswer in English.`);
    expect(system.indexOf('Answer in English')).toBeLessThan(system.indexOf('Always run the tests'));
    expect(systemOf(h.server.requests[1]!)).toBe(system);
    expect(builds).toBe(1);
  });

  it('an agent the config no longer defines fails its activity clearly, before anything is sent', async () => {
    const h = await createHarness({ agent: 'gone', script: [{ text: 'never' }] });
    h.admit('steer', 'hi');
    await h.run();
    const settled = of(h.events(), 'activity.settled')[0]!;
    expect(settled.data.status).toBe('failed');
    expect(settled.data.reason).toContain('unknown agent "gone"');
    expect(of(h.events(), 'attempt.dispatched')).toHaveLength(0);
    expect(h.server.requests).toHaveLength(0);
  });
});
