import { describe, expect, it } from 'vitest';
import { PLUGIN_ERROR_MESSAGE_CHARS_MAX } from '../../core/limits.js';
import { admitWithHooks, HookRegistry, NO_HOOKS, recordHookFailure, type HookFailure } from '../../services/hooks.js';
import { tempStore } from '../helpers.js';

function registry(options: { timeoutMs?: number; scrub?: (t: string) => string } = {}) {
  const failures: HookFailure[] = [];
  const hooks = new HookRegistry({ ...options, report: (f) => failures.push(f) });
  return { hooks, failures };
}

const plugin = (name: string, order = 0) => ({ name, order: () => order });
const ctx = { sessionId: 'ses_1' };

describe('HookRegistry', () => {
  it('hooks - with no hook of a name, run returns the very value it was given', async () => {
    const { hooks } = registry();
    const value = { tool: 'read', input: { path: 'a' } };
    expect(hooks.has('tool.before')).toBe(false);
    expect(await hooks.run('tool.before', value, ctx)).toBe(value);
    expect(await NO_HOOKS.run('tool.before', value, ctx)).toBe(value);
  });

  it('hooks - a hook changes its draft; the value it was given is left untouched', async () => {
    const { hooks } = registry();
    hooks.add(plugin('p'), 'input.admitted', (draft) => {
      draft.text = `${draft.text} (checked)`;
      draft.mode = 'queue';
    });
    const value = { text: 'hello' };
    const out = await hooks.run('input.admitted', value, ctx);
    expect(out).toEqual({ text: 'hello (checked)', mode: 'queue' });
    expect(value).toEqual({ text: 'hello' });
  });

  it('hooks - run in plugin order, then in registration order, each seeing the one before', async () => {
    const { hooks } = registry();
    hooks.add(plugin('second', 1), 'chat.headers', (d) => void (d['x-order'] = `${d['x-order'] ?? ''}b`));
    hooks.add(plugin('first', 0), 'chat.headers', (d) => void (d['x-order'] = `${d['x-order'] ?? ''}a1`));
    hooks.add(plugin('first', 0), 'chat.headers', async (d) => void (d['x-order'] = `${d['x-order'] ?? ''}a2`));
    expect(await hooks.run('chat.headers', {}, ctx)).toEqual({ 'x-order': 'a1a2b' });
  });

  it('hooks - a hook that throws has its draft discarded, is reported, and the next hook still runs', async () => {
    const { hooks, failures } = registry();
    hooks.add(plugin('broken', 0), 'tool.after', (d) => {
      d.output = 'half-changed';
      throw new Error('boom');
    });
    hooks.add(plugin('fine', 1), 'tool.after', (d) => void (d.output = `${d.output}!`));
    const out = await hooks.run('tool.after', { tool: 'read', output: 'text', isError: false }, { ...ctx, callId: 'call_1' });
    expect(out.output).toBe('text!');
    expect(failures).toEqual([{ plugin: 'broken', hook: 'tool.after', message: 'boom', ctx: { sessionId: 'ses_1', callId: 'call_1' } }]);
  });

  it('hooks - a hook that never finishes times out and its draft is discarded', async () => {
    const { hooks, failures } = registry({ timeoutMs: 20 });
    hooks.add(plugin('stuck'), 'input.admitted', (d) => {
      d.text = 'changed before hanging';
      return new Promise<void>(() => {});
    });
    expect(await hooks.run('input.admitted', { text: 'original' }, ctx)).toEqual({ text: 'original' });
    expect(failures[0]).toMatchObject({ plugin: 'stuck', hook: 'input.admitted', message: 'PluginTimeoutError: the input.admitted hook timed out after 20 ms' });
  });

  it('hooks - a draft left invalid is discarded, naming the field', async () => {
    const { hooks, failures } = registry();
    hooks.add(plugin('p'), 'chat.headers', (d) => void (d['x-bad'] = 'line\r\nbreak'));
    hooks.add(plugin('p'), 'chat.headers', (d) => void (d.Host = 'elsewhere'));
    hooks.add(plugin('p'), 'chat.headers', (d) => void (d.Authorization = 'Bearer mine'));
    hooks.add(plugin('p'), 'tool.before', (d) => void (d.tool = 'bash'));
    hooks.add(plugin('p'), 'chat.params', (d) => void ((d as { model: unknown }).model = 42));
    hooks.add(plugin('p'), 'chat.params', (d) => void ((d as Record<string, unknown>).stream = false));
    hooks.add(plugin('p'), 'input.admitted', (d) => void (d.text = '   '));
    hooks.add(plugin('p'), 'permission.ask', (d) => void ((d as { decision: string }).decision = 'maybe'));
    expect(await hooks.run('chat.headers', {}, ctx)).toEqual({});
    expect(await hooks.run('tool.before', { tool: 'read', input: {} }, ctx)).toEqual({ tool: 'read', input: {} });
    const params = { model: 'm', messages: [{ role: 'user' as const, content: 'hi' }] };
    expect(await hooks.run('chat.params', params, ctx)).toBe(params);
    expect(await hooks.run('input.admitted', { text: 'x' }, ctx)).toEqual({ text: 'x' });
    expect(await hooks.run('permission.ask', { tool: 'bash', summary: 's', decision: 'ask' }, ctx)).toEqual({ tool: 'bash', summary: 's', decision: 'ask' });
    expect(failures.map((f) => f.message)).toEqual([
      'left an invalid draft: "x-bad": may hold only printable ASCII (no line breaks)',
      'left an invalid draft: "Host": is managed by the HTTP client and may not be set',
      'left an invalid draft: "Authorization": carries a credential: credentials come from the provider configuration (loom auth), never from a hook',
      'left an invalid draft: "tool": is read-only',
      expect.stringMatching(/^left an invalid draft: "model": /),
      'left an invalid draft: "stream": is not a field of this draft',
      'left an invalid draft: "text": is empty',
      expect.stringMatching(/^left an invalid draft: "decision": /),
    ]);
  });

  it('hooks - a failure message is bounded and has secrets removed', async () => {
    const { hooks, failures } = registry({ scrub: (t) => t.replaceAll('sk-planted-secret', '[redacted]') });
    hooks.add(plugin('leaky'), 'chat.headers', () => {
      throw new Error(`key sk-planted-secret ${'x'.repeat(5_000)}`);
    });
    await hooks.run('chat.headers', {}, ctx);
    expect(failures[0]!.message.startsWith('key [redacted] xxx')).toBe(true);
    expect(failures[0]!.message.length).toBeLessThanOrEqual(PLUGIN_ERROR_MESSAGE_CHARS_MAX);
  });

  it('hooks - removing a hook stops it from running', async () => {
    const { hooks } = registry();
    const off = hooks.add(plugin('p'), 'chat.headers', (d) => void (d['x-a'] = '1'));
    off();
    expect(hooks.has('chat.headers')).toBe(false);
    expect(await hooks.run('chat.headers', {}, ctx)).toEqual({});
  });
});

describe('admitWithHooks', () => {
  it('admitWithHooks - stores what the input.admitted hooks leave, and records a failing hook in the session log', async () => {
    const store = tempStore();
    store.append({ sessionId: 'ses_a', type: 'session.created', data: { location: '/tmp', model: 'openai/test' } });
    const hooks = new HookRegistry({ report: (f) => recordHookFailure(store, f) }); // as the runtime wires it
    hooks.add(plugin('upper', 0), 'input.admitted', (d) => void (d.text = d.text.toUpperCase()));
    hooks.add(plugin('thrower', 1), 'input.admitted', () => {
      throw new Error('nope');
    });
    const admission = await admitWithHooks(store, hooks, 'ses_a', { text: 'hello', source: 'cli' });
    expect(admission.input.text).toBe('HELLO');
    const events = store.read('ses_a');
    expect(events.map((e) => e.type)).toEqual(['session.created', 'plugin.hook.failed', 'input.admitted']);
    expect(events[1]!.data).toEqual({ plugin: 'thrower', hook: 'input.admitted', message: 'nope' });
    expect(events[2]!.data).toMatchObject({ text: 'HELLO', mode: 'queue', source: 'cli' });
  });
});
