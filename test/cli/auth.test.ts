import { describe, expect, it } from 'vitest';
import { AUTH_CREDENTIAL_BYTES_MAX } from '../../core/limits.js';
import { credentialFromInput, feedHidden } from '../../cli/commands/auth.js';

describe('loom auth set - reading the secret', () => {
  it('credentialFromInput - the text is the secret of the type; one trailing newline is dropped', () => {
    expect(credentialFromInput('sk-key-12345\n', {})).toEqual({ type: 'api', key: 'sk-key-12345' });
    expect(credentialFromInput('token-12345', { type: 'oauth', expiresAt: '1767225600000' })).toEqual({ type: 'oauth', access: 'token-12345', expiresAt: 1767225600000 });
    expect(credentialFromInput('pass word \n', { type: 'basic', username: 'me' })).toEqual({ type: 'basic', username: 'me', password: 'pass word ' });
  });

  it('credentialFromInput - a basic password keeps its inner and trailing spaces but is refused with a line break inside', () => {
    expect(() => credentialFromInput('pass\nword', { type: 'basic', username: 'me' })).toThrow(/password contains a control character/);
  });

  it('credentialFromInput - JSON input: a whole credential, or the fields of --type (a bare headers object)', () => {
    expect(credentialFromInput('{"type":"oauth","access":"acc-1234","refresh":"ref-1234"}', {})).toEqual({ type: 'oauth', access: 'acc-1234', refresh: 'ref-1234' });
    expect(credentialFromInput('{"X-Key":"gw-value-1"}', { type: 'headers' })).toEqual({ type: 'headers', headers: { 'X-Key': 'gw-value-1' } });
    expect(() => credentialFromInput('{"type":"api","key":"k-12345"}', { type: 'oauth' })).toThrow(/--type oauth but the JSON input has type "api"/);
    expect(() => credentialFromInput('{"type":"api","key":"secret-value-1"', {})).toThrow(/not valid JSON/);
    expect(() => credentialFromInput('{"type":"api","key":"secret-value-1"', {})).not.toThrow(/secret-value-1/);
  });

  it('credentialFromInput - header lines, and a bad one named by number only', () => {
    expect(credentialFromInput('X-Key: gw-value-1\n\nX-Org: 7\n', { type: 'headers' })).toEqual({ type: 'headers', headers: { 'X-Key': 'gw-value-1', 'X-Org': '7' } });
    expect(() => credentialFromInput('X-Key: ok-value\nsecret-line-value', { type: 'headers' })).toThrow(/^headers: line 2 is not "Name: value"$/);
  });

  it('credentialFromInput - empty input and a bad expiry are refused', () => {
    expect(() => credentialFromInput('\n', {})).toThrow(/no secret given/);
    expect(() => credentialFromInput('tok-12345', { type: 'oauth', expiresAt: 'tomorrow' })).toThrow(/--expires-at tomorrow/);
  });

  it('feedHidden - typing, backspace and Enter give the line; Ctrl-C interrupts; too long a line overflows', () => {
    let state = feedHidden({ value: '' }, 'sk-ab');
    state = feedHidden(state, 'x\u007f');
    expect(state).toEqual({ value: 'sk-ab' });
    expect(feedHidden(state, 'c\r')).toEqual({ value: 'sk-abc', done: 'enter' });
    expect(feedHidden(state, '\u0004')).toEqual({ value: 'sk-ab', done: 'enter' });
    expect(feedHidden(state, '\u0003')).toEqual({ value: '', done: 'interrupt' });
    expect(feedHidden({ value: '' }, '\u001b[A')).toEqual({ value: '[A' });
    expect(feedHidden({ value: '' }, 'x'.repeat(AUTH_CREDENTIAL_BYTES_MAX + 1)).done).toBe('overflow');
  });
});
