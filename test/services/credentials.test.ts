import { describe, expect, it } from 'vitest';
import { AUTH_REDACT_PARTIAL_CHARS_MIN } from '../../core/limits.js';
import { credentialSecrets, describeCredential, REDACTED, redactSecrets } from '../../services/credentials.js';

const KEY = 'sk-loom-planted-0123456789abcdef';

describe('credentials - redactSecrets', () => {
  it('redactSecrets - replaces every occurrence of a secret', () => {
    const text = `Incorrect API key provided: Bearer ${KEY}. You sent ${KEY} twice`;
    expect(redactSecrets(text, [KEY])).toBe(`Incorrect API key provided: Bearer ${REDACTED}. You sent ${REDACTED} twice`);
  });

  it('redactSecrets - replaces a secret cut off at the end of the text (a truncated echo), with or without the ellipsis', () => {
    const cut = KEY.slice(0, 15);
    expect(redactSecrets(`error: got Bearer ${cut}`, [KEY])).toBe(`error: got Bearer ${REDACTED}`);
    expect(redactSecrets(`error: got Bearer ${cut}…`, [KEY])).toBe(`error: got Bearer ${REDACTED}…`);
  });

  it('redactSecrets - leaves a tail shorter than AUTH_REDACT_PARTIAL_CHARS_MIN alone (too common to mean a key)', () => {
    const tail = KEY.slice(0, AUTH_REDACT_PARTIAL_CHARS_MIN - 1);
    expect(redactSecrets(`prefix ${tail}`, [KEY])).toBe(`prefix ${tail}`);
  });

  it('redactSecrets - never redacts secrets shorter than the minimum, and leaves text without secrets unchanged', () => {
    expect(redactSecrets('a b c', ['a'])).toBe('a b c');
    expect(redactSecrets('nothing to see', [KEY])).toBe('nothing to see');
  });
});

describe('credentials - credentialSecrets', () => {
  it('credentialSecrets - covers the key, both tokens, the password and its Basic encoding, long header values', () => {
    expect(credentialSecrets({ type: 'api', key: KEY })).toContain(KEY);
    expect(credentialSecrets({ type: 'oauth', access: 'access-token-1', refresh: 'refresh-token-1' })).toEqual(expect.arrayContaining(['access-token-1', 'refresh-token-1']));
    const basic = credentialSecrets({ type: 'basic', username: 'me', password: 'hunter22' });
    expect(basic).toEqual(expect.arrayContaining(['hunter22', Buffer.from('me:hunter22').toString('base64')]));
    const headers = credentialSecrets({ type: 'headers', headers: { 'X-Gateway-Key': 'gw-secret-value', 'X-Org': '7' } });
    expect(headers).toContain('gw-secret-value');
    expect(headers).not.toContain('7');
  });

  it('credentialSecrets - includes the JSON-escaped and URL-encoded forms of a secret', () => {
    const secret = 'pa"ss/wo rd';
    const forms = credentialSecrets({ type: 'basic', username: 'u', password: secret });
    expect(forms).toEqual(expect.arrayContaining([secret, 'pa\\"ss/wo rd', encodeURIComponent(secret)]));
    expect(redactSecrets(JSON.stringify({ error: `bad password ${secret}` }), forms)).not.toContain('wo rd');
  });
});

describe('credentials - describeCredential', () => {
  it('describeCredential - shows the type and at most the last 4 characters', () => {
    expect(describeCredential({ type: 'api', key: KEY })).toBe('api key …cdef');
    expect(describeCredential({ type: 'api', key: 'short-key' })).toBe('api key …');
    expect(describeCredential({ type: 'basic', username: 'me', password: 'hunter22' })).not.toContain('hunter22');
    expect(describeCredential({ type: 'headers', headers: { 'X-Key': 'gw-secret-value' } })).toBe('headers X-Key');
  });
});
