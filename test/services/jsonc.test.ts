import { describe, expect, it } from 'vitest';
import { detectFormatting, editJsonc, locateJsonPath, parseJsonc } from '../../services/jsonc.js';

const parsed = (text: string) => {
  const r = parseJsonc(text);
  if (r.error) throw new Error(`does not parse: ${r.error.detail} at ${r.error.line}:${r.error.column}`);
  return r.value;
};

/** Edits `text` to `to` and checks the result parses back to exactly `to`. */
function edit(text: string, to: unknown): string {
  const out = editJsonc(text, parsed(text), to);
  expect(out).toBeDefined();
  expect(parsed(out!)).toEqual(to);
  return out!;
}

describe('jsonc', () => {
  it('parseJsonc - reports the first syntax error with line and column', () => {
    expect(parseJsonc('{\n  "a": 1\n  "b": 2\n}')).toEqual({ error: { line: 3, column: 3, detail: 'comma expected' } });
    expect(parseJsonc('// c\n{ "a": [1, 2,], }')).toEqual({ value: { a: [1, 2] } });
  });

  it('locateJsonPath - finds the line of a key, and of its nearest written parent when it is missing', () => {
    const text = '{\n  "limits": {\n    "turnLimit": 3\n  },\n  "rules": [\n    { "tool": "a" },\n    { "tool": "b" }\n  ]\n}';
    expect(locateJsonPath(text, ['limits', 'turnLimit'])).toEqual({ line: 3, column: 5 });
    expect(locateJsonPath(text, ['rules', 1, 'tool'])).toEqual({ line: 7, column: 7 });
    expect(locateJsonPath(text, ['limits', 'missing', 'deeper'])).toEqual({ line: 2, column: 3 });
    expect(locateJsonPath(text, [])).toEqual({ line: 1, column: 1 });
    expect(locateJsonPath('', ['a'])).toBeUndefined();
  });

  it('editJsonc - changes a value in place, keeping every comment', () => {
    const text = '// head\n{\n  // the format\n  "version": 1, // v\n  "model": "a/b" /* m */\n}\n';
    expect(edit(text, { version: 2, model: 'a/b' })).toBe('// head\n{\n  // the format\n  "version": 2, // v\n  "model": "a/b" /* m */\n}\n');
  });

  it('editJsonc - removes a key with the comment at the end of its line and the comment lines above it, and nothing else', () => {
    const text = [
      '{',
      '  "openai": {',
      '    "baseURL": "http://x/v1", // the proxy',
      '    // the key',
      '    "apiKey": "sk-1",',
      '    "idempotent": true',
      '  }',
      '}',
      '',
    ].join('\n');
    expect(edit(text, { openai: { baseURL: 'http://x/v1', idempotent: true } })).toBe(
      ['{', '  "openai": {', '    "baseURL": "http://x/v1", // the proxy', '    "idempotent": true', '  }', '}', ''].join('\n'),
    );
  });

  it('editJsonc - removing the last property takes the comma before it (no trailing comma left behind)', () => {
    const text = '{\n  "a": 1, // keep me\n  "b": 2 // b\n}\n';
    expect(edit(text, { a: 1 })).toBe('{\n  "a": 1 // keep me\n}\n');
  });

  it('editJsonc - keeps a file\'s trailing commas when removing', () => {
    const text = '{\n  "a": 1,\n  "b": 2,\n}\n';
    expect(edit(text, { a: 1 })).toBe('{\n  "a": 1,\n}\n');
  });

  it('editJsonc - removes an entry written inline', () => {
    const text = '{ "providers": { "openai": { "apiKey": "k" }, "anthropic": { "baseURL": "http://a/" } } }';
    expect(edit(text, { providers: { anthropic: { baseURL: 'http://a/' } } })).toBe('{ "providers": {  "anthropic": { "baseURL": "http://a/" } } }');
  });

  it('editJsonc - puts a new version key first and other new keys at the end, with the file\'s indentation', () => {
    const text = '{\n\t// old\n\t"defaultModel": "a/b",\n\t"keep": true\n}';
    const out = edit(text, { version: 2, keep: true, model: 'a/b', limits: { turnLimit: 3 } });
    expect(out.indexOf('"version"')).toBeLessThan(out.indexOf('"keep"'));
    expect(out).toContain('\t"limits": {\n\t\t"turnLimit": 3\n\t}');
    expect(out).not.toContain('// old');
  });

  it('editJsonc - keeps CRLF line endings', () => {
    const text = '{\r\n  "version": 1,\r\n  "x": 1\r\n}\r\n';
    const out = edit(text, { version: 2, y: 2 });
    expect(out.replace(/\r\n/g, '')).not.toContain('\n');
  });

  it('detectFormatting - reads the indentation and line ending of the file', () => {
    expect(detectFormatting('{\n    "a": 1\n}')).toMatchObject({ insertSpaces: true, tabSize: 4, eol: '\n' });
    expect(detectFormatting('{\r\n\t"a": 1\r\n}')).toMatchObject({ insertSpaces: false, eol: '\r\n' });
    expect(detectFormatting('{ "a": 1 }')).toMatchObject({ insertSpaces: true, tabSize: 2 });
  });
});
